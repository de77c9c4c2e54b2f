"""Dead letters keep the size their payload arrived with; the payload itself is capped.

``original_bytes`` is nullable: rows from before are read with the length of
their stored payload. A database stamped ``0001`` was completed by today's
models, so the column is added only when it is missing.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _has_column() -> bool:
    columns = sa.inspect(op.get_bind()).get_columns("dead_letters")
    return any(column["name"] == "original_bytes" for column in columns)


def upgrade() -> None:
    if _has_column():
        return
    with op.batch_alter_table("dead_letters", schema=None) as batch_op:
        batch_op.add_column(sa.Column("original_bytes", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("dead_letters", schema=None) as batch_op:
        batch_op.drop_column("original_bytes")
