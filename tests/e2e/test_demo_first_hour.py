"""`omnizone demo` as a first-time user meets it (issue 16, point 2): the
addresses and the key each on a line of their own, the server still serving
after the simulation ends until Ctrl-C, a simulated clock inside store hours,
phones that post receipts and a till that sends purchases, and with --json
one JSON object alone on stdout."""

import json
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from omnizone.paths import shipped_config
from omnizone.suite.demo import demo_start

pytestmark = pytest.mark.e2e

# Short trips that all end at the till: every shopper pays within the run.
SCENARIO = """\
name: first-hour
store_file: {store}
seed: 11
duration_s: 300
shoppers:
  arrivals_per_minute: 4
  initial_shoppers: 6
  zones_per_trip: [1, 2]
  dwell_mean_s: 20
  fitting_room_weight: 0
  checkout_probability: 1.0
"""


def test_demo_serves_after_the_simulation_and_fills_the_funnel(tmp_path: Path) -> None:
    scenario = tmp_path / "first-hour.yaml"
    scenario.write_text(SCENARIO.format(store=shipped_config("stores/rivoli.yaml")))
    demo = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "omnizone.suite",
            "demo",
            "--scenario",
            str(scenario),
            "--speed",
            "30",
            "--json",
            "--api-port",
            "0",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    serving = threading.Event()

    def read_stderr() -> None:
        assert demo.stderr is not None
        for line in demo.stderr:
            lines.append(line.rstrip("\n"))
            if "still serving" in line:
                serving.set()

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    try:
        assert serving.wait(timeout=300), "\n".join(lines[-30:])

        # The addresses, each alone on its line, ready to be copied.
        def alone(label: str) -> str:
            (line,) = [line for line in lines if line.startswith(f"  {label} ")]
            (_, value) = line.rsplit(maxsplit=1)
            assert line.split() == [*label.split(), value]  # nothing else on its line
            return value

        dashboard, app, docs = alone("dashboard"), alone("shopper app"), alone("API docs")
        assert dashboard.endswith("/dashboard/") and app.endswith("/app/")
        assert docs.endswith("/docs")
        key = alone("API key")
        assert len(key) >= 24
        # The simulation is over, and the server still answers.
        assert httpx.get(dashboard, timeout=10).status_code == 200
        answer = httpx.get(
            docs.removesuffix("/docs") + "/api/v1/ingest/stats",
            headers={"X-API-Key": key},
            timeout=10,
        )
        assert answer.status_code == 200 and answer.json()["ingested"] > 0
        demo.send_signal(signal.SIGINT)  # Ctrl-C
        stdout, _ = demo.communicate(timeout=120)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    reader.join(timeout=10)
    assert demo.returncode == 0, "\n".join(lines[-30:])
    result = json.loads(stdout)  # one object, nothing else on stdout
    assert stdout.strip().count("\n") == 0
    # Inside store hours (10:00-20:00 store time, Monday to Saturday).
    start = datetime.fromisoformat(result["sim_start"])
    assert start.weekday() < 6 and 10 <= start.hour < 20
    sent = sum(c["sent"] for c in result["campaigns"])
    assert sent > 0
    assert result["receipts_delivered"] > 0
    assert result["receipts_opened"] + result["receipts_dismissed"] == result["receipts_delivered"]
    assert result["checkouts"] > 0 and result["purchases_sent"] >= result["checkouts"]
    assert result["app_errors"] == 0
    assert result["purchased_trips"] > 0  # the till's purchases reached the funnel
    welcome = next(c for c in result["campaigns"] if c["campaign_id"] == "welcome")
    assert welcome["delivered"] > 0 and welcome["treated_shoppers"] > 0


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        ("2026-12-03T10:30:00+00:00", "2026-12-03T10:30:00+00:00"),  # Thursday 11:30 in Paris
        ("2026-12-03T06:00:00+00:00", "2026-12-03T09:00:00+00:00"),  # 07:00: today at 10:00
        ("2026-12-03T19:00:00+00:00", "2026-12-04T09:00:00+00:00"),  # 20:00: closed
        ("2026-12-05T18:50:00+00:00", "2026-12-07T09:00:00+00:00"),  # Saturday late: Monday
        ("2026-12-06T12:00:00+00:00", "2026-12-07T09:00:00+00:00"),  # Sunday
    ],
)
def test_the_demo_clock_starts_inside_store_hours(now: str, expected: str) -> None:
    start = demo_start(datetime.fromisoformat(now), "Europe/Paris", 1800)
    assert start == datetime.fromisoformat(expected).astimezone(UTC)
