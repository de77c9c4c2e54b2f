"""Phones that listen (issue 15), as a use case over the real ingest and grid
filter: a phone that only listens is placed from the store's beacons alone,
the gateways' and the phone's windows of one device are one window of one
filter, and everything a batch may not do is refused and counted."""

import math
from collections.abc import Iterator

import numpy as np
import pytest

from omnizone.contract.phone import PhoneReport
from omnizone.server.adapters.db import SqlRepository
from omnizone.server.adapters.memory.phones import MemoryPhoneSightings
from omnizone.server.service.ingest import IngestService
from omnizone.server.service.locators import ZonePlacement, make_locators
from omnizone.server.service.phone_sightings import PhoneReportRefused, PhoneSightings
from omnizone.store import StorePlan
from tests.server.conftest import STORE, T0, ble

SHOPPER = "a" * 32


class World:
    def __init__(self, plan: StorePlan, repo: SqlRepository) -> None:
        self.plan = plan
        self.placements: list[ZonePlacement] = []
        self.ingest = IngestService(
            {STORE: plan},
            repo,
            locators=make_locators({STORE: plan}, "grid"),
            placement_listeners=[lambda _s, p: self.placements.append(p)],
        )
        self.rows = MemoryPhoneSightings()
        self.consented = {SHOPPER}
        self.now = T0
        self.phones = PhoneSightings(
            {STORE: plan},
            self.rows,
            self.ingest,
            may_store_location=lambda s: s in self.consented,
            shopper_store=lambda _s: STORE,
            clock=lambda: self.now,
            store_clock=self.ingest.event_time,
        )
        self.batches = 0

    def heard_at(self, xy: tuple[float, float]) -> list[dict[str, object]]:
        """What a phone at ``xy`` hears of each beacon: the path-loss model, no noise."""
        heard = []
        for beacon in self.plan.beacons:
            d = max(0.5, math.dist(xy, beacon.position))
            rssi = beacon.tx_power - 22 * math.log10(d)
            if rssi > -90:
                heard.append({"beacon": beacon.device, "rssi": round(rssi, 1), "count": 10})
        return heard

    def report(
        self, start_ms: int, xy: tuple[float, float], windows: int = 2, **extra: object
    ) -> object:
        self.batches += 1
        body = {
            "store": STORE,
            "batch": f"batch-{self.batches:06d}",
            "windows": [
                {"start_ms": start_ms + i * 1000, "beacons": self.heard_at(xy)}
                for i in range(windows)
            ],
            **extra,
        }
        self.now = start_ms + windows * 1000 + 500
        return self.phones.report(SHOPPER, PhoneReport.model_validate(body))

    def zones(self, device: str = SHOPPER) -> list[str | None]:
        found: list[str | None] = []
        for p in self.placements:
            if p.device == device and (not found or found[-1] != p.zone):
                found.append(p.zone)
        return found


@pytest.fixture
def world(plan: StorePlan, repo: SqlRepository) -> Iterator[World]:
    yield World(plan, repo)


def test_a_phone_that_only_listens_is_placed_from_the_beacons_alone(world: World) -> None:
    for second in range(0, 30, 2):
        world.report(T0 + second * 1000, (15.0, 16.0))  # in shoes
    for second in range(30, 60, 2):
        world.report(T0 + second * 1000, (25.0, 5.0))  # in menswear
    world.ingest.finish(STORE)
    zones = [z for z in world.zones() if z is not None]
    assert zones[0] == "shoes" and zones[-1] == "menswear"
    assert world.phones.stats(STORE)["windows"] == 60


def test_gateway_and_phone_windows_of_one_device_are_one_window(world: World) -> None:
    """The gateways hear the phone near the entrance; the phone hears the
    shoes beacons: one filter weighs both in the same window."""
    device = "eid:0011223344556677"
    ingest = world.ingest
    for second in range(20):
        start = T0 + second * 1000
        # gateway-heard: loudest at gw-shoes, so both directions agree on shoes
        for gateway, rssi in (("gw-shoes", -62.0), ("gw-outerwear", -80.0)):
            ingest.handle(*ble(gateway, second, start + 1000, {device: rssi}), start + 1100)
        body = {
            "store": STORE,
            "batch": f"both-{second:06d}",
            "windows": [{"start_ms": start, "beacons": world.heard_at((15.0, 16.0))}],
        }
        world.now = start + 1500
        world.phones.report(device_consented(world, device), PhoneReport.model_validate(body))
    ingest.finish(STORE)
    locator = ingest._locators[STORE]
    assert device in locator.listening  # type: ignore[attr-defined]
    assert [z for z in world.zones(device) if z is not None] == ["shoes"]


def device_consented(world: World, device: str) -> str:
    world.consented.add(device)
    return device


def test_a_resent_batch_is_answered_the_same_and_applied_once(world: World) -> None:
    body = {
        "store": STORE,
        "batch": "resend-0001",
        "windows": [{"start_ms": T0, "beacons": world.heard_at((15, 15))}],
    }
    first = world.phones.report(SHOPPER, PhoneReport.model_validate(body))
    again = world.phones.report(SHOPPER, PhoneReport.model_validate(body))
    assert not first.duplicate and again.duplicate
    assert again.windows_accepted == first.windows_accepted == 1
    assert len(world.rows.device_sightings(SHOPPER)) == len(body["windows"][0]["beacons"])  # type: ignore[index]
    stats = world.phones.stats(STORE)
    assert stats["batches"] == 1 and stats["duplicates"] == 1


