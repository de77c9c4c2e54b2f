"""The house plan holds: the import contracts in pyproject.toml
(``[tool.importlinter]``, docs/architecture.md) are checked with the tests."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _lint_imports() -> str:
    found = Path(sys.executable).with_name("lint-imports")
    return str(found) if found.exists() else (shutil.which("lint-imports") or "lint-imports")


def test_every_import_contract_is_kept() -> None:
    run = subprocess.run(
        [_lint_imports(), "--no-cache"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert " broken." in run.stdout and "0 broken" in run.stdout, run.stdout[-2000:]


def test_a_broken_contract_fails(tmp_path: Path) -> None:
    """The check can fail: a foundation module that imports the server breaks it."""
    config = tmp_path / "contracts.toml"
    config.write_text(
        '[tool.importlinter]\nroot_packages = ["omnizone"]\n\n'
        "[[tool.importlinter.contracts]]\n"
        'name = "upside down"\ntype = "layers"\n'
        'layers = ["omnizone.contract", "omnizone.suite"]\n'
    )
    run = subprocess.run(
        [_lint_imports(), "--no-cache", "--config", str(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 1, run.stdout[-2000:]
    assert "omnizone.suite is not allowed to import omnizone.contract" in run.stdout
