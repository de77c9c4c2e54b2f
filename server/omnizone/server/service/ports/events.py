"""What the event stream reads and writes (issue 18 point 8): the outbox of
stored events and the webhook subscriptions."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from omnizone.server.domain.analytics.event_stream import OutboxEvent, StoredEvent


@dataclass(frozen=True, slots=True)
class Subscription:
    id: str
    store: str
    url: str
    events: tuple[str, ...]  # empty: every event
    cursor: int  # the last event sent (or skipped)
    created_ms: int
    delivered: int = 0
    failures: int = 0
    last_error: str | None = None

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "store": self.store,
            "url": self.url,
            "events": list(self.events),
            "cursor": str(self.cursor),
            "created_ms": self.created_ms,
            "delivered": self.delivered,
            "failures": self.failures,
            "last_error": self.last_error,
        }


class EventOutbox(Protocol):
    """Implemented by ``adapters.event_db.EventRepository``."""

    def add(self, events: Sequence[OutboxEvent], stored_ms: int) -> None: ...

    def after(
        self, store: str, after_seq: int, limit: int, stored_before_ms: int | None = None
    ) -> list[StoredEvent]: ...

    def last_seq(self, store: str) -> int: ...

    def offer_facts(self, offer_id: str) -> tuple[str, str, str] | None:
        """(store, shopper id, campaign id) of a stored offer, None when unknown."""
        ...

    def prune(self, older_than_ms: int) -> int: ...

    def add_subscription(self, sub: Subscription) -> None: ...

    def subscriptions(self, store: str | None = None) -> list[Subscription]: ...

    def remove_subscription(self, store: str, sub_id: str) -> bool: ...

    def advance(self, sub_id: str, cursor: int, delivered: int) -> None: ...

    def failed(self, sub_id: str, error: str) -> None: ...
