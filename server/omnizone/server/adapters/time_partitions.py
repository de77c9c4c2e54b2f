"""Range partitions by time on PostgreSQL: what the day partitions of the raw
sightings (migration 0015, ``sighting_partitions``) and the month partitions
of visits and offer decisions (migration 0016) share; docs/scaling.md,
"Tables partitioned by time".

Every partitioned table has a DEFAULT partition, so an insert never fails for
want of a partition; a partition made later takes the rows of its range out
of DEFAULT. Names are made in the parent's schema and read through
``to_regclass`` (the connection's ``search_path``)."""

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

log = logging.getLogger(__name__)

_BOUND = re.compile(r"FROM \('?(-?\d+)'?\) TO \('?(-?\d+)'?\)")
#: How long a partition step waits for its locks before it gives up until the
#: next round (a long export must not stall ingest behind it).
LOCK_TIMEOUT = "5s"

MONTH_TABLES: dict[str, str] = {"visits": "entered_ms", "offer_decisions": "at_ms"}
"""Tables partitioned by UTC month (migration 0016): table -> partition key."""
MONTHS_AHEAD = 1
"""Months after this one whose partitions exist before their first row."""
_MONTH_NAME = re.compile(rf"^(?:{'|'.join(MONTH_TABLES)})_m\d{{6}}$")


@dataclass(frozen=True)
class RangePartition:
    name: str
    from_ms: int
    to_ms: int  # exclusive


def default_name(table: str) -> str:
    return f"{table}_default"


def is_partitioned(connection: Connection, table: str) -> bool:
    if connection.dialect.name != "postgresql":
        return False
    kind = connection.exec_driver_sql(
        f"SELECT relkind FROM pg_class WHERE oid = to_regclass('{table}')"
    ).scalar()
    return bool(kind == "p")


def schema_of(connection: Connection, table: str) -> str:
    return str(
        connection.exec_driver_sql(
            "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            f" WHERE c.oid = to_regclass('{table}')"
        ).scalar_one()
    )


def range_partitions(connection: Connection, table: str) -> list[RangePartition]:
    """The range partitions of ``table`` (not DEFAULT), oldest first."""
    rows = connection.exec_driver_sql(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i"
        f" JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass('{table}')"
    ).all()
    found = []
    for name, bound in rows:
        match = _BOUND.search(str(bound))
        if match:
            found.append(RangePartition(str(name), int(match[1]), int(match[2])))
    return sorted(found, key=lambda p: p.from_ms)


def make_partition(
    connection: Connection, table: str, column: str, name: str, low: int, high: int
) -> None:
    """The partition ``name`` of ``[low, high)``, in the caller's transaction.

    Rows of that range already in DEFAULT (it had no partition when they came)
    move into it: the new table is filled from DEFAULT, then attached, which
    PostgreSQL refuses should DEFAULT still hold a row of the range (nothing
    lost: the transaction rolls back and the next round tries again)."""
    schema = schema_of(connection, table)
    qualified = f'"{schema}".{name}'
    connection.exec_driver_sql(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
    connection.exec_driver_sql(f"CREATE TABLE {qualified} (LIKE {table} INCLUDING DEFAULTS)")
    connection.exec_driver_sql(
        f'WITH moved AS (DELETE FROM "{schema}".{default_name(table)}'
        f" WHERE {column} >= {low} AND {column} < {high} RETURNING *)"
        f" INSERT INTO {qualified} SELECT * FROM moved"
    )
    connection.exec_driver_sql(
        f"ALTER TABLE {table} ATTACH PARTITION {qualified} FOR VALUES FROM ({low}) TO ({high})"
    )


def failed(what: str, error: DBAPIError) -> None:
    """A partition step that lost a race (another server made the same range,
    a lock not had in time): logged, and the next round tries again."""
    log.warning("time partitions: %s failed: %s", what, error.orig)


# -- months (visits, offer decisions) ---------------------------------------------------


def month_of(ms: int) -> int:
    """The UTC month holding ``ms``, as year × 12 + month − 1."""
    at = datetime.fromtimestamp(ms / 1000, UTC)
    return at.year * 12 + at.month - 1


def month_bounds(month: int) -> tuple[int, int]:
    """``[first ms, first ms of the next month)`` of ``month`` (``month_of``)."""

    def start(m: int) -> int:
        return int(datetime(m // 12, m % 12 + 1, 1, tzinfo=UTC).timestamp() * 1000)

    return start(month), start(month + 1)


def month_name(table: str, month: int) -> str:
    """``visits_m202601`` for January 2026."""
    return f"{table}_m{month // 12:04d}{month % 12 + 1:02d}"


def months_to_make(
    now_ms: int, existing: list[RangePartition], ahead: int = MONTHS_AHEAD
) -> list[int]:
    """This month and the ``ahead`` months after it that have no partition yet."""
    have = {month_of(p.from_ms) for p in existing}
    this = month_of(now_ms)
    return [m for m in range(this, this + ahead + 1) if m not in have]


def is_month_partition_name(name: str) -> bool:
    return bool(_MONTH_NAME.match(name)) or name in {default_name(t) for t in MONTH_TABLES}


def prepare_month_partitions(engine: Engine, now_ms: int, ahead: int = MONTHS_AHEAD) -> int:
    """PostgreSQL after migration 0016: make this month's and the next
    ``ahead`` months' partitions of every month-partitioned table, each in its
    own transaction; how many were made (0 on SQLite or plain tables)."""
    made = 0
    with engine.connect() as connection:
        for table, column in MONTH_TABLES.items():
            if not is_partitioned(connection, table):
                continue
            existing = range_partitions(connection, table)
            connection.rollback()
            for month in months_to_make(now_ms, existing, ahead):
                name = month_name(table, month)
                try:
                    with connection.begin():
                        make_partition(connection, table, column, name, *month_bounds(month))
                    made += 1
                except DBAPIError as error:  # another server made it first, or a lock
                    failed(f"making {name}", error)
        connection.rollback()
    return made
