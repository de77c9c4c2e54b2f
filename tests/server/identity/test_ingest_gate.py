"""Ingest with registered shoppers: rotating ids resolve to the shopper, ids
nobody registered are dropped, and consent decides what is tracked and what
is written down (issue #5: no location without consent)."""

from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from omnizone.contract.eid import EidParams, eid_device_key
from omnizone.server.adapters.db import BleSightingRow, SqlRepository, VisitRow
from omnizone.server.adapters.shopper_db import ShopperRepository
from omnizone.server.domain.identity import EidPolicy, Purpose
from omnizone.server.service.device_identity import RegisteredDevices
from omnizone.server.service.ingest import IngestService
from omnizone.server.service.locators import ZonePlacement
from omnizone.server.service.shoppers import ShopperService
from omnizone.store import StorePlan
from tests.server.conftest import T0, ble

GATEWAY = "gw-womenswear"
OTHER_STORE = "lyon-part-dieu"

ROTATION_S = 1024


class Store:
    """One server: the store of ``plan`` and, for the replay tests, a second one."""

    def __init__(self, plan: StorePlan, tmp_path: Path) -> None:
        self.repo = SqlRepository.from_url(f"sqlite:///{tmp_path / 'omnizone.db'}")
        plans = {plan.id: plan, OTHER_STORE: plan.model_copy(update={"id": OTHER_STORE})}
        self.shoppers = ShopperService(
            list(plans),
            ShopperRepository(self.repo.engine),
            eid_policy=EidPolicy(min_exponent=10, max_exponent=10),
        )
        self.shoppers.subscribe_to_erasure(self.repo.erase_device)
        identity = RegisteredDevices(self.shoppers)
        self.shoppers.subscribe_to_devices(identity.update)
        self.placed: list[ZonePlacement] = []
        self.ingest = IngestService(
            plans,
            self.repo,
            identity=identity,
            placement_listeners=[lambda _store, p: self.placed.append(p)],
        )
        self.seq = 0

    def hear(
        self,
        device: str,
        at_ms: int,
        rssi: float = -55.0,
        gateway: str = GATEWAY,
        store: str = "paris-rivoli",
    ) -> None:
        self.seq += 1
        message = ble(gateway, self.seq, at_ms, {device: rssi}, store=store)
        self.ingest.handle(*message, at_ms)

    def rows(self, table: type, device: str) -> int:
        with Session(self.repo.engine) as session:
            query = select(func.count()).select_from(table).where(table.device == device)  # type: ignore[attr-defined]
            return int(session.scalar(query) or 0)


@pytest.fixture
def store(plan: StorePlan, tmp_path: Path) -> Store:
    return Store(plan, tmp_path)


def _walk(store: Store, eid: EidParams, seconds: int, start_ms: int = T0) -> None:
    for s in range(seconds):
        at = start_ms + (s + 1) * 1000
        store.hear(eid_device_key(eid, at), at)


def test_an_id_nobody_registered_is_dropped_and_never_stored(store: Store) -> None:
    store.hear("eid:00112233445566ff", T0 + 1000)
    assert store.ingest.counters.unresolved_dropped == 1
    assert store.rows(BleSightingRow, "eid:00112233445566ff") == 0
    assert store.placed == []


def test_without_consent_nothing_is_tracked_or_stored(store: Store) -> None:
    shopper = store.shoppers.register("paris-rivoli")
    _walk(store, shopper.eid, 20)
    assert store.ingest.counters.not_consented_dropped == 20
    assert store.placed == []
    assert store.rows(BleSightingRow, shopper.shopper_id) == 0


def test_offers_only_consent_is_placed_in_memory_but_not_written_down(store: Store) -> None:
    shopper = store.shoppers.register("paris-rivoli")
    store.shoppers.set_consent(shopper.shopper_id, {Purpose.PERSONALIZED_OFFERS: True})
    _walk(store, shopper.eid, 20)
    assert {p.device for p in store.placed} == {shopper.shopper_id}
    assert "womenswear" in {p.zone for p in store.placed}
    assert store.rows(BleSightingRow, shopper.shopper_id) == 0
    assert store.rows(VisitRow, shopper.shopper_id) == 0


def test_analytics_consent_stores_under_the_shopper_across_rotations(store: Store) -> None:
    shopper = store.shoppers.register("paris-rivoli")
    store.shoppers.set_consent(shopper.shopper_id, {Purpose.LOCATION_ANALYTICS: True})
    # 40 s that straddle a rotation boundary: two different ephemeral ids on air
    start = shopper.eid.period(T0).end_ms - 20_000
    keys = {eid_device_key(shopper.eid, start + s * 1000) for s in range(1, 41)}
    assert len(keys) == 2
    _walk(store, shopper.eid, 40, start_ms=start)
    assert store.rows(BleSightingRow, shopper.shopper_id) == 40
    for key in keys:
        assert store.rows(BleSightingRow, key) == 0  # the on-air ids are never kept
    assert store.ingest.counters.unresolved_dropped == 0


