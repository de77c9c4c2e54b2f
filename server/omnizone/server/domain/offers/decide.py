"""Which campaign, if any, sends an offer for one trigger event, and why each
matching campaign did or did not.

Pure: everything the decision depends on comes in as plain data (the event,
the shopper's consent and profile, the offers already sent, the catalog, the
store's time zone and the time), so the same inputs always give the same
decisions. The order of checks is in docs/offers.md ("Decision order").
"""

from collections.abc import Iterable
from zoneinfo import ZoneInfo

from omnizone.server.domain.offers.campaign import Campaign
from omnizone.server.domain.offers.catalog import Catalog
from omnizone.server.domain.offers.checks import Case, rejection
from omnizone.server.domain.offers.clock import local_time, store_zone
from omnizone.server.domain.offers.coupons import till_code, unique_code
from omnizone.server.domain.offers.events import (
    CampaignTotals,
    Decision,
    DecisionBatch,
    OfferDraft,
    OfferHistory,
    Outcome,
    ShopperContext,
    TriggerEvent,
)
from omnizone.server.domain.offers.holdout import in_holdout
from omnizone.server.domain.offers.matching import TriggerMatch, match_trigger

__all__ = ["arbitration_key", "decide"]


def _offer_product(
    campaign: Campaign, match: TriggerMatch, catalog: Catalog, store: str
) -> str | None:
    """The content's product, else the one the event names, else the first
    matched cart/wishlist item that is in stock (then the first at all)."""
    if campaign.content.product_gtin is not None:
        return campaign.content.product_gtin
    if match.items:
        in_stock = [g for g in match.items if catalog.stock_at(g, store) > 0]
        return (in_stock or list(match.items))[0]
    return match.product_gtin


def arbitration_key(campaign: Campaign) -> tuple[int, float, str]:
    """Sort key: highest priority, then highest expected value, then id."""
    return (-campaign.priority, -campaign.expected_value, campaign.id)


# -- the decision ---------------------------------------------------------------------


def _trigger_summary(event: TriggerEvent, campaign: Campaign) -> dict[str, str | int | float]:
    summary: dict[str, str | int | float] = {
        "kind": campaign.trigger.kind,
        "event": event.kind,
        "store": event.store,
        "visit_id": event.visit_id,
        "at_ms": event.at_ms,
    }
    optional = {
        "zone": event.zone,
        "dwell_s": event.dwell_s,
        "tap_point": event.tap_point,
        "product_gtin": event.product_gtin,
    }
    summary.update({k: v for k, v in optional.items() if v is not None})
    return summary


def _draft(case: Case) -> OfferDraft:
    content = case.campaign.content
    event = case.event
    coupon = content.coupon_code
    if coupon is not None and content.unique_coupon:
        code = unique_code(
            case.campaign.id,
            event.shopper_id,
            event.visit_id,
            event.kind,
            event.at_ms,
            case.now_ms,
            event.zone or "",
            event.tap_point or "",
            event.product_gtin or "",
        )
        coupon = till_code(coupon, code)
    product = case.catalog.product(case.product) if case.product else None
    return OfferDraft(
        campaign_id=case.campaign.id,
        store=event.store,
        title=content.title,
        body=content.body,
        image=content.image or (product.image if product else None),
        product_gtin=case.product,
        coupon_code=coupon,
        coupon_unique=content.unique_coupon,
        created_ms=case.now_ms,
        expires_ms=case.now_ms + content.expires_after_s * 1000,
        trigger=_trigger_summary(event, case.campaign),
    )


def _cases(
    event: TriggerEvent,
    shopper: ShopperContext,
    campaigns: Iterable[Campaign],
    history: OfferHistory,
    totals: CampaignTotals,
    catalog: Catalog,
    tz: ZoneInfo,
    now_ms: int,
) -> list[Case]:
    """One case per campaign of this store whose trigger fires, in arbitration order."""
    local = local_time(now_ms, tz)
    cases = []
    for campaign in sorted(campaigns, key=arbitration_key):
        if campaign.store != event.store:
            continue
        match = match_trigger(campaign.trigger, event, shopper, catalog)
        if match is None:
            continue
        cases.append(
            Case(
                campaign=campaign,
                product=_offer_product(campaign, match, catalog, event.store),
                event=event,
                shopper=shopper,
                history=history,
                totals=totals,
                catalog=catalog,
                local=local,
                tz=tz,
                now_ms=now_ms,
            )
        )
    return cases


def decide(
    event: TriggerEvent,
    shopper: ShopperContext,
    campaigns: Iterable[Campaign],
    history: OfferHistory,
    totals: CampaignTotals,
    catalog: Catalog,
    timezone: str | ZoneInfo,
    now_ms: int,
) -> DecisionBatch:
    """Decide every matching campaign; send at most one offer.

    Eligible campaigns are walked in arbitration order. A campaign that draws
    the shopper into its holdout is recorded ``held_out`` and the walk goes on,
    so its control group is exactly the shoppers it would have been sent to;
    the first campaign not held out is ``sent``, the rest ``lost_arbitration``.
    """
    if event.shopper_id != shopper.shopper_id:
        raise ValueError(
            f"event is for shopper {event.shopper_id!r}, the context for {shopper.shopper_id!r}"
        )
    tz = store_zone(timezone)
    cases = _cases(event, shopper, campaigns, history, totals, catalog, tz, now_ms)
    decisions: list[Decision] = []
    offer: OfferDraft | None = None

    def record(case: Case, outcome: Outcome, reason: str) -> None:
        decisions.append(
            Decision(case.campaign.id, event.shopper_id, outcome, reason, event.visit_id, now_ms)
        )

    for case in cases:
        refused = rejection(case)
        if refused is not None:
            record(case, *refused)
        elif offer is not None:
            record(case, Outcome.LOST_ARBITRATION, f"lost to {offer.campaign_id}")
        elif in_holdout(case.campaign.id, event.shopper_id, case.campaign.holdout_fraction):
            fraction = case.campaign.holdout_fraction
            record(case, Outcome.HELD_OUT, f"in the {fraction:.0%} holdout (control group)")
        else:
            offer = _draft(case)
            record(case, Outcome.SENT, _sent_reason(case))
    return DecisionBatch(event=event, decisions=tuple(decisions), offer=offer)


def _sent_reason(case: Case) -> str:
    campaign = case.campaign
    return (
        f"{campaign.trigger.kind} matched; priority {campaign.priority}, "
        f"expected value {campaign.expected_value:g}"
    )
