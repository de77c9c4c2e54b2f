"""Drop the sightings' (store, device, time) index: it cost most of ingest and served no query.

Every gateway message adds hundreds of sightings, each for another device,
so the index took a write on hundreds of different pages per message: about
83 ms of every 1 s window at 500 shoppers on SQLite, against 10 ms for the
rows themselves (docs/benchmarks.md). No query used it: a shopper's export
and erasure select by device alone, which this index (store first) does not
serve, so both already scanned the table.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 10:10:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A database stamped 0001 was completed by today's models, which lack it.
    op.execute("DROP INDEX IF EXISTS ix_ble_store_device_time")


def downgrade() -> None:
    op.create_index(
        "ix_ble_store_device_time", "ble_sightings", ["store", "device", "window_start_ms"]
    )
