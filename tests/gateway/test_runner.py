"""The runner scans on the BLE backend it is given; the gateway alone refuses
``ble.feed``, which needs the simulator's emulated adapter (gateway/ble/backend.py)."""

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from bleak.backends.scanner import BaseBleakScanner
from typer.testing import CliRunner

from omnizone.gateway.ble.adstructures import eddystone_eid_payload
from omnizone.gateway.ble.backend import BleFeedUnavailable
from omnizone.gateway.cli import gateway_app
from omnizone.gateway.runner import run_gateway
from omnizone.gateway.settings import BleSettings, load_gateway_settings
from omnizone.sim.devices.ble_backend import EmulatedAdapter


def _config(tmp_path: Path, ble: str = "") -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(
        "store: paris-rivoli\ngateway: gw-entrance\n"
        # Nothing listens there: the runner retries in the background.
        "broker_host: 127.0.0.1\nbroker_port: 9\npassword: secret\n"
        f"outbox_path: {tmp_path / 'outbox.db'}\nwindow_ms: 100\n{ble}"
    )
    return path


async def test_the_runner_scans_on_the_injected_backend(tmp_path: Path) -> None:
    settings = load_gateway_settings(_config(tmp_path, "ble:\n  scanning_mode: active\n"))
    adapter = EmulatedAdapter("hci0")
    opened: list[BleSettings] = []
    closed: list[bool] = []

    @asynccontextmanager
    async def provider(ble: BleSettings) -> AsyncIterator[type[BaseBleakScanner]]:
        opened.append(ble)
        try:
            yield adapter.backend
        finally:
            closed.append(True)

    stop = asyncio.Event()
    running = asyncio.create_task(run_gateway(settings, stop, ble_backend=provider))
    payload = eddystone_eid_payload(bytes(range(8)), -20)
    for _ in range(100):
        await asyncio.sleep(0.02)
        adapter.push("4A:00:00:00:00:01", payload, -60)
        if adapter.counters.delivered >= 10:
            break
    stop.set()
    await asyncio.wait_for(running, 20)

    assert opened == [settings.ble] and closed == [True]
    assert adapter.counters.starts >= 1 and adapter.counters.delivered >= 10
    with sqlite3.connect(tmp_path / "outbox.db") as db:  # no broker: the windows wait there
        topics = {row[0] for row in db.execute("SELECT topic FROM outbox")}
    assert "omnizone/v1/paris-rivoli/gw-entrance/ble" in topics


async def test_run_gateway_alone_refuses_a_feed_before_touching_the_outbox(
    tmp_path: Path,
) -> None:
    settings = load_gateway_settings(_config(tmp_path, "ble:\n  feed: udp://127.0.0.1:0\n"))
    with pytest.raises(BleFeedUnavailable, match="simulator"):
        await run_gateway(settings, asyncio.Event())
    assert not (tmp_path / "outbox.db").exists()


def test_the_gateway_command_alone_refuses_a_feed_and_says_the_simulator_is_needed(
    tmp_path: Path,
) -> None:
    config = _config(tmp_path, "ble:\n  feed: udp://127.0.0.1:0\n")
    done = CliRunner().invoke(gateway_app, ["run", "-c", str(config)])
    assert done.exit_code == 2
    assert "ble.feed (udp://127.0.0.1:0)" in done.output
    assert "without the simulator" in done.output
    assert not (tmp_path / "outbox.db").exists()


async def test_the_suites_gateway_command_serves_a_feed_with_the_simulators_adapter() -> None:
    from omnizone.suite.cli import gateway_ble_backend

    async with gateway_ble_backend(BleSettings(feed="udp://127.0.0.1:0")) as backend:
        assert backend is not None and backend.__name__ == "EmulatedBleakScanner[hci0]"
    async with gateway_ble_backend(BleSettings(adapter="hci1")) as backend:
        assert backend is None  # bleak's own backend: the Bluetooth adapter
