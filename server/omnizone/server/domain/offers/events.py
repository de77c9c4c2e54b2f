"""Plain data in and out of the offer decision: the trigger event, the shopper's
consent and profile, the offers already sent, and the decisions."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

__all__ = [
    "CampaignTotals",
    "Decision",
    "DecisionBatch",
    "EventKind",
    "OfferDraft",
    "OfferHistory",
    "Outcome",
    "Purchase",
    "SentOffer",
    "ShopperContext",
    "TriggerEvent",
]

EventKind = Literal[
    "store_entered", "zone_entered", "dwell", "zone_left", "nfc_tap", "try_on", "visit_ended"
]


class Outcome(StrEnum):
    SENT = "sent"
    NO_CONSENT = "no_consent"
    PAUSED = "paused"
    NOT_IN_SEGMENT = "not_in_segment"
    OUTSIDE_SCHEDULE = "outside_schedule"
    QUIET_HOURS = "quiet_hours"
    OUT_OF_STOCK = "out_of_stock"
    CAPPED_VISIT = "capped_visit"
    CAPPED_DAY = "capped_day"
    CAPPED_CAMPAIGN = "capped_campaign"
    COOLDOWN = "cooldown"
    BUDGET_EXHAUSTED = "budget_exhausted"
    HELD_OUT = "held_out"
    LOST_ARBITRATION = "lost_arbitration"
    BOUGHT_SINCE = "bought_since"  # a follow-up: bought before it was due
    CAMPAIGN_REMOVED = "campaign_removed"  # a follow-up whose campaign was deleted or changed


# -- inputs ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TriggerEvent:
    """Something the shopper did in the store (built by the service from a
    visit, a tap or an RFID read). ``previous_visits`` counts earlier store visits."""

    kind: EventKind
    store: str
    shopper_id: str
    visit_id: str
    at_ms: int
    zone: str | None = None
    dwell_s: float | None = None
    tap_point: str | None = None
    product_gtin: str | None = None
    previous_visits: int = 0


@dataclass(frozen=True, slots=True)
class Purchase:
    gtin: str | None
    amount: float
    at_ms: int
    channel: str = "pos"


@dataclass(frozen=True, slots=True)
class ShopperContext:
    shopper_id: str
    consent_offers: bool
    consent_location: bool
    cart: frozenset[str] = frozenset()
    wishlist: frozenset[str] = frozenset()
    purchases: tuple[Purchase, ...] = ()
    loyalty_id: str | None = None
    #: Predicted next purchases, most likely first (supplied by the service;
    #: empty without consent or prediction): products, and their categories.
    likely_products: tuple[str, ...] = ()
    likely_categories: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SentOffer:
    campaign_id: str
    at_ms: int
    visit_id: str | None = None


@dataclass(frozen=True, slots=True)
class OfferHistory:
    """Offers SENT to this shopper, any campaign (held-out draws are not offers).
    Entries older than the longest cap window may be left out, except that
    ``per_campaign`` caps need the campaign's whole history."""

    sent: Sequence[SentOffer] = ()


@dataclass(frozen=True, slots=True)
class CampaignTotals:
    """Offers sent per campaign to all shoppers, for budgets."""

    sent_by_campaign: Mapping[str, int] = field(default_factory=dict)


# -- outputs --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Decision:
    campaign_id: str
    shopper_id: str
    outcome: Outcome
    reason: str
    visit_id: str
    at_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class OfferDraft:
    """The offer a decision sends, as delivery receives it: delivery stores it
    for one shopper with an offer id, the shopper's next seq and the code the
    till redeems (``coupons.till_code``, unique to the offer).

    ``coupon_code`` is the campaign's code as decided: a ``{code}`` template
    filled in, already unique to this offer (``coupon_unique``), or a fixed
    code every offer of the campaign shares, which delivery makes unique.
    """

    store: str
    campaign_id: str
    title: str
    body: str
    created_ms: int  # when it was decided
    expires_ms: int
    trigger: Mapping[str, str | int | float] = field(default_factory=dict)
    image: str | None = None
    product_gtin: str | None = None
    coupon_code: str | None = None
    coupon_unique: bool = False


@dataclass(frozen=True, slots=True)
class DecisionBatch:
    """One decision per campaign whose trigger matched, in arbitration order."""

    event: TriggerEvent
    decisions: tuple[Decision, ...]
    offer: OfferDraft | None

    @property
    def sent(self) -> Decision | None:
        return next((d for d in self.decisions if d.outcome is Outcome.SENT), None)
