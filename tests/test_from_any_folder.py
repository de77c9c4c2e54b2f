"""Every command as a user runs it from a folder that is not the checkout: the
shipped examples are found, relative paths are read from the file that names
them, and a user's mistake is one line on stderr with exit code 2, never a
traceback (issue 16, point 1)."""

import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from omnizone.paths import shipped_config
from omnizone.sim.scenario import load_scenario

ROOT = Path(__file__).resolve().parent.parent


def omnizone(cwd: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "omnizone.suite", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={"PATH": "/usr/bin:/bin", "HOME": str(cwd)},  # no OMNIZONE_* from the caller
    )


def one_line_error(done: subprocess.CompletedProcess[str], *words: str) -> None:
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    for word in words:
        assert word in lines[0], lines[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_scenarios_store_file_is_read_beside_the_scenario(tmp_path: Path) -> None:
    shutil.copy(shipped_config("stores/rivoli.yaml"), tmp_path / "my-store.yaml")
    scenario = tmp_path / "scenarios" / "mine.yaml"
    scenario.parent.mkdir()
    scenario.write_text("name: mine\nstore_file: ../my-store.yaml\nduration_s: 60\n")
    assert load_scenario(scenario).store_file == (tmp_path / "my-store.yaml").resolve()
    # the shipped scenarios name the shipped store the same way
    assert load_scenario(shipped_config("scenarios/quick.yaml")).store_file.samefile(
        shipped_config("stores/rivoli.yaml")
    )


def test_eval_localize_runs_a_scenario_named_by_absolute_path(tmp_path: Path) -> None:
    quick = str(shipped_config("scenarios/quick.yaml"))
    done = omnizone(
        tmp_path, "eval", "localize", "--scenario", quick, "--duration", "20", "--json", timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert '"zone_accuracy"' in done.stdout


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["eval", "localize", "--scenario", "/nowhere/quick.yaml"], ["/nowhere/quick.yaml"]),
        (["demo", "--scenario", "nowhere.yaml"], ["nowhere.yaml", "cannot read"]),
        (["report", "--out", "report"], ["--database-url", "no database at"]),
        (["sim", "run", "--accounts", "accounts.yaml"], ["--accounts", "accounts.yaml"]),
        (["server", "run"], ["API key"]),
    ],
)
def test_a_users_mistake_is_one_line_and_exit_2(
    tmp_path: Path, args: list[str], words: list[str]
) -> None:
    one_line_error(omnizone(tmp_path, *args), *words)
    assert not (tmp_path / "omnizone.db").exists()  # nothing made behind the user's back
    assert not (tmp_path / "report").exists()


def test_a_scenario_naming_a_missing_store_says_where(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text("store_file: stores/gone.yaml\n")
    one_line_error(
        omnizone(tmp_path, "demo", "--scenario", "s.yaml"), "s.yaml", "store_file", "gone.yaml"
    )


def test_sim_run_with_logins_missing_says_which(tmp_path: Path) -> None:
    (tmp_path / "accounts.yaml").write_text("gateways: {gw-entrance: some-password}\n")
    one_line_error(
        omnizone(tmp_path, "sim", "run", "--accounts", "accounts.yaml"),
        "no password for gw-womenswear",
    )


def test_sim_run_against_no_broker_names_the_address(tmp_path: Path) -> None:
    store = yaml.safe_load(shipped_config("stores/rivoli.yaml").read_text())
    logins = {"gateways": {g["id"]: "some-password" for g in store["gateways"]}}
    (tmp_path / "accounts.yaml").write_text(yaml.safe_dump(logins))
    port = free_port()  # nothing listens there
    done = omnizone(
        tmp_path, "sim", "run", "--accounts", "accounts.yaml", "--broker-port", str(port)
    )
    one_line_error(done, f"127.0.0.1:{port}", "gw-entrance", "no answer")
    assert "None" not in done.stderr
