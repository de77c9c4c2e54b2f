"""Visits and offer decisions partitioned by UTC month on PostgreSQL
(migration 0016, issue 17): rows land in their month's partition (or DEFAULT,
moved out when the month's partition is made), updates by id still work, the
models and the database agree, and the migration moves every row both ways.
On a private PostgreSQL."""

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from alembic import command
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, select, text, update
from sqlalchemy.orm import Session

from omnizone.server.adapters import schema
from omnizone.server.adapters.campaign_db import DecisionRow
from omnizone.server.adapters.db import SqlRepository, VisitRow, make_engine
from omnizone.server.adapters.time_partitions import (
    RangePartition,
    is_month_partition_name,
    month_bounds,
    month_name,
    month_of,
    months_to_make,
    prepare_month_partitions,
)
from omnizone.server.service.ingest import IngestService
from omnizone.store import StorePlan

from .conftest import DEVICE_A, T0, ble

JAN = month_of(T0)  # 2026-01
DAY_MS = 86_400_000


@given(st.integers(min_value=0, max_value=4_102_444_800_000))  # up to 2100
def test_every_moment_lies_in_its_months_bounds(ms: int) -> None:
    low, high = month_bounds(month_of(ms))
    assert low <= ms < high
    assert month_of(low) == month_of(ms) and month_of(high) == month_of(ms) + 1


def test_the_names_and_the_months_to_make() -> None:
    assert month_name("visits", JAN) == "visits_m202601"
    assert month_name("offer_decisions", JAN + 11) == "offer_decisions_m202612"
    assert month_bounds(JAN)[0] == T0
    assert month_bounds(JAN + 1)[0] == int(datetime(2026, 2, 1, tzinfo=UTC).timestamp() * 1000)
    for name in ("visits_m202601", "visits_default", "offer_decisions_m203012"):
        assert is_month_partition_name(name)
    assert not is_month_partition_name("visits") and not is_month_partition_name("offers_m202601")
    january = RangePartition("visits_m202601", *month_bounds(JAN))
    assert months_to_make(T0 + DAY_MS, [january], ahead=2) == [JAN + 1, JAN + 2]


@pytest.fixture
def engine(postgres_schema_url: str) -> Iterator[Engine]:
    engine = make_engine(postgres_schema_url)
    yield engine
    engine.dispose()


def _where(engine: Engine, table: str, column: str) -> list[tuple[str, int]]:
    with engine.connect() as db:
        rows = db.execute(text(f"SELECT tableoid::regclass::text, {column} FROM {table}")).all()
    return sorted((str(r[0]), int(r[1])) for r in rows)


def _relkind(engine: Engine, table: str) -> str:
    with engine.connect() as db:
        return str(
            db.execute(text(f"SELECT relkind FROM pg_class WHERE oid = to_regclass('{table}')"))
            .scalar_one()
        )  # fmt: skip


def _decision(at_ms: int) -> DecisionRow:
    return DecisionRow(
        store="s", campaign_id="c", shopper_id="shopper-1", outcome="sent", reason="r",
        trigger="zone_entry", at_ms=at_ms,
    )  # fmt: skip


