"""A demo run recorded, then replayed into a fresh broker and a fresh server:
the same messages per gateway and the same visits and dwell."""

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from omnizone.broker import BrokerAccounts, RunningBroker, find_mosquitto, start_broker
from omnizone.contract.messages import parse_message
from omnizone.paths import shipped_config
from omnizone.server.runtime import ServerRuntime
from omnizone.server.settings import ServerSettings
from omnizone.sim.app_client import expected_shoppers, register_app_phones
from omnizone.sim.engine import SimClock, Simulation
from omnizone.sim.fleet import GatewayFleet
from omnizone.sim.recording import read_recording
from omnizone.sim.recording.record import Recorder, RecorderOptions
from omnizone.sim.recording.replay import BrokerLogin, replay
from omnizone.sim.scenario import load_scenario
from omnizone.store import StorePlan, load_store

pytestmark = pytest.mark.e2e
API_KEY = "e2e-record-key"
WAIT_S = 60.0  # an upper bound on waits, never a pass/fail threshold


@contextmanager
def _server(
    broker: RunningBroker, accounts: BrokerAccounts, database: Path, store: StorePlan
) -> Iterator[ServerRuntime]:
    settings = ServerSettings.on_broker(
        broker,
        accounts,
        database_url=f"sqlite:///{database}",
        api_keys={API_KEY: ["read", "admin"]},
        api_port=0,
    )
    with ServerRuntime(settings, stores={store.id: store}) as server:
        yield server


@contextmanager
def _recorder(
    broker: RunningBroker, accounts: BrokerAccounts, store: str, out: Path
) -> Iterator[Recorder]:
    username, password = accounts.recorder_credentials(store)
    recorder = Recorder(RecorderOptions(store, out, broker.host, broker.port, username, password))
    stop = threading.Event()
    thread = threading.Thread(target=recorder.run, args=(stop,), daemon=True)
    thread.start()
    assert recorder.subscribed.wait(15), "the recorder did not subscribe"
    try:
        yield recorder
    finally:
        stop.set()
        thread.join(15)


def _wait_until(condition: Any) -> None:
    end = time.monotonic() + WAIT_S
    while not condition() and time.monotonic() < end:
        time.sleep(0.05)
    assert condition()


def _keys(path: Path) -> dict[str, list[tuple[int, int]]]:
    """Per gateway, the (epoch, seq) of every recorded message, in order."""
    result: dict[str, list[tuple[int, int]]] = {}
    for message in read_recording(path).messages:
        parsed = parse_message(message.topic, message.payload)
        result.setdefault(parsed.gateway, []).append((parsed.epoch, parsed.seq))
    return result


def _payloads(path: Path) -> dict[str, list[bytes]]:
    result: dict[str, list[bytes]] = {}
    for message in read_recording(path).messages:
        result.setdefault(message.topic.split("/")[3], []).append(message.payload)
    return result


def _visits_and_dwell(server: ServerRuntime, store: str) -> tuple[list[Any], list[Any]]:
    with httpx.Client(base_url=server.api_url, headers={"X-API-Key": API_KEY}) as api:
        visits = api.get(f"/api/v1/stores/{store}/visits", params={"limit": 1000})
        summary = api.get(f"/api/v1/stores/{store}/zones/summary")
    rows = visits.raise_for_status().json()
    return sorted(
        rows, key=lambda v: json.dumps(v, sort_keys=True)
    ), summary.raise_for_status().json()


@pytest.fixture
def store() -> StorePlan:
    if find_mosquitto() is None:
        pytest.skip("needs the mosquitto binary")
    return load_store(load_scenario(shipped_config("scenarios/quick.yaml")).store_file)


def test_a_recorded_demo_replayed_into_a_fresh_server_gives_the_same_visits_and_dwell(
    store: StorePlan, tmp_path: Path
) -> None:
    scenario = load_scenario(shipped_config("scenarios/quick.yaml"))
    accounts = BrokerAccounts.for_store(store, recorder=True)
    live_db, fresh_db = tmp_path / "live.db", tmp_path / "fresh.db"
    recording = tmp_path / "demo.ozrec"
    with (
        start_broker(accounts, run_dir=tmp_path / "live-broker", prefer="mosquitto") as broker,
        _server(broker, accounts, live_db, store) as live,
    ):
        phones = register_app_phones(live.api_url, store.id, expected_shoppers(scenario))
        # The fresh server knows the store's registered shoppers, as a
        # production server does, and nothing of the traffic.
        with sqlite3.connect(live_db) as source, sqlite3.connect(fresh_db) as copy:
            source.backup(copy)
        with _recorder(broker, accounts, store.id, recording) as recorder:
            clock = SimClock.starting_at(scenario.start)
            fleet = GatewayFleet.on_broker(
                store, clock, tmp_path, broker, accounts, scenario.window_ms
            )
            fleet.start()
            try:
                simulation = Simulation(
                    scenario, store, fleet.nodes, clock, None, app_phones=phones
                )
                simulation.run()
                simulation.close_windows()
            finally:
                fleet.stop(flush_timeout_s=10)
            published = {
                gw: {seq for seq in link.acknowledged_seqs} for gw, link in fleet.links.items()
            }

            total = sum(map(len, published.values()))
            _wait_until(lambda: recorder.stats.messages >= total)
            _wait_until(
                lambda: (
                    {(g, s) for g, seqs in published.items() for s in seqs}
                    <= {(k.gateway, k.seq) for k in live.repository.received_keys(store.id)}
                )
            )
            received = {(k.gateway, k.seq) for k in live.repository.received_keys(store.id)}
        visits, dwell = _visits_and_dwell(live, store.id)
    recorded_keys = _keys(recording)
    for gateway, seqs in published.items():
        assert seqs <= {seq for _epoch, seq in recorded_keys[gateway]}, gateway
    assert len(visits) > 3, "the scenario should make visits"

    replayed = tmp_path / "replayed.ozrec"
    with (
        start_broker(accounts, run_dir=tmp_path / "fresh-broker", prefer="mosquitto") as broker,
        _server(broker, accounts, fresh_db, store) as fresh,
    ):
        with _recorder(broker, accounts, store.id, replayed) as again:
            stats = replay(
                [recording],
                BrokerLogin(broker.host, broker.port),
                accounts.all_gateway_credentials(),
                speed=0,
            )
            expected = {gw: len(rows) for gw, rows in recorded_keys.items()}
            assert dict(stats.published) == expected
            _wait_until(lambda: dict(again.stats.per_gateway) == expected)
        _wait_until(
            lambda: (
                received <= {(k.gateway, k.seq) for k in fresh.repository.received_keys(store.id)}
            )
        )
        assert {(k.gateway, k.seq) for k in fresh.repository.received_keys(store.id)} == received
        fresh_visits, fresh_dwell = _visits_and_dwell(fresh, store.id)
    # Message for message: the same count per gateway and the same payloads, in order.
    assert _payloads(replayed) == _payloads(recording)
    assert fresh_visits == visits
    assert fresh_dwell == dwell
