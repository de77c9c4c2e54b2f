"""The top floor: what assembles several parts.

The root ``omnizone`` command (each part brings its own command group), the
demo, the analytics report, and the benchmarks and evaluations. It may import
every part; no part imports it (an import-linter contract in pyproject.toml).
"""
