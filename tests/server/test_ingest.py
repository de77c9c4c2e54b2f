"""Ingest on a real SQLite file: storage, de-duplication, dead letters, visits."""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from omnizone.contract import (
    HealthMessage,
    NfcMessage,
    NfcTap,
    RfidMessage,
    RfidRead,
    StatusMessage,
    dump_message,
    topic_for,
)
from omnizone.server.adapters.db import (
    BleSightingRow,
    DevicePresenceRow,
    GatewayStatusRow,
    NfcTapRow,
    ReceivedMessage,
    RfidReadRow,
    SqlRepository,
    VisitRow,
)
from omnizone.server.service.ingest import IngestService, Outcome
from omnizone.server.service.queries import StoreQueries
from omnizone.store import StorePlan

from .conftest import DEVICE_A, DEVICE_B, STORE, T0, ble


def count(repo: SqlRepository, table: Any) -> int:
    with Session(repo.engine) as session:
        return session.scalar(select(func.count()).select_from(table)) or 0


def visits(repo: SqlRepository) -> list[tuple[str, str, int, int | None, str]]:
    with Session(repo.engine) as session:
        rows = session.scalars(select(VisitRow).order_by(VisitRow.id))
        return [(r.device, r.zone, r.entered_ms, r.left_ms, r.status) for r in rows]


def walk(
    service: IngestService,
    gateway: str,
    first_seq: int,
    start_s: int,
    end_s: int,
    rssi: float = -55,
) -> int:
    """One message per second from ``gateway`` hearing DEVICE_A; returns the next seq."""
    seq = first_seq
    for t in range(start_s, end_s + 1):
        outcome = service.handle(*ble(gateway, seq, T0 + t * 1000, {DEVICE_A: rssi}), T0)
        assert outcome.outcome is Outcome.ACCEPTED, outcome.reason
        seq += 1
    return seq


def test_valid_ble_message_is_stored_and_places_the_device(
    service: IngestService, repo: SqlRepository
) -> None:
    outcome = service.handle(*ble("gw-entrance", 0, T0, {DEVICE_A: -60, DEVICE_B: -70}), T0)
    assert outcome.outcome is Outcome.ACCEPTED and outcome.gap == 0
    assert count(repo, ReceivedMessage) == 1
    assert count(repo, BleSightingRow) == 2
    with Session(repo.engine) as session:  # written straight through the driver: every field
        rows = session.scalars(select(BleSightingRow).order_by(BleSightingRow.device)).all()
        message_id = session.scalar(select(ReceivedMessage.id))
    assert [
        (r.message_id, r.store, r.gateway, r.device, r.window_start_ms, r.window_ms, r.rssi_mean)
        for r in rows
    ] == [
        (message_id, STORE, "gw-entrance", DEVICE_A, T0 - 1000, 1000, -60.0),
        (message_id, STORE, "gw-entrance", DEVICE_B, T0 - 1000, 1000, -70.0),
    ]
    assert [(r.count, r.rssi_max, r.tx_power) for r in rows] == [(3, -58.0, None), (3, -68.0, None)]
    assert count(repo, DevicePresenceRow) == 2
    assert visits(repo) == [
        (DEVICE_A, "entrance", T0, None, "open"),
        (DEVICE_B, "entrance", T0, None, "open"),
    ]
    assert repo.presence_by_zone(STORE) == {"entrance": 2}


def test_duplicate_is_counted_and_not_stored_twice(
    service: IngestService, repo: SqlRepository
) -> None:
    message = ble("gw-entrance", 7, T0, {DEVICE_A: -60})
    assert service.handle(*message, T0).outcome is Outcome.ACCEPTED
    again = service.handle(*message, T0 + 5)
    assert again.outcome is Outcome.DUPLICATE
    assert count(repo, BleSightingRow) == 1
    assert len(visits(repo)) == 1
    stats = repo.ingest_stats()
    assert (stats.ingested, stats.duplicates, stats.dead_lettered) == (1, 1, 0)


BAD_MESSAGES = [
    pytest.param(
        topic_for(STORE, "gw-shoes", "ble"), b"{not json", "payload is not JSON", id="json"
    ),
    pytest.param(
        topic_for(STORE, "gw-shoes", "ble"),
        b'{"v":1,"kind":"ble","store":"paris-rivoli","gateway":"gw-shoes","seq":1,"items":[]}',
        "sent_ms",
        id="schema",
    ),
    pytest.param(
        topic_for(STORE, "gw-shoes", "ble"),
        ble("gw-denim", 1, T0, {DEVICE_A: -60})[1],
        "gateway is 'gw-denim' in the body but 'gw-shoes' in the topic",
        id="topic-body-mismatch",
    ),
    pytest.param(
        topic_for(STORE, "gw-nowhere", "ble"),
        ble("gw-nowhere", 1, T0, {DEVICE_A: -60})[1],
        "gateway 'gw-nowhere' is not in the plan of store 'paris-rivoli'",
        id="unknown-gateway",
    ),
    pytest.param(
        topic_for("lyon", "gw-shoes", "ble"),
        ble("gw-shoes", 1, T0, {DEVICE_A: -60}, store="lyon")[1],
        "unknown store 'lyon'",
        id="unknown-store",
    ),
    pytest.param("not/a/topic", b"{}", "is not of the form", id="topic"),
    pytest.param(
        topic_for(STORE, "gw-shoes", "ble"),
        ble("gw-shoes", 1, T0, {DEVICE_A: -60})[1].replace(b'"v":1', b'"v":9'),
        "schema version 9 is not supported",
        id="version",
    ),
]


