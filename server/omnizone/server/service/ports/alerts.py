"""What the alerts read and write beyond the stays and the fleet: the stored
rules of each store and the alert log (issue 18 point 7)."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from omnizone.server.domain.analytics.alerts import AlertLogEntry


@dataclass(frozen=True, slots=True)
class StoredAlertChange:
    """An alert log row: the change, and whether the webhook has it yet."""

    id: int
    store: str
    entry: AlertLogEntry
    delivered_ms: int | None
    attempts: int


class AlertStore(Protocol):
    """Implemented by ``adapters.alert_db.AlertRepository``."""

    def rules(self, store: str) -> Mapping[str, object] | None:
        """The store's saved rules (``rules_json``), None when never saved."""
        ...

    def save_rules(self, store: str, rules: Mapping[str, object], at_ms: int) -> None: ...

    def append(self, store: str, entries: Sequence[AlertLogEntry]) -> list[int]:
        """Store the changes; their ids, in order."""
        ...

    def log(self, store: str, from_ms: int, to_ms: int) -> list[StoredAlertChange]:
        """The store's changes with ``from_ms <= at_ms < to_ms``, oldest first."""
        ...

    def undelivered(self, limit: int, max_attempts: int) -> list[StoredAlertChange]:
        """Changes the webhook has not taken yet (fewer than ``max_attempts``), oldest first."""
        ...

    def mark(self, change_id: int, delivered_ms: int | None) -> None:
        """One more attempt; ``delivered_ms`` set when it was delivered."""
        ...

    def prune(self, older_than_ms: int) -> int: ...
