"""The shipped example store is a sensible shop: what the demo, the simulator and
the docs all rely on."""

import re
from collections import deque
from pathlib import Path

import pytest

from omnizone.store import StorePlan, ZoneKind, load_store, parse_store
from omnizone.store import geometry as geo

RIVOLI = Path(__file__).resolve().parents[2] / "config" / "stores" / "rivoli.yaml"


@pytest.fixture(scope="module")
def plan() -> StorePlan:
    return load_store(RIVOLI)


def _kinds(plan: StorePlan, kind: ZoneKind) -> list[str]:
    return [z.id for z in plan.zones if z.kind is kind]


def test_it_loads_with_the_zones_a_fashion_store_needs(plan: StorePlan) -> None:
    assert plan.id == "paris-rivoli"
    assert plan.store.timezone == "Europe/Paris"
    assert len(plan.zones) >= 8
    assert plan.entrances == ["entrance"]
    assert len(_kinds(plan, ZoneKind.FITTING_ROOM)) == 2
    assert _kinds(plan, ZoneKind.CHECKOUT) == ["checkout"]
    assert len(plan.gateways) >= 6


def test_visit_settings_are_read_from_the_file(plan: StorePlan) -> None:
    visits = plan.store.visits
    assert (visits.min_presence_s, visits.exit_grace_s, visits.device_timeout_s) == (10, 8, 30)


def test_every_gateway_covers_a_zone_that_exists_and_stands_in_it(plan: StorePlan) -> None:
    zone_ids = {z.id for z in plan.zones}
    assert set(plan.gateway_zones) == {g.id for g in plan.gateways}
    for gateway in plan.gateways:
        zone = plan.gateway_zones[gateway.id]
        assert zone in zone_ids
        assert geo.contains(plan.zone(zone).polygon, gateway.position), gateway.id


def test_every_zone_has_a_gateway(plan: StorePlan) -> None:
    assert set(plan.gateway_zones.values()) == {z.id for z in plan.zones}


def test_zones_tile_the_floor_without_overlapping(plan: StorePlan) -> None:
    floor = plan.store.floor
    assert sum(geo.area(z.polygon) for z in plan.zones) == pytest.approx(
        floor.width_m * floor.depth_m
    )
    for i, a in enumerate(plan.zones):
        for b in plan.zones[i + 1 :]:
            assert not geo.interiors_overlap(a.polygon, b.polygon), (a.id, b.id)


def test_adjacency_is_symmetric_and_irreflexive(plan: StorePlan) -> None:
    for zone, neighbours in plan.adjacency.items():
        assert zone not in neighbours
        for other in neighbours:
            assert zone in plan.adjacency[other], (zone, other)
    for (a, b), passage in plan.passages.items():
        assert plan.passages[(b, a)] == passage


def test_every_zone_is_reachable_from_the_entrance(plan: StorePlan) -> None:
    seen = {"entrance"}
    queue = deque(seen)
    while queue:
        for nxt in plan.adjacency[queue.popleft()]:
            if nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    assert seen == {z.id for z in plan.zones}


def test_walls_separate_touching_zones(plan: StorePlan) -> None:
    one, two = plan.zone("fitting-room-1"), plan.zone("fitting-room-2")
    assert geo.shared_boundary(one.polygon, two.polygon) is not None, "they do touch"
    assert "fitting-room-2" not in plan.adjacency["fitting-room-1"]
    assert "shoes" not in plan.adjacency["fitting-room-1"]
    assert "checkout" not in plan.adjacency["fitting-room-2"]
    # ...but each fitting room still has its door onto denim.
    assert plan.adjacency["fitting-room-1"] == ["denim"]
    assert plan.adjacency["fitting-room-2"] == ["denim"]


def test_short_contact_is_a_passage_only_from_half_a_metre() -> None:
    # b touches a only at a corner; c shares 0.4 m with a; d shares a full wall with a.
    plan = parse_store(
        """
store: { id: s, name: S, floor: { width_m: 20, depth_m: 20 } }
zones:
  - { id: a, name: A, polygon: [[0, 0], [10, 0], [10, 10], [0, 10]] }
  - { id: b, name: B, polygon: [[10, 10], [20, 10], [20, 20], [10, 20]] }
  - { id: c, name: C, polygon: [[10, 0], [20, 0], [20, 0.4], [10, 0.4]] }
  - { id: d, name: D, polygon: [[0, 10], [10, 10], [10, 20], [0, 20]] }
gateways:
  - { id: g, position: [5, 5] }
""",
        source="corners",
    )
    assert plan.adjacency["a"] == ["d"]
    assert plan.adjacency["b"] == ["d"]


def test_removing_the_walls_opens_the_fitting_rooms_to_each_other() -> None:
    text = RIVOLI.read_text(encoding="utf-8").replace("  - [fitting-room-1, fitting-room-2]\n", "")
    opened = parse_store(text, source="rivoli-without-wall")
    assert "fitting-room-2" in opened.adjacency["fitting-room-1"]
    start, end = opened.passages[("fitting-room-1", "fitting-room-2")]
    assert {start, end} == {(23.0, 14.0), (23.0, 20.0)}


def test_readers_without_a_position_still_load() -> None:
    text = re.sub(
        r"(antennas: \d+), position: \[[^]]*\]", r"\1", RIVOLI.read_text(encoding="utf-8")
    )
    plan = parse_store(text, source="rivoli-unplaced-readers")
    assert [r.position for r in plan.rfid_readers] == [None, None]


def test_zone_lookup(plan: StorePlan) -> None:
    assert plan.zone_at((15, 2)) == "entrance"
    assert plan.zone_at((21.5, 17)) == "fitting-room-1"
    assert plan.zone_at((-1, 5)) is None
    with pytest.raises(KeyError):
        plan.zone("stockroom")


def test_the_other_parts_of_the_plan_point_at_real_things(plan: StorePlan) -> None:
    zone_ids = {z.id for z in plan.zones}
    gateway_ids = {g.id for g in plan.gateways}
    assert {r.zone for r in plan.rfid_readers} == {"fitting-room-1", "fitting-room-2"}
    for reader in plan.rfid_readers:  # placed on the plan, in its fitting room
        assert reader.position is not None
        assert plan.zone_at(reader.position) == reader.zone
    links = [(r.zone, r.gateway) for r in plan.rfid_readers]
    links += [(t.zone, t.gateway) for t in plan.nfc_tap_points]
    for zone, gateway in links:
        assert zone in zone_ids and gateway in gateway_ids
    for beacon in plan.beacons:
        assert beacon.device.startswith("ibeacon:")
