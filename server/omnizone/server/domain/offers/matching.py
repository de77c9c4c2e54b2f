"""Whether a campaign's trigger fires on an event, and whether a shopper is in
its segment."""

from collections.abc import Sequence
from dataclasses import dataclass

from omnizone.server.domain.offers.campaign import (
    CartItemInZone,
    Dwell,
    HasPurchasedGtin,
    LikelyToBuy,
    LoyaltyMember,
    MinPurchases,
    MinSpend,
    NfcTap,
    NotEmpty,
    ReturningShopper,
    SegmentRule,
    StoreEntered,
    Trigger,
    TryOn,
    WishlistItemInZone,
    ZoneEntered,
    ZoneLeft,
)
from omnizone.server.domain.offers.catalog import Catalog
from omnizone.server.domain.offers.events import Purchase, ShopperContext, TriggerEvent
from omnizone.server.domain.offers.follow_up_triggers import (
    LeftStore,
    TappedNotBought,
    TriedOnNotBought,
    WishlistLingered,
)

__all__ = ["TriggerMatch", "match_trigger", "segment_holds"]

DAY_MS = 86_400_000


# -- trigger matching -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TriggerMatch:
    """What the event offers the campaign: the product it names, or the shopper's
    cart/wishlist items displayed in the zone."""

    product_gtin: str | None = None
    items: tuple[str, ...] = ()


def _in(value: str | None, allowed: Sequence[str]) -> bool:
    """An empty filter list matches anything."""
    return not allowed or value in allowed


def _items_here(
    items: frozenset[str], zones: Sequence[str], event: TriggerEvent, catalog: Catalog
) -> TriggerMatch | None:
    if event.kind != "zone_entered" or event.zone is None or not _in(event.zone, zones):
        return None
    here = sorted(items & catalog.displayed_in(event.store, event.zone))
    return TriggerMatch(items=tuple(here)) if here else None


def match_trigger(
    trigger: Trigger, event: TriggerEvent, shopper: ShopperContext, catalog: Catalog
) -> TriggerMatch | None:
    """None when the campaign's trigger does not fire on this event."""
    match trigger:
        case StoreEntered():
            return TriggerMatch() if event.kind == "store_entered" else None
        case ReturningShopper(min_previous_visits=needed):
            fires = event.kind == "store_entered" and event.previous_visits >= needed
            return TriggerMatch() if fires else None
        case ZoneEntered(zones=zones) | ZoneLeft(zones=zones):
            fires = event.kind == trigger.kind and event.zone in zones
            return TriggerMatch() if fires else None
        case Dwell(zones=zones, min_dwell_s=min_dwell_s):
            dwell = event.dwell_s
            fires = event.kind == "dwell" and event.zone in zones
            return TriggerMatch() if fires and dwell is not None and dwell >= min_dwell_s else None
        case NfcTap(tap_points=points, products=products):
            fires = event.kind == "nfc_tap" and _in(event.tap_point, points)
            fires = fires and _in(event.product_gtin, products)
            return TriggerMatch(product_gtin=event.product_gtin) if fires else None
        case TryOn(gtins=gtins, zones=zones):
            fires = event.kind == "try_on" and _in(event.product_gtin, gtins)
            fires = fires and _in(event.zone, zones)
            return TriggerMatch(product_gtin=event.product_gtin) if fires else None
        case WishlistItemInZone(zones=zones):
            return _items_here(shopper.wishlist, zones, event, catalog)
        case CartItemInZone(zones=zones):
            return _items_here(shopper.cart, zones, event, catalog)
        case LeftStore() | TriedOnNotBought() | TappedNotBought() | WishlistLingered():
            return None  # after the visit: domain/offers/follow_ups.py
    raise AssertionError(f"unhandled trigger {trigger!r}")  # pragma: no cover


# -- segments -------------------------------------------------------------------------


def _recent(shopper: ShopperContext, within_days: int | None, now_ms: int) -> list[Purchase]:
    if within_days is None:
        return list(shopper.purchases)
    since = now_ms - within_days * DAY_MS
    return [p for p in shopper.purchases if since <= p.at_ms <= now_ms]


def _rule_matches(rule: SegmentRule, shopper: ShopperContext, now_ms: int) -> bool:
    match rule:
        case LoyaltyMember():
            return shopper.loyalty_id is not None
        case NotEmpty(rule="cart_not_empty"):
            return bool(shopper.cart)
        case NotEmpty():
            return bool(shopper.wishlist)
        case HasPurchasedGtin(gtins=gtins, within_days=days):
            return any(p.gtin in gtins for p in _recent(shopper, days, now_ms))
        case MinPurchases(count=count, within_days=days):
            return len(_recent(shopper, days, now_ms)) >= count
        case MinSpend(amount=amount, within_days=days):
            return sum(p.amount for p in _recent(shopper, days, now_ms)) >= amount
        case LikelyToBuy(gtins=gtins, categories=categories, top=top):
            return any(g in gtins for g in shopper.likely_products[:top]) or any(
                c in categories for c in shopper.likely_categories[:top]
            )
    raise AssertionError(f"unhandled rule {rule!r}")  # pragma: no cover


def segment_holds(rule: SegmentRule, shopper: ShopperContext, now_ms: int) -> bool:
    return _rule_matches(rule, shopper, now_ms) != rule.negate
