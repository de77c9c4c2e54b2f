"""Phones that listen (issue 15): what a shopper's phone heard of the store's
fixed beacons, and the batches applied (idempotent resend).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 15:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    tables = set(sa.inspect(op.get_bind()).get_table_names())
    if "phone_sightings" not in tables:
        op.create_table(
            "phone_sightings",
            sa.Column("id", _ID, autoincrement=True, nullable=False),
            sa.Column("store", sa.String(length=63), nullable=False),
            sa.Column("device", sa.String(length=128), nullable=False),
            sa.Column("beacon", sa.String(length=63), nullable=False),
            sa.Column("window_start_ms", sa.BigInteger(), nullable=False),
            sa.Column("window_ms", sa.Integer(), nullable=False),
            sa.Column("rssi_mean", sa.Float(), nullable=False),
            sa.Column("count", sa.Integer(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
        )
        with op.batch_alter_table("phone_sightings", schema=None) as batch_op:
            batch_op.create_index(batch_op.f("ix_phone_sightings_device"), ["device"], unique=False)
            batch_op.create_index(
                batch_op.f("ix_phone_sightings_window_start_ms"), ["window_start_ms"], unique=False
            )
    if "phone_batches" not in tables:
        op.create_table(
            "phone_batches",
            sa.Column("device", sa.String(length=128), nullable=False),
            sa.Column("batch", sa.String(length=64), nullable=False),
            sa.Column("received_ms", sa.BigInteger(), nullable=False),
            sa.Column("answer", sa.Text(), nullable=False),
            sa.PrimaryKeyConstraint("device", "batch"),
        )
        with op.batch_alter_table("phone_batches", schema=None) as batch_op:
            batch_op.create_index(
                batch_op.f("ix_phone_batches_received_ms"), ["received_ms"], unique=False
            )


def downgrade() -> None:
    op.drop_table("phone_batches")
    op.drop_table("phone_sightings")
