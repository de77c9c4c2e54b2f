"""Follow-ups after the visit: scheduled when a visit ends, sent when due.

The offer engine hands every moment of a visit to ``observe`` (and says when
the shopper left the store); the visit's facts are folded in memory by the
pure ``domain.offers.follow_ups.observe``, and when it ends the pure
``plan_follow_ups`` says which follow-ups are due when. Those are written to
the ``follow_ups`` table at once, so a restart or a SIGKILL loses none.

A runner (``run_due``, on its own thread every ``interval_s`` in the server)
claims the due rows, decides each with the pure ``decide_follow_up`` (the
in-store checks: consent, caps, quiet hours, holdout) and delivers the
offer: Web Push to the shopper's phone through ``OfferDelivery``, or a
signed webhook to the retailer's email/CRM system. Each step is idempotent
(adapters/follow_up_db.py): a follow-up is decided and logged once, and its
offer stored once, whatever crashes in between. docs/offers.md,
"Follow-ups after the visit".
"""

import logging
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from omnizone.contract.timefmt import wall_clock_ms
from omnizone.server.domain.identity import may_log_decision, may_send_offer, may_store_location
from omnizone.server.domain.offers import (
    Campaign,
    CampaignTotals,
    Catalog,
    OfferDraft,
    OfferHistory,
    Outcome,
    Purchase,
    ShopperContext,
    TriggerEvent,
    campaign_lift,
)
from omnizone.server.domain.offers.explain import lift_in_words
from omnizone.server.domain.offers.follow_ups import (
    IN_STORE_CHANNELS,
    VisitFacts,
    attributed_purchase,
    decide_follow_up,
    end_visit,
    is_follow_up,
    observe,
    plan_follow_ups,
)
from omnizone.server.service.delivery import DeliveredOffer, NewOffer, NoOfferConsent, OfferStore
from omnizone.server.service.ports.campaigns import CampaignStore
from omnizone.server.service.ports.follow_ups import FollowUpRecord, FollowUpStorage
from omnizone.server.service.shopper_context import shopper_context
from omnizone.server.service.shoppers import ShopperService
from omnizone.store import StorePlan

log = logging.getLogger(__name__)

__all__ = ["FollowUpRun", "FollowUpService", "follow_up_figures"]

#: A runner's claim on a due follow-up; a crashed runner's rows are taken again after it.
LEASE_MS = 5 * 60_000
#: Webhook deliveries tried (each with the webhook's own retries) before giving up.
MAX_ATTEMPTS = 5

#: ``OfferDelivery.publish``: store the offer, hand it to the phone, Web Push fallback.
Publish = Callable[[str, OfferDraft], DeliveredOffer]
#: The signed webhook to the retailer's email/CRM system: True once accepted (2xx).
Webhook = Callable[[Mapping[str, object]], bool]
#: A visit that ended: (store, shopper, visit id, left at ms).
Ended = tuple[str, str, str, int]


@dataclass
class FollowUpRun:
    """What one ``run_due`` did."""

    claimed: int = 0
    sent: int = 0
    held_out: int = 0
    not_sent: int = 0
    postponed: int = 0
    failed: int = 0
    retrying: int = 0


