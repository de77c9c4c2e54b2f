"""The offer engine: what shoppers do in the store, turned into decisions and offers.

Placements from ingest become journey moments (``domain.offers.journey``);
fitting-room try-ons and shelf taps arrive as they happen. Each moment is a
``TriggerEvent`` for the pure ``decide``; every decision is logged with its
reason, and the one offer sent (if any) goes to delivery. Everything here is
bookkeeping around the two pure functions.
"""

import logging
import queue
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from zoneinfo import ZoneInfo

from omnizone.contract.timefmt import wall_clock_ms
from omnizone.server.domain.identity import may_log_decision, may_send_offer, may_store_location
from omnizone.server.domain.offers import (
    Campaign,
    CampaignTotals,
    Catalog,
    Decision,
    DecisionBatch,
    OfferHistory,
    SentOffer,
    ShopperContext,
    TriggerEvent,
    decide,
)
from omnizone.server.domain.offers.journey import Journey, follow
from omnizone.server.service.campaigns import CampaignAdmin
from omnizone.server.service.delivery import NewOffer
from omnizone.server.service.locators import ZonePlacement
from omnizone.server.service.ports.campaigns import (
    CampaignStore,
    LoggedDecision,
)
from omnizone.server.service.shopper_context import shopper_context
from omnizone.server.service.shoppers import ShopperService
from omnizone.store import StorePlan

log = logging.getLogger(__name__)

#: How many queued moments the engine decides before writing them down together.
MAX_BATCH = 2000


#: delivery (``OfferDelivery.publish_many``): the offers of one batch of
#: decisions, stored in one go
Publish = Callable[[Sequence[NewOffer]], object]
#: follow-ups (``FollowUpService.observe``): a batch's moments and the visits that ended
VisitListener = Callable[[Sequence[TriggerEvent], Sequence[tuple[str, str, str, int]]], object]
#: (store, shoppers, at_ms) -> per consented shopper its likely next products
#: and categories, most likely first (``PredictionService.likely``).
Likely = Callable[[str, Sequence[str], int], Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]]]


@dataclass(slots=True)
class _Effects:
    """What a batch of decisions writes. A burst (a crowd walking in) is then
    a few transactions, not a few per shopper, so the last offer of the burst
    is not queued behind hundreds of commits."""

    waiting: list["_Waiting"] = field(default_factory=list)
    new_trips: list[tuple[str, str, int, "_Trip"]] = field(default_factory=list)
    decisions: list[tuple[str, str, Sequence[Decision]]] = field(default_factory=list)
    offers: list[NewOffer] = field(default_factory=list)
    then: list[Callable[[], object]] = field(default_factory=list)
    # for the follow-ups after the visit: the batch's moments, and the visits
    # that ended in it as (store, shopper, visit id, left at ms)
    moments: list[TriggerEvent] = field(default_factory=list)
    ended: list[tuple[str, str, str, int]] = field(default_factory=list)


_Job = Callable[[_Effects], None]


#: Which campaign triggers a moment can fire (docs/offers.md).
_FIRED_BY: dict[str, frozenset[str]] = {
    "store_entered": frozenset({"store_entered", "returning_shopper"}),
    "zone_entered": frozenset({"zone_entered", "wishlist_item_in_zone", "cart_item_in_zone"}),
    "dwell": frozenset({"dwell"}),
    "zone_left": frozenset({"zone_left"}),
    "nfc_tap": frozenset({"nfc_tap"}),
    "try_on": frozenset({"try_on"}),
}


@dataclass(slots=True)
class _Trip:
    journey: Journey
    previous_visits: int | None  # None until the batch has read the store-visit count


@dataclass(frozen=True, slots=True)
class _Waiting:
    """A moment whose decision waits for the rest of its batch."""

    event: TriggerEvent  # previous_visits is filled in from the trip
    trip: _Trip | None
    published_ms: int | None


