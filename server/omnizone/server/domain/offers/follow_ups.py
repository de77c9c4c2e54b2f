"""Follow-ups after the visit: which campaigns a visit that ended triggers,
when each follow-up is due, whether it is sent when due, and which later
purchase it is credited with.

Pure: the visit (its try-ons, taps and time per zone, folded from the
engine's moments by ``observe``), the shopper's consent, wishlist and
purchases, the offers sent and the clock all come in as plain data. The
checks are those of in-store offers (``checks.py``: consent, segments,
schedule, quiet hours, stock, caps, cool-down, budget; then the holdout),
with one more: a follow-up about a product is not sent once the shopper has
bought it. Quiet hours do not drop a follow-up, they postpone it to the
window's end. docs/offers.md, "Follow-ups after the visit".
"""

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from omnizone.server.domain.offers.campaign import Campaign, TimeWindow
from omnizone.server.domain.offers.catalog import Catalog
from omnizone.server.domain.offers.checks import CHECKS, Case, Check, Rejection
from omnizone.server.domain.offers.clock import local_time, matching_window, store_zone
from omnizone.server.domain.offers.coupons import till_code, unique_code
from omnizone.server.domain.offers.events import (
    CampaignTotals,
    Decision,
    OfferDraft,
    OfferHistory,
    Outcome,
    Purchase,
    ShopperContext,
    TriggerEvent,
)
from omnizone.server.domain.offers.follow_up_triggers import (
    FOLLOW_UP_TRIGGERS,
    LeftStore,
    TappedNotBought,
    TriedOnNotBought,
    WishlistLingered,
    duration_text,
)
from omnizone.server.domain.offers.holdout import in_holdout

__all__ = [
    "IN_STORE_CHANNELS",
    "FollowUpDecision",
    "FollowUpPlan",
    "SeenTap",
    "SeenTryOn",
    "VisitFacts",
    "after_quiet_hours",
    "attributed_purchase",
    "decide_follow_up",
    "end_visit",
    "follow_up_id",
    "is_follow_up",
    "observe",
    "plan_follow_ups",
]

#: Purchase channels that are the store's till; every other channel is online.
IN_STORE_CHANNELS = frozenset({"pos"})


def is_follow_up(campaign: Campaign) -> bool:
    return campaign.trigger.kind in FOLLOW_UP_TRIGGERS


# -- the visit, as the engine's moments tell it ---------------------------------------


@dataclass(frozen=True, slots=True)
class SeenTryOn:
    gtin: str
    zone: str | None
    at_ms: int


@dataclass(frozen=True, slots=True)
class SeenTap:
    tap_point: str | None
    gtin: str | None
    at_ms: int


@dataclass(frozen=True, slots=True)
class VisitFacts:
    """One store visit of one shopper: what follow-up triggers look at."""

    store: str
    shopper_id: str
    visit_id: str
    started_ms: int
    ended_ms: int | None = None
    try_ons: tuple[SeenTryOn, ...] = ()
    taps: tuple[SeenTap, ...] = ()
    dwell_s: Mapping[str, float] = field(default_factory=dict)  # zone -> seconds in it
    zone: str | None = None  # the zone the shopper is in now
    zone_since_ms: int | None = None


def _left_zone(facts: VisitFacts, at_ms: int) -> VisitFacts:
    if facts.zone is None or facts.zone_since_ms is None:
        return facts
    stayed = max(0, at_ms - facts.zone_since_ms) / 1000
    dwell = dict(facts.dwell_s)
    dwell[facts.zone] = dwell.get(facts.zone, 0.0) + stayed
    return replace(facts, dwell_s=dwell, zone=None, zone_since_ms=None)


