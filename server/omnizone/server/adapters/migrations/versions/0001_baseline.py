"""The baseline: the schema as `create_all` made it before migrations existed.

Revision ID: 0001
Revises:
Create Date: 2026-11-25 09:04:51.174918
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "campaigns",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("store", sa.String(length=64), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_campaigns_store"), ["store"], unique=False)

    op.create_table(
        "dead_letters",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("received_ms", sa.BigInteger(), nullable=False),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "device_presence",
        sa.Column("store", sa.String(length=63), nullable=False),
        sa.Column("device", sa.String(length=128), nullable=False),
        sa.Column("zone", sa.String(length=63), nullable=False),
        sa.Column("entered_ms", sa.BigInteger(), nullable=False),
        sa.Column("last_in_zone_ms", sa.BigInteger(), nullable=False),
        sa.Column("last_heard_ms", sa.BigInteger(), nullable=False),
        sa.Column("away_zone", sa.String(length=63), nullable=True),
        sa.Column("away_since_ms", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("store", "device"),
    )
    with op.batch_alter_table("device_presence", schema=None) as batch_op:
        batch_op.create_index("ix_presence_store_zone", ["store", "zone"], unique=False)

    op.create_table(
        "floor_images",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("store", sa.String(length=63), nullable=False),
        sa.Column("content_type", sa.String(length=40), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("uploaded_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("floor_images", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_floor_images_store"), ["store"], unique=False)

    op.create_table(
        "gateway_configs",
        sa.Column("store", sa.String(length=63), nullable=False),
        sa.Column("gateway", sa.String(length=63), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("store", "gateway"),
    )
    op.create_table(
        "gateway_status",
        sa.Column("store", sa.String(length=63), nullable=False),
        sa.Column("gateway", sa.String(length=63), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=True),
        sa.Column("status_seq", sa.BigInteger(), nullable=True),
        sa.Column("session", sa.BigInteger(), nullable=True),
        sa.Column("version", sa.String(length=64), nullable=True),
        sa.Column("status_ms", sa.BigInteger(), nullable=True),
        sa.Column("health_ms", sa.BigInteger(), nullable=True),
        sa.Column("health", sa.JSON(), nullable=True),
        sa.Column("received_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("store", "gateway"),
    )
    op.create_table(
        "offer_cursors",
        sa.Column("shopper_id", sa.Text(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("acked_seq", sa.BigInteger(), nullable=False),
        sa.Column("acked_ms", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("shopper_id"),
    )
    op.create_table(
        "offer_decisions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("store", sa.String(length=64), nullable=False),
        sa.Column("campaign_id", sa.String(length=64), nullable=False),
        sa.Column("shopper_id", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("trigger", sa.String(length=32), nullable=False),
        sa.Column("visit_id", sa.String(length=64), nullable=True),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("offer_decisions", schema=None) as batch_op:
        batch_op.create_index("ix_decisions_campaign", ["campaign_id", "outcome"], unique=False)
        batch_op.create_index("ix_decisions_shopper", ["shopper_id", "at_ms"], unique=False)
        batch_op.create_index(
            "ix_decisions_store_trigger_time", ["store", "trigger", "at_ms"], unique=False
        )

    op.create_table(
        "offers",
        sa.Column("offer_id", sa.String(length=36), nullable=False),
        sa.Column("shopper_id", sa.Text(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("store", sa.String(length=63), nullable=False),
        sa.Column("campaign_id", sa.String(length=63), nullable=False),
        sa.Column("code", sa.String(length=80), nullable=False),
        sa.Column("content", sa.JSON(), nullable=False),
        sa.Column("expires_ms", sa.BigInteger(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("trigger_published_ms", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("offer_id"),
        sa.UniqueConstraint("code"),
        sa.UniqueConstraint("shopper_id", "seq", name="uq_offer_shopper_seq"),
    )
    with op.batch_alter_table("offers", schema=None) as batch_op:
        batch_op.create_index("ix_offer_store_campaign", ["store", "campaign_id"], unique=False)

    op.create_table(
        "push_subscriptions",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("shopper_id", sa.Text(), nullable=False),
        sa.Column("endpoint", sa.String(length=2048), nullable=False),
        sa.Column("p256dh", sa.String(length=128), nullable=False),
        sa.Column("auth", sa.String(length=64), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("endpoint"),
    )
    with op.batch_alter_table("push_subscriptions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_push_subscriptions_shopper_id"), ["shopper_id"], unique=False
        )

    op.create_table(
        "push_tokens",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("shopper_id", sa.Text(), nullable=False),
        sa.Column("platform", sa.String(length=8), nullable=False),
        sa.Column("token", sa.String(length=4096), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("platform", "token", name="uq_push_token"),
    )
    with op.batch_alter_table("push_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_push_tokens_shopper_id"), ["shopper_id"], unique=False)

    op.create_table(
        "received_messages",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("store", sa.String(length=63), nullable=False),
        sa.Column("gateway", sa.String(length=63), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("sent_ms", sa.BigInteger(), nullable=False),
        sa.Column("received_ms", sa.BigInteger(), nullable=False),
        sa.Column("items", sa.Integer(), nullable=False),
        sa.Column("duplicates", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("store", "gateway", "seq", name="uq_received_seq"),
    )
    op.create_table(
        "shopper_store_visits",
        sa.Column("shopper_id", sa.String(length=64), nullable=False),
        sa.Column("store", sa.String(length=64), nullable=False),
        sa.Column("visits", sa.Integer(), nullable=False),
        sa.Column("last_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("shopper_id", "store"),
    )
    op.create_table(
        "shoppers",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("store", sa.String(length=63), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("eid_key", sa.LargeBinary(length=16), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("loyalty_id", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("shoppers", schema=None) as batch_op:
        batch_op.create_index("ix_shoppers_loyalty", ["loyalty_id"], unique=False)

    op.create_table(
        "store_layouts",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("store", sa.String(length=63), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("plan", sa.JSON(), nullable=False),
        sa.Column("image_id", sa.BigInteger(), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("saved_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("store", "version", name="uq_layout_version"),
    )
    op.create_table(
        "visits",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("store", sa.String(length=63), nullable=False),
        sa.Column("device", sa.String(length=128), nullable=False),
        sa.Column("zone", sa.String(length=63), nullable=False),
        sa.Column("entered_ms", sa.BigInteger(), nullable=False),
        sa.Column("left_ms", sa.BigInteger(), nullable=True),
        sa.Column("dwell_s", sa.Float(), nullable=True),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("visits", schema=None) as batch_op:
        batch_op.create_index(
            "ix_visits_analytics",
            ["store", "entered_ms", "zone", "status", "left_ms", "device"],
            unique=False,
        )
        batch_op.create_index(
            "ix_visits_device_status", ["store", "device", "status"], unique=False
        )
        batch_op.create_index("ix_visits_entered", ["store", "entered_ms"], unique=False)
        batch_op.create_index("ix_visits_zone_status", ["store", "zone", "status"], unique=False)

    op.create_table(
        "ble_sightings",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "message_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("store", sa.String(length=63), nullable=False),
        sa.Column("gateway", sa.String(length=63), nullable=False),
        sa.Column("device", sa.String(length=128), nullable=False),
        sa.Column("window_start_ms", sa.BigInteger(), nullable=False),
        sa.Column("window_ms", sa.Integer(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("rssi_mean", sa.Float(), nullable=False),
        sa.Column("rssi_max", sa.Float(), nullable=False),
        sa.Column("tx_power", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["message_id"], ["received_messages.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("ble_sightings", schema=None) as batch_op:
        batch_op.create_index(
            "ix_ble_store_device_time", ["store", "device", "window_start_ms"], unique=False
        )

    op.create_table(
        "nfc_taps",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "message_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("store", sa.String(length=63), nullable=False),
        sa.Column("gateway", sa.String(length=63), nullable=False),
        sa.Column("tap_point", sa.String(length=63), nullable=False),
        sa.Column("uid", sa.String(length=20), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.Column("ndef_uri", sa.Text(), nullable=True),
        sa.Column("tag_type", sa.String(length=40), nullable=True),
        sa.ForeignKeyConstraint(["message_id"], ["received_messages.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("nfc_taps", schema=None) as batch_op:
        batch_op.create_index("ix_nfc_taps_store_time", ["store", "at_ms"], unique=False)

    op.create_table(
        "offer_receipts",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("offer_id", sa.String(length=36), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["offer_id"], ["offers.offer_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("offer_id", "status", name="uq_receipt_status"),
    )
    with op.batch_alter_table("offer_receipts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_offer_receipts_offer_id"), ["offer_id"], unique=False)

    op.create_table(
        "offer_redemptions",
        sa.Column("offer_id", sa.String(length=36), nullable=False),
        sa.Column("code", sa.String(length=80), nullable=False),
        sa.Column("store", sa.String(length=63), nullable=False),
        sa.Column("redeemed_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["offer_id"], ["offers.offer_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("offer_id"),
        sa.UniqueConstraint("code"),
    )
    with op.batch_alter_table("offer_redemptions", schema=None) as batch_op:
        batch_op.create_index("ix_redemptions_store_time", ["store", "redeemed_ms"], unique=False)

    op.create_table(
        "profile_events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("shopper_id", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("gtin", sa.String(length=14), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("amount", sa.Float(), nullable=True),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["shopper_id"], ["shoppers.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("profile_events", schema=None) as batch_op:
        batch_op.create_index("ix_profile_events_shopper", ["shopper_id", "at_ms"], unique=False)
        batch_op.create_index("ix_profile_events_type_time", ["type", "at_ms"], unique=False)

    op.create_table(
        "rfid_reads",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "message_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("store", sa.String(length=63), nullable=False),
        sa.Column("gateway", sa.String(length=63), nullable=False),
        sa.Column("reader", sa.String(length=63), nullable=False),
        sa.Column("antenna", sa.Integer(), nullable=False),
        sa.Column("epc", sa.String(length=64), nullable=False),
        sa.Column("rssi", sa.Float(), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("gtin", sa.String(length=14), nullable=True),
        sa.Column("serial", sa.String(length=20), nullable=True),
        sa.ForeignKeyConstraint(["message_id"], ["received_messages.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "shopper_consents",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("shopper_id", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("granted", sa.Boolean(), nullable=False),
        sa.Column("changed_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["shopper_id"], ["shoppers.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("shopper_consents", schema=None) as batch_op:
        batch_op.create_index("ix_consents_shopper", ["shopper_id", "id"], unique=False)

    op.create_table(
        "try_ons",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "message_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("store", sa.String(length=63), nullable=False),
        sa.Column("gateway", sa.String(length=63), nullable=False),
        sa.Column("reader", sa.String(length=63), nullable=False),
        sa.Column("event", sa.String(length=16), nullable=False),
        sa.Column("epc", sa.String(length=64), nullable=False),
        sa.Column("gtin", sa.String(length=14), nullable=True),
        sa.Column("serial", sa.String(length=20), nullable=True),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["message_id"], ["received_messages.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("try_ons", schema=None) as batch_op:
        batch_op.create_index("ix_try_ons_store_time", ["store", "at_ms"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("try_ons", schema=None) as batch_op:
        batch_op.drop_index("ix_try_ons_store_time")

    op.drop_table("try_ons")
    with op.batch_alter_table("shopper_consents", schema=None) as batch_op:
        batch_op.drop_index("ix_consents_shopper")

    op.drop_table("shopper_consents")
    op.drop_table("rfid_reads")
    with op.batch_alter_table("profile_events", schema=None) as batch_op:
        batch_op.drop_index("ix_profile_events_type_time")
        batch_op.drop_index("ix_profile_events_shopper")

    op.drop_table("profile_events")
    with op.batch_alter_table("offer_redemptions", schema=None) as batch_op:
        batch_op.drop_index("ix_redemptions_store_time")

    op.drop_table("offer_redemptions")
    with op.batch_alter_table("offer_receipts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_offer_receipts_offer_id"))

    op.drop_table("offer_receipts")
    with op.batch_alter_table("nfc_taps", schema=None) as batch_op:
        batch_op.drop_index("ix_nfc_taps_store_time")

    op.drop_table("nfc_taps")
    with op.batch_alter_table("ble_sightings", schema=None) as batch_op:
        batch_op.drop_index("ix_ble_store_device_time")

    op.drop_table("ble_sightings")
    with op.batch_alter_table("visits", schema=None) as batch_op:
        batch_op.drop_index("ix_visits_zone_status")
        batch_op.drop_index("ix_visits_entered")
        batch_op.drop_index("ix_visits_device_status")
        batch_op.drop_index("ix_visits_analytics")

    op.drop_table("visits")
    op.drop_table("store_layouts")
    with op.batch_alter_table("shoppers", schema=None) as batch_op:
        batch_op.drop_index("ix_shoppers_loyalty")

    op.drop_table("shoppers")
    op.drop_table("shopper_store_visits")
    op.drop_table("received_messages")
    with op.batch_alter_table("push_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_push_tokens_shopper_id"))

    op.drop_table("push_tokens")
    with op.batch_alter_table("push_subscriptions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_push_subscriptions_shopper_id"))

    op.drop_table("push_subscriptions")
    with op.batch_alter_table("offers", schema=None) as batch_op:
        batch_op.drop_index("ix_offer_store_campaign")

    op.drop_table("offers")
    with op.batch_alter_table("offer_decisions", schema=None) as batch_op:
        batch_op.drop_index("ix_decisions_store_trigger_time")
        batch_op.drop_index("ix_decisions_shopper")
        batch_op.drop_index("ix_decisions_campaign")

    op.drop_table("offer_decisions")
    op.drop_table("offer_cursors")
    op.drop_table("gateway_status")
    op.drop_table("gateway_configs")
    with op.batch_alter_table("floor_images", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_floor_images_store"))

    op.drop_table("floor_images")
    with op.batch_alter_table("device_presence", schema=None) as batch_op:
        batch_op.drop_index("ix_presence_store_zone")

    op.drop_table("device_presence")
    op.drop_table("dead_letters")
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_campaigns_store"))

    op.drop_table("campaigns")