class OfferEngine:
    """Decides offers from what shoppers do; the campaigns come from ``CampaignAdmin``."""

    def __init__(
        self,
        stores: Mapping[str, StorePlan],
        campaigns: CampaignAdmin,
        repository: CampaignStore,
        catalog: Catalog,
        shoppers: ShopperService,
        publish: Publish,
        *,
        clock: Callable[[], int] = wall_clock_ms,
        background: bool = False,
        on_visits: VisitListener | None = None,
        likely: Likely | None = None,
    ) -> None:
        """``background``: placements and try-ons are queued and decided on the
        engine's own thread, so ingest never waits for a decision (the server);
        otherwise they are decided in the caller's thread (tests, replays).
        ``repository`` keeps the decision log, the store visits and the
        offers sent, which caps and budgets read."""
        self._stores = stores  # the running plans (RunningStores in the server), not a copy
        self._campaigns = campaigns
        self._repo = repository
        self.catalog = catalog
        self._shoppers = shoppers
        self._publish = publish
        self._clock = clock
        self._on_visits = on_visits
        self._likely = likely  # predicted next purchases, for likely_to_buy rules (issue 18)
        self._lock = threading.RLock()
        # Held while a batch's rows are written, with the shoppers' consent
        # read again inside: an erasure takes it once (``forget_shopper``)
        # after tombstoning the shopper, so a batch either wrote before the
        # erasure deletes, or sees the tombstone and writes nothing for them.
        self._write_lock = threading.Lock()
        self._trips: dict[tuple[str, str], _Trip] = {}  # (store, shopper) -> current trip
        self._sent_by_campaign: Counter[str] = Counter(repository.sent_by_campaign())
        self._history: dict[str, list[SentOffer]] = {}  # shopper -> offers sent (cache)
        self._queue: queue.Queue[_Job | None] | None = None
        self._worker: threading.Thread | None = None
        if background:
            self._queue = queue.Queue()
            self._worker = threading.Thread(target=self._work, name="offer-engine", daemon=True)
            self._worker.start()

    def now_ms(self) -> int:
        return self._clock()

    def decisions(
        self,
        *,
        store: str | None = None,
        campaign_id: str | None = None,
        shopper_id: str | None = None,
        limit: int = 1000,
    ) -> list[LoggedDecision]:
        """The decision log, newest first: why each offer was or was not sent."""
        return self._repo.decisions(
            store=store, campaign_id=campaign_id, shopper_id=shopper_id, limit=limit
        )

    # -- what happens in the store ---------------------------------------------------------

    def close(self) -> None:
        """Decide what is queued, then stop the engine's thread."""
        if self._queue is not None and self._worker is not None:
            self._queue.put(None)
            self._worker.join(30)
            self._queue = None

    def forget_shopper(self, shopper_id: str) -> None:
        """Erasure (the shopper is tombstoned already): waits for the batch
        being written, so nothing of it outlives the erasure's deletes, and
        nothing about the shopper stays in memory either."""
        with self._write_lock:
            self._forget(shopper_id)

    def _forget(self, shopper_id: str) -> None:
        with self._lock:
            self._history.pop(shopper_id, None)
            for key in [k for k in self._trips if k[1] == shopper_id]:
                del self._trips[key]

    def drain(self, timeout_s: float = 10.0) -> bool:
        """Wait until everything queued so far is decided (tests, shutdown)."""
        if self._queue is None:
            return True
        done = threading.Event()
        self._queue.put(lambda effects: effects.then.append(done.set))
        return done.wait(timeout_s)

    def on_placement(self, store: str, placement: ZonePlacement) -> None:
        """Ingest's placement listener (called for every device, every window)."""
        if ":" in placement.device:  # not a registered shopper (a beacon or tag key)
            return
        self._run(lambda effects: self._place(store, placement, effects))

    def on_try_on(self, store: str, reader: str, gtin: str, at_ms: int) -> None:
        """An item tried on in a fitting room: offered to the shoppers placed there."""
        self._run(lambda effects: self._try_on(store, reader, gtin, at_ms, effects))

    def on_tap(
        self, store: str, shopper_id: str, tap_point: str | None, gtin: str | None, at_ms: int
    ) -> DecisionBatch:
        """The app opened a shelf tag's product page (the phone read the tag)."""
        plan = self._stores[store]
        zone = next((t.zone for t in plan.nfc_tap_points if t.id == tap_point), None)
        with self._lock:
            trip = self._trips.get((store, shopper_id))
        effects = _Effects()
        effects.waiting.append(
            _Waiting(
                TriggerEvent(
                    kind="nfc_tap",
                    store=store,
                    shopper_id=shopper_id,
                    visit_id=trip.journey.visit_id if trip else self._day_visit(store, at_ms),
                    at_ms=at_ms,
                    zone=zone,
                    tap_point=tap_point,
                    product_gtin=gtin,
                ),
                trip,
                None,
            )
        )
        (batch,) = self._decide_waiting(effects)
        self._write(effects)  # the app waits for the answer: written now
        return batch

    # -- the engine's thread -----------------------------------------------------------------

    def _run(self, job: _Job) -> None:
        """On the engine's thread when there is one, else now."""
        if self._queue is not None:
            self._queue.put(job)
        else:
            effects = _Effects()
            job(effects)
            self._decide_waiting(effects)
            self._write(effects)

    def _work(self) -> None:
        assert self._queue is not None
        running = True
        while running:
            jobs = [self._queue.get()]
            while len(jobs) < MAX_BATCH:
                try:
                    jobs.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            effects = _Effects()
            for job in jobs:
                if job is None:
                    running = False
                    break
                try:
                    job(effects)
                except Exception:  # one bad placement must not stop the engine
                    log.exception("offer engine job failed")
            try:
                self._decide_waiting(effects)
                self._write(effects)
            except Exception:
                log.exception("offer engine could not decide %d moments", len(effects.waiting))

    def _write(self, effects: _Effects) -> None:
        """Decisions first (why), then the offers (what), then who waited.

        Only what each shopper's consent lets be kept is written, read again
        here under the write lock: a decision about a tracked moment needs
        location consent, a tap's needs offers consent, and an erased
        shopper gets nothing (docs/identity.md)."""
        try:
            with self._write_lock:
                decisions, offers = self._allowed(effects)
                if decisions:
                    self._repo.log_decision_batches(decisions)
                if offers:
                    try:
                        self._publish(offers)
                    except Exception:  # delivery must never stop the engine
                        log.exception("%d offers could not be delivered", len(offers))
                if self._on_visits is not None and (effects.moments or effects.ended):
                    try:
                        self._on_visits(effects.moments, effects.ended)
                    except Exception:  # follow-ups must never stop the engine
                        log.exception("follow-ups could not be scheduled")
        finally:
            for then in effects.then:
                then()

    def _allowed(
        self, effects: _Effects
    ) -> tuple[list[tuple[str, str, Sequence[Decision]]], list[NewOffer]]:
        shoppers = {d.shopper_id for _s, _k, batch in effects.decisions for d in batch}
        shoppers |= {o.shopper_id for o in effects.offers}
        consents = {s: self._shoppers.consent(s) for s in shoppers}
        for shopper, consent in consents.items():
            if consent is None:  # erased meanwhile: not even in memory
                self._forget(shopper)
        decisions: list[tuple[str, str, Sequence[Decision]]] = []
        for store, kind, batch in effects.decisions:
            kept = [d for d in batch if may_log_decision(consents[d.shopper_id], kind)]
            if kept:
                decisions.append((store, kind, kept))
        offers = [o for o in effects.offers if may_send_offer(consents[o.shopper_id])]
        return decisions, offers

    # -- from placements to moments (in memory) ----------------------------------------------

    def _place(self, store: str, placement: ZonePlacement, effects: _Effects) -> None:
        device = placement.device
        if self._shoppers.consent(device) is None:  # erased while this was queued
            self._forget(device)
            return
        with self._lock:
            key = (store, device)
            trip = self._trips.get(key)
            thresholds = self._dwell_thresholds(store)
            journey, moments = follow(
                trip.journey if trip else None, placement.zone, placement.at_ms, thresholds
            )
            current: _Trip | None
            if journey is None:
                current = None
                self._trips.pop(key, None)
                if trip is not None:  # left the store: the visit ended
                    ended = (store, device, trip.journey.visit_id, placement.at_ms)
                    effects.ended.append(ended)
            elif trip is None:
                current = self._trips[key] = _Trip(journey, None)
                effects.new_trips.append((store, device, journey.store_entered_ms, current))
            else:
                current = trip
                trip.journey = journey
        visit = journey or (trip.journey if trip else None)
        for moment in moments:
            effects.waiting.append(
                _Waiting(
                    TriggerEvent(
                        kind=moment.kind,
                        store=store,
                        shopper_id=device,
                        visit_id=visit.visit_id if visit else "",
                        at_ms=moment.at_ms,
                        zone=moment.zone,
                        dwell_s=moment.dwell_s,
                    ),
                    current,
                    placement.published_ms,
                )
            )

    def _try_on(self, store: str, reader: str, gtin: str, at_ms: int, effects: _Effects) -> None:
        plan = self._stores.get(store)  # read now: a saved layout may have moved the reader
        zone = next((r.zone for r in plan.rfid_readers if r.id == reader), None) if plan else None
        if zone is None:
            return
        with self._lock:
            there = [
                (s, t)
                for (st, s), t in self._trips.items()
                if st == store and t.journey.zone == zone
            ]
        for shopper, trip in there:
            effects.waiting.append(
                _Waiting(
                    TriggerEvent(
                        kind="try_on",
                        store=store,
                        shopper_id=shopper,
                        visit_id=trip.journey.visit_id,
                        at_ms=at_ms,
                        zone=zone,
                        product_gtin=gtin,
                    ),
                    trip,
                    None,
                )
            )

    # -- from moments to decisions (a batch at a time) ---------------------------------------

    def _decide_waiting(self, effects: _Effects) -> list[DecisionBatch]:
        """Decide every waiting moment in order, reading what the decisions need
        for the whole batch at once: store-visit counts, profiles, offer history."""
        self._count_new_trips(effects)
        with self._lock:
            listening = [(w, self._listening(w.event)) for w in effects.waiting]
        shoppers = sorted({w.event.shopper_id for w, campaigns in listening if campaigns})
        contexts = self._contexts(shoppers)
        self._add_predictions(contexts, listening)
        self._load_history(shoppers)
        batches = []
        for waiting, campaigns in listening:
            previous = waiting.trip.previous_visits if waiting.trip else None
            event = replace(waiting.event, previous_visits=previous or 0)
            if not campaigns:  # nothing listens for this moment: no profile read, no log
                batches.append(DecisionBatch(event, (), None))
                continue
            context = contexts[event.shopper_id]
            batches.append(self._handle(event, campaigns, context, waiting.published_ms, effects))
        effects.waiting.clear()
        effects.moments.extend(b.event for b in batches)
        return batches

    def _count_new_trips(self, effects: _Effects) -> None:
        """How many store visits came before each trip that started; recorded."""
        if not effects.new_trips:
            return
        by_store: dict[str, list[str]] = {}
        for store, shopper, _at, _trip in effects.new_trips:
            by_store.setdefault(store, []).append(shopper)
        counts = {
            (store, shopper): n
            for store, shoppers in by_store.items()
            for shopper, n in self._repo.store_visit_counts(store, shoppers).items()
        }
        for store, shopper, _at, trip in effects.new_trips:
            key = (store, shopper)
            trip.previous_visits = counts.get(key, 0)
            counts[key] = trip.previous_visits + 1  # a second trip in the same batch
        with self._write_lock:  # a store visit is a location: only with location consent
            consents = {sh: self._shoppers.consent(sh) for _st, sh, _at, _t in effects.new_trips}
            visits = [
                (st, sh, at)
                for st, sh, at, _t in effects.new_trips
                if may_store_location(consents[sh])
            ]
            if visits:
                self._repo.record_store_visits(visits)
        effects.new_trips.clear()

    def _listening(self, event: TriggerEvent) -> list[Campaign]:
        fired_by = _FIRED_BY[event.kind]
        return [c for c in self._campaigns.campaigns(event.store) if c.trigger.kind in fired_by]

    def _load_history(self, shoppers: Sequence[str]) -> None:
        with self._lock:
            missing = [s for s in shoppers if s not in self._history]
        if missing:
            found = self._repo.sent_to_many(missing)
            with self._lock:
                for shopper in missing:
                    self._history.setdefault(shopper, found.get(shopper, []))

    def _handle(
        self,
        event: TriggerEvent,
        campaigns: list[Campaign],
        shopper: ShopperContext,
        published_ms: int | None,
        effects: _Effects,
    ) -> DecisionBatch:
        with self._lock:
            history = self._history.setdefault(event.shopper_id, [])
            totals = CampaignTotals(dict(self._sent_by_campaign))
        batch = decide(
            event,
            shopper,
            campaigns,
            OfferHistory(tuple(history)),
            totals,
            self.catalog,
            self._stores[event.store].store.timezone,
            event.at_ms,  # the store's event time: schedules and caps follow what happened
        )
        effects.decisions.append((event.store, event.kind, batch.decisions))
        sent = batch.sent
        if sent is not None:
            with self._lock:
                self._sent_by_campaign[sent.campaign_id] += 1
                history.append(SentOffer(sent.campaign_id, sent.at_ms, sent.visit_id))
        if batch.offer is not None:
            effects.offers.append(NewOffer(event.shopper_id, batch.offer, published_ms))
        return batch

    def _contexts(self, shopper_ids: Sequence[str]) -> dict[str, ShopperContext]:
        """What decisions know of each shopper, read for all of them at once."""
        consents = {s: self._shoppers.consent(s) for s in shopper_ids}
        known = [s for s, consent in consents.items() if consent is not None]
        profiles = self._shoppers.profiles(known)
        loyalty = self._shoppers.loyalty_ids(known)
        contexts = {}
        for shopper_id, consent in consents.items():
            profile = profiles.get(shopper_id)
            contexts[shopper_id] = shopper_context(
                shopper_id, consent, profile, loyalty.get(shopper_id)
            )
        return contexts

    def _add_predictions(
        self,
        contexts: dict[str, ShopperContext],
        listening: Sequence[tuple[_Waiting, list[Campaign]]],
    ) -> None:
        """Predicted next purchases, read only for shoppers a campaign with a
        likely_to_buy rule listens for (the prediction needs their consent)."""
        if self._likely is None:
            return
        wanted: dict[str, tuple[int, set[str]]] = {}
        for waiting, campaigns in listening:
            if any(r.rule == "likely_to_buy" for c in campaigns for r in c.conditions.segments):
                event = waiting.event
                at, who = wanted.setdefault(event.store, (event.at_ms, set()))
                who.add(event.shopper_id)
                wanted[event.store] = (max(at, event.at_ms), who)
        for store, (at_ms, who) in wanted.items():
            for shopper, (products, categories) in self._likely(store, sorted(who), at_ms).items():
                if shopper in contexts:
                    contexts[shopper] = replace(
                        contexts[shopper],
                        likely_products=products,
                        likely_categories=categories,
                    )

    def _day_visit(self, store: str, at_ms: int) -> str:
        """A shopper the store does not place (no location consent) still has
        visits for the caps: one per store day."""
        tz = ZoneInfo(self._stores[store].store.timezone)
        return "day-" + datetime.fromtimestamp(at_ms / 1000, tz).date().isoformat()

    def _dwell_thresholds(self, store: str) -> list[float]:
        return [
            c.trigger.min_dwell_s
            for c in self._campaigns.campaigns(store)
            if c.status == "active" and c.trigger.kind == "dwell"
        ]
