"""Real processes to break: a Mosquitto broker with its persistence, the server
as `omnizone server run` on an SQLite file, and gateways running the real
GatewayNode, Outbox and MqttLink. Everything starts on free ports in the
test's own directory and is stopped by the test's fixtures.

Every check is made at the server: the taps each gateway produced, each with
a uid of its own, must be in the server's database exactly once."""

import contextlib
import json
import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from omnizone.broker import (
    BrokerAccounts,
    RunningBroker,
    find_mosquitto,
    free_port,
    start_broker,
)
from omnizone.broker.process import port_is_free
from omnizone.contract import NfcTap
from omnizone.contract.timefmt import wall_clock_ms
from omnizone.gateway.mqtt import BrokerAddress, MqttLink
from omnizone.gateway.node import GatewayNode
from omnizone.gateway.outbox import Outbox
from omnizone.paths import shipped_config
from omnizone.store import StorePlan, load_store

WAIT_S = 90.0
"""Upper bound on any wait for a condition; never a pass/fail threshold."""
REPO = Path(__file__).resolve().parents[2]


def until(condition: Callable[[], bool], timeout_s: float = WAIT_S) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def sigkill_broker(broker: RunningBroker) -> None:
    """kill -9 the broker (no chance to save its store), then bring it back on
    the same port with the same persistence directory."""
    pid = broker.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    assert until(lambda: not broker.running, 10)
    broker.stop()  # forget the dead process
    assert until(lambda: port_is_free(broker.host, broker.port), 30)


class ServerProcess:
    """`omnizone server run` as a child process; restartable on the same database."""

    def __init__(self, run_dir: Path, broker: RunningBroker, accounts: BrokerAccounts) -> None:
        self.run_dir = run_dir
        self.database = run_dir / "omnizone.db"
        self.api_key = secrets.token_urlsafe(24)
        self.api_port = free_port()
        user, password = accounts.server_credentials
        self.env = {
            **os.environ,
            "OMNIZONE_DATABASE_URL": f"sqlite:///{self.database}",
            "OMNIZONE_MQTT_HOST": broker.host,
            "OMNIZONE_MQTT_PORT": str(broker.port),
            "OMNIZONE_MQTT_USERNAME": user,
            "OMNIZONE_MQTT_PASSWORD": password,
            "OMNIZONE_API_PORT": str(self.api_port),
            "OMNIZONE_API_KEYS": json.dumps({self.api_key: ["read", "admin"]}),
            "OMNIZONE_STORE_FILES": json.dumps([str(shipped_config("stores/rivoli.yaml"))]),
        }
        self._proc: subprocess.Popen[bytes] | None = None
        self.log = run_dir / "server.log"
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def start(self) -> None:
        assert self._proc is None
        self.starts += 1
        with self.log.open("ab") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "omnizone.suite", "server", "run"],
                cwd=self.run_dir,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        assert until(self._ingesting), f"server did not come up: {self.log.read_text()[-3000:]}"

    def _ingesting(self) -> bool:
        assert self._proc is not None
        if self._proc.poll() is not None:
            raise AssertionError(f"server exited: {self.log.read_text()[-3000:]}")
        try:
            body = httpx.get(f"{self.url}/health", timeout=2).json()
        except (httpx.HTTPError, ValueError):
            return False
        return body.get("mqtt_connected") is True

    def kill(self) -> None:
        """kill -9: no flush, no clean disconnect."""
        proc, self._proc = self._proc, None
        assert proc is not None
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"X-API-Key": self.api_key}, timeout=30)

    # -- what the server stored, read from its database file ----------------

    def _query(self, sql: str) -> list[tuple[Any, ...]]:
        if not self.database.exists():
            return []
        with contextlib.closing(sqlite3.connect(self.database, timeout=30)) as db:
            try:
                return db.execute(sql).fetchall()
            except sqlite3.OperationalError:  # the tables are not there yet
                return []

    def tap_counts(self) -> dict[str, int]:
        """uid -> how many times the server stored that tap."""
        return {
            str(u): int(n)
            for u, n in self._query("SELECT uid, COUNT(*) FROM nfc_taps GROUP BY uid")
        }

    def epochs(self, gateway: str) -> set[int]:
        rows = self._query(
            f"SELECT DISTINCT epoch FROM received_messages WHERE gateway = '{gateway}'"
        )
        return {int(e) for (e,) in rows}


