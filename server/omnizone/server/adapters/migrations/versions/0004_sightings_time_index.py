"""Index raw sightings by time, for the retention limit (``sighting_retention_days``).

Every message's sightings share one window start, and windows only move
forward, so this index grows at its end: cheap on ingest, unlike the device
index that 0003 dropped.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 10:25:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A database stamped 0001 was completed by today's models, which have it.
    op.execute("CREATE INDEX IF NOT EXISTS ix_ble_window_start ON ble_sightings (window_start_ms)")


def downgrade() -> None:
    op.drop_index("ix_ble_window_start", table_name="ble_sightings")
