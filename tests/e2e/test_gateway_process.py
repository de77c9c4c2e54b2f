"""`omnizone gateway run` as a process, fed raw BLE adverts over UDP through
bleak's own scanner (the emulated adapter): kill -9 it mid-stream, restart it,
and every sequence number it ever handed out reaches the server exactly once."""

import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from omnizone.gateway.ble.adstructures import eddystone_eid_payload
from omnizone.sim.devices.ble_backend import encode_datagram
from tests.e2e.conftest import Backend

pytestmark = pytest.mark.e2e
GATEWAY = "gw-entrance"


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def _adverts(port: int) -> Iterator[threading.Event]:
    """Forty phones advertising to the gateway's emulated adapter, ~400 adverts/s."""
    stop = threading.Event()

    def send() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            n = 0
            while not stop.is_set():
                phone = n % 40
                payload = eddystone_eid_payload(bytes([0xA0, phone, 1, 2, 3, 4, 5, 6]), -20)
                address = f"4A:00:00:00:00:{phone:02X}"
                sock.sendto(
                    encode_datagram(address, payload, -60 - phone % 20), ("127.0.0.1", port)
                )
                n += 1
                time.sleep(0.0025)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join()


def _start_gateway(config: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "omnizone.suite", "gateway", "run", "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def test_kill_9_mid_stream_then_restart_loses_nothing(backend: Backend, tmp_path: Path) -> None:
    udp_port = _free_udp_port()
    outbox = tmp_path / "gateway" / "outbox.db"
    config = tmp_path / "gateway.yaml"
    _user, password = backend.accounts.gateway_credentials(GATEWAY)
    config.write_text(
        f"store: {backend.store.id}\ngateway: {GATEWAY}\n"
        f"broker_host: 127.0.0.1\nbroker_port: {backend.broker.port}\npassword: {password}\n"
        f"outbox_path: {outbox}\nwindow_ms: 200\nhealth_interval_s: 1\n"
        f"ble:\n  feed: udp://127.0.0.1:{udp_port}\n  scanning_mode: active\n"
    )
    with _adverts(udp_port):
        first = _start_gateway(config)
        try:
            assert backend.wait_until(lambda: len(backend.received(GATEWAY)) >= 30), (
                first.stderr.read().decode() if first.poll() is not None and first.stderr else ""
            )
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        assert first.returncode == -signal.SIGKILL
        with sqlite3.connect(outbox) as db:  # what the killed process left on disk
            handed_out = db.execute("SELECT value FROM meta WHERE key='next_seq'").fetchone()[0]
        seen_before_restart = len(backend.received(GATEWAY))

        second = _start_gateway(config)
        try:
            assert backend.wait_until(
                lambda: len(backend.received(GATEWAY)) >= seen_before_restart + 30
            )
        finally:
            second.send_signal(signal.SIGTERM)  # a clean stop: flush and say goodbye
            second.wait(30)
        assert second.returncode == 0, second.stderr.read().decode() if second.stderr else ""

    with sqlite3.connect(outbox) as db:
        final_seq = db.execute("SELECT value FROM meta WHERE key='next_seq'").fetchone()[0]
        left = db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
    assert final_seq > handed_out > 0
    assert left == 0, "a clean stop leaves the outbox empty"
    # Every number the gateway ever handed out arrived: the killed session's
    # unsent backlog, its last will (published by the broker), the restart's
    # birth, data, health and the final goodbye. Duplicates were dropped.
    expected = {(GATEWAY, seq) for seq in range(final_seq)}
    assert backend.wait_until(lambda: backend.received(GATEWAY) == expected), sorted(
        expected - backend.received(GATEWAY)
    )[:20]
    with backend.api() as api:
        assert api.get("/api/v1/ingest/stats").json()["gaps"] == 0
        gateways = {
            g["gateway"]: g for g in api.get(f"/api/v1/stores/{backend.store.id}/gateways").json()
        }
    assert gateways[GATEWAY]["state"] == "offline"
    assert gateways[GATEWAY]["counters"]["ble.scanner_starts"] >= 1