def observe(facts: VisitFacts | None, event: TriggerEvent) -> VisitFacts:
    """The visit after one more moment of it (``facts`` None: its first)."""
    if facts is None or facts.visit_id != event.visit_id:
        started = int(event.visit_id) if event.visit_id.isdigit() else event.at_ms
        facts = VisitFacts(event.store, event.shopper_id, event.visit_id, started)
    match event.kind:
        case "zone_entered":
            moved = _left_zone(facts, event.at_ms)
            return replace(moved, zone=event.zone, zone_since_ms=event.at_ms)
        case "zone_left" if event.zone == facts.zone:
            return _left_zone(facts, event.at_ms)
        case "try_on" if event.product_gtin is not None:
            seen = SeenTryOn(event.product_gtin, event.zone, event.at_ms)
            return replace(facts, try_ons=(*facts.try_ons, seen))
        case "nfc_tap":
            tap = SeenTap(event.tap_point, event.product_gtin, event.at_ms)
            return replace(facts, taps=(*facts.taps, tap))
    return facts


def end_visit(facts: VisitFacts, at_ms: int) -> VisitFacts:
    """The visit as it ended at ``at_ms`` (the shopper left the store)."""
    return replace(_left_zone(facts, at_ms), ended_ms=at_ms)


# -- planning: what a visit that ended triggers, and when -------------------------------


@dataclass(frozen=True, slots=True)
class FollowUpPlan:
    """A follow-up scheduled for ``due_ms``; its id is fixed by (campaign,
    store, shopper, visit), so scheduling the same visit twice is one follow-up."""

    follow_up_id: str
    campaign_id: str
    store: str
    shopper_id: str
    visit_id: str
    kind: str
    visit_started_ms: int
    trigger_ms: int  # when the visit ended
    due_ms: int
    via: str
    products: tuple[str, ...] = ()  # tried on / tapped / wishlist items, by GTIN
    zone: str | None = None


def follow_up_id(campaign_id: str, store: str, shopper_id: str, visit_id: str) -> str:
    key = f"{campaign_id}:{store}:{shopper_id}:{visit_id}".encode()
    return hashlib.sha256(key).hexdigest()[:32]


def _in(value: str | None, allowed: Sequence[str]) -> bool:
    return not allowed or value in allowed


def _fires(
    campaign: Campaign, visit: VisitFacts, wishlist: frozenset[str], catalog: Catalog
) -> tuple[tuple[str, ...], str | None] | None:
    """(products, zone) when the campaign's trigger fires on the visit, else None."""
    assert visit.ended_ms is not None
    match campaign.trigger:
        case LeftStore(min_visit_s=minimum):
            long_enough = (visit.ended_ms - visit.started_ms) / 1000 >= minimum
            return ((), None) if long_enough else None
        case TriedOnNotBought(gtins=gtins, zones=zones):
            seen = [t for t in visit.try_ons if _in(t.gtin, gtins) and _in(t.zone, zones)]
            if not seen:
                return None
            return tuple(sorted({t.gtin for t in seen})), seen[-1].zone
        case TappedNotBought(tap_points=points, products=products):
            taps = [
                t
                for t in visit.taps
                if t.gtin is not None and _in(t.tap_point, points) and _in(t.gtin, products)
            ]
            if not taps:
                return None
            return tuple(sorted({t.gtin for t in taps if t.gtin})), None
        case WishlistLingered(zones=zones, min_dwell_s=minimum):
            lingered = sorted(
                (
                    (-stayed, zone)
                    for zone, stayed in visit.dwell_s.items()
                    if stayed >= minimum
                    and _in(zone, zones)
                    and wishlist & catalog.displayed_in(visit.store, zone)
                ),
            )
            if not lingered:
                return None
            items = set().union(
                *(wishlist & catalog.displayed_in(visit.store, z) for _s, z in lingered)
            )
            return tuple(sorted(items)), lingered[0][1]
    return None