class FollowUpService:
    def __init__(
        self,
        stores: Mapping[str, StorePlan],
        campaigns: Callable[[str], list[Campaign]],
        storage: FollowUpStorage,
        decisions: CampaignStore,
        catalog: Catalog,
        shoppers: ShopperService,
        offers: OfferStore,
        publish: Publish,
        *,
        webhook: Webhook | None = None,
        clock: Callable[[], int] = wall_clock_ms,
        interval_s: float = 30.0,
    ) -> None:
        """``campaigns(store)``: the store's campaigns as they are now;
        ``offers``: where a webhook follow-up's offer is stored (no push)."""
        self._stores = stores
        self._campaigns = campaigns
        self._storage = storage
        self._decisions = decisions
        self._catalog = catalog
        self._shoppers = shoppers
        self._offers = offers
        self._publish = publish
        self._webhook = webhook
        self._clock = clock
        self._interval_s = interval_s
        self._lock = threading.Lock()
        self._visits: dict[tuple[str, str], VisitFacts] = {}  # (store, shopper) -> visit so far
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._run_lock = threading.Lock()
        # Held while one follow-up is decided and delivered, with the consent
        # read inside: an erasure takes it (``forget_shopper``, before the
        # decision log is deleted), so a follow-up either was written before
        # the deletes or sees the tombstone and writes nothing.
        self._erasing = threading.Lock()

    # -- the engine's side: visits, and follow-ups scheduled when they end ---------------

    def _listens(self, store: str) -> bool:
        return any(is_follow_up(c) and c.status == "active" for c in self._campaigns(store))

    def observe(self, moments: Sequence[TriggerEvent], ended: Sequence[Ended]) -> int:
        """Fold the moments into their visits; schedule the follow-ups of the
        visits that ended. How many follow-ups were new."""
        finished: list[VisitFacts] = []
        listening = {store: self._listens(store) for store in {e.store for e in moments}}
        with self._lock:
            for event in moments:
                if event.kind == "visit_ended" or not listening[event.store]:
                    continue
                key = (event.store, event.shopper_id)
                self._visits[key] = observe(self._visits.get(key), event)
            for store, shopper, visit_id, at_ms in ended:
                facts = self._visits.pop((store, shopper), None)
                if facts is not None and facts.visit_id == visit_id:
                    finished.append(end_visit(facts, at_ms))
        return self._schedule(finished)

    def _schedule(self, visits: Sequence[VisitFacts]) -> int:
        plans = []
        for visit in visits:
            consent = self._shoppers.consent(visit.shopper_id)
            if not (may_store_location(consent) and may_send_offer(consent)):
                continue  # nothing is kept about a visit the shopper did not allow
            plan = self._stores.get(visit.store)
            if plan is None:
                continue
            try:
                wishlist = frozenset(self._shoppers.profile(visit.shopper_id).wishlist)
            except LookupError:
                continue
            plans += plan_follow_ups(
                visit, self._campaigns(visit.store), wishlist, self._catalog, plan.store.timezone
            )
        return self._storage.schedule(plans, self._clock()) if plans else 0

    def forget_shopper(self, shopper_id: str) -> None:
        """Erasure (the shopper is tombstoned already): waits for the follow-up
        being sent, and drops the visit in memory."""
        with self._erasing, self._lock:
            for key in [k for k in self._visits if k[1] == shopper_id]:
                del self._visits[key]

    def erase_shopper(self, shopper_id: str) -> int:
        self.forget_shopper(shopper_id)
        return self._storage.erase_shopper(shopper_id)

    def export_shopper(self, shopper_id: str) -> list[dict[str, Any]]:
        return self._storage.export_shopper(shopper_id)

    # -- the runner: due follow-ups decided and delivered -----------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="follow-ups", daemon=True)
            self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self.run_due()
            except Exception:  # the next run tries again
                log.exception("follow-up run failed")

    def run_due(self, now_ms: int | None = None, limit: int = 500) -> FollowUpRun:
        """Decide and deliver the follow-ups due by ``now_ms`` (the clock's now)."""
        with self._run_lock:
            now = self._clock() if now_ms is None else now_ms
            run = FollowUpRun()
            records = self._storage.claim_due(now, LEASE_MS, limit)
            run.claimed = len(records)
            totals: Counter[str] = Counter(self._decisions.sent_by_campaign())
            for record in records:
                try:
                    with self._erasing:
                        self._one(record, now, totals, run)
                except Exception:
                    log.exception("follow-up %s failed", record.plan.follow_up_id)
                    self._storage.release(record.plan.follow_up_id, now)
                    run.retrying += 1
            return run

    def _one(
        self, record: FollowUpRecord, now: int, totals: Counter[str], run: FollowUpRun
    ) -> None:
        plan = record.plan
        if record.status == "sending" and record.draft is not None:
            self._deliver(record, record.draft, now, run)  # decided before a restart
            return
        consent = self._shoppers.consent(plan.shopper_id)
        campaign = next((c for c in self._campaigns(plan.store) if c.id == plan.campaign_id), None)
        shopper = self._context(plan.shopper_id, consent)
        timezone = self._stores[plan.store].store.timezone if plan.store in self._stores else "UTC"
        result = decide_follow_up(
            plan,
            campaign,
            shopper,
            OfferHistory(tuple(self._decisions.sent_to(plan.shopper_id))),
            CampaignTotals(dict(totals)),
            self._catalog,
            timezone,
            now,
        )
        decision = result.decision
        if result.retry_at_ms is not None:
            self._storage.postpone(plan.follow_up_id, now, result.retry_at_ms)
            run.postponed += 1
            return
        sent = decision.outcome is Outcome.SENT
        status = {Outcome.SENT: "sending", Outcome.HELD_OUT: "held_out"}.get(
            decision.outcome, "not_sent"
        )
        decided = self._storage.decide(
            plan.follow_up_id,
            now,
            decision,
            status=status,
            draft=result.offer,
            log=may_log_decision(consent, "visit_ended"),
            store=plan.store,
            done_ms=None if sent else now,
        )
        if not decided:
            return  # another runner has it
        if not sent:
            run.held_out += decision.outcome is Outcome.HELD_OUT
            run.not_sent += decision.outcome is not Outcome.HELD_OUT
            return
        totals[plan.campaign_id] += 1
        assert result.offer is not None
        self._deliver(record, result.offer, now, run)

    def _deliver(
        self, record: FollowUpRecord, draft: OfferDraft, now: int, run: FollowUpRun
    ) -> None:
        plan = record.plan
        code = draft.coupon_code or ""
        offer_id = self._storage.offer_with_code(code)  # stored before a crash: not again
        try:
            if plan.via == "web_push":
                if offer_id is None:
                    offer_id = self._publish(plan.shopper_id, draft).offer_id
            else:
                if offer_id is None:
                    (stored,) = self._offers.add_offers(
                        [NewOffer(plan.shopper_id, draft)],
                        created_ms=now,
                        new_code=lambda _draft: code,
                    )
                    offer_id = stored.offer_id
                if self._webhook is None or not self._webhook(self._payload(plan, draft, code)):
                    if record.attempts >= MAX_ATTEMPTS or self._webhook is None:
                        self._storage.finish(plan.follow_up_id, now, "failed", now, offer_id)
                        run.failed += 1
                    else:
                        self._storage.release(plan.follow_up_id, now)
                        run.retrying += 1
                    return
        except NoOfferConsent:  # withdrawn between the decision and the delivery
            self._storage.finish(plan.follow_up_id, now, "failed", now, None)
            run.failed += 1
            return
        self._storage.finish(plan.follow_up_id, now, "sent", now, offer_id)
        run.sent += 1

    def _payload(self, plan: Any, draft: OfferDraft, code: str) -> dict[str, object]:
        """What the retailer's email/CRM system receives; ``follow_up_id`` is
        the idempotency key (a retry after a crash sends the same one)."""
        loyalty = self._shoppers.loyalty_ids([plan.shopper_id]).get(plan.shopper_id)
        return {
            "type": "follow_up",
            "follow_up_id": plan.follow_up_id,
            "campaign_id": plan.campaign_id,
            "store": plan.store,
            "shopper_id": plan.shopper_id,
            "loyalty_id": loyalty,
            "trigger": plan.kind,
            "visit_ended_ms": plan.trigger_ms,
            "products": list(plan.products),
            "offer": {
                "title": draft.title,
                "body": draft.body,
                "image": draft.image,
                "product_gtin": draft.product_gtin,
                "coupon_code": code,
                "expires_ms": draft.expires_ms,
            },
        }

    def _context(self, shopper_id: str, consent: Any) -> ShopperContext:
        try:
            profile = self._shoppers.profile(shopper_id) if consent is not None else None
        except LookupError:
            profile = None
        loyalty = self._shoppers.loyalty_ids([shopper_id]).get(shopper_id) if profile else None
        return shopper_context(shopper_id, consent, profile, loyalty)

    def status_counts(self) -> dict[str, int]:
        return self._storage.counts()


