"""Batched ingest (issue 17, point 4): a batch in one transaction stores what
the same messages one at a time store, and a bad message never takes good
ones beside it down."""

import random
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from omnizone.contract import topic_for
from omnizone.server.adapters.db import (
    BleSightingRow,
    DevicePresenceRow,
    ReceivedMessage,
    SqlRepository,
    VisitRow,
)
from omnizone.server.adapters.memory import MemoryRepository
from omnizone.server.domain.visits import VisitClosed, VisitOpened
from omnizone.server.service.ingest import InboundMessage, IngestService, Outcome
from omnizone.server.service.locators import ZonePlacement
from omnizone.server.service.ports import Repository
from omnizone.store import StorePlan

from .conftest import DEVICE_A, DEVICE_B, STORE, T0, ble

DEVICES = [f"eid:{i:016x}" for i in range(1, 13)]


def _walk(plan: StorePlan, seconds: int, seed: int) -> list[InboundMessage]:
    """Every gateway reporting every second, devices drifting between gateways:
    visits open and close, presence rows are rewritten."""
    rng = random.Random(seed)
    gateways = sorted(plan.gateway_zones)
    near = {device: rng.choice(gateways) for device in DEVICES}
    seqs = dict.fromkeys(gateways, 0)
    messages = []
    for t in range(seconds):
        if t % 7 == 0:
            near = {d: rng.choice(gateways) if rng.random() < 0.5 else g for d, g in near.items()}
        for gateway in gateways:
            heard = {
                d: (-50.0 if g == gateway else -85.0) + rng.uniform(-3, 3)
                for d, g in near.items()
                if g == gateway or rng.random() < 0.6
            }
            at_ms = T0 + t * 1000
            topic, payload = ble(gateway, seqs[gateway], at_ms, heard)
            seqs[gateway] += 1
            messages.append(InboundMessage(topic, payload, at_ms + 5))
    return messages


def _stored(repo: SqlRepository) -> dict[str, Any]:
    with Session(repo.engine) as session:
        visits = session.execute(
            select(
                VisitRow.device,
                VisitRow.zone,
                VisitRow.entered_ms,
                VisitRow.left_ms,
                VisitRow.status,
            ).order_by(VisitRow.device, VisitRow.entered_ms, VisitRow.zone)
        ).all()
        presence = session.execute(
            select(
                DevicePresenceRow.device, DevicePresenceRow.zone, DevicePresenceRow.entered_ms
            ).order_by(DevicePresenceRow.device)
        ).all()
        sightings = session.scalar(select(func.count()).select_from(BleSightingRow))
        per_message = session.execute(
            select(ReceivedMessage.gateway, ReceivedMessage.seq, func.count(BleSightingRow.id))
            .join(BleSightingRow, BleSightingRow.message_id == ReceivedMessage.id)
            .group_by(ReceivedMessage.gateway, ReceivedMessage.seq)
            .order_by(ReceivedMessage.gateway, ReceivedMessage.seq)
        ).all()
    return {
        "visits": [tuple(v) for v in visits],
        "presence": [tuple(p) for p in presence],
        "sightings": sightings,
        "per_message": [tuple(m) for m in per_message],
    }


def _recording(service: IngestService) -> list[tuple[str, ZonePlacement]]:
    placements: list[tuple[str, ZonePlacement]] = []
    service.subscribe_to_placements(lambda store, p: placements.append((store, p)))
    return placements


@pytest.mark.parametrize("batch_size", [3, 10, 64])
def test_a_batch_stores_what_one_message_at_a_time_stores(
    plan: StorePlan, tmp_path: Path, batch_size: int
) -> None:
    messages = _walk(plan, 40, seed=batch_size)
    one, many = (SqlRepository.from_url(f"sqlite:///{tmp_path / n}.db") for n in ("one", "many"))
    try:
        alone, batched = IngestService({plan.id: plan}, one), IngestService({plan.id: plan}, many)
        placed_alone, placed_batched = _recording(alone), _recording(batched)
        for m in messages:
            assert alone.handle(m.topic, m.payload, m.received_ms).outcome is Outcome.ACCEPTED
        for start in range(0, len(messages), batch_size):
            outcomes = batched.handle_batch(messages[start : start + batch_size])
            assert [o.outcome for o in outcomes] == [Outcome.ACCEPTED] * len(outcomes)
        assert _stored(many) == _stored(one)
        assert _stored(one)["visits"], "the walk should open and close visits"
        assert placed_batched == placed_alone
        assert batched.present(STORE) == alone.present(STORE)
        assert batched.counters == alone.counters
    finally:
        one.close()
        many.close()


