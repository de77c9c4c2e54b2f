"""The store event stream for other systems (issue 18 point 8): events read
from the outbox after a cursor, as Segment ``track`` messages (the SSE
route), and pushed to webhook subscriptions in Segment ``batch`` bodies with
retries (``deliver_once``, run by the alert loop every few seconds).

The events are made by the pure ``domain.analytics.event_stream``; ingest
writes the location, tap and try-on ones in its own transaction, and this
service the offer ones, told by offer delivery. ``identified(shopper)`` is
asked when an event is sent: ``userId`` goes only to shoppers who consent to
``personalized_offers`` then (docs/event-stream.md, "Consent").
"""

import logging
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Protocol

from omnizone.contract.timefmt import wall_clock_ms
from omnizone.server.domain.analytics.event_stream import (
    EVENT_NAMES,
    OFFER_OPENED,
    OFFER_REDEEMED,
    OFFER_SENT,
    StoredEvent,
    iso_time,
    offer_event,
    parse_cursor,
    segment_message,
)
from omnizone.server.service.analytics import UnknownStore
from omnizone.server.service.delivery import DeliveredOffer, Redemption
from omnizone.server.service.endpoints import EndpointGuard, EndpointRefused
from omnizone.server.service.ports.events import EventOutbox, Subscription

log = logging.getLogger(__name__)

BATCH = 500  # events per SSE read and per webhook body


class BadSubscription(ValueError):
    def __init__(self, where: str, what: str) -> None:
        super().__init__(f"{where}: {what}")
        self.where, self.what = where, what


class Sender(Protocol):
    def __call__(self, payload: Mapping[str, object], delivery_id: str | None = None) -> object: ...


def _wall_ms() -> int:
    return wall_clock_ms()


