"""The wheel, installed in a fresh virtualenv, runs `omnizone demo` from /tmp:
the example store, scenarios, campaigns and catalog ship inside it as package
data (one copy: config/ is what the wheel carries), and nothing reads the
checkout (issue 16, point 1).

Offline: the wheel goes in with --no-deps, and the fresh environment borrows
the third-party libraries of the running one through a path file, so only the
omnizone code and data come from the wheel."""

import json
import os
import site
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv holding only the wheel; returns its bin folder."""
    base = tmp_path_factory.mktemp("installed")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(base), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = base.glob("omnizone-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {
        "omnizone/_config/" + str(p.relative_to(ROOT / "config"))
        for p in (ROOT / "config").rglob("*")
        if p.is_file()
    }
    assert shipped <= names  # every example file ships, from the one copy in config/
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(venv / "bin" / "python"),
            "install",
            "--no-deps",
            "--no-index",
            "-q",
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    (packages,) = (venv / "lib").glob("python3*/site-packages")
    # Appended after the venv's own site-packages: the wheel's omnizone comes first,
    # and the running environment's path files (its editable omnizone) are not read.
    (packages / "zz_borrowed_libraries.pth").write_text(
        "\n".join(p for p in site.getsitepackages() if "site-packages" in p) + "\n"
    )
    return venv / "bin"


def test_the_installed_omnizone_reads_its_own_package_data(installed: Path) -> None:
    probe = (
        "import omnizone.paths as p, omnizone.sim.scenario as s\n"
        "print(p.__file__)\n"
        "print(p.shipped_config('stores/rivoli.yaml'))\n"
        "print(s.load_scenario(p.shipped_config('scenarios/quick.yaml')).store_file)\n"
    )
    done = subprocess.run(
        [str(installed / "python"), "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        cwd=tempfile.gettempdir(),
    )
    module, store, scenario_store = done.stdout.split()
    venv = str(installed.parent)
    assert module.startswith(venv) and store.startswith(venv) and scenario_store.startswith(venv)
    assert str(ROOT) not in done.stdout


def test_the_installed_demo_runs_from_tmp(installed: Path) -> None:
    with tempfile.TemporaryDirectory(dir=tempfile.gettempdir()) as folder:
        done = subprocess.run(
            [
                str(installed / "omnizone"),
                "demo",
                "--duration",
                "20",
                "--speed",
                "30",
                "--json",
                "--api-port",
                "0",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            cwd=folder,
            env={**os.environ, "PATH": f"{installed}:{os.environ.get('PATH', '')}"},
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert os.listdir(folder) == []  # nothing written where it ran
    result = json.loads(done.stdout)
    assert result["published"] > 0 and result["ingested"] == result["published"]
    assert len(result["zones"]) == 10  # the shipped example store
    assert {c["campaign_id"] for c in result["campaigns"]} >= {"welcome", "denim-10"}
    assert "/dashboard/" in done.stderr