@pytest.mark.parametrize(("topic", "payload", "reason"), BAD_MESSAGES)
def test_bad_message_is_dead_lettered_and_good_neighbours_still_land(
    service: IngestService, repo: SqlRepository, topic: str, payload: bytes, reason: str
) -> None:
    before = service.handle(*ble("gw-shoes", 0, T0, {DEVICE_A: -60}), T0)
    bad = service.handle(topic, payload, T0 + 1)
    after = service.handle(*ble("gw-shoes", 1, T0 + 1000, {DEVICE_B: -60}), T0 + 2)

    assert bad.outcome is Outcome.DEAD_LETTERED
    assert bad.reason is not None and reason in bad.reason
    assert before.outcome is after.outcome is Outcome.ACCEPTED
    [letter] = repo.dead_letters(10)
    assert (letter.topic, letter.payload, letter.received_ms) == (topic, payload, T0 + 1)
    assert reason in letter.reason
    assert count(repo, BleSightingRow) == 2
    assert repo.ingest_stats().dead_lettered == 1


def test_gaps_are_reported_and_healed_by_late_arrivals(
    service: IngestService, repo: SqlRepository
) -> None:
    assert service.handle(*ble("gw-shoes", 10, T0, {DEVICE_A: -60}), T0).gap == 0
    assert service.handle(*ble("gw-shoes", 13, T0 + 1000, {DEVICE_A: -60}), T0).gap == 2
    assert repo.ingest_stats().gaps == 2
    late = service.handle(*ble("gw-shoes", 11, T0 + 500, {DEVICE_A: -60}), T0)
    assert late.outcome is Outcome.ACCEPTED and late.gap == 0
    assert repo.ingest_stats().gaps == 1
    assert service.counters.gaps == 2


def test_walk_from_entrance_to_accessories_records_visit_and_summary(
    plan: StorePlan, service: IngestService, repo: SqlRepository
) -> None:
    seq = walk(service, "gw-entrance", 0, 0, 3)  # 3 s at the entrance: a pass-by
    seq2 = walk(service, "gw-accessories", 0, 4, 40)  # then 36 s in accessories
    assert seq == 4 and seq2 == 37
    assert visits(repo) == [
        (DEVICE_A, "entrance", T0, T0 + 3000, "pass_by"),
        (DEVICE_A, "accessories", T0 + 4000, None, "open"),
    ]
    walk(service, "gw-menswear", 0, 41, 60, rssi=-45)  # louder: wins at once
    queries = StoreQueries({plan.id: plan}, repo, service.event_time)
    summary = {row.zone: row for row in queries.zone_summaries(STORE)}
    assert summary["entrance"].pass_bys == 1 and summary["entrance"].visits == 0
    assert summary["accessories"].visits == 1
    assert summary["accessories"].mean_dwell_s == 36.0
    assert summary["menswear"].open_visits == 1
    occupancy = queries.occupancy(STORE)
    assert occupancy.at_ms == T0 + 60_000
    assert {z.zone: z.devices for z in occupancy.zones if z.devices} == {"menswear": 1}
    assert len(occupancy.zones) == len(plan.zones)


def test_strongest_gateway_wins_across_messages(
    service: IngestService, repo: SqlRepository
) -> None:
    service.handle(*ble("gw-entrance", 0, T0, {DEVICE_A: -75}), T0)
    service.handle(*ble("gw-accessories", 0, T0, {DEVICE_A: -50}), T0)
    for t in range(1, 12):
        service.handle(*ble("gw-entrance", t, T0 + t * 1000, {DEVICE_A: -75}), T0)
        service.handle(*ble("gw-accessories", t, T0 + t * 1000, {DEVICE_A: -50}), T0)
    assert repo.presence_by_zone(STORE) == {"accessories": 1}
    zones = [v[1] for v in visits(repo)]
    assert zones[-1] == "accessories" and "accessories" in zones


def test_silent_device_times_out_on_event_time_not_wall_clock(
    service: IngestService, repo: SqlRepository
) -> None:
    service.handle(*ble("gw-shoes", 0, T0, {DEVICE_A: -60, DEVICE_B: -60}), T0)
    for t in range(1, 15):  # DEVICE_B stays in shoes, A falls silent
        service.handle(*ble("gw-shoes", t, T0 + t * 1000, {DEVICE_B: -60}), T0)
    assert repo.presence_by_zone(STORE) == {"shoes": 2}
    # event time jumps past A's device timeout (30 s) although no wall time passed
    service.handle(*ble("gw-shoes", 15, T0 + 31_000, {DEVICE_B: -60}), T0)
    assert repo.presence_by_zone(STORE) == {"shoes": 1}
    a_visits = [v for v in visits(repo) if v[0] == DEVICE_A]
    assert a_visits == [(DEVICE_A, "shoes", T0, T0, "pass_by")]


