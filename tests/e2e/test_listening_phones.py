"""Phones that only listen (issue 15), end to end: the simulator's shoppers
carry backgrounded phones that send gateways nothing they can identify, range
the store's beacons and report them through the public API with the reference
client; the gateways still run and publish through Mosquitto; the server
places the shoppers and records their visits from the beacons alone."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from omnizone.contract.phone_client import Post, http_post
from omnizone.sim.app_client import expected_shoppers, register_app_phones
from omnizone.sim.engine import SimClock, Simulation
from omnizone.sim.fleet import GatewayFleet
from omnizone.sim.shoppers import Shopper
from tests.e2e.conftest import Backend
from tests.e2e.test_walking_skeleton import _visited_zones

pytestmark = pytest.mark.e2e


def test_listen_only_phones_are_placed_through_the_public_api(backend: Backend) -> None:
    b = backend
    # Now-ish: the server takes beacon windows of the last minutes, not of a past day.
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=4)
    phones = b.scenario.phones.model_copy(update={"modes": {"listen": 1.0}})
    scenario = b.scenario.model_copy(update={"start": start, "duration_s": 150, "phones": phones})
    clock = SimClock.starting_at(scenario.start)
    fleet = GatewayFleet.on_broker(b.store, clock, b.run_dir, b.broker, b.accounts, 1000)
    fleet.start()
    try:
        apps = register_app_phones(b.server.api_url, b.store.id, expected_shoppers(scenario))

        def transport(shopper: Shopper) -> Post | None:
            assert shopper.app is not None and shopper.app.token is not None
            return http_post(b.server.api_url, shopper.app.token)

        truth_path = b.run_dir / "truth.jsonl"
        with truth_path.open("w") as truth:
            simulation = Simulation(
                scenario,
                b.store,
                fleet.nodes,
                clock,
                truth,
                app_phones=apps,
                phone_transport=transport,
            )
            simulation.run()
            simulation.close_windows()
    finally:
        fleet.stop(flush_timeout_s=5)
    assert simulation.listening is not None
    assert simulation.counters.adverts_heard == 0  # no gateway heard a shopper's phone
    assert simulation.listening.counters.windows > 100
    b.server.parts.ingest.finish(b.store.id)

    with b.api() as api:
        stats = api.get(f"/api/v1/stores/{b.store.id}/phones/stats").raise_for_status().json()
        summary = api.get(f"/api/v1/stores/{b.store.id}/zones/summary").raise_for_status().json()
        ingest = api.get("/api/v1/ingest/stats").raise_for_status().json()
    assert stats["batches"] >= simulation.listening.counters.batches_sent
    assert stats["windows_stale"] == 0 and stats["unknown_readings"] == 0
    assert stats["region_events"]["enter"] == simulation.listening.counters.listening
    assert ingest["dead_lettered"] == 0
    truly_visited = _visited_zones(truth_path, min_stay_s=30)
    assert truly_visited, "the scenario should send shoppers somewhere"
    recorded = {row["zone"] for row in summary if row["visits"] + row["open_visits"] > 0}
    assert truly_visited <= recorded, f"missed zones: {truly_visited - recorded}"
    devices = {json.loads(line)["device"] for line in Path(truth_path).read_text().splitlines()}
    present_or_visited = set(b.server.parts.ingest.present(b.store.id))
    assert present_or_visited <= devices  # only the registered phones, by their shopper id