def test_rows_land_in_their_months_and_a_visit_still_closes_by_id(
    plan: StorePlan, engine: Engine
) -> None:
    schema.upgrade(engine)
    assert _relkind(engine, "visits") == _relkind(engine, "offer_decisions") == "p"
    assert prepare_month_partitions(engine, T0 + DAY_MS, ahead=1) == 4  # 2 months × 2 tables
    assert prepare_month_partitions(engine, T0 + DAY_MS, ahead=1) == 0  # made once
    repo = SqlRepository(engine)
    service = IngestService({plan.id: plan}, repo)
    at = T0 + 3 * DAY_MS
    service.handle(*ble("gw-denim", 0, at, {DEVICE_A: -60}), at)  # opens a visit in January
    march = month_bounds(JAN + 2)[0] + DAY_MS  # no partition yet: DEFAULT
    with Session(engine) as session, session.begin():
        session.add_all(
            [_decision(T0 + DAY_MS), _decision(month_bounds(JAN + 1)[0]), _decision(march)]
        )
        session.add(VisitRow(store="s", device="d", zone="z", entered_ms=march, status="open"))
    visits = _where(engine, "visits", "entered_ms")
    assert [p for p, _ in visits] == ["visits_default", "visits_m202601"]
    assert _where(engine, "offer_decisions", "at_ms") == [
        ("offer_decisions_default", march),
        ("offer_decisions_m202601", T0 + DAY_MS),
        ("offer_decisions_m202602", month_bounds(JAN + 1)[0]),
    ]
    # The ORM updates a visit by its id alone (the model's primary key).
    with Session(engine) as session, session.begin():
        opened = session.scalars(select(VisitRow).where(VisitRow.device == DEVICE_A)).one()
        opened.status, opened.left_ms = "closed", at + 60_000
    with Session(engine) as session, session.begin():
        session.execute(update(VisitRow).where(VisitRow.device == "d").values(status="closed"))
    with Session(engine) as session:
        assert set(session.scalars(select(VisitRow.status))) == {"closed"}
    # March's partition, made later, takes its rows out of DEFAULT.
    assert prepare_month_partitions(engine, march, ahead=0) == 2
    assert ("visits_m202603", march) in _where(engine, "visits", "entered_ms")
    assert ("offer_decisions_m202603", march) in _where(engine, "offer_decisions", "at_ms")
    assert schema.differences(engine) == []


def _contents(engine: Engine, table: str, column: str) -> tuple[int, int, int]:
    with engine.connect() as db:
        row = db.execute(
            text(f"SELECT count(*), sum(id), sum({column} % 1000003) FROM {table}")
        ).one()
    return int(row[0]), int(row[1] or 0), int(row[2] or 0)


def _both(engine: Engine) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    return _contents(engine, "visits", "entered_ms"), _contents(engine, "offer_decisions", "at_ms")


def test_the_migration_moves_every_row_in_and_out_of_the_months(engine: Engine) -> None:
    schema.upgrade(engine, "0015")
    with engine.begin() as db:
        db.execute(
            text(
                "INSERT INTO visits (store, device, zone, entered_ms, status)"
                " SELECT 's', 'd' || n, 'z', :t0 + (n % 3) * :month + n, 'open'"
                " FROM generate_series(1, 3000) AS n"
            ),
            {"t0": T0, "month": 31 * DAY_MS},
        )
        db.execute(
            text(
                "INSERT INTO offer_decisions (store, campaign_id, shopper_id, outcome, reason,"
                " trigger, at_ms) SELECT 's', 'c', 'p' || n, 'sent', 'r', 'zone_entry',"
                " :t0 + (n % 2) * :month + n FROM generate_series(1, 2000) AS n"
            ),
            {"t0": T0, "month": 31 * DAY_MS},
        )
    before = (
        _contents(engine, "visits", "entered_ms"),
        _contents(engine, "offer_decisions", "at_ms"),
    )
    assert schema.upgrade(engine) == "0016"
    assert _relkind(engine, "visits") == _relkind(engine, "offer_decisions") == "p"
    assert (
        _contents(engine, "visits", "entered_ms"),
        _contents(engine, "offer_decisions", "at_ms"),
    ) == before
    assert {p for p, _ in _where(engine, "visits", "entered_ms")} == {
        "visits_m202601", "visits_m202602", "visits_m202603",
    }  # fmt: skip
    assert schema.differences(engine) == []
    with engine.begin() as db:  # the id sequence goes on
        db.execute(
            text(
                "INSERT INTO visits (store, device, zone, entered_ms, status)"
                " VALUES ('s', 'x', 'z', :t, 'open')"
            ),
            {"t": T0},
        )
        assert db.execute(text("SELECT max(id) FROM visits")).scalar() == 3001
    grown = (
        _contents(engine, "visits", "entered_ms"),
        _contents(engine, "offer_decisions", "at_ms"),
    )
    with engine.connect() as connection, connection.begin():
        command.downgrade(schema._config(connection), "0015")
    assert _relkind(engine, "visits") == _relkind(engine, "offer_decisions") == "r"
    assert (
        _contents(engine, "visits", "entered_ms"),
        _contents(engine, "offer_decisions", "at_ms"),
    ) == grown
    assert schema.differences(engine) == []
    assert schema.upgrade(engine) == "0016"
    assert (
        _contents(engine, "visits", "entered_ms"),
        _contents(engine, "offer_decisions", "at_ms"),
    ) == grown
