"""One distribution whose `gateway` extra installs on a Pi without the server's stack."""

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
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
