"""The eligibility checks, in the documented order (docs/offers.md): the first
check that fails gives the campaign's outcome."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from omnizone.server.domain.offers.campaign import Campaign
from omnizone.server.domain.offers.catalog import Catalog
from omnizone.server.domain.offers.clock import local_time, matching_window, on_schedule
from omnizone.server.domain.offers.events import (
    CampaignTotals,
    OfferHistory,
    Outcome,
    SentOffer,
    ShopperContext,
    TriggerEvent,
)
from omnizone.server.domain.offers.matching import segment_holds

__all__ = ["CHECKS", "LOCATION_FREE_TRIGGERS", "Case", "Check", "Rejection", "rejection"]

# A tap is the shopper's own gesture with the phone: it needs consent to
# offers but not to location analytics. Every other trigger is a location.
LOCATION_FREE_TRIGGERS = frozenset({"nfc_tap"})


@dataclass(frozen=True, slots=True)
class Case:
    """Everything one campaign's checks look at."""

    campaign: Campaign
    product: str | None  # the offer's product (content, event or matched item)
    event: TriggerEvent
    shopper: ShopperContext
    history: OfferHistory
    totals: CampaignTotals
    catalog: Catalog
    local: datetime
    tz: ZoneInfo
    now_ms: int


Rejection = tuple[Outcome, str]
Check = Callable[[Case], Rejection | None]


def _paused(case: Case) -> Rejection | None:
    if case.campaign.status == "paused":
        return Outcome.PAUSED, "campaign is paused"
    return None


def _consent(case: Case) -> Rejection | None:
    if not case.shopper.consent_offers:
        return Outcome.NO_CONSENT, "no consent to personalized offers"
    if case.campaign.trigger.kind not in LOCATION_FREE_TRIGGERS and not (
        case.shopper.consent_location
    ):
        return Outcome.NO_CONSENT, "no consent to location analytics (trigger is a location)"
    return None


def _segments(case: Case) -> Rejection | None:
    for i, rule in enumerate(case.campaign.conditions.segments):
        if not segment_holds(rule, case.shopper, case.now_ms):
            negated = "not " if rule.negate else ""
            return Outcome.NOT_IN_SEGMENT, f"segments[{i}] ({negated}{rule.rule}) does not hold"
    return None


def _schedule(case: Case) -> Rejection | None:
    schedule = case.campaign.conditions.schedule
    if schedule is not None and not on_schedule(schedule, case.local):
        return Outcome.OUTSIDE_SCHEDULE, f"outside the schedule at {_stamp(case)}"
    return None


def _quiet_hours(case: Case) -> Rejection | None:
    window = matching_window(case.campaign.conditions.quiet_hours, case.local)
    if window is not None:
        return Outcome.QUIET_HOURS, f"quiet hours {window} at {_stamp(case)}"
    return None


def _stock(case: Case) -> Rejection | None:
    if not case.campaign.conditions.require_in_stock:
        return None
    if case.product is None:
        return Outcome.OUT_OF_STOCK, "no product to check the stock of"
    if case.catalog.product(case.product) is None:
        return Outcome.OUT_OF_STOCK, f"product {case.product} is not in the catalog"
    if case.catalog.stock_at(case.product, case.event.store) <= 0:
        return Outcome.OUT_OF_STOCK, f"product {case.product} is out of stock here"
    return None


def _mine(case: Case) -> list[SentOffer]:
    return [s for s in case.history.sent if s.campaign_id == case.campaign.id]


def _cap_visit(case: Case) -> Rejection | None:
    cap = case.campaign.limits.per_visit
    sent = sum(1 for s in _mine(case) if s.visit_id == case.event.visit_id)
    if cap is not None and sent >= cap:
        return Outcome.CAPPED_VISIT, f"{sent} of {cap} offers already sent this visit"
    return None


def _cap_day(case: Case) -> Rejection | None:
    cap = case.campaign.limits.per_day
    today = case.local.date()
    sent = sum(1 for s in _mine(case) if local_time(s.at_ms, case.tz).date() == today)
    if cap is not None and sent >= cap:
        return Outcome.CAPPED_DAY, f"{sent} of {cap} offers already sent on {today}"
    return None


def _cap_campaign(case: Case) -> Rejection | None:
    cap = case.campaign.limits.per_campaign
    sent = len(_mine(case))
    if cap is not None and sent >= cap:
        return Outcome.CAPPED_CAMPAIGN, f"{sent} of {cap} offers already sent to this shopper"
    return None


def _cooldown(case: Case) -> Rejection | None:
    cooldown_ms = round(case.campaign.limits.cooldown_s * 1000)
    if cooldown_ms <= 0 or not case.history.sent:
        return None
    last = max(s.at_ms for s in case.history.sent)
    if case.now_ms - last < cooldown_ms:
        ago = (case.now_ms - last) / 1000
        limit = case.campaign.limits.cooldown_s
        return Outcome.COOLDOWN, f"last offer {ago:g} s ago, cool-down {limit:g} s"
    return None


def _budget(case: Case) -> Rejection | None:
    budget = case.campaign.limits.budget
    sent = case.totals.sent_by_campaign.get(case.campaign.id, 0)
    if budget is not None and sent >= budget:
        return Outcome.BUDGET_EXHAUSTED, f"budget spent: {sent} of {budget} offers sent"
    return None


# The documented order: the first failing check gives the outcome.
CHECKS: tuple[Check, ...] = (
    _paused,
    _consent,
    _segments,
    _schedule,
    _quiet_hours,
    _stock,
    _cap_visit,
    _cap_day,
    _cap_campaign,
    _cooldown,
    _budget,
)


def _stamp(case: Case) -> str:
    return f"{case.local:%a %H:%M} {case.tz.key}"


def rejection(case: Case) -> Rejection | None:
    return next((r for r in (check(case) for check in CHECKS) if r is not None), None)
