"""Visits and offer decisions partitioned by UTC month on PostgreSQL (issue 17:
"tables partitioned by time"): a chain's two largest tables after the raw
sightings, read by time range (analytics over a period, a shopper's decisions
in order), so a period's query reads its months only, and a month can later
be detached and archived whole.

``visits`` becomes ``PARTITION BY RANGE (entered_ms)`` and ``offer_decisions``
``PARTITION BY RANGE (at_ms)``: one partition per UTC month that holds rows
(``visits_mYYYYMM``) and a DEFAULT partition, so no insert ever fails for want
of a partition. The primary key takes the partition key ((id, entered_ms),
(id, at_ms)); the id sequences and the indexes stay. Every row is moved. The
coming months' partitions are made by the adapter
(``adapters/time_partitions.py``) at start and with every retention round.

SQLite (the one-store default) is left as it is.

Revision ID: 0016
Revises: 0015 (0015_sightings_partitioned_by_day.py)
Create Date: 2026-12-08 01:00:00
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"  # the revision of 0015_sightings_partitioned_by_day.py
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: table -> its partition key.
TABLES: dict[str, str] = {"visits": "entered_ms", "offer_decisions": "at_ms"}


def _partitioned(bind: sa.Connection, table: str) -> bool:
    kind = bind.exec_driver_sql(
        f"SELECT relkind FROM pg_class WHERE oid = to_regclass('{table}')"
    ).scalar()
    return bool(kind == "p")


def _schema_and_sequence(bind: sa.Connection, table: str) -> tuple[str, str | None]:
    row = bind.exec_driver_sql(
        "SELECT n.nspname, pg_get_serial_sequence(c.oid::regclass::text, 'id')"
        " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        f" WHERE c.oid = to_regclass('{table}')"
    ).one()
    return str(row[0]), None if row[1] is None else str(row[1])


def _month_start(month: int) -> int:
    return int(datetime(month // 12, month % 12 + 1, 1, tzinfo=UTC).timestamp() * 1000)


def _indexes(bind: sa.Connection, table: str, schema: str) -> list[str]:
    """The table's indexes (not its primary key) as statements that make them
    again on whatever table then has its name: every index the migrations so
    far gave it, whichever they were."""
    rows = bind.exec_driver_sql(
        "SELECT indexdef FROM pg_indexes WHERE schemaname = %(schema)s AND tablename = %(table)s"
        " AND indexname <> %(pkey)s ORDER BY indexname",
        {"schema": schema, "table": table, "pkey": f"{table}_pkey"},
    ).scalars()
    # A partitioned table's index reads "ON ONLY"; made anew, it must reach the partitions.
    return [str(d).replace(" ON ONLY ", " ON ") for d in rows]


def _move(bind: sa.Connection, table: str, new: str, plain: bool) -> None:
    """Copy ``table`` into ``new``, hand the id sequence over, swap the names,
    then the primary key and the indexes (faster after the rows than before)."""
    schema, sequence = _schema_and_sequence(bind, table)
    indexes = _indexes(bind, table, schema)
    op.execute(f'INSERT INTO "{schema}".{new} SELECT * FROM {table}')
    if sequence is not None:  # the sequence goes with the new table
        op.execute(f'ALTER SEQUENCE {sequence} OWNED BY "{schema}".{new}.id')
    op.execute(f"DROP TABLE {table}")  # with every partition, when it had them
    op.execute(f'ALTER TABLE "{schema}".{new} RENAME TO {table}')
    key = "id" if plain else f"id, {TABLES[table]}"
    op.execute(f'ALTER TABLE "{schema}".{table} ADD CONSTRAINT {table}_pkey PRIMARY KEY ({key})')
    for statement in indexes:
        op.execute(statement)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    for table, column in TABLES.items():
        if _partitioned(bind, table):
            continue
        schema, _sequence = _schema_and_sequence(bind, table)
        new = f"{table}_by_month"
        op.execute(
            f'CREATE TABLE "{schema}".{new} (LIKE {table} INCLUDING DEFAULTS)'
            f" PARTITION BY RANGE ({column})"
        )
        utc = f"(to_timestamp({column} / 1000.0) AT TIME ZONE 'UTC')"
        months = bind.exec_driver_sql(
            f"SELECT DISTINCT (extract(year FROM {utc}) * 12 + extract(month FROM {utc}) - 1)::int"
            f" FROM {table} WHERE {column} >= 0"
        ).scalars()
        for month in sorted(int(m) for m in months):
            name = f"{table}_m{month // 12:04d}{month % 12 + 1:02d}"
            op.execute(
                f'CREATE TABLE "{schema}".{name} PARTITION OF "{schema}".{new}'
                f" FOR VALUES FROM ({_month_start(month)}) TO ({_month_start(month + 1)})"
            )
        op.execute(f'CREATE TABLE "{schema}".{table}_default PARTITION OF "{schema}".{new} DEFAULT')
        _move(bind, table, new, plain=False)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    for table in TABLES:
        if not _partitioned(bind, table):
            continue
        schema, _sequence = _schema_and_sequence(bind, table)
        new = f"{table}_plain"
        op.execute(f'CREATE TABLE "{schema}".{new} (LIKE {table} INCLUDING DEFAULTS)')
        _move(bind, table, new, plain=True)
