"""Follow-ups after the visit (issue 18, point 10): scheduled durably when a visit ends.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 18:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if sa.inspect(op.get_bind()).has_table("follow_ups"):
        return
    op.create_table(
        "follow_ups",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("store", sa.String(length=63), nullable=False),
        sa.Column("campaign_id", sa.String(length=63), nullable=False),
        sa.Column("shopper_id", sa.String(length=64), nullable=False),
        sa.Column("visit_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("via", sa.String(length=16), nullable=False),
        sa.Column("products", sa.JSON(), nullable=False),
        sa.Column("zone", sa.String(length=63), nullable=True),
        sa.Column("visit_started_ms", sa.BigInteger(), nullable=False),
        sa.Column("trigger_ms", sa.BigInteger(), nullable=False),
        sa.Column("due_ms", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("decided_ms", sa.BigInteger(), nullable=True),
        sa.Column("code", sa.String(length=80), nullable=True),
        sa.Column("draft", sa.JSON(), nullable=True),
        sa.Column("offer_id", sa.String(length=36), nullable=True),
        sa.Column("attempts", sa.BigInteger(), nullable=False),
        sa.Column("claimed_ms", sa.BigInteger(), nullable=True),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("done_ms", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_follow_ups_due", "follow_ups", ["status", "due_ms"])
    op.create_index("ix_follow_ups_campaign", "follow_ups", ["campaign_id", "status"])
    op.create_index("ix_follow_ups_shopper", "follow_ups", ["shopper_id"])


def downgrade() -> None:
    op.drop_table("follow_ups")
