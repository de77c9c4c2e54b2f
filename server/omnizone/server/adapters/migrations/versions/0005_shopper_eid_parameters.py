"""Each shopper's phone gets its own Eddystone-EID rotation exponent and beacon clock.

Before this revision every phone rotated on one global boundary and its id
was an HMAC of the epoch time; now the id is the Eddystone-EID of a
per-phone beacon clock (docs/identity.md). Shoppers registered before are
given a random exponent (8 to 10, the default policy) and a random clock
offset here, so they too rotate on boundaries of their own; their apps read
the new parameters from ``GET /api/v1/me/export``.

A database from before migrations is completed by ``create_all`` with
today's models and stamped ``0001`` (``schema.upgrade``), so the columns may
exist already, filled with their server defaults: a row whose offset is 0
(the default, a 1 in 2**32 draw otherwise) is given random values too.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 09:00:00
"""

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_MIN_EXPONENT, _MAX_EXPONENT = 8, 10  # EidPolicy's defaults when this was written


def _columns() -> set[str]:
    return {column["name"] for column in sa.inspect(op.get_bind()).get_columns("shoppers")}


def upgrade() -> None:
    present = _columns()
    with op.batch_alter_table("shoppers", schema=None) as batch_op:
        if "eid_exponent" not in present:
            batch_op.add_column(
                sa.Column(
                    "eid_exponent", sa.SmallInteger(), server_default=sa.text("10"), nullable=False
                )
            )
        if "eid_clock_offset_s" not in present:
            batch_op.add_column(
                sa.Column(
                    "eid_clock_offset_s",
                    sa.BigInteger(),
                    server_default=sa.text("0"),
                    nullable=False,
                )
            )
    shoppers = sa.table(
        "shoppers",
        sa.column("id", sa.String),
        sa.column("eid_exponent", sa.SmallInteger),
        sa.column("eid_clock_offset_s", sa.BigInteger),
    )
    bind = op.get_bind()
    ids = bind.execute(sa.select(shoppers.c.id).where(shoppers.c.eid_clock_offset_s == 0))
    for (shopper_id,) in ids.all():
        bind.execute(
            sa.update(shoppers)
            .where(shoppers.c.id == shopper_id)
            .values(
                eid_exponent=_MIN_EXPONENT + secrets.randbelow(_MAX_EXPONENT - _MIN_EXPONENT + 1),
                eid_clock_offset_s=1 + secrets.randbelow(2**32 - 1),
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("shoppers", schema=None) as batch_op:
        batch_op.drop_column("eid_clock_offset_s")
        batch_op.drop_column("eid_exponent")
