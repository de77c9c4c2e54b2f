"""Benchmarks that print JSON (``omnizone bench …``, docs/benchmarks.md)."""