def plan_follow_ups(
    visit: VisitFacts,
    campaigns: Iterable[Campaign],
    wishlist: frozenset[str],
    catalog: Catalog,
    timezone: str | ZoneInfo,
) -> list[FollowUpPlan]:
    """The follow-ups a visit that ended triggers: one per active follow-up
    campaign of its store whose trigger fires, due ``after`` the end of the
    visit, later if that falls in the campaign's quiet hours."""
    if visit.ended_ms is None:
        raise ValueError("the visit has not ended")
    tz = store_zone(timezone)
    plans = []
    for campaign in sorted(campaigns, key=lambda c: c.id):
        trigger = campaign.trigger
        if campaign.store != visit.store or campaign.status != "active":
            continue
        if not isinstance(
            trigger, LeftStore | TriedOnNotBought | TappedNotBought | WishlistLingered
        ):
            continue
        fired = _fires(campaign, visit, wishlist, catalog)
        if fired is None:
            continue
        products, zone = fired
        due = visit.ended_ms + trigger.after * 1000
        plans.append(
            FollowUpPlan(
                follow_up_id=follow_up_id(
                    campaign.id, visit.store, visit.shopper_id, visit.visit_id
                ),
                campaign_id=campaign.id,
                store=visit.store,
                shopper_id=visit.shopper_id,
                visit_id=visit.visit_id,
                kind=trigger.kind,
                visit_started_ms=visit.started_ms,
                trigger_ms=visit.ended_ms,
                due_ms=after_quiet_hours(due, campaign.conditions.quiet_hours, tz),
                via=trigger.via,
                products=products,
                zone=zone,
            )
        )
    return plans


