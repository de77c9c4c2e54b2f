"""Raw sightings partitioned by UTC day on PostgreSQL (migration 0015, issue 17):
rows land in their day's partition (or DEFAULT), retention drops whole
expired days and deletes only the boundary day's old rows, counted exactly,
and the migration moves every row both ways. On a private PostgreSQL."""

from collections.abc import Iterator

import pytest
from alembic import command
from sqlalchemy import Engine, text

from omnizone.server.adapters import schema
from omnizone.server.adapters.db import SqlRepository, make_engine
from omnizone.server.adapters.sighting_partitions import (
    DayPartition,
    day_name,
    days_to_make,
    expired,
    is_partition_name,
)
from omnizone.server.service.ingest import IngestService
from omnizone.server.service.retention import DAY_MS, SightingRetention
from omnizone.store import StorePlan

from .conftest import DEVICE_A, DEVICE_B, T0, ble

HOUR_MS = 3_600_000
DAY0 = T0 // DAY_MS  # 2026-01-01


@pytest.fixture
def engine(postgres_schema_url: str) -> Iterator[Engine]:
    engine = make_engine(postgres_schema_url)
    yield engine
    engine.dispose()


@pytest.fixture
def repo(engine: Engine) -> SqlRepository:
    schema.upgrade(engine)
    return SqlRepository(engine)


def _ingest(plan: StorePlan, repo: SqlRepository, starts_ms: list[int]) -> None:
    """One message per window start, two devices each."""
    service = IngestService({plan.id: plan}, repo)
    for seq, start in enumerate(starts_ms):
        at = start + 1000  # ble() puts the window one second before ``at``
        service.handle(*ble("gw-denim", seq, at, {DEVICE_A: -60, DEVICE_B: -65}), at)


def _where(engine: Engine) -> list[tuple[str, int]]:
    """(partition, window start) of every row, in order."""
    with engine.connect() as db:
        rows = db.execute(
            text("SELECT tableoid::regclass::text, window_start_ms FROM ble_sightings")
        ).all()
    return sorted((str(r[0]), int(r[1])) for r in rows)


def _partitions(engine: Engine) -> list[str]:
    with engine.connect() as db:
        names = db.execute(
            text(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                " WHERE i.inhparent = to_regclass('ble_sightings')"
            )
        ).scalars()
        return sorted(names)


def _relkind(engine: Engine) -> str:
    with engine.connect() as db:
        return str(
            db.execute(
                text("SELECT relkind FROM pg_class WHERE oid = to_regclass('ble_sightings')")
            ).scalar_one()
        )


def test_the_plan_of_partitions_to_make_and_to_drop() -> None:
    day = DayPartition(day_name(DAY0), T0, T0 + DAY_MS)
    assert day.name == "ble_sightings_d20260101" and is_partition_name(day.name)
    assert is_partition_name("ble_sightings_default") and not is_partition_name("ble_sightings")
    assert days_to_make(T0 + 5 * HOUR_MS, [day], ahead=2) == [DAY0 + 1, DAY0 + 2]
    assert expired([day], T0 + DAY_MS) == [day]
    assert expired([day], T0 + DAY_MS - 1) == []  # its last millisecond is still kept


def test_sightings_of_several_days_land_in_their_days_partitions(
    plan: StorePlan, repo: SqlRepository, engine: Engine
) -> None:
    assert _relkind(engine) == "p"
    assert _partitions(engine) == ["ble_sightings_default"]
    assert repo.prepare_sighting_partitions(T0 + HOUR_MS, ahead=3) == 4
    assert repo.prepare_sighting_partitions(T0 + HOUR_MS, ahead=3) == 0  # made once
    _ingest(plan, repo, [T0 + day * DAY_MS + HOUR_MS for day in range(4)])
    assert _where(engine) == [
        (day_name(DAY0 + day), T0 + day * DAY_MS + HOUR_MS) for day in range(4) for _ in "ab"
    ]
    assert schema.differences(engine) == []  # the partitions are not tables of the models


def test_retention_drops_expired_days_and_deletes_only_the_boundary_days_old_rows(
    plan: StorePlan, repo: SqlRepository, engine: Engine
) -> None:
    repo.prepare_sighting_partitions(T0, ahead=6)
    starts = [T0 + day * DAY_MS + HOUR_MS for day in range(7)]
    boundary = T0 + 3 * DAY_MS + 12 * HOUR_MS  # the limit, at noon of day 3
    starts += [boundary - 1, boundary]  # the last expired and the first kept window
    _ingest(plan, repo, starts)
    retention = SightingRetention(repo.prune_sightings, 30, clock_ms=lambda: boundary + 30 * DAY_MS)
    # days 0-2 dropped (6 rows), day 3 before noon deleted (02:00 and 11:59:59.999)
    assert retention.run_once() == 6 + 4
    assert _partitions(engine) == sorted(
        ["ble_sightings_default", *(day_name(DAY0 + day) for day in range(3, 7))]
    )
    kept = sorted([boundary, *(s for s in starts if s >= T0 + 4 * DAY_MS)])
    assert [start for _, start in _where(engine)] == sorted(kept * 2)
    assert retention.run_once() == 0


