"""Registered staff devices (issue 18, point 5): left out of every shopper figure.

Revision ID: 0009
Revises: 0007
Create Date: 2026-12-03 15:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if sa.inspect(op.get_bind()).has_table("staff_devices"):
        return
    op.create_table(
        "staff_devices",
        sa.Column("store", sa.String(length=63), nullable=False),
        sa.Column("device", sa.String(length=128), nullable=False),
        sa.Column("label", sa.String(length=63), nullable=False),
        sa.Column("registered_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("store", "device"),
    )


def downgrade() -> None:
    op.drop_table("staff_devices")
