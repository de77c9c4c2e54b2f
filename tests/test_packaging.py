"""One distribution whose `gateway` extra installs on a Pi without the server's stack."""

import ast
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GATEWAY = ROOT / "gateway" / "omnizone" / "gateway"
SERVER_ONLY = ("fastapi", "sqlalchemy", "numpy", "uvicorn", "amqtt", "httpx", "psycopg")


def _pyproject() -> dict:  # type: ignore[type-arg]
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_gateway_extra_does_not_pull_server_dependencies() -> None:
    project = _pyproject()["project"]
    gateway = " ".join(project["optional-dependencies"]["gateway"] + project["dependencies"])
    assert not [name for name in SERVER_ONLY if name in gateway.lower()]
    assert set(project["optional-dependencies"]) >= {"gateway", "server", "sim", "demo", "dev"}
    assert project["scripts"]["omnizone"] == "omnizone.suite.cli:app"


def test_gateway_code_and_the_cli_import_without_server_modules() -> None:
    probe = (
        "import sys\n"
        "import omnizone.contract, omnizone.store, omnizone.suite.cli\n"
        "import omnizone.gateway.node, omnizone.gateway.mqtt, omnizone.gateway.runner\n"
        f"print(sorted(m for m in {SERVER_ONLY!r} if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert done.stdout.strip() == "[]"


def _simulator_imports(source: str) -> list[str]:
    """Every import of omnizone.sim in `source`, wherever it stands (inside a
    function, under TYPE_CHECKING) and however it is spelt, importlib included."""

    def is_sim(name: str) -> bool:
        return name == "omnizone.sim" or name.startswith("omnizone.sim.")

    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if is_sim(alias.name)]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            found += [name for name in names if is_sim(name)][:1]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            found += [node.value] if is_sim(node.value) else []
    return found


@pytest.mark.parametrize(
    "source",
    [
        "import omnizone.sim.devices.ble_backend",
        "def f():\n    from omnizone.sim.devices.ble_backend import EmulatedAdapter",
        "from omnizone import sim",
        "import importlib\nimportlib.import_module('omnizone.sim.engine')",
    ],
)
def test_the_simulator_import_check_finds_each_spelling(source: str) -> None:
    assert _simulator_imports(source)


def test_nothing_under_gateway_imports_the_simulator() -> None:
    """A Pi install holds no path into the simulator (the BLE feed is injected)."""
    modules = sorted(GATEWAY.rglob("*.py"))
    assert len(modules) > 20 and GATEWAY / "runner.py" in modules
    offenders = {
        str(path.relative_to(ROOT)): found
        for path in modules
        if (found := _simulator_imports(path.read_text(encoding="utf-8")))
    }
    assert offenders == {}


def test_every_gateway_module_imports_with_the_simulator_missing() -> None:
    probe = (
        "import importlib, importlib.abc, pkgutil, sys\n"
        "class NoSimulator(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'omnizone.sim' or name.startswith('omnizone.sim.'):\n"
        "            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, NoSimulator())\n"
        "import omnizone.gateway\n"
        "found = pkgutil.walk_packages(omnizone.gateway.__path__, 'omnizone.gateway.')\n"
        "names = [m.name for m in found]\n"
        "for name in names:\n"
        "    importlib.import_module(name)\n"
        "print(len(names), 'omnizone.gateway.runner' in names)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr[-2000:]
    count, has_runner = done.stdout.split()
    assert int(count) > 20 and has_runner == "True"


def test_the_wheel_carries_every_part_and_the_example_config(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("omnizone-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for module in (
        "omnizone/contract/messages.py",
        "omnizone/store/model.py",
        "omnizone/suite/cli.py",
        "omnizone/suite/bench/offers.py",
        "omnizone/gateway/node.py",
        "omnizone/server/runtime.py",
        "omnizone/server/adapters/migrations/env.py",
        "omnizone/server/adapters/migrations/script.py.mako",
        "omnizone/server/adapters/migrations/versions/0001_baseline.py",
        "omnizone/sim/engine.py",
        "omnizone/_config/stores/rivoli.yaml",
        "omnizone/_config/scenarios/saturday-3db.yaml",
    ):
        assert module in names, module
    assert not any(
        name.startswith(("gateway/", "server/", "firmware-sim/", "suite/")) for name in names
    )
    assert "omnizone/__init__.py" not in names  # a namespace package spread over the parts
