"""`omnizone demo --json` as a user runs it: a subprocess, then nothing left behind."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.e2e


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{entry.name}: {cmdline}")
    return found


@pytest.mark.parametrize("broker", ["auto", "embedded"])
def test_demo_prints_one_json_summary_and_leaves_nothing_running(
    tmp_path: Path, broker: str
) -> None:
    run_dir = tmp_path / "run"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "omnizone.suite",
            "demo",
            "--duration",
            "6",
            "--speed",
            "30",
            "--json",
            "--broker",
            broker,
            "--api-port",
            "0",
            "--run-dir",
            str(run_dir),
            "--start",
            "2026-11-21T09:00:00",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["broker"] in ("mosquitto", "embedded")
    if broker == "embedded":
        assert result["broker"] == "embedded"
    assert result["published"] > 0
    assert result["ingested"] == result["published"]
    assert result["not_ingested"] == 0
    assert result["dead_lettered"] == 0
    assert 0 < result["simulated_s"] <= 6 * 30 + 2  # paced: no more than --duration allows
    assert {"nfc_taps", "try_ons_arrived", "try_ons_departed"} <= set(result)
    zones = {z["zone"]: z for z in result["zones"]}
    assert len(zones) == 10 and set(zones["entrance"]) >= {"zone", "visits", "mean_dwell_s"}
    assert sum(z["visits"] + z["pass_bys"] + z["open_visits"] for z in zones.values()) > 0
    assert _processes_mentioning(str(run_dir)) == []
    # The logins `sim run` / `sim replay` and `sim record` need (docs/recording.md).
    accounts_file = run_dir / "accounts.yaml"
    assert accounts_file.stat().st_mode & 0o777 == 0o600
    logins = yaml.safe_load(accounts_file.read_text())
    assert len(logins["gateways"]) == 10
    assert logins["recorders"]["paris-rivoli"]["username"] == "omnizone-recorder-paris-rivoli"
