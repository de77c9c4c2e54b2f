"""Per-campaign figures: the funnel (triggered, sent, delivered, opened,
redeemed) and the lift against the holdout group.

Lift compares shoppers the campaign reached with shoppers it would have
reached but held out (docs/offers.md): a shopper belongs to the group of the
campaign's *first* decision about them, and converts when they buy (the
campaign's product, or anything when it has none) within the attribution
window after that decision, in any channel.

With a range (``from_ms`` inclusive, ``to_ms`` exclusive) every figure is of
that range: the decisions logged in it (so the groups are of the shoppers
first decided about in it), the receipts and redemptions made in it, and the
purchases made in it (a conversion's window is cut at ``to_ms``).
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Protocol

from omnizone.contract.timefmt import wall_clock_ms
from omnizone.server.domain.offers import Campaign, Outcome, Purchase, campaign_lift
from omnizone.server.domain.offers.clock import local_time
from omnizone.server.domain.offers.explain import held_back_now, lift_in_words, not_sent_reasons
from omnizone.server.domain.offers.follow_ups import is_follow_up
from omnizone.server.service.follow_ups import follow_up_figures
from omnizone.server.service.ports.campaigns import DecisionReads
from omnizone.server.service.ports.follow_ups import FollowUpRecord
from omnizone.server.service.shoppers import ShopperService

ATTRIBUTION_WINDOW_MS = 7 * 24 * 3600 * 1000

#: Shoppers -> their purchases as (gtin, at_ms), read at once for a whole group.
PurchaseReader = Callable[[Sequence[str]], Mapping[str, Sequence[tuple[str, int]]]]


class ReceiptCounts(Protocol):
    """``CampaignReceipts.campaign_counts``: a campaign's receipts by status and
    its redemptions, within the range when given."""

    def __call__(
        self, campaign_id: str, *, from_ms: int | None = None, to_ms: int | None = None
    ) -> Mapping[str, int]: ...


@dataclass(frozen=True, slots=True)
class CampaignFigures:
    campaign_id: str
    name: str
    status: str
    triggered: int
    sent: int
    held_out: int
    delivered: int
    opened: int
    dismissed: int
    redeemed: int
    treated_shoppers: int
    treated_converted: int
    control_shoppers: int
    control_converted: int
    lift: dict[str, Any]
    lift_words: str = ""
    """The lift as a sentence (``explain.lift_in_words``)."""
    not_sent: str = ""
    """The decision log's top reasons for not sending, "quiet hours: 30 · …"."""
    held_back_now: str | None = None
    """What stops the campaign sending at the store's time now ("quiet hours now …")."""
    follow_up: dict[str, Any] | None = None
    """A follow-up campaign's own figures (``service.follow_ups.follow_up_figures``)."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def campaign_report(
    campaigns: list[Campaign],
    decisions: DecisionReads,
    receipts: ReceiptCounts,
    shoppers: ShopperService,
    *,
    from_ms: int | None = None,
    to_ms: int | None = None,
    attribution_window_ms: int = ATTRIBUTION_WINDOW_MS,
    confidence: float = 0.95,
    purchases: PurchaseReader | None = None,
    timezones: Mapping[str, str] | None = None,
    clock_ms: Callable[[], int] = wall_clock_ms,
    follow_ups: "FollowUpReads | None" = None,
) -> list[CampaignFigures]:
    """``receipts(campaign_id)`` counts delivered/opened/dismissed/redeemed offers.
    ``purchases`` reads every shopper's purchases in one query (the analytics'
    reader); without it each shopper's profile is read on its own.
    ``timezones`` (store -> time zone) with ``clock_ms`` (the offer engine's
    clock) say what holds each campaign back now; without them it is None.
    ``from_ms``/``to_ms``: the range every figure is counted in (None: no bound).
    ``follow_ups``: a follow-up campaign's rows; its groups, conversions and
    lift are then the follow-ups' own (attribution window of the trigger)."""
    report = []
    now_ms = clock_ms()
    for campaign in campaigns:
        groups = decisions.first_decisions(
            campaign.id, [Outcome.SENT, Outcome.HELD_OUT], from_ms=from_ms, to_ms=to_ms
        )
        if purchases is not None:
            bought = purchases(list(groups))
            converted = {
                shopper: _converted(
                    bought.get(shopper, ()), at_ms, campaign, attribution_window_ms, to_ms
                )
                for shopper, (_outcome, at_ms) in groups.items()
            }
        else:
            converted = {
                shopper: _bought_after(
                    shoppers, shopper, at_ms, campaign, attribution_window_ms, to_ms
                )
                for shopper, (_outcome, at_ms) in groups.items()
            }
        treated = [s for s, (o, _) in groups.items() if o == Outcome.SENT]
        control = [s for s, (o, _) in groups.items() if o == Outcome.HELD_OUT]
        treated_won = sum(converted[s] for s in treated)
        control_won = sum(converted[s] for s in control)
        lift = campaign_lift(len(treated), treated_won, len(control), control_won, confidence)
        counts = receipts(campaign.id, from_ms=from_ms, to_ms=to_ms)
        logged = decisions.outcome_counts(campaign.id, from_ms=from_ms, to_ms=to_ms)
        timezone = (timezones or {}).get(campaign.store)
        now = held_back_now(campaign, local_time(now_ms, timezone)) if timezone else None
        report.append(
            CampaignFigures(
                campaign_id=campaign.id,
                name=campaign.name,
                status=campaign.status,
                triggered=sum(logged.values()),
                sent=logged.get(str(Outcome.SENT), 0),
                held_out=logged.get(str(Outcome.HELD_OUT), 0),
                delivered=counts.get("delivered", 0),
                opened=counts.get("opened", 0),
                dismissed=counts.get("dismissed", 0),
                redeemed=counts.get("redeemed", 0),
                treated_shoppers=len(treated),
                treated_converted=treated_won,
                control_shoppers=len(control),
                control_converted=control_won,
                lift=asdict(lift),
                lift_words=lift_in_words(lift),
                not_sent=_reasons(logged),
                held_back_now=now,
            )
        )
        if follow_ups is not None and is_follow_up(campaign):
            report[-1] = _with_follow_ups(
                report[-1], campaign, follow_ups, shoppers, from_ms, to_ms, confidence
            )
    return report


