"""The campaign model: trigger, conditions, content, limits, holdout.

One schema serves the YAML files in config/campaigns/ and the campaign API.
Field meanings and defaults are documented in docs/offers.md.
"""

import re
import string
from datetime import date
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    model_validator,
)

from omnizone.contract.base import StrictModel
from omnizone.contract.topics import IDENTIFIER_PATTERN
from omnizone.server.domain.offers.catalog import Gtin
from omnizone.server.domain.offers.follow_up_triggers import (
    LeftStore,
    TappedNotBought,
    TriedOnNotBought,
    WishlistLingered,
)

__all__ = [
    "DAYS",
    "Campaign",
    "CartItemInZone",
    "ClockTime",
    "Conditions",
    "Content",
    "Dwell",
    "HasPurchasedGtin",
    "LikelyToBuy",
    "Limits",
    "LoyaltyMember",
    "MinPurchases",
    "MinSpend",
    "NfcTap",
    "NotEmpty",
    "ReturningShopper",
    "Schedule",
    "SegmentRule",
    "StoreEntered",
    "TimeWindow",
    "Trigger",
    "TryOn",
    "WishlistItemInZone",
    "ZoneEntered",
    "ZoneLeft",
]

Identifier = Annotated[str, Field(pattern=IDENTIFIER_PATTERN)]
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$|^24:00$")


class _Strict(StrictModel):
    model_config = ConfigDict(strict=True)


# -- time of day -------------------------------------------------------------------


def _clock_minutes(value: Any) -> Any:
    """ "HH:MM" -> minutes since midnight; "24:00" is the end of the day."""
    if isinstance(value, int) and not isinstance(value, bool):
        raise ValueError(
            'write times as quoted strings, e.g. "10:00" (YAML reads an unquoted 10:00 '
            f"as the number {value})"
        )
    if not isinstance(value, str) or not _CLOCK.match(value):
        raise ValueError(f'expected a time "HH:MM" from 00:00 to 24:00, got {value!r}')
    hours, minutes = value.split(":")
    return int(hours) * 60 + int(minutes)


