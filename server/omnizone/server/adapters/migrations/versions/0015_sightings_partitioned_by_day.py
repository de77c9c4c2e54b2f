"""Raw sightings partitioned by UTC day on PostgreSQL (issue 17: "tables
partitioned by time"), so the retention limit drops a whole expired day in
O(1) instead of deleting millions of rows one by one.

``ble_sightings`` becomes ``PARTITION BY RANGE (window_start_ms)``: one
partition per UTC day that holds rows (``ble_sightings_dYYYYMMDD``) and a
DEFAULT partition, so no insert ever fails for want of a partition. The
primary key takes the partition key, (id, window_start_ms); the id sequence,
the foreign key to received_messages (ON DELETE CASCADE) and the time index
stay. Every row is moved. The partitions of the days to come are made by the
adapter (``adapters/sighting_partitions.py``) at start and with retention.

SQLite (the one-store default) is left as it is.

Revision ID: 0015
Revises: 0014 (0014_daily_rollups.py)
Create Date: 2026-12-04 22:10:00
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"  # the revision of 0014_daily_rollups.py
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DAY_MS = 86_400_000


def _partitioned(bind: sa.Connection) -> bool:
    kind = bind.exec_driver_sql(
        "SELECT relkind FROM pg_class WHERE oid = to_regclass('ble_sightings')"
    ).scalar()
    return bool(kind == "p")


def _schema_and_sequence(bind: sa.Connection) -> tuple[str, str]:
    row = bind.exec_driver_sql(
        "SELECT n.nspname, pg_get_serial_sequence(c.oid::regclass::text, 'id')"
        " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.oid = to_regclass('ble_sightings')"
    ).one()
    return str(row[0]), str(row[1])


def _keys(table: str, primary_key: str) -> None:
    """The constraints and the index, added after the rows (faster than before)."""
    op.execute(f"ALTER TABLE {table} ADD CONSTRAINT ble_sightings_pkey PRIMARY KEY ({primary_key})")
    op.execute(
        f"ALTER TABLE {table} ADD CONSTRAINT ble_sightings_message_id_fkey FOREIGN KEY"
        " (message_id) REFERENCES received_messages (id) ON DELETE CASCADE"
    )
    op.execute(f"CREATE INDEX ix_ble_window_start ON {table} (window_start_ms)")


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql" or _partitioned(bind):
        return
    schema, sequence = _schema_and_sequence(bind)
    new = f'"{schema}".ble_sightings_by_day'
    op.execute(
        f"CREATE TABLE {new} (LIKE ble_sightings INCLUDING DEFAULTS)"
        " PARTITION BY RANGE (window_start_ms)"
    )
    days = bind.exec_driver_sql(
        f"SELECT DISTINCT window_start_ms / {DAY_MS} FROM ble_sightings WHERE window_start_ms >= 0"
    ).scalars()
    for day in sorted(int(d) for d in days):
        name = "ble_sightings_d" + datetime.fromtimestamp(day * 86_400, UTC).strftime("%Y%m%d")
        op.execute(
            f'CREATE TABLE "{schema}".{name} PARTITION OF {new}'
            f" FOR VALUES FROM ({day * DAY_MS}) TO ({(day + 1) * DAY_MS})"
        )
    op.execute(f'CREATE TABLE "{schema}".ble_sightings_default PARTITION OF {new} DEFAULT')
    op.execute(f"INSERT INTO {new} SELECT * FROM ble_sightings")
    # The sequence goes with the new table: dropping the old one must not drop it.
    op.execute(f"ALTER SEQUENCE {sequence} OWNED BY {new}.id")
    op.execute("DROP TABLE ble_sightings")
    op.execute(f"ALTER TABLE {new} RENAME TO ble_sightings")
    _keys(f'"{schema}".ble_sightings', "id, window_start_ms")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql" or not _partitioned(bind):
        return
    schema, sequence = _schema_and_sequence(bind)
    plain = f'"{schema}".ble_sightings_plain'
    op.execute(f"CREATE TABLE {plain} (LIKE ble_sightings INCLUDING DEFAULTS)")
    op.execute(f"INSERT INTO {plain} SELECT * FROM ble_sightings")
    op.execute(f"ALTER SEQUENCE {sequence} OWNED BY {plain}.id")
    op.execute("DROP TABLE ble_sightings")  # and every partition with it
    op.execute(f"ALTER TABLE {plain} RENAME TO ble_sightings")
    _keys(f'"{schema}".ble_sightings', "id")