class FollowUpReads(Protocol):
    """``FollowUpStorage.of_campaign``: a campaign's follow-ups, scheduled within the range."""

    def __call__(
        self, campaign_id: str, *, from_ms: int | None = None, to_ms: int | None = None
    ) -> Sequence[FollowUpRecord]: ...


def _with_follow_ups(
    figures: CampaignFigures,
    campaign: Campaign,
    follow_ups: FollowUpReads,
    shoppers: ShopperService,
    from_ms: int | None,
    to_ms: int | None,
    confidence: float,
) -> CampaignFigures:
    records = follow_ups(campaign.id, from_ms=from_ms, to_ms=to_ms)
    profiles = shoppers.profiles(sorted({r.plan.shopper_id for r in records}))
    purchases = {
        shopper: [Purchase(p.gtin, p.amount or 0.0, p.at_ms, p.channel) for p in profile.purchases]
        for shopper, profile in profiles.items()
    }
    extra = follow_up_figures(campaign, records, purchases, to_ms=to_ms, confidence=confidence)
    return replace(
        figures,
        treated_shoppers=extra["treated_shoppers"],
        treated_converted=extra["treated_converted"],
        control_shoppers=extra["control_shoppers"],
        control_converted=extra["control_converted"],
        lift=extra["lift"],
        lift_words=extra["lift_words"],
        follow_up=extra,
    )


def _bought_after(
    shoppers: ShopperService,
    shopper: str,
    at_ms: int,
    campaign: Campaign,
    window_ms: int,
    to_ms: int | None = None,
) -> bool:
    try:
        purchases = shoppers.profile(shopper).purchases
    except LookupError:  # erased since: counted as not converted
        return False
    return _converted([(p.gtin, p.at_ms) for p in purchases], at_ms, campaign, window_ms, to_ms)


def _converted(
    purchases: Sequence[tuple[str, int]],
    at_ms: int,
    campaign: Campaign,
    window_ms: int,
    to_ms: int | None = None,
) -> bool:
    """Bought (the campaign's product, or anything) within the window after the
    decision, and before the range's end ``to_ms`` when given."""
    product = campaign.content.product_gtin
    return any(
        at_ms <= bought_ms <= at_ms + window_ms
        and (to_ms is None or bought_ms < to_ms)
        and (product is None or gtin == product)
        for gtin, bought_ms in purchases
    )


def _reasons(logged: Mapping[str, int]) -> str:
    return " · ".join(f"{words}: {n}" for _o, words, n in not_sent_reasons(logged))


class CampaignReport(Protocol):
    """A store's campaign report (``service/campaign_report.py``), every
    figure counted within ``from_ms <= at < to_ms`` (None: no bound)."""

    def __call__(
        self, store: str, *, from_ms: int | None = None, to_ms: int | None = None
    ) -> list[CampaignFigures]: ...
