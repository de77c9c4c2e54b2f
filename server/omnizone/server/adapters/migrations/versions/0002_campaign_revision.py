"""Campaigns get a revision: 1, 2, … one per save (the API's ETag and If-Match).

Existing campaigns start at revision 1 (the column's server default).

A database from before migrations is completed by ``create_all`` with
today's models and stamped ``0001`` (``schema.upgrade``), so its campaigns
table may have the column already: it is added only when it is missing.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 09:35:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _has_revision() -> bool:
    columns = sa.inspect(op.get_bind()).get_columns("campaigns")
    return any(column["name"] == "revision" for column in columns)


def upgrade() -> None:
    if _has_revision():
        return
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("revision", sa.Integer(), server_default=sa.text("1"), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.drop_column("revision")