def clock_text(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


ClockTime = Annotated[
    int,
    BeforeValidator(_clock_minutes),
    PlainSerializer(clock_text, return_type=str),
    WithJsonSchema({"type": "string", "pattern": _CLOCK.pattern, "examples": ["22:00"]}),
]


def _iso_date(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise ValueError(f"expected a date YYYY-MM-DD, got {value!r}") from None
    return value


IsoDate = Annotated[date, BeforeValidator(_iso_date)]


class TimeWindow(_Strict):
    """``[start, end)`` in store wall-clock time; ``start > end`` wraps past midnight."""

    start: ClockTime
    end: ClockTime

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if self.start == 1440:
            raise ValueError("start: 24:00 is only allowed as an end")
        if self.start == self.end:
            raise ValueError("start and end are the same time: the window is empty")
        return self

    @property
    def wraps(self) -> bool:
        return self.start > self.end

    def __str__(self) -> str:
        return f"{clock_text(self.start)}–{clock_text(self.end)}"


class Schedule(_Strict):
    """When the campaign runs, in the store's time zone."""

    days: list[Day] = Field(default_factory=lambda: list(DAYS), min_length=1)
    windows: list[TimeWindow] = Field(default_factory=list, description="empty: all day")
    start_date: IsoDate | None = None
    end_date: IsoDate | None = Field(None, description="inclusive")

    @model_validator(mode="after")
    def _ordered_dates(self) -> Self:
        if self.start_date and self.end_date and self.end_date < self.start_date:
            raise ValueError("end_date is before start_date")
        return self


# -- triggers -----------------------------------------------------------------------

ZoneList = Annotated[list[Identifier], Field(min_length=1)]


class StoreEntered(_Strict):
    kind: Literal["store_entered"]


class ZoneEntered(_Strict):
    kind: Literal["zone_entered"]
    zones: ZoneList


class Dwell(_Strict):
    kind: Literal["dwell"]
    zones: ZoneList
    min_dwell_s: float = Field(gt=0, le=86_400)


class ZoneLeft(_Strict):
    kind: Literal["zone_left"]
    zones: ZoneList


class NfcTap(_Strict):
    """Both lists narrow the match; both empty matches any tap in the store."""

    kind: Literal["nfc_tap"]
    tap_points: list[Identifier] = []
    products: list[Gtin] = []


class TryOn(_Strict):
    """An RFID-tagged item taken into a fitting room; the lists narrow the match."""

    kind: Literal["try_on"]
    gtins: list[Gtin] = []
    zones: list[Identifier] = []


class ReturningShopper(_Strict):
    """Entering the store with at least this many earlier visits."""

    kind: Literal["returning_shopper"]
    min_previous_visits: int = Field(1, ge=1)


class WishlistItemInZone(_Strict):
    """Entering a zone where a wishlist item is displayed; ``zones`` narrows it."""

    kind: Literal["wishlist_item_in_zone"]
    zones: list[Identifier] = []


class CartItemInZone(_Strict):
    """Entering a zone where an item of the online cart is displayed."""

    kind: Literal["cart_item_in_zone"]
    zones: list[Identifier] = []


Trigger = Annotated[
    StoreEntered
    | ZoneEntered
    | Dwell
    | ZoneLeft
    | NfcTap
    | TryOn
    | ReturningShopper
    | WishlistItemInZone
    | CartItemInZone
    | LeftStore  # follow-ups after the visit (follow_up_triggers.py)
    | TriedOnNotBought
    | TappedNotBought
    | WishlistLingered,
    Field(discriminator="kind"),
]

# Triggers whose event names a product the offer can be about.
PRODUCT_TRIGGERS = frozenset(
    {"nfc_tap", "try_on", "wishlist_item_in_zone", "cart_item_in_zone"}
    | {"tried_on_not_bought", "tapped_not_bought", "wishlist_lingered"}
)

# -- segment rules ------------------------------------------------------------------


class _Rule(_Strict):
    negate: bool = Field(False, description="true: the shopper must NOT match the rule")


class LoyaltyMember(_Rule):
    rule: Literal["loyalty_member"]


class NotEmpty(_Rule):
    rule: Literal["cart_not_empty", "wishlist_not_empty"]


class HasPurchasedGtin(_Rule):
    rule: Literal["has_purchased_gtin"]
    gtins: Annotated[list[Gtin], Field(min_length=1)]
    within_days: int | None = Field(None, ge=1)


class MinPurchases(_Rule):
    rule: Literal["min_purchases"]
    count: int = Field(ge=1)
    within_days: int | None = Field(None, ge=1)


class MinSpend(_Rule):
    rule: Literal["min_spend"]
    amount: float = Field(gt=0)
    within_days: int | None = Field(None, ge=1)


class LikelyToBuy(_Rule):
    """The shopper's predicted next purchases (issue 18, point 9; the service
    supplies them, see docs/analytics.md "Predictions"): one of the ``top``
    most likely products is in ``gtins``, or one of the ``top`` most likely
    categories (the zone a product is displayed in) is in ``categories``.
    A shopper without a prediction (no consent, nothing known) never holds."""

    rule: Literal["likely_to_buy"]
    gtins: list[Gtin] = []
    categories: list[Identifier] = []
    top: int = Field(3, ge=1, le=20)

    @model_validator(mode="after")
    def _names_something(self) -> Self:
        if not self.gtins and not self.categories:
            raise ValueError("likely_to_buy needs gtins or categories (or both)")
        return self


SegmentRule = Annotated[
    LoyaltyMember | NotEmpty | HasPurchasedGtin | MinPurchases | MinSpend | LikelyToBuy,
    Field(discriminator="rule"),
]


class Conditions(_Strict):
    segments: list[SegmentRule] = Field(default_factory=list, description="all must hold")
    schedule: Schedule | None = None
    quiet_hours: list[TimeWindow] = []
    require_in_stock: bool = False


# -- content and limits ---------------------------------------------------------------

_COUPON_TEMPLATE = re.compile(r"^[A-Z0-9-]*(\{code\}[A-Z0-9-]*)?$")


class Content(_Strict):
    title: str = Field(min_length=1, max_length=80)
    body: str = Field("", max_length=500)
    image: str | None = Field(None, max_length=500)
    product_gtin: Gtin | None = None
    coupon_code: str | None = Field(
        None,
        min_length=1,
        max_length=40,
        description="A-Z, 0-9 and '-'; '{code}' is replaced by a code unique to the offer",
    )
    expires_after_s: int = Field(3600, ge=60, le=90 * 86_400)

    @model_validator(mode="after")
    def _coupon_template(self) -> Self:
        code = self.coupon_code
        if code is not None and not _COUPON_TEMPLATE.match(code):
            fields = [f for _, f, _, _ in string.Formatter().parse(code) if f]
            unknown = [f for f in fields if f != "code"]
            hint = f" (unknown placeholder {{{unknown[0]}}})" if unknown else ""
            raise ValueError(
                f"coupon_code {code!r}: use A-Z, 0-9 and '-', with at most one "
                f"'{{code}}' placeholder{hint}"
            )
        return self

    @property
    def unique_coupon(self) -> bool:
        return self.coupon_code is not None and "{code}" in self.coupon_code


class Limits(_Strict):
    """Per-shopper caps (sent offers only; held-out draws do not count)."""

    per_visit: int | None = Field(1, ge=1)
    per_day: int | None = Field(None, ge=1, description="calendar day in the store's time zone")
    per_campaign: int | None = Field(None, ge=1, description="lifetime, per shopper")
    cooldown_s: float = Field(0, ge=0, description="since ANY offer to this shopper")
    budget: int | None = Field(None, ge=0, description="offers sent by this campaign, all shoppers")


class Campaign(_Strict):
    id: Identifier
    name: str = Field(min_length=1, max_length=120)
    store: Identifier
    status: Literal["active", "paused"] = "active"
    priority: int = Field(0, ge=-1000, le=1000)
    expected_value: float = Field(0.0, ge=0, description="tie-break after priority")
    trigger: Trigger
    conditions: Conditions = Conditions()
    content: Content
    limits: Limits = Limits()
    holdout_fraction: float = Field(0.0, ge=0, lt=1)

    @model_validator(mode="after")
    def _stock_needs_a_product(self) -> Self:
        if (
            self.conditions.require_in_stock
            and self.content.product_gtin is None
            and self.trigger.kind not in PRODUCT_TRIGGERS
        ):
            raise ValueError(
                "conditions.require_in_stock needs content.product_gtin or a trigger that "
                f"names a product ({', '.join(sorted(PRODUCT_TRIGGERS))})"
            )
        return self
