"""The day partitions of ``ble_sightings`` on PostgreSQL (migration 0015;
docs/scaling.md, "Partitioned sightings").

The raw sightings are the largest table by far, and all that is ever done
with their age is the retention limit. Partitioned by UTC day, an expired day
is dropped whole (O(1), no dead tuples for VACUUM) instead of deleted row by
row; only the boundary day, partly expired, and the DEFAULT partition (rows
of a day that had no partition yet) still go through ``DELETE``.

Partitions are made ahead (today and ``DAYS_AHEAD`` more) at server start and
with every retention round. A table made by ``create_all`` (tests, a database
from before migration 0015) or on SQLite is plain: then nothing here runs and
retention deletes, as before. Names are made in the parent's schema and read
through ``to_regclass`` (the connection's ``search_path``)."""

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

log = logging.getLogger(__name__)

DAY_MS = 86_400_000
#: Days after today whose partitions exist before their first sighting.
DAYS_AHEAD = 3
TABLE = "ble_sightings"
DEFAULT_PARTITION = f"{TABLE}_default"
_DAY_NAME = re.compile(rf"^{TABLE}_d\d{{8}}$")
_BOUND = re.compile(r"FROM \('?(-?\d+)'?\) TO \('?(-?\d+)'?\)")
#: How long a retention round waits for the locks of a drop before it gives
#: up until the next round (a long export must not stall ingest behind it).
LOCK_TIMEOUT = "5s"


@dataclass(frozen=True)
class DayPartition:
    name: str
    from_ms: int
    to_ms: int  # exclusive


def is_partition_name(name: str) -> bool:
    """A table this module makes (kept out of the models' schema comparison)."""
    return name == DEFAULT_PARTITION or bool(_DAY_NAME.match(name))


def day_name(day: int) -> str:
    """``ble_sightings_dYYYYMMDD`` for the UTC day number ``day`` (ms // DAY_MS)."""
    return f"{TABLE}_d" + datetime.fromtimestamp(day * 86_400, UTC).strftime("%Y%m%d")


def days_to_make(now_ms: int, existing: list[DayPartition], ahead: int = DAYS_AHEAD) -> list[int]:
    """Today and the ``ahead`` days after it that have no partition yet."""
    have = {p.from_ms // DAY_MS for p in existing}
    today = now_ms // DAY_MS
    return [day for day in range(today, today + ahead + 1) if day not in have]


def expired(partitions: list[DayPartition], cutoff_ms: int) -> list[DayPartition]:
    """The partitions whose every row is older than ``cutoff_ms``: dropped whole."""
    return [p for p in partitions if p.to_ms <= cutoff_ms]


def is_partitioned(connection: Connection) -> bool:
    if connection.dialect.name != "postgresql":
        return False
    kind = connection.exec_driver_sql(
        f"SELECT relkind FROM pg_class WHERE oid = to_regclass('{TABLE}')"
    ).scalar()
    return bool(kind == "p")


def _schema(connection: Connection) -> str:
    return str(
        connection.exec_driver_sql(
            "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            f" WHERE c.oid = to_regclass('{TABLE}')"
        ).scalar_one()
    )


def day_partitions(connection: Connection) -> list[DayPartition]:
    """The range partitions of the table (not DEFAULT), oldest first."""
    rows = connection.exec_driver_sql(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i"
        f" JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass('{TABLE}')"
    ).all()
    found = []
    for name, bound in rows:
        match = _BOUND.search(str(bound))
        if match:
            found.append(DayPartition(str(name), int(match[1]), int(match[2])))
    return sorted(found, key=lambda p: p.from_ms)


def make_day(connection: Connection, day: int) -> None:
    """The partition of UTC day ``day``, in the caller's transaction.

    Rows of that day already in DEFAULT (it had no partition when they came)
    move into it: the new table is filled from DEFAULT, then attached, which
    PostgreSQL refuses should DEFAULT still hold a row of the day (nothing
    lost: the transaction rolls back and the next round tries again)."""
    schema = _schema(connection)
    name = f'"{schema}".{day_name(day)}'
    low, high = day * DAY_MS, (day + 1) * DAY_MS
    connection.exec_driver_sql(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
    connection.exec_driver_sql(f"CREATE TABLE {name} (LIKE {TABLE} INCLUDING DEFAULTS)")
    connection.exec_driver_sql(
        f'WITH moved AS (DELETE FROM "{schema}".{DEFAULT_PARTITION}'
        f" WHERE window_start_ms >= {low} AND window_start_ms < {high} RETURNING *)"
        f" INSERT INTO {name} SELECT * FROM moved"
    )
    connection.exec_driver_sql(
        f"ALTER TABLE {TABLE} ATTACH PARTITION {name} FOR VALUES FROM ({low}) TO ({high})"
    )


def drop_day(connection: Connection, partition: DayPartition) -> int:
    """Drop one expired day in the caller's transaction; how many rows it held."""
    schema = _schema(connection)
    name = f'"{schema}".{partition.name}'
    connection.exec_driver_sql(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
    # The day alone is locked while it is counted (a late row cannot slip in
    # uncounted); the parent only for the drop itself, so ingest waits no longer.
    connection.exec_driver_sql(f"LOCK TABLE {name} IN ACCESS EXCLUSIVE MODE")
    rows = int(connection.exec_driver_sql(f"SELECT count(*) FROM {name}").scalar_one())
    connection.exec_driver_sql(f"DROP TABLE {name}")
    return rows


def failed(what: str, error: DBAPIError) -> None:
    """A partition step that lost a race (another server made the same day, a
    lock not had in time): logged, and the next round tries again."""
    log.warning("sighting partitions: %s failed: %s", what, error.orig)