class EventStream:
    def __init__(
        self,
        stores: Callable[[], Iterable[str]],
        outbox: EventOutbox,
        identified: Callable[[str], bool],
        *,
        guard: EndpointGuard | None = None,
        sender_for: Callable[[str], Sender] | None = None,
        settle_ms: int = 0,
        clock_ms: Callable[[], int] = _wall_ms,
    ) -> None:
        """``sender_for(url)``: a signed webhook to ``url`` (None: subscriptions
        are refused). ``settle_ms``: events stored more recently than this are
        not read yet (PostgreSQL may commit sequence numbers out of order)."""
        self._stores = stores
        self._outbox = outbox
        self._identified = identified
        self._guard = guard or EndpointGuard()
        self._sender_for = sender_for
        self._senders: dict[str, Sender] = {}
        self._settle_ms = settle_ms
        self._clock_ms = clock_ms
        self._lock = threading.Lock()

    def _check_store(self, store: str) -> None:
        if store not in set(self._stores()):
            raise UnknownStore(f"unknown store {store!r}")

    # -- reading ----------------------------------------------------------------------

    def messages(self, events: Sequence[StoredEvent]) -> list[dict[str, object]]:
        known: dict[str, bool] = {}
        out = []
        for e in events:
            who = e.device
            if who is not None and who not in known:
                known[who] = self._identified(who)
            out.append(segment_message(e, bool(who is not None and known.get(who))))
        return out

    def after(
        self, store: str, cursor: str | None, limit: int = BATCH
    ) -> list[tuple[str, str, dict[str, object]]]:
        """(cursor, event name, message) of the events after ``cursor`` (None: the
        oldest kept); ``ValueError`` for a malformed cursor, ``UnknownStore``."""
        self._check_store(store)
        seq = parse_cursor(cursor) if cursor is not None else 0
        events = self._outbox.after(store, seq, limit, self._settled_before())
        return [(e.cursor, e.event, m) for e, m in zip(events, self.messages(events), strict=True)]

    def _settled_before(self) -> int | None:
        return self._clock_ms() - self._settle_ms if self._settle_ms > 0 else None

    # -- offers (told by delivery) ---------------------------------------------------

    def on_offers(self, offers: Sequence[DeliveredOffer]) -> None:
        events = [
            offer_event(
                OFFER_SENT,
                o.store,
                o.shopper_id,
                o.offer_id,
                o.campaign_id,
                o.created_ms,
                zone=str(o.trigger["zone"]) if o.trigger.get("zone") else None,
            )
            for o in offers
        ]
        self._add(events)

    def on_opened(self, shopper_id: str, offer_id: str, at_ms: int) -> None:
        facts = self._outbox.offer_facts(offer_id)
        if facts is not None:
            store, _shopper, campaign = facts
            self._add([offer_event(OFFER_OPENED, store, shopper_id, offer_id, campaign, at_ms)])

    def on_redeemed(self, done: Redemption) -> None:
        facts = self._outbox.offer_facts(done.offer_id)
        if facts is not None:
            _store, shopper, _campaign = facts
            self._add(
                [
                    offer_event(
                        OFFER_REDEEMED,
                        done.store,
                        shopper,
                        done.offer_id,
                        done.campaign_id,
                        done.redeemed_ms,
                    )
                ]
            )

    def _add(self, events: list) -> None:  # type: ignore[type-arg]
        try:
            self._outbox.add(events, self._clock_ms())
        except Exception:  # the stream must never fail an offer
            log.warning("event outbox: %d offer events not stored", len(events), exc_info=True)

    # -- webhook subscriptions --------------------------------------------------------

    def subscribe(
        self, store: str, url: str, events: Sequence[str], from_cursor: str | None = None
    ) -> Subscription:
        self._check_store(store)
        if self._sender_for is None:
            raise BadSubscription(
                "url", "event webhooks are off: set OMNIZONE_EVENT_WEBHOOK_SECRET"
            )
        try:
            self._guard.check_url(url)
        except EndpointRefused as error:
            raise BadSubscription("url", str(error)) from None
        unknown = sorted(set(events) - set(EVENT_NAMES))
        if unknown:
            raise BadSubscription(
                "events", f"unknown event {unknown[0]!r} (known: {', '.join(EVENT_NAMES)})"
            )
        try:
            cursor = (
                parse_cursor(from_cursor)
                if from_cursor is not None
                else self._outbox.last_seq(store)
            )
        except ValueError as error:
            raise BadSubscription("from_cursor", str(error)) from None
        sub = Subscription(
            str(uuid.uuid4()), store, url, tuple(dict.fromkeys(events)), cursor, self._clock_ms()
        )
        self._outbox.add_subscription(sub)
        return sub

    def subscriptions(self, store: str) -> list[Subscription]:
        self._check_store(store)
        return self._outbox.subscriptions(store)

    def unsubscribe(self, store: str, sub_id: str) -> bool:
        self._check_store(store)
        return self._outbox.remove_subscription(store, sub_id)

    def _sender(self, url: str) -> Sender:
        assert self._sender_for is not None
        with self._lock:
            found = self._senders.get(url)
            if found is None:
                found = self._senders[url] = self._sender_for(url)
            return found

    def deliver_once(self) -> int:
        """Each subscription's next batch after its cursor, as one Segment
        ``batch`` body; the cursor moves on only when the receiver took it
        (at least once: ``messageId`` and the delivery id dedupe)."""
        if self._sender_for is None:
            return 0
        sent = 0
        for sub in self._outbox.subscriptions():
            events = self._outbox.after(sub.store, sub.cursor, BATCH, self._settled_before())
            if not events:
                continue
            wanted = [e for e in events if not sub.events or e.event in sub.events]
            last = events[-1].seq
            if not wanted:
                self._outbox.advance(sub.id, last, 0)
                continue
            body = {
                "batch": self.messages(wanted),
                "sentAt": iso_time(self._clock_ms()),
                "context": {"omnizone": {"store": sub.store, "subscription": sub.id}},
            }
            result = self._sender(sub.url)(body, f"{sub.id}:{events[0].seq}-{last}")
            if getattr(result, "delivered", True):
                self._outbox.advance(sub.id, last, len(wanted))
                sent += len(wanted)
            else:
                self._outbox.failed(sub.id, str(getattr(result, "error", "not delivered")))
        return sent