def test_restart_restores_open_stays(plan: StorePlan, repo: SqlRepository) -> None:
    first = IngestService({plan.id: plan}, repo)
    walk(first, "gw-shoes", 0, 0, 20)
    second = IngestService({plan.id: plan}, repo)
    assert DEVICE_A in second.present(STORE)
    assert second.handle(*ble("gw-shoes", 20, T0 + 20_000, {DEVICE_A: -55}), T0).outcome is (
        Outcome.DUPLICATE
    )
    gap = walk(second, "gw-shoes", 21, 21, 22)
    assert gap == 23
    walk(second, "gw-denim", 0, 23, 40)
    assert visits(repo)[:2] == [
        (DEVICE_A, "shoes", T0, T0 + 22_000, "visit"),
        (DEVICE_A, "denim", T0 + 23_000, None, "open"),
    ]


def test_nfc_rfid_status_and_health_are_stored(service: IngestService, repo: SqlRepository) -> None:
    nfc = NfcMessage(
        store=STORE,
        gateway="gw-outerwear",
        seq=0,
        sent_ms=T0,
        items=[NfcTap(tap_point="tap-outerwear-jackets", uid="04a2b3c4", at_ms=T0)],
    )
    rfid = RfidMessage(
        store=STORE,
        gateway="gw-fitting-1",
        seq=0,
        sent_ms=T0,
        items=[
            RfidRead(
                reader="rfid-fitting-1",
                antenna=1,
                epc="3034257bf7194e4000001a85",
                rssi=-60,
                at_ms=T0,
            )
        ],
    )
    birth = StatusMessage(
        store=STORE,
        gateway="gw-shoes",
        seq=5,
        sent_ms=T0,
        state="online",
        session=2,
        version="0.1.0",
    )
    health = HealthMessage(
        store=STORE,
        gateway="gw-shoes",
        seq=6,
        sent_ms=T0 + 1,
        uptime_s=12.5,
        outbox_depth=0,
        outbox_dropped=0,
        readers={"ble": "ok"},
        version="0.1.0",
    )
    for message in (nfc, rfid, birth, health):
        topic = topic_for(message.store, message.gateway, message.kind)
        assert service.handle(topic, dump_message(message), T0).outcome is Outcome.ACCEPTED
    assert count(repo, NfcTapRow) == 1 and count(repo, RfidReadRow) == 1
    with Session(repo.engine) as session:
        row = session.get(GatewayStatusRow, (STORE, "gw-shoes"))
        assert row is not None
        assert (row.state, row.session, row.status_ms) == ("online", 2, T0)
        assert row.health is not None and row.health["readers"] == {"ble": "ok"}


class _FailingRepository(SqlRepository):
    """Fails inside the transaction, after the dedup key was written."""

    def __init__(self, engine: Any, error: Exception) -> None:
        super().__init__(engine)
        self.error = error
        self.armed = True

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        with super().transaction() as tx:
            if self.armed:
                original = tx.add_ble_sightings

                def boom(store: str, gateway: str, seq: int, items: Sequence[Any]) -> None:
                    original(store, gateway, seq, items)
                    raise self.error

                tx.add_ble_sightings = boom  # type: ignore[method-assign]
            yield tx


def test_unexpected_error_is_dead_lettered_and_rolled_back(
    plan: StorePlan, repo: SqlRepository
) -> None:
    failing = _FailingRepository(repo.engine, ValueError("disk says no"))
    service = IngestService({plan.id: plan}, failing)
    message = ble("gw-shoes", 0, T0, {DEVICE_A: -60})
    outcome = service.handle(*message, T0)
    assert outcome.outcome is Outcome.DEAD_LETTERED
    assert outcome.reason == "processing failed: ValueError: disk says no"
    assert count(repo, ReceivedMessage) == 0 and count(repo, BleSightingRow) == 0
    assert service.present(STORE) == {}
    failing.armed = False  # redelivery after the fault is gone processes it cleanly
    assert service.handle(*message, T0).outcome is Outcome.ACCEPTED
    assert DEVICE_A in service.present(STORE)


def test_storage_outage_raises_so_the_message_is_not_acknowledged(
    plan: StorePlan, repo: SqlRepository
) -> None:
    outage = OperationalError("INSERT", {}, Exception("database is locked"))
    service = IngestService({plan.id: plan}, _FailingRepository(repo.engine, outage))
    with pytest.raises(OperationalError):
        service.handle(*ble("gw-shoes", 0, T0, {DEVICE_A: -60}), T0)
    assert count(repo, ReceivedMessage) == 0 and repo.dead_letters(10) == []