def test_erasure_removes_the_shoppers_location_history(store: Store) -> None:
    shopper = store.shoppers.register("paris-rivoli")
    store.shoppers.set_consent(shopper.shopper_id, {Purpose.LOCATION_ANALYTICS: True})
    _walk(store, shopper.eid, 30)
    store.ingest.finish("paris-rivoli")
    assert store.rows(BleSightingRow, shopper.shopper_id) == 30
    store.shoppers.erase(shopper.shopper_id)
    assert store.rows(BleSightingRow, shopper.shopper_id) == 0
    assert store.rows(VisitRow, shopper.shopper_id) == 0
    # and the erased phone is no longer recognised
    _walk(store, shopper.eid, 2, start_ms=T0 + 60_000)
    assert store.ingest.counters.unresolved_dropped == 2


def test_dropped_sightings_are_counted_in_the_api_and_metrics(store: Store) -> None:
    """Retail IT sees how many sightings the identity gate dropped, and why."""
    from fastapi.testclient import TestClient

    from omnizone.server.entrypoints.api import create_app
    from omnizone.server.service.queries import StoreQueries

    store.hear("eid:00112233445566ff", T0 + 1000)
    _walk(store, store.shoppers.register("paris-rivoli").eid, 3, start_ms=T0 + 1000)
    plans = store.ingest.stores
    queries = StoreQueries(plans, store.repo, store.ingest.event_time)
    keys = {"read-key-123456": ["read"]}
    with_ingest = TestClient(
        create_app(queries, keys, ingest_counters=lambda: store.ingest.counters)
    )
    headers = {"X-API-Key": "read-key-123456"}
    stats = with_ingest.get("/api/v1/ingest/stats", headers=headers).json()
    assert stats["unresolved_dropped"] == 1 and stats["not_consented_dropped"] == 3
    metrics = with_ingest.get("/metrics", headers=headers).text
    assert "omnizone_unresolved_sightings_dropped_total 1.0" in metrics
    assert "omnizone_not_consented_sightings_dropped_total 3.0" in metrics
    # an API process without ingest does not pretend to know
    api_only = TestClient(create_app(queries, keys))
    stats = api_only.get("/api/v1/ingest/stats", headers=headers).json()
    assert stats["unresolved_dropped"] is None and stats["not_consented_dropped"] is None
    assert "sightings_dropped" not in api_only.get("/metrics", headers=headers).text


def _located_shopper(store: Store) -> EidParams:
    shopper = store.shoppers.register("paris-rivoli")
    store.shoppers.set_consent(shopper.shopper_id, {Purpose.LOCATION_ANALYTICS: True})
    return shopper.eid


def test_a_captured_id_replayed_after_its_period_is_rejected_counted_and_not_stored(
    store: Store,
) -> None:
    eid = _located_shopper(store)
    period = eid.period(T0)
    captured = eid_device_key(eid, T0)
    store.hear(captured, T0)
    shopper = next(iter(store.shoppers.all_devices()))
    assert store.rows(BleSightingRow, shopper) == 1
    store.hear(captured, period.end_ms + store.shoppers.eid_policy.skew_s * 1000 + 5000)
    assert store.ingest.counters.replayed_dropped == 1
    assert store.ingest.counters.unresolved_dropped == 0
    assert store.rows(BleSightingRow, shopper) == 1
    assert store.rows(BleSightingRow, captured) == 0
    # the phone itself, on its next id, is heard as ever
    store.hear(eid_device_key(eid, period.end_ms + 60_000), period.end_ms + 60_000)
    assert store.rows(BleSightingRow, shopper) == 2


def test_an_id_heard_at_a_second_store_in_its_period_is_a_replay(store: Store) -> None:
    """Several gateways of one store hear the same id at once; another store's
    gateway hearing it in the same period is a relay of a captured id."""
    eid = _located_shopper(store)
    shopper = next(iter(store.shoppers.all_devices()))
    on_air = eid_device_key(eid, T0)
    store.hear(on_air, T0, gateway="gw-womenswear")
    store.hear(on_air, T0, gateway="gw-entrance")
    assert store.rows(BleSightingRow, shopper) == 2
    store.hear(on_air, T0 + 2000, gateway="gw-entrance", store=OTHER_STORE)
    assert store.ingest.counters.replayed_dropped == 1
    assert store.rows(BleSightingRow, shopper) == 2
    assert {p.device for p in store.placed} == {shopper}
    store.hear(on_air, T0 + 3000, gateway="gw-shoes")  # its own store still hears it
    assert store.rows(BleSightingRow, shopper) == 3


def test_replays_are_counted_in_the_api_and_metrics(store: Store) -> None:
    from fastapi.testclient import TestClient

    from omnizone.server.entrypoints.api import create_app
    from omnizone.server.service.queries import StoreQueries

    eid = _located_shopper(store)
    store.hear(eid_device_key(eid, T0), T0)
    store.hear(eid_device_key(eid, T0), T0 + 1000, store=OTHER_STORE)
    store.hear(eid_device_key(eid, T0), eid.period(T0).end_ms + 120_000)
    queries = StoreQueries(store.ingest.stores, store.repo, store.ingest.event_time)
    keys = {"read-key-123456": ["read"]}
    app = TestClient(create_app(queries, keys, ingest_counters=lambda: store.ingest.counters))
    headers = {"X-API-Key": "read-key-123456"}
    assert app.get("/api/v1/ingest/stats", headers=headers).json()["replayed_dropped"] == 2
    assert (
        "omnizone_replayed_sightings_dropped_total 2.0" in app.get("/metrics", headers=headers).text
    )
    api_only = TestClient(create_app(queries, keys))
    assert api_only.get("/api/v1/ingest/stats", headers=headers).json()["replayed_dropped"] is None