def _window_end(window: TimeWindow, local: datetime, tz: ZoneInfo) -> datetime:
    """The end of ``window``, which holds ``local``."""
    minute = local.hour * 60 + local.minute
    day = local.date()
    if window.wraps and minute >= window.start:
        day += timedelta(days=1)
    if window.end == 1440:
        return datetime.combine(day + timedelta(days=1), time(0, 0), tzinfo=tz)
    return datetime.combine(day, time(window.end // 60, window.end % 60), tzinfo=tz)


def after_quiet_hours(at_ms: int, windows: Sequence[TimeWindow], timezone: str | ZoneInfo) -> int:
    """``at_ms``, or the end of the quiet hours it falls in (store wall clock;
    windows that follow one another are all skipped)."""
    tz = store_zone(timezone)
    for _ in range(len(windows) + 1):
        local = local_time(at_ms, tz)
        window = matching_window(windows, local)
        if window is None:
            return at_ms
        at_ms = max(at_ms + 1, round(_window_end(window, local, tz).timestamp() * 1000))
    return at_ms


# -- deciding when due ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FollowUpDecision:
    """The decision about a due follow-up; ``retry_at_ms``: in quiet hours, due again then."""

    decision: Decision
    offer: OfferDraft | None = None
    retry_at_ms: int | None = None


def _bought(plan: FollowUpPlan, shopper: ShopperContext, now_ms: int) -> Purchase | None:
    """A purchase of one of the follow-up's products since the visit began."""
    if not plan.products:
        return None
    return next(
        (
            p
            for p in sorted(shopper.purchases, key=lambda p: p.at_ms)
            if p.gtin in plan.products and plan.visit_started_ms <= p.at_ms <= now_ms
        ),
        None,
    )


def _product(campaign: Campaign, plan: FollowUpPlan, catalog: Catalog) -> str | None:
    if campaign.content.product_gtin is not None:
        return campaign.content.product_gtin
    in_stock = [g for g in plan.products if catalog.stock_at(g, plan.store) > 0]
    candidates = in_stock or list(plan.products)
    return candidates[0] if candidates else None


def _draft(case: Case, plan: FollowUpPlan) -> OfferDraft:
    content = case.campaign.content
    # Fixed by the follow-up: a second attempt after a crash makes the same offer.
    coupon = till_code(content.coupon_code, unique_code("follow-up", plan.follow_up_id))
    product = case.catalog.product(case.product) if case.product else None
    summary: dict[str, str | int | float] = {
        "kind": plan.kind,
        "event": "visit_ended",
        "store": plan.store,
        "visit_id": plan.visit_id,
        "at_ms": plan.trigger_ms,
        "due_ms": plan.due_ms,
        "via": plan.via,
        "follow_up_id": plan.follow_up_id,
    }
    if case.product is not None:
        summary["product_gtin"] = case.product
    if plan.zone is not None:
        summary["zone"] = plan.zone
    return OfferDraft(
        campaign_id=case.campaign.id,
        store=plan.store,
        title=content.title,
        body=content.body,
        image=content.image or (product.image if product else None),
        product_gtin=case.product,
        coupon_code=coupon,
        coupon_unique=True,
        created_ms=case.now_ms,
        expires_ms=case.now_ms + content.expires_after_s * 1000,
        trigger=summary,
    )


def decide_follow_up(
    plan: FollowUpPlan,
    campaign: Campaign | None,
    shopper: ShopperContext,
    history: OfferHistory,
    totals: CampaignTotals,
    catalog: Catalog,
    timezone: str | ZoneInfo,
    now_ms: int,
) -> FollowUpDecision:
    """Send the due follow-up or not, and why: the campaign as it is now
    (``None``: deleted), then the in-store checks in their order with
    "bought since" after consent, then the holdout."""

    def decision(outcome: Outcome, reason: str) -> Decision:
        return Decision(plan.campaign_id, plan.shopper_id, outcome, reason, plan.visit_id, now_ms)

    if campaign is None or campaign.trigger.kind != plan.kind or campaign.store != plan.store:
        return FollowUpDecision(decision(Outcome.CAMPAIGN_REMOVED, "campaign deleted or changed"))
    tz = store_zone(timezone)
    event = TriggerEvent(
        kind="visit_ended",
        store=plan.store,
        shopper_id=plan.shopper_id,
        visit_id=plan.visit_id,
        at_ms=plan.trigger_ms,
        zone=plan.zone,
        product_gtin=plan.products[0] if plan.products else None,
    )
    case = Case(
        campaign=campaign,
        product=_product(campaign, plan, catalog),
        event=event,
        shopper=shopper,
        history=history,
        totals=totals,
        catalog=catalog,
        local=local_time(now_ms, tz),
        tz=tz,
        now_ms=now_ms,
    )

    def bought_since(case: Case) -> Rejection | None:
        bought = _bought(plan, shopper, now_ms)
        if bought is None:
            return None
        day = local_time(bought.at_ms, tz)
        return Outcome.BOUGHT_SINCE, f"bought {bought.gtin} ({bought.channel}) at {day:%a %H:%M}"

    checks: tuple[Check, ...] = (*CHECKS[:2], bought_since, *CHECKS[2:])
    for check in checks:
        rejected = check(case)
        if rejected is None:
            continue
        outcome, reason = rejected
        if outcome is Outcome.QUIET_HOURS:
            retry = after_quiet_hours(now_ms, campaign.conditions.quiet_hours, tz)
            return FollowUpDecision(decision(outcome, f"{reason}; due again then"), None, retry)
        return FollowUpDecision(decision(outcome, reason))
    if in_holdout(campaign.id, plan.shopper_id, campaign.holdout_fraction):
        fraction = campaign.holdout_fraction
        return FollowUpDecision(
            decision(Outcome.HELD_OUT, f"in the {fraction:.0%} holdout (control group)")
        )
    reason = f"{plan.kind} {_after(campaign)} after the visit, by {plan.via}"
    return FollowUpDecision(decision(Outcome.SENT, reason), _draft(case, plan))


def _after(campaign: Campaign) -> str:
    return duration_text(getattr(campaign.trigger, "after", 0))


# -- attribution ----------------------------------------------------------------------


def attributed_purchase(
    decided_ms: int,
    window_s: int,
    products: Sequence[str],
    purchases: Iterable[Purchase],
    to_ms: int | None = None,
) -> Purchase | None:
    """The first purchase credited to a follow-up decided (sent or held out)
    at ``decided_ms``: within ``window_s`` after it, of one of ``products``
    (any product when empty), online or in store, before ``to_ms`` if given."""
    end = decided_ms + window_s * 1000
    return next(
        (
            p
            for p in sorted(purchases, key=lambda p: p.at_ms)
            if decided_ms <= p.at_ms <= end
            and (to_ms is None or p.at_ms < to_ms)
            and (not products or p.gtin in products)
        ),
        None,
    )