def test_a_day_without_partition_goes_to_default_and_is_pruned_or_moved(
    plan: StorePlan, repo: SqlRepository, engine: Engine
) -> None:
    late, old = T0 + 10 * DAY_MS + HOUR_MS, T0 - 5 * DAY_MS
    _ingest(plan, repo, [old, late])  # no partition for either day
    assert {p for p, _ in _where(engine)} == {"ble_sightings_default"}
    assert repo.prune_sightings(T0) == 2  # the old day's two rows, from DEFAULT
    assert _where(engine) == [("ble_sightings_default", late)] * 2
    # the day's partition made later takes its rows out of DEFAULT
    assert repo.prepare_sighting_partitions(late, ahead=0) == 1
    assert _where(engine) == [(day_name(DAY0 + 10), late)] * 2
    assert repo.prune_sightings(late) == 0 and repo.prune_sightings(late + 1) == 2


def _fill_at_0014(engine: Engine, rows: int) -> None:
    """``rows`` sightings over five days in a database at 0014 (a plain table)."""
    schema.upgrade(engine, "0014")
    with engine.begin() as db:
        db.execute(
            text(
                "INSERT INTO received_messages (id, store, gateway, seq, kind, sent_ms,"
                " received_ms, items, duplicates) VALUES (1, 's', 'g', 1, 'ble', 1, 2, 1, 0),"
                " (2, 's', 'g', 2, 'ble', 1, 2, 1, 0)"
            )
        )
        db.execute(
            text(
                "INSERT INTO ble_sightings (message_id, store, gateway, device, window_start_ms,"
                " window_ms, count, rssi_mean, rssi_max)"
                " SELECT 1 + n % 2, 's', 'g', 'eid:' || n, :t0 + (n % 5) * :day + n, 1000, 3,"
                " -60, -58 FROM generate_series(1, :rows) AS n"
            ),
            {"t0": T0, "day": DAY_MS, "rows": rows},
        )


def _contents(engine: Engine) -> tuple[int, int, int]:
    with engine.connect() as db:
        row = db.execute(
            text("SELECT count(*), sum(id), sum(window_start_ms % 1000003) FROM ble_sightings")
        ).one()
    return int(row[0]), int(row[1]), int(row[2])


def test_the_migration_moves_every_row_in_and_out_of_the_partitions(engine: Engine) -> None:
    _fill_at_0014(engine, 5000)
    before = _contents(engine)
    assert _relkind(engine) == "r" and before[0] == 5000
    assert schema.upgrade(engine, "0015") == "0015"
    assert _relkind(engine) == "p" and _contents(engine) == before
    assert _partitions(engine) == sorted(
        ["ble_sightings_default", *(day_name(DAY0 + day) for day in range(5))]
    )
    assert schema.differences(engine) == []
    with engine.begin() as db:  # the id sequence goes on; the cascade is still there
        db.execute(
            text(
                "INSERT INTO ble_sightings (message_id, store, gateway, device, window_start_ms,"
                " window_ms, count, rssi_mean, rssi_max)"
                " VALUES (2, 's', 'g', 'd', :t, 1, 1, -5, -5)"
            ),
            {"t": T0},
        )
        assert db.execute(text("SELECT max(id) FROM ble_sightings")).scalar() == 5001
        db.execute(text("DELETE FROM received_messages WHERE id = 2"))
        assert db.execute(text("SELECT count(*) FROM ble_sightings")).scalar() == 2500
    after_delete = _contents(engine)
    with engine.connect() as connection, connection.begin():
        command.downgrade(schema._config(connection), "0014")
    assert _relkind(engine) == "r" and _contents(engine) == after_delete
    assert _partitions(engine) == []
    assert schema.differences(engine) == []
    assert schema.upgrade(engine, "0015") == "0015" and _contents(engine) == after_delete


def test_the_bench_prunes_the_same_day_from_both_tables(postgres_url: str) -> None:
    """``omnizone bench partitions`` on small numbers: the same rows go from
    the plain table by DELETE and from the partitioned one by a drop."""
    from omnizone.suite.bench.partitions import run_partitions_bench

    result = run_partitions_bench(
        sightings=3000, days=3, batches=2, messages_per_batch=2, items_per_message=5,
        database_url=postgres_url,
    )  # fmt: skip
    plain, by_day = result["plain"], result["by_day"]
    assert plain["partitions_made"] == 0 and by_day["partitions_made"] > 0
    assert plain["prune_one_day"]["rows"] == by_day["prune_one_day"]["rows"] == 1000
    assert plain["rows_left"] == by_day["rows_left"] == 3000 - 1000 + 2 * 2 * 5


def test_a_started_server_makes_the_coming_days_partitions(
    postgres_schema_url: str, engine: Engine
) -> None:
    """At start (after the migrations) the server makes today's partition and the next days'."""
    from omnizone.contract import wall_clock_ms
    from omnizone.server.runtime import ServerRuntime
    from omnizone.server.settings import ServerSettings

    settings = ServerSettings(
        database_url=postgres_schema_url,
        api_keys={"key-1234567890abcdef": ["read"]},
        api_port=0,
        mqtt_port=1,  # no broker: ingest keeps retrying in the background
        sighting_retention_days=0,  # no retention round: the start alone makes them
    )
    with ServerRuntime(settings):
        today = wall_clock_ms() // DAY_MS  # read after the start: a midnight between is covered
        made = _partitions(engine)
    assert _relkind(engine) == "p"
    assert {day_name(today + n) for n in range(3)} <= set(made)
