"""Outbox epochs: a message is identified by (store, gateway, epoch, seq).

A gateway whose outbox file is new (a replaced SD card) numbers from 0 again;
without its epoch those messages were taken for duplicates and dropped. The
unique key of ``received_messages`` gains ``epoch``, and ``gateway_status``
remembers the epoch of the latest status (its pending will is in that epoch).
Existing rows are in epoch 0, the epoch of gateways that predate epochs.

SQLite cannot drop a table's UNIQUE constraint, so there the table is rebuilt;
the sightings, taps, reads and try-ons that point at it keep their rows
(``schema.upgrade`` turns foreign keys off for the migration and checks them
after it).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = "id, store, gateway, epoch, seq, kind, sent_ms, received_ms, items, duplicates"


def _columns(table: str) -> set[str]:
    return {c["name"] for c in sa.inspect(op.get_bind()).get_columns(table)}


def _received_messages(name: str) -> None:
    op.create_table(
        name,
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("store", sa.String(length=63), nullable=False),
        sa.Column("gateway", sa.String(length=63), nullable=False),
        sa.Column("epoch", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("sent_ms", sa.BigInteger(), nullable=False),
        sa.Column("received_ms", sa.BigInteger(), nullable=False),
        sa.Column("items", sa.Integer(), nullable=False),
        sa.Column("duplicates", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("store", "gateway", "epoch", "seq", name="uq_received_epoch_seq"),
    )


def upgrade() -> None:
    # A database stamped 0001 was completed by today's models, which have both.
    if "status_epoch" not in _columns("gateway_status"):
        with op.batch_alter_table("gateway_status") as batch_op:
            batch_op.add_column(
                sa.Column(
                    "status_epoch", sa.BigInteger(), server_default=sa.text("0"), nullable=False
                )
            )
    if "epoch" in _columns("received_messages"):
        return
    if op.get_bind().dialect.name != "sqlite":
        op.add_column(
            "received_messages",
            sa.Column("epoch", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        )
        op.drop_constraint("uq_received_seq", "received_messages", type_="unique")
        op.create_unique_constraint(
            "uq_received_epoch_seq", "received_messages", ["store", "gateway", "epoch", "seq"]
        )
        return
    # SQLite: build the new table beside the old one, copy, swap (SQLite's own
    # procedure for schema changes ALTER TABLE cannot make). schema.upgrade runs
    # migrations with foreign keys off, so dropping the old table cascades to
    # nothing, and the children keep naming received_messages.
    if op.get_bind().exec_driver_sql("PRAGMA foreign_keys").scalar():
        raise RuntimeError("0006 rebuilds received_messages: run it through schema.upgrade")
    _received_messages("_received_messages_0006")
    op.execute(
        f"INSERT INTO _received_messages_0006 ({_COLUMNS}) "
        f"SELECT {_COLUMNS.replace('epoch', '0')} FROM received_messages"
    )
    op.execute("PRAGMA legacy_alter_table=ON")  # children keep naming received_messages
    op.execute("ALTER TABLE received_messages RENAME TO _received_messages_0004")
    op.execute("ALTER TABLE _received_messages_0006 RENAME TO received_messages")
    op.execute("PRAGMA legacy_alter_table=OFF")
    op.execute("DROP TABLE _received_messages_0004")


def downgrade() -> None:
    with op.batch_alter_table("received_messages") as batch_op:
        batch_op.drop_constraint("uq_received_epoch_seq", type_="unique")
        batch_op.create_unique_constraint("uq_received_seq", ["store", "gateway", "seq"])
        batch_op.drop_column("epoch")
    with op.batch_alter_table("gateway_status") as batch_op:
        batch_op.drop_column("status_epoch")
