"""Simulator → real gateway code → Mosquitto (password auth, ACL) → server → SQLite → API."""

import json
from collections import defaultdict
from pathlib import Path

import pytest

from tests.e2e.conftest import StoreStack

pytestmark = pytest.mark.e2e


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


def test_every_published_message_is_ingested_once_and_visits_match_ground_truth(
    store_stack: StoreStack,
) -> None:
    stack = store_stack
    assert stack.broker.kind == "mosquitto"
    truth_path = stack.run_dir / "ground-truth.jsonl"
    simulation = stack.simulation(truth_path)
    simulation.run()
    simulation.close_windows()
    assert simulation.ground_truth is not None
    simulation.ground_truth.close()
    stack.fleet.stop()

    published = [
        (gateway, seq)
        for gateway, link in stack.fleet.links.items()
        for seq in link.acknowledged_seqs
    ]
    assert len(published) == len(set(published)), "a gateway acknowledged a seq twice"
    assert len(published) > 100
    expected = set(published)
    stack.wait_until(lambda: expected <= stack.received())
    # Exactly once: the server holds every acknowledged message, and nothing
    # that was never published (its key is unique per row).
    assert stack.received() == expected

    with stack.api() as api:
        stats = api.get("/api/v1/ingest/stats").raise_for_status().json()
        summary = (
            api.get(f"/api/v1/stores/{stack.store.id}/zones/summary").raise_for_status().json()
        )
        visits = (
            api.get(f"/api/v1/stores/{stack.store.id}/visits", params={"limit": 1000})
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
    for visit in visits:
        per_zone[visit["zone"]] += 1
    assert set(per_zone) >= truly_visited
