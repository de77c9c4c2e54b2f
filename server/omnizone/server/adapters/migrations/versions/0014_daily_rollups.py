"""The daily roll-up of the stays (issue 18: every view within a second on a
month): one row per closed UTC hour of a store, its stays as packed columns
(``adapters/stay_rollup_db.py``); and an index on offers.campaign_id for the
campaign report's counts.

Revision ID: 0014
Revises: 0013 (0013_floor_cells.py)
Create Date: 2026-12-03 18:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"  # the revision of 0013_floor_cells.py
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    if "ix_offers_campaign" not in {i["name"] for i in inspector.get_indexes("offers")}:
        # The campaign report's counts of one campaign's receipts and redemptions.
        op.create_index("ix_offers_campaign", "offers", ["campaign_id"], unique=False)
    if inspector.has_table("stay_rollups"):
        return
    op.create_table(
        "stay_rollups",
        sa.Column("store", sa.String(length=63), nullable=False),
        sa.Column("hour_ms", sa.BigInteger(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("devices", sa.Text(), nullable=False),
        sa.Column("zones", sa.Text(), nullable=False),
        sa.Column("columns", sa.LargeBinary(), nullable=False),
        sa.Column("built_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("store", "hour_ms"),
    )


def downgrade() -> None:
    op.drop_table("stay_rollups")
    op.drop_index("ix_offers_campaign", table_name="offers")