# -- the campaign report's follow-up figures -------------------------------------------


def follow_up_figures(
    campaign: Campaign,
    records: Sequence[FollowUpRecord],
    purchases: Mapping[str, Sequence[Purchase]],
    *,
    to_ms: int | None = None,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """A follow-up campaign's figures: scheduled, pending, sent, held out, not
    sent (by reason), and the purchases credited to it within its
    attribution window, online or in store, with the lift over the holdout.

    A shopper is in the group of their first follow-up decided sent or held
    out, and converts with a purchase (the campaign's product, else one of the
    products the visit named, else any) within the window after that decision."""
    window_s = int(getattr(campaign.trigger, "attribution", 7 * 86_400))
    status = Counter(r.status for r in records)
    not_sent = Counter(r.outcome for r in records if r.status == "not_sent" and r.outcome)
    first: dict[str, FollowUpRecord] = {}
    for record in sorted(
        (r for r in records if r.outcome in (Outcome.SENT, Outcome.HELD_OUT)),
        key=lambda r: (r.decided_ms or 0, r.plan.follow_up_id),
    ):
        first.setdefault(record.plan.shopper_id, record)
    converted: dict[str, Purchase] = {}
    for shopper, record in first.items():
        products = (
            (campaign.content.product_gtin,)
            if campaign.content.product_gtin
            else record.plan.products
        )
        hit = attributed_purchase(
            record.decided_ms or 0, window_s, products, purchases.get(shopper, ()), to_ms
        )
        if hit is not None:
            converted[shopper] = hit
    treated = [s for s, r in first.items() if r.outcome == Outcome.SENT]
    control = [s for s, r in first.items() if r.outcome == Outcome.HELD_OUT]
    treated_won = [s for s in treated if s in converted]
    control_won = [s for s in control if s in converted]
    lift = campaign_lift(len(treated), len(treated_won), len(control), len(control_won), confidence)
    in_store = [s for s in treated_won if converted[s].channel in IN_STORE_CHANNELS]
    return {
        "trigger": campaign.trigger.kind,
        "via": getattr(campaign.trigger, "via", None),
        "after_s": getattr(campaign.trigger, "after", None),
        "attribution_window_s": window_s,
        "scheduled": len(records),
        "pending": status["pending"] + status["sending"],
        "sent": status["sent"],
        "held_out": status["held_out"],
        "not_sent": status["not_sent"],
        "failed": status["failed"],
        "not_sent_reasons": dict(sorted(not_sent.items())),
        "treated_shoppers": len(treated),
        "treated_converted": len(treated_won),
        "control_shoppers": len(control),
        "control_converted": len(control_won),
        "converted_in_store": len(in_store),
        "converted_online": len(treated_won) - len(in_store),
        "revenue": round(sum(converted[s].amount for s in treated_won), 2),
        "lift": asdict(lift),
        "lift_words": lift_in_words(lift),
    }
