"""Simulator → real gateway code → Mosquitto (password auth, ACL) → server → SQLite → API."""

import json
from collections import defaultdict
from pathlib import Path

import httpx
import pytest

from omnizone.broker import BrokerAccounts, find_mosquitto, start_broker
from omnizone.paths import shipped_config
from omnizone.server.runtime import ServerRuntime
from omnizone.server.settings import ServerSettings
from omnizone.sim.engine import SimClock, Simulation
from omnizone.sim.fleet import GatewayFleet
from omnizone.sim.scenario import load_scenario
from omnizone.store import load_store

pytestmark = pytest.mark.e2e

API_KEY = "e2e-test-key"


def _visited_zones(truth: Path, min_stay_s: float) -> set[str]:
    """Zones some shopper stayed in for at least min_stay_s in one go, per ground truth."""
    stays: dict[str, tuple[str | None, int, int]] = {}
    visited: set[str] = set()
    for line in truth.read_text().splitlines():
        row = json.loads(line)
        zone, t = row["zone"], row["t_ms"]
        current = stays.get(row["shopper"])
        if current is None or current[0] != zone:
            stays[row["shopper"]] = (zone, t, t)
        else:
            stays[row["shopper"]] = (zone, current[1], t)
        zone_now, since, last = stays[row["shopper"]]
        if zone_now is not None and (last - since) / 1000 >= min_stay_s:
            visited.add(zone_now)
    return visited


@pytest.mark.skipif(find_mosquitto() is None, reason="needs the mosquitto binary")
def test_every_published_message_is_ingested_once_and_visits_match_ground_truth(
    tmp_path: Path,
) -> None:
    scenario = load_scenario(shipped_config("scenarios/quick.yaml"))
    store = load_store(scenario.store_file)
    accounts = BrokerAccounts.for_store(store)
    with start_broker(accounts, run_dir=tmp_path / "broker", prefer="mosquitto") as broker:
        assert broker.kind == "mosquitto"
        server_user, server_password = accounts.server_credentials
        settings = ServerSettings(
            database_url=f"sqlite:///{tmp_path / 'omnizone.db'}",
            mqtt_host=broker.host,
            mqtt_port=broker.port,
            mqtt_username=server_user,
            mqtt_password=server_password,
            api_port=0,
            api_keys={API_KEY: ["read", "admin"]},
        )
        with ServerRuntime(settings, stores={store.id: store}) as server:
            clock = SimClock(round(scenario.start.timestamp() * 1000))
            fleet = GatewayFleet(
                store,
                clock,
                tmp_path,
                broker_host=broker.host,
                broker_port=broker.port,
                credentials={g: accounts.gateway_credentials(g) for g in accounts.gateways},
                window_ms=scenario.window_ms,
            )
            fleet.start()
            truth_path = tmp_path / "ground-truth.jsonl"
            with truth_path.open("w") as truth:
                simulation = Simulation(scenario, store, fleet.nodes, clock, truth)
                simulation.run()
                simulation.close_windows()
            fleet.stop()

            published = [
                (gateway, seq)
                for gateway, link in fleet.links.items()
                for seq in link.acknowledged_seqs
            ]
            assert len(published) == len(set(published)), "a gateway acknowledged a seq twice"
            assert len(published) > 100
            expected = set(published)
            received: set[tuple[str, int]] = set()
            for _ in range(200):
                received = {(k.gateway, k.seq) for k in server.repository.received_keys(store.id)}
                if expected <= received:
                    break
                import time

                time.sleep(0.05)
            # Exactly once: the server holds every acknowledged message, and
            # nothing that was never published (its key is unique per row).
            assert received == expected

            with httpx.Client(base_url=server.api_url, headers={"X-API-Key": API_KEY}) as api:
                stats = api.get("/api/v1/ingest/stats").raise_for_status().json()
                summary = (
                    api.get(f"/api/v1/stores/{store.id}/zones/summary").raise_for_status().json()
                )
                visits = (
                    api.get(f"/api/v1/stores/{store.id}/visits", params={"limit": 1000})
                    .raise_for_status()
                    .json()
                )
            assert stats["ingested"] == len(expected)
            assert stats["dead_lettered"] == 0
            assert stats["gaps"] == 0

            truly_visited = _visited_zones(truth_path, min_stay_s=30)
            assert truly_visited, "the scenario should send shoppers somewhere"
            recorded = {row["zone"] for row in summary if row["visits"] + row["open_visits"] > 0}
            assert truly_visited <= recorded, f"missed zones: {truly_visited - recorded}"
            per_zone: dict[str, int] = defaultdict(int)
            for visit in visits if isinstance(visits, list) else visits["visits"]:
                per_zone[visit["zone"]] += 1
            assert set(per_zone) >= truly_visited