def test_a_bad_message_in_a_batch_is_dead_lettered_and_the_others_stored(
    service: IngestService, repo: SqlRepository
) -> None:
    batch = [
        InboundMessage(*ble("gw-entrance", 0, T0, {DEVICE_A: -60}), T0),
        InboundMessage(topic_for(STORE, "gw-shoes", "ble"), b"{not json", T0),
        InboundMessage(*ble("gw-shoes", 0, T0, {DEVICE_B: -60}), T0),
        InboundMessage(*ble("gw-nowhere", 0, T0, {DEVICE_B: -60}), T0),
    ]
    outcomes = service.handle_batch(batch)
    assert [o.outcome for o in outcomes] == [
        Outcome.ACCEPTED,
        Outcome.DEAD_LETTERED,
        Outcome.ACCEPTED,
        Outcome.DEAD_LETTERED,
    ]
    assert outcomes[3].reason is not None and "gw-nowhere" in outcomes[3].reason
    stats = repo.ingest_stats()
    assert (stats.ingested, stats.dead_lettered) == (2, 2)
    assert repo.presence_by_zone(STORE) == {"entrance": 1, "shoes": 1}


def test_the_same_message_twice_in_one_batch_is_stored_once(
    service: IngestService, repo: SqlRepository
) -> None:
    message = InboundMessage(*ble("gw-entrance", 4, T0, {DEVICE_A: -60}), T0)
    outcomes = service.handle_batch([message, message])
    assert [o.outcome for o in outcomes] == [Outcome.ACCEPTED, Outcome.DUPLICATE]
    assert outcomes[0].key == outcomes[1].key
    stats = repo.ingest_stats()
    assert (stats.ingested, stats.duplicates) == (1, 1)
    with Session(repo.engine) as session:
        assert session.scalar(select(func.count()).select_from(BleSightingRow)) == 1


class _FailsFor(SqlRepository):
    """Working out one gateway's BLE message fails (a bug, not storage)."""

    def __init__(self, engine: Any, gateway: str, error: Exception) -> None:
        super().__init__(engine)
        self.gateway, self.error = gateway, error

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        with super().transaction() as tx:
            original = tx.add_ble_sightings

            def maybe(store: str, gateway: str, seq: int, items: Sequence[Any]) -> None:
                if gateway == self.gateway:
                    raise self.error
                original(store, gateway, seq, items)

            tx.add_ble_sightings = maybe  # type: ignore[method-assign]
            yield tx


def test_a_message_that_fails_processing_takes_no_good_one_down(
    plan: StorePlan, repo: SqlRepository
) -> None:
    service = IngestService({plan.id: plan}, _FailsFor(repo.engine, "gw-shoes", ValueError("bug")))
    outcomes = service.handle_batch(
        [
            InboundMessage(*ble("gw-entrance", 0, T0, {DEVICE_A: -60}), T0),
            InboundMessage(*ble("gw-shoes", 0, T0, {DEVICE_B: -60}), T0),
            InboundMessage(*ble("gw-entrance", 1, T0 + 1000, {DEVICE_A: -60}), T0),
        ]
    )
    assert [o.outcome for o in outcomes] == [
        Outcome.ACCEPTED,
        Outcome.DEAD_LETTERED,
        Outcome.ACCEPTED,
    ]
    assert outcomes[1].reason == "processing failed: ValueError: bug"
    stats = repo.ingest_stats()
    assert (stats.ingested, stats.dead_lettered) == (2, 1)
    assert list(service.present(STORE)) == [DEVICE_A]


def test_storage_away_leaves_the_whole_batch_uncommitted(
    plan: StorePlan, repo: SqlRepository
) -> None:
    outage = OperationalError("INSERT", {}, Exception("database is locked"))
    service = IngestService({plan.id: plan}, _FailsFor(repo.engine, "gw-shoes", outage))
    batch = [
        InboundMessage(*ble("gw-entrance", 0, T0, {DEVICE_A: -60}), T0),
        InboundMessage(*ble("gw-shoes", 0, T0, {DEVICE_B: -60}), T0),
    ]
    with pytest.raises(OperationalError):
        service.handle_batch(batch)
    stats = repo.ingest_stats()
    assert (stats.ingested, stats.dead_lettered) == (0, 0)
    assert service.present(STORE) == {}


def test_batches_on_the_memory_twin_match_sqlite(plan: StorePlan, repo: SqlRepository) -> None:
    messages = _walk(plan, 20, seed=7)
    memory: Repository = MemoryRepository()
    on_memory, on_sqlite = (
        IngestService({plan.id: plan}, memory),
        IngestService({plan.id: plan}, repo),
    )
    for start in range(0, len(messages), 10):
        on_memory.handle_batch(messages[start : start + 10])
        on_sqlite.handle_batch(messages[start : start + 10])
    assert memory.recent_visits(STORE, 1000, None) == repo.recent_visits(STORE, 1000, None)
    assert memory.presence_by_zone(STORE) == repo.presence_by_zone(STORE)
    assert memory.ingest_stats() == repo.ingest_stats()


class _Registered:
    """The server's ``DeviceIdentity`` in small: DEVICES[0..9] are shoppers who
    allow everything, DEVICES[10] a shopper who allows offers only (tracked,
    never stored), DEVICES[11] nobody; every call to ``resolve`` is counted."""

    def __init__(self) -> None:
        self.resolved: list[tuple[str, int]] = []

    def resolve(self, device: str, at_ms: int, store: str) -> str | None:
        self.resolved.append((device, at_ms))
        index = DEVICES.index(device)
        return None if index == 11 else f"shopper-{index}"

    def may_store_location(self, device: str) -> bool:
        return device != "shopper-10"

    def may_track(self, device: str) -> bool:
        return True


