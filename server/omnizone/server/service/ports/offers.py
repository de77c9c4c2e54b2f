"""Delivered offers, acks, receipts, redemptions and push addresses: the port.

The records and ``OfferStore`` (what ``OfferDelivery`` needs) are defined in
``service.delivery``, next to the delivery they describe; they are gathered
here with what the campaign report and the push channels read of the same
rows, so each port of the service layer has one place to be found.
``OfferStorage`` is all of it: ``adapters.offer_db.OfferRepository`` and
``adapters.memory.MemoryOfferStore`` implement it.
"""

from typing import Protocol

from omnizone.server.service.delivery import (
    DeliveredOffer,
    InboxOffer,
    NativePlatform,
    NewOffer,
    OfferNotFound,
    OfferStore,
    PushSubscription,
    Receipt,
    ReceiptStatus,
    Redemption,
    RedemptionRefused,
)

__all__ = [
    "CampaignReceipts",
    "DeliveredOffer",
    "InboxOffer",
    "NativePlatform",
    "NewOffer",
    "OfferNotFound",
    "OfferStorage",
    "OfferStore",
    "PushAddresses",
    "PushSubscription",
    "Receipt",
    "ReceiptStatus",
    "Redemption",
    "RedemptionRefused",
]


class CampaignReceipts(Protocol):
    """What the campaign report counts of a campaign's offers."""

    def campaign_counts(
        self, campaign_id: str, *, from_ms: int | None = None, to_ms: int | None = None
    ) -> dict[str, int]:
        """Offers of the campaign by receipt status, and ``redeemed``; with a
        range, only receipts and redemptions made ``from_ms <= at < to_ms``."""
        ...


class PushAddresses(Protocol):
    """Where the background channels send a shopper's offers."""

    def push_subscriptions(self, shopper_id: str) -> list[PushSubscription]:
        """The shopper's Web Push subscriptions, oldest first."""
        ...

    def push_tokens(self, shopper_id: str, platform: NativePlatform) -> list[str]:
        """The shopper's FCM or APNs tokens, oldest first."""
        ...

    def remove_push_token(self, platform: NativePlatform, token: str) -> bool:
        """False when no such token was stored."""
        ...


class OfferStorage(OfferStore, CampaignReceipts, PushAddresses, Protocol):
    """Everything stored about delivered offers."""