def test_unknown_beacons_are_counted_and_named_never_stored(world: World) -> None:
    stranger = "ibeacon:00000000-0000-4000-8000-000000000000:1:2"
    beacons = [*world.heard_at((15, 15)), {"beacon": stranger, "rssi": -60}]
    body = {
        "store": STORE,
        "batch": "unknown-001",
        "windows": [{"start_ms": T0, "beacons": beacons}],
    }
    answer = world.phones.report(SHOPPER, PhoneReport.model_validate(body))
    assert answer.unknown_beacons == {stranger: 1}
    assert stranger not in {r["beacon"] for r in world.rows.device_sightings(SHOPPER)}
    assert world.phones.stats(STORE)["unknown_beacons"] == {stranger: 1}


def test_without_location_consent_nothing_is_taken(world: World) -> None:
    world.consented.clear()
    with pytest.raises(PhoneReportRefused) as refused:
        world.report(T0, (15, 15))
    assert refused.value.status == 403 and "location_analytics" in refused.value.reason
    assert world.rows.device_sightings(SHOPPER) == [] and world.placements == []
    assert world.phones.stats(STORE)["refused"]["no_location_consent"] == 1


def test_a_phone_over_the_rate_is_told_when_to_come_back(world: World) -> None:
    with pytest.raises(PhoneReportRefused) as refused:
        for n in range(200):  # all in one instant: the burst, then refused
            body = {
                "store": STORE,
                "batch": f"rate-{n:06d}",
                "windows": [{"start_ms": T0 + n * 1000}],
            }
            world.phones.report(SHOPPER, PhoneReport.model_validate(body))
    assert refused.value.status == 429 and refused.value.retry_after_s
    assert world.phones.stats(STORE)["refused"]["rate_limited"] == 1


def test_old_windows_are_stale(world: World) -> None:
    world.now = T0 + 3_600_000
    body = {"store": STORE, "batch": "stale-0001", "windows": [{"start_ms": T0}]}
    answer = world.phones.report(SHOPPER, PhoneReport.model_validate(body))
    assert answer.windows_stale == 1 and answer.windows_accepted == 0


def test_region_exit_ends_the_stay_unless_heard_since(world: World) -> None:
    for second in range(0, 20, 2):
        world.report(T0 + second * 1000, (15.0, 16.0))
    exit_at = T0 + 20_000
    world.now = exit_at + 1000
    body = {
        "store": STORE,
        "batch": "exit-000001",
        "regions": [{"event": "exit", "at_ms": exit_at}],
    }
    world.phones.report(SHOPPER, PhoneReport.model_validate(body))
    assert world.zones()[-1] is None
    assert world.phones.stats(STORE)["region_events"]["exit"] == 1
    # an exit the radio contradicts (heard in the store after it) is ignored
    for second in range(22, 40, 2):
        world.report(T0 + second * 1000, (15.0, 16.0))
    stale_exit = {
        "store": STORE,
        "batch": "exit-000002",
        "regions": [{"event": "exit", "at_ms": T0 + 25_000}],
    }
    world.phones.report(SHOPPER, PhoneReport.model_validate(stale_exit))
    assert world.phones.stats(STORE)["region_events"]["exit_ignored_heard_since"] == 1


def test_the_map_has_the_beacons_after_the_gateways(plan: StorePlan) -> None:
    from omnizone.server.domain.localize.radio_map import path_loss_map

    radio = path_loss_map(plan, beacons=True)
    gateways = [g.id for g in plan.gateways]
    assert radio.anchors == (*gateways, *(b.id for b in plan.beacons))
    shoes = radio.zone_index()["shoes"]
    column = radio.anchor_index()["bcn-shoes"]
    assert np.argmax(radio.mean_dbm[:, column]) == shoes


def test_region_entry_is_a_store_entry_unless_the_radio_saw_it_first(world: World) -> None:
    entrance = world.plan.entrances[0]
    enter = {"store": STORE, "batch": "enter-00001", "regions": [{"event": "enter", "at_ms": T0}]}
    world.now = T0 + 500
    world.phones.report(SHOPPER, PhoneReport.model_validate(enter))
    assert world.zones() == [entrance]
    assert world.placements[0].at_ms == T0
    # the ranging it woke moves the stay on from the entrance
    for second in range(2, 20, 2):
        world.report(T0 + second * 1000, (15.0, 16.0))
    assert world.zones()[0] == entrance and world.zones()[-1] not in (None, entrance)
    # already in the store: a second entry report changes nothing
    before = len(world.placements)
    again = {
        "store": STORE,
        "batch": "enter-00002",
        "regions": [{"event": "enter", "at_ms": T0 + 20_000}],
    }
    world.phones.report(SHOPPER, PhoneReport.model_validate(again))
    assert len(world.placements) == before
    stats = world.phones.stats(STORE)["region_events"]
    assert stats["enter"] == 2 and stats["enter_ignored_in_store_or_stale"] == 1