def test_a_batch_resolves_each_rotating_id_once_per_window_and_stores_what_one_at_a_time_does(
    plan: StorePlan, tmp_path: Path
) -> None:
    messages = _walk(plan, 30, seed=11)
    gateways = len(plan.gateway_zones)
    one, many = (SqlRepository.from_url(f"sqlite:///{tmp_path / n}.db") for n in ("one", "many"))
    try:
        identities = _Registered(), _Registered()
        alone, batched = (
            IngestService({plan.id: plan}, repo, identity=identity)
            for repo, identity in zip((one, many), identities, strict=True)
        )
        placed_alone, placed_batched = _recording(alone), _recording(batched)
        for m in messages:
            alone.handle(m.topic, m.payload, m.received_ms)
        for start in range(0, len(messages), gateways):  # a window's messages together
            batched.handle_batch(messages[start : start + gateways])
        stored = _stored(many)
        assert stored == _stored(one)
        assert placed_batched == placed_alone
        assert batched.counters == alone.counters
        assert alone.counters.unresolved_dropped > 0
        # One-at-a-time asks for every sighting; a window's batch once per id.
        asked_alone, asked_batched = (i.resolved for i in identities)
        assert len(asked_alone) > len(set(asked_alone))
        assert sorted(asked_batched) == sorted(set(asked_alone))
        with Session(many.engine) as session:
            devices = set(session.scalars(select(BleSightingRow.device).distinct()))
        assert devices and all(d.startswith("shopper-") for d in devices)  # no raw id stored
        assert "shopper-10" not in devices  # offers only: placed, never written down
        assert any(p.device == "shopper-10" for _s, p in placed_batched)
    finally:
        one.close()
        many.close()


def test_visit_events_of_a_batch_close_the_open_rows_of_earlier_ones(repo: SqlRepository) -> None:
    """A batch's visit events are written together: a close finds the row an
    earlier batch opened, or the one this batch opened, or stores the visit
    closed when no open row exists (a stay resumed from a presence row)."""
    t = T0
    with repo.transaction() as tx:
        tx.apply_visit_events(STORE, "a", [VisitOpened("z1", t)])
        tx.apply_visit_events(STORE, "b", [VisitOpened("z1", t)])
    with repo.transaction() as tx:
        tx.apply_visit_events(STORE, "a", [VisitClosed("z1", t, t + 9000, pass_by=False)])
        tx.apply_visit_events(STORE, "c", [VisitOpened("z2", t + 1000)])
        tx.apply_visit_events(STORE, "c", [VisitClosed("z2", t + 1000, t + 2000, pass_by=True)])
        tx.apply_visit_events(STORE, "d", [VisitClosed("z3", t - 5000, t + 1000, pass_by=False)])
        tx.apply_visit_events(STORE, "a", [VisitOpened("z2", t + 9000)])
    with Session(repo.engine) as session:
        rows = session.execute(
            select(VisitRow.device, VisitRow.zone, VisitRow.left_ms, VisitRow.status).order_by(
                VisitRow.device, VisitRow.entered_ms
            )
        ).all()
    assert [tuple(r) for r in rows] == [
        ("a", "z1", t + 9000, "visit"),
        ("a", "z2", None, "open"),
        ("b", "z1", None, "open"),
        ("c", "z2", t + 2000, "pass_by"),
        ("d", "z3", t + 1000, "visit"),
    ]


def test_sqlite_writers_of_one_process_queue_instead_of_failing(repo: SqlRepository) -> None:
    """A second writer waits in this process for the first one's commit, even
    when SQLite itself would refuse it at once (its busy timeout at 0)."""
    import threading

    from sqlalchemy import text

    started, done = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def second() -> None:
        try:
            with repo.engine.connect() as connection:
                connection.exec_driver_sql("PRAGMA busy_timeout = 0")
                connection.commit()
                started.set()
                with connection.begin():
                    connection.execute(
                        text(
                            "INSERT INTO device_presence VALUES "
                            "('s', 'b', 'z', 1, 1, 1, NULL, NULL)"
                        )
                    )
        except BaseException as error:  # reported below
            errors.append(error)
        finally:
            done.set()

    with repo.engine.connect() as first, first.begin():
        first.execute(
            text("INSERT INTO device_presence VALUES ('s', 'a', 'z', 1, 1, 1, NULL, NULL)")
        )
        writer = threading.Thread(target=second)
        writer.start()
        started.wait(10)
        assert not done.wait(0.5), f"the second writer did not wait: {errors}"
    writer.join(10)
    assert errors == []
    with Session(repo.engine) as session:
        assert sorted(session.scalars(select(DevicePresenceRow.device))) == ["a", "b"]
