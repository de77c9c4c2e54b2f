"""The floor heatmap's cells (issue 18, point 6): per store, hour (and, summed,
UTC day) and 0.5 m floor cell, the shopper-seconds of presence. Aggregates
only, no device. WITHOUT ROWID on SQLite (the key holds the rows).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 18:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if sa.inspect(op.get_bind()).has_table("floor_cells"):
        return
    op.create_table(
        "floor_cells",
        sa.Column("store", sa.String(length=63), nullable=False),
        sa.Column("span_h", sa.SmallInteger(), nullable=False),
        sa.Column("start_ms", sa.BigInteger(), nullable=False),
        sa.Column("ix", sa.Integer(), nullable=False),
        sa.Column("iy", sa.Integer(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("store", "span_h", "start_ms", "ix", "iy"),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    op.drop_table("floor_cells")