class Gateway:
    """One gateway as it runs on a Raspberry Pi, minus the radio: its NFC taps
    go through GatewayNode into the durable outbox, and MqttLink drains it."""

    def __init__(
        self,
        plan: StorePlan,
        gateway: str,
        outbox_path: Path,
        broker: RunningBroker,
        accounts: BrokerAccounts,
        *,
        max_messages: int = 200_000,
    ) -> None:
        user, password = accounts.gateway_credentials(gateway)
        self.gateway = gateway
        self.outbox = Outbox(outbox_path, max_messages)
        self.link = MqttLink(
            BrokerAddress(broker.host, broker.port, user, password),
            plan.id,
            gateway,
            self.outbox,
            wall_clock_ms,
            "fault-test",
            ack_timeout_s=1.0,
            max_ack_timeout_s=4.0,
        )
        self.node = GatewayNode(
            plan.id, gateway, self.outbox, on_enqueued=self.link.notify, health_interval_ms=10**9
        )
        self.produced: list[str] = []
        self._prefix = secrets.token_hex(3)

    def start(self) -> None:
        self.link.start()

    def tap(self, count: int = 1) -> None:
        for _ in range(count):
            uid = f"{self._prefix}{len(self.produced):08x}"
            self.node.on_nfc_taps([NfcTap(tap_point="tap-fault", uid=uid, at_ms=wall_clock_ms())])
            self.produced.append(uid)

    def stop(self, flush_timeout_s: float = 0) -> None:
        self.link.stop(flush_timeout_s=flush_timeout_s)
        self.outbox.close()


class Fleet:
    """The broker, the server and gateways of one test."""

    def __init__(
        self, run_dir: Path, plan: StorePlan, broker: RunningBroker, accounts: BrokerAccounts
    ) -> None:
        self.run_dir, self.plan, self.broker, self.accounts = run_dir, plan, broker, accounts
        self.server = ServerProcess(run_dir, broker, accounts)
        self.gateways: list[Gateway] = []

    def gateway(self, gateway: str, outbox: str | None = None, **kwargs: int) -> Gateway:
        path = self.run_dir / (outbox or f"outbox-{gateway}.db")
        made = Gateway(self.plan, gateway, path, self.broker, self.accounts, **kwargs)
        self.gateways.append(made)
        made.start()
        return made

    def produced(self) -> list[str]:
        return [uid for g in self.gateways for uid in g.produced]

    def all_arrived(self, also: list[str] | None = None) -> bool:
        return set(self.server.tap_counts()) >= set(self.produced() + (also or []))

    def assert_each_event_stored_exactly_once(self, also: list[str] | None = None) -> None:
        """Every tap the gateways produced (and ``also``) is stored once, nothing else."""
        produced = self.produced() + (also or [])
        assert len(set(produced)) == len(produced)
        assert until(lambda: self.all_arrived(also)), (
            f"missing at the server: {len(set(produced) - set(self.server.tap_counts()))} "
            f"of {len(produced)}"
        )
        # Drained: every gateway heard the server's ack for everything.
        assert until(lambda: all(g.outbox.depth() == 0 for g in self.gateways))
        counts = self.server.tap_counts()
        assert {uid: counts.get(uid) for uid in produced} == dict.fromkeys(produced, 1)
        assert set(counts) == set(produced)  # and nothing else


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    if find_mosquitto() is None:
        pytest.skip("needs the mosquitto binary")
    plan = load_store(shipped_config("stores/rivoli.yaml"))
    accounts = BrokerAccounts.for_store(plan)
    with start_broker(accounts, run_dir=tmp_path / "broker", prefer="mosquitto") as broker:
        made = Fleet(tmp_path, plan, broker, accounts)
        try:
            yield made
        finally:
            for gateway in made.gateways:
                with contextlib.suppress(Exception):
                    gateway.stop()
            made.server.stop()
