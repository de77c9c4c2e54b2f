"""Alert rules and the alert log (issue 18 point 7); the event stream's
outbox and webhook subscriptions (issue 18 point 8).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 18:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    have = set(sa.inspect(op.get_bind()).get_table_names())
    if "alert_rules" not in have:
        op.create_table(
            "alert_rules",
            sa.Column("store", sa.String(length=63), nullable=False),
            sa.Column("rules", sa.JSON(), nullable=False),
            sa.Column("updated_ms", sa.BigInteger(), nullable=False),
            sa.PrimaryKeyConstraint("store"),
        )
    if "alert_log" not in have:
        op.create_table(
            "alert_log",
            sa.Column("id", _ID, autoincrement=True, nullable=False),
            sa.Column("store", sa.String(length=63), nullable=False),
            sa.Column("key", sa.String(length=255), nullable=False),
            sa.Column("kind", sa.String(length=31), nullable=False),
            sa.Column("subject", sa.String(length=255), nullable=False),
            sa.Column("severity", sa.String(length=15), nullable=False),
            sa.Column("state", sa.String(length=15), nullable=False),
            sa.Column("value", sa.Float(), nullable=False),
            sa.Column("threshold", sa.Float(), nullable=False),
            sa.Column("message", sa.String(length=511), nullable=False),
            sa.Column("at_ms", sa.BigInteger(), nullable=False),
            sa.Column("delivered_ms", sa.BigInteger(), nullable=True),
            sa.Column("attempts", sa.BigInteger(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
            sqlite_autoincrement=True,
        )
        op.create_index("ix_alert_log_store_at", "alert_log", ["store", "at_ms"])
    if "event_outbox" not in have:
        op.create_table(
            "event_outbox",
            sa.Column("seq", _ID, autoincrement=True, nullable=False),
            sa.Column("store", sa.String(length=63), nullable=False),
            sa.Column("event", sa.String(length=31), nullable=False),
            sa.Column("at_ms", sa.BigInteger(), nullable=False),
            sa.Column("stored_ms", sa.BigInteger(), nullable=False),
            sa.Column("device", sa.String(length=128), nullable=True),
            sa.Column("properties", sa.JSON(), nullable=False),
            sa.Column("message_id", sa.String(length=40), nullable=False),
            sa.PrimaryKeyConstraint("seq"),
            sa.UniqueConstraint("message_id"),
            sqlite_autoincrement=True,
        )
        op.create_index("ix_event_outbox_store_seq", "event_outbox", ["store", "seq"])
        op.create_index("ix_event_outbox_stored", "event_outbox", ["stored_ms"])
        op.create_index("ix_event_outbox_device", "event_outbox", ["device"])
    if "event_subscriptions" not in have:
        op.create_table(
            "event_subscriptions",
            sa.Column("id", sa.String(length=36), nullable=False),
            sa.Column("store", sa.String(length=63), nullable=False),
            sa.Column("url", sa.String(length=2048), nullable=False),
            sa.Column("events", sa.JSON(), nullable=False),
            sa.Column("cursor", sa.BigInteger(), nullable=False),
            sa.Column("created_ms", sa.BigInteger(), nullable=False),
            sa.Column("delivered", sa.BigInteger(), nullable=False),
            sa.Column("failures", sa.BigInteger(), nullable=False),
            sa.Column("last_error", sa.String(length=255), nullable=True),
            sa.PrimaryKeyConstraint("id"),
        )


def downgrade() -> None:
    op.drop_table("event_subscriptions")
    op.drop_index("ix_event_outbox_device", table_name="event_outbox")
    op.drop_index("ix_event_outbox_stored", table_name="event_outbox")
    op.drop_index("ix_event_outbox_store_seq", table_name="event_outbox")
    op.drop_table("event_outbox")
    op.drop_index("ix_alert_log_store_at", table_name="alert_log")
    op.drop_table("alert_log")
    op.drop_table("alert_rules")
