"""The live map's snapshot: anonymous dots, positions from the grid filter's
posterior mean, stand-in points that stay put, counts per zone."""

import json

import numpy as np
import pytest

from omnizone.server.domain.localize import StoreLocalizer
from omnizone.server.domain.localize.propagation import anchor_positions, mean_rssi_dbm
from omnizone.server.service.live_map import LiveMap
from omnizone.store import StorePlan
from omnizone.store.geometry import contains


def _reading_at(plan: StorePlan, point: tuple[float, float]) -> np.ndarray:
    _, xy = anchor_positions(plan)
    return mean_rssi_dbm(np.linalg.norm(xy - np.array(point), axis=1), -59.0, 2.2)


def test_the_grid_filter_gives_a_position_near_where_the_device_stands(plan: StorePlan) -> None:
    localizer = StoreLocalizer.on_grid(plan)
    spot = (5.0, 14.0)  # outerwear
    rssi = _reading_at(plan, spot)[None]
    for w in range(15):
        localizer.update((w + 1) * 1000, ["eid:01"], rssi)
    names, xy = localizer.positions()
    assert names == ["eid:01"]
    assert np.hypot(*(xy[0] - np.array(spot))) < 2.5
    assert plan.zone_at(tuple(xy[0])) == "outerwear"


def test_the_zone_filter_has_no_positions(plan: StorePlan) -> None:
    localizer = StoreLocalizer.for_store(plan)
    localizer.update(1000, ["eid:01"], _reading_at(plan, (5.0, 14.0))[None])
    names, xy = localizer.positions()
    assert names == ["eid:01"] and np.isnan(xy).all()


def test_a_snapshot_counts_zones_and_never_shows_a_device_id(plan: StorePlan) -> None:
    stays = {"shopper-aaaa": "shoes", "shopper-bbbb": "shoes", "shopper-cccc": "denim"}
    positions = {"shopper-aaaa": (15.2, 14.8)}
    live = LiveMap({plan.id: plan}, lambda _s: (stays, positions), lambda _s: 1234)
    snapshot = live.snapshot(plan.id)
    assert snapshot.zones["shoes"] == 2 and snapshot.zones["denim"] == 1
    assert sum(snapshot.zones.values()) == len(snapshot.dots) == 3
    assert list(snapshot.zones) == [z.id for z in plan.zones]
    text = snapshot.to_json()
    for device in stays:
        assert device not in text
    body = json.loads(text)
    assert body["type"] == "snapshot" and body["at_ms"] == 1234 and body["seq"] == 1
    by_label = {dot.label: dot for dot in snapshot.dots}
    placed = by_label[live.label("shopper-aaaa")]
    assert (placed.x, placed.y, placed.estimated) == (15.2, 14.8, True)
    stand_in = by_label[live.label("shopper-cccc")]
    assert not stand_in.estimated
    assert contains(plan.zone("denim").polygon, (stand_in.x, stand_in.y))


def test_labels_are_stable_within_a_process_and_differ_between_processes(
    plan: StorePlan,
) -> None:
    source = lambda _s: ({"shopper-aaaa": "shoes"}, {})  # noqa: E731
    one = LiveMap({plan.id: plan}, source, lambda _s: None)
    other = LiveMap({plan.id: plan}, source, lambda _s: None)
    first, second = one.snapshot(plan.id), one.snapshot(plan.id)
    assert first.dots == second.dots  # same label, same stand-in point
    assert second.seq == first.seq + 1
    assert one.label("shopper-aaaa") != other.label("shopper-aaaa")
    assert len(one.label("shopper-aaaa")) == 8


def test_a_stay_in_a_zone_the_plan_no_longer_has_is_left_out(plan: StorePlan) -> None:
    live = LiveMap(
        {plan.id: plan}, lambda _s: ({"a": "gone-zone", "b": "shoes"}, {}), lambda _s: None
    )
    snapshot = live.snapshot(plan.id)
    assert [d.zone for d in snapshot.dots] == ["shoes"]


@pytest.mark.parametrize("devices", [500])
def test_a_snapshot_of_many_shoppers_stays_small(plan: StorePlan, devices: int) -> None:
    zones = [z.id for z in plan.zones]
    stays = {f"shopper-{i:04d}": zones[i % len(zones)] for i in range(devices)}
    positions = {d: (1.0 + i % 28, 1.0 + i % 18) for i, d in enumerate(stays)}
    live = LiveMap({plan.id: plan}, lambda _s: (stays, positions), lambda _s: None)
    text = live.snapshot(plan.id).to_json()
    assert len(json.loads(text)["dots"]) == devices
    assert len(text) < 40 * devices  # about 30 bytes a dot


def test_zone_counts_are_the_dots_by_zone_and_dots_outside_it_are_counted(
    plan: StorePlan,
) -> None:
    """Issue 16: counts and dots are one set of open stays; a position the
    filter has moved across a boundary before the stay changed is counted."""
    stays = {"a": "shoes", "b": "shoes", "c": "denim"}
    positions = {"a": (15.0, 15.0), "b": (25.0, 5.0)}  # b's position is in menswear
    live = LiveMap({plan.id: plan}, lambda _s: (stays, positions), lambda _s: None)
    body = json.loads(live.snapshot(plan.id).to_json())
    zone_ids = list(body["zones"])
    by_zone: dict[str, int] = {}
    for dot in body["dots"]:
        by_zone[zone_ids[dot[3]]] = by_zone.get(zone_ids[dot[3]], 0) + 1
    assert by_zone == {z: n for z, n in body["zones"].items() if n}
    assert body["outside"] == 1


def test_a_snapshot_is_stale_when_no_gateway_data_came_for_the_device_timeout(
    plan: StorePlan,
) -> None:
    """Issue 16: a restarted server showed the last run's shoppers under a
    green "live" badge. The snapshot now carries the data's age."""
    now = [1_000_000]
    received: dict[str, int | None] = {plan.id: None}
    live = LiveMap(
        {plan.id: plan},
        lambda _s: ({"a": "shoes"}, {}),
        lambda _s: 500,
        clock_ms=lambda: now[0],
        received_ms=lambda s: received[s],
    )
    first = json.loads(live.snapshot(plan.id).to_json())
    assert first["stale"] is True and first["data_age_ms"] is None  # nothing since start
    timeout_ms = plan.store.visits.device_timeout_s * 1000
    assert first["stale_after_ms"] == timeout_ms
    received[plan.id] = now[0] - 2000
    fresh = json.loads(live.snapshot(plan.id).to_json())
    assert fresh["stale"] is False and fresh["data_age_ms"] == 2000
    now[0] += timeout_ms
    late = json.loads(live.snapshot(plan.id).to_json())
    assert late["stale"] is True and late["data_age_ms"] == timeout_ms + 2000
    no_source = LiveMap({plan.id: plan}, lambda _s: ({}, {}), lambda _s: None)
    assert no_source.snapshot(plan.id).stale
