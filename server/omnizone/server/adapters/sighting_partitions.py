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

import re
from datetime import UTC, datetime

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from omnizone.server.adapters import time_partitions
from omnizone.server.adapters.time_partitions import LOCK_TIMEOUT, RangePartition

DAY_MS = 86_400_000
#: Days after today whose partitions exist before their first sighting.
DAYS_AHEAD = 3
TABLE = "ble_sightings"
DEFAULT_PARTITION = time_partitions.default_name(TABLE)
_DAY_NAME = re.compile(rf"^{TABLE}_d\d{{8}}$")

DayPartition = RangePartition
"""One day's partition (``time_partitions.RangePartition``)."""


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
    return time_partitions.is_partitioned(connection, TABLE)


def _schema(connection: Connection) -> str:
    return time_partitions.schema_of(connection, TABLE)


def day_partitions(connection: Connection) -> list[DayPartition]:
    """The range partitions of the table (not DEFAULT), oldest first."""
    return time_partitions.range_partitions(connection, TABLE)


def make_day(connection: Connection, day: int) -> None:
    """The partition of UTC day ``day``, in the caller's transaction; rows of
    the day already in DEFAULT move into it (``time_partitions.make_partition``)."""
    low, high = day * DAY_MS, (day + 1) * DAY_MS
    time_partitions.make_partition(connection, TABLE, "window_start_ms", day_name(day), low, high)


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
    """A partition step that lost a race: logged, the next round tries again."""
    time_partitions.failed(f"sightings: {what}", error)
