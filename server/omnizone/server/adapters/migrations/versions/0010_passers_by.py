"""Anonymous passer-by counts per store and hour (issue 18, point 4, capture rate).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 18:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if sa.inspect(op.get_bind()).has_table("passers_by"):
        return
    op.create_table(
        "passers_by",
        sa.Column("store", sa.String(length=63), nullable=False),
        sa.Column("hour_ms", sa.BigInteger(), nullable=False),
        sa.Column("passers_by", sa.Integer(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("store", "hour_ms"),
    )


def downgrade() -> None:
    op.drop_table("passers_by")
