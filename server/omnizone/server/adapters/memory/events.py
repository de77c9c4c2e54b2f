"""The event stream's outbox and subscriptions in memory (``ports.events``);
behaves as ``adapters.event_db.EventRepository``. Offers' facts come from
the in-memory offer store when one is given."""

import threading
from collections.abc import Callable, Sequence
from dataclasses import replace

from omnizone.server.domain.analytics.event_stream import OutboxEvent, StoredEvent
from omnizone.server.service.ports.events import EventOutbox, Subscription


class MemoryEventOutbox(EventOutbox):
    def __init__(
        self, offer_facts: Callable[[str], tuple[str, str, str] | None] | None = None
    ) -> None:
        self._events: dict[int, tuple[StoredEvent, int]] = {}  # seq -> (event, stored_ms)
        self._ids: set[str] = set()
        self._subs: dict[str, Subscription] = {}
        self._next = 1
        self._facts = offer_facts
        self._lock = threading.Lock()

    def add(self, events: Sequence[OutboxEvent], stored_ms: int) -> None:
        with self._lock:
            for e in events:
                if e.message_id in self._ids:
                    continue
                self._ids.add(e.message_id)
                stored = StoredEvent(
                    self._next,
                    e.store,
                    e.event,
                    e.at_ms,
                    e.device,
                    dict(e.properties),
                    e.message_id,
                )
                self._events[self._next] = (stored, stored_ms)
                self._next += 1

    def after(
        self, store: str, after_seq: int, limit: int, stored_before_ms: int | None = None
    ) -> list[StoredEvent]:
        with self._lock:
            found = [
                e
                for seq, (e, stored_ms) in sorted(self._events.items())
                if e.store == store
                and seq > after_seq
                and (stored_before_ms is None or stored_ms < stored_before_ms)
            ]
        return found[:limit]

    def last_seq(self, store: str) -> int:
        with self._lock:
            return max((s for s, (e, _) in self._events.items() if e.store == store), default=0)

    def offer_facts(self, offer_id: str) -> tuple[str, str, str] | None:
        return self._facts(offer_id) if self._facts is not None else None

    def prune(self, older_than_ms: int) -> int:
        with self._lock:
            old = [s for s, (_, stored_ms) in self._events.items() if stored_ms < older_than_ms]
            for s in old:
                self._ids.discard(self._events.pop(s)[0].message_id)
            return len(old)

    def erase_device(self, device: str) -> int:
        with self._lock:
            gone = [s for s, (e, _) in self._events.items() if e.device == device]
            for s in gone:
                self._ids.discard(self._events.pop(s)[0].message_id)
            return len(gone)

    def device_events(self, device: str) -> list[dict[str, object]]:
        with self._lock:
            return [
                {
                    "seq": e.seq,
                    "store": e.store,
                    "event": e.event,
                    "at_ms": e.at_ms,
                    "stored_ms": stored_ms,
                    "properties": dict(e.properties),
                    "message_id": e.message_id,
                }
                for _, (e, stored_ms) in sorted(self._events.items())
                if e.device == device
            ]

    def add_subscription(self, sub: Subscription) -> None:
        with self._lock:
            self._subs[sub.id] = sub

    def subscriptions(self, store: str | None = None) -> list[Subscription]:
        with self._lock:
            subs = [s for s in self._subs.values() if store is None or s.store == store]
        return sorted(subs, key=lambda s: (s.created_ms, s.id))

    def remove_subscription(self, store: str, sub_id: str) -> bool:
        with self._lock:
            found = self._subs.get(sub_id)
            if found is None or found.store != store:
                return False
            del self._subs[sub_id]
            return True

    def advance(self, sub_id: str, cursor: int, delivered: int) -> None:
        with self._lock:
            s = self._subs.get(sub_id)
            if s is not None:
                self._subs[sub_id] = replace(
                    s, cursor=cursor, delivered=s.delivered + delivered, last_error=None
                )

    def failed(self, sub_id: str, error: str) -> None:
        with self._lock:
            s = self._subs.get(sub_id)
            if s is not None:
                self._subs[sub_id] = replace(s, failures=s.failures + 1, last_error=error[:255])
