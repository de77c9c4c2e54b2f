"""Alert rules and the alert log in memory (``ports.alerts``); behaves as
``adapters.alert_db.AlertRepository``."""

import threading
from collections.abc import Mapping, Sequence
from dataclasses import replace

from omnizone.server.domain.analytics.alerts import AlertLogEntry
from omnizone.server.service.ports.alerts import AlertStore, StoredAlertChange


class MemoryAlertStore(AlertStore):
    def __init__(self) -> None:
        self._rules: dict[str, dict[str, object]] = {}
        self._log: dict[int, StoredAlertChange] = {}
        self._next = 1
        self._lock = threading.Lock()

    def rules(self, store: str) -> Mapping[str, object] | None:
        with self._lock:
            found = self._rules.get(store)
            return dict(found) if found is not None else None

    def save_rules(self, store: str, rules: Mapping[str, object], at_ms: int) -> None:
        with self._lock:
            self._rules[store] = dict(rules)

    def append(self, store: str, entries: Sequence[AlertLogEntry]) -> list[int]:
        ids = []
        with self._lock:
            for entry in entries:
                self._log[self._next] = StoredAlertChange(self._next, store, entry, None, 0)
                ids.append(self._next)
                self._next += 1  # never reused, as AUTOINCREMENT
        return ids

    def log(self, store: str, from_ms: int, to_ms: int) -> list[StoredAlertChange]:
        with self._lock:
            rows = [
                c
                for c in self._log.values()
                if c.store == store and from_ms <= c.entry.at_ms < to_ms
            ]
        return sorted(rows, key=lambda c: (c.entry.at_ms, c.id))

    def undelivered(self, limit: int, max_attempts: int) -> list[StoredAlertChange]:
        with self._lock:
            rows = [
                c
                for _, c in sorted(self._log.items())
                if c.delivered_ms is None and c.attempts < max_attempts
            ]
        return rows[:limit]

    def mark(self, change_id: int, delivered_ms: int | None) -> None:
        with self._lock:
            found = self._log.get(change_id)
            if found is not None:
                self._log[change_id] = replace(
                    found,
                    attempts=found.attempts + 1,
                    delivered_ms=delivered_ms if delivered_ms is not None else found.delivered_ms,
                )

    def prune(self, older_than_ms: int) -> int:
        with self._lock:
            old = [i for i, c in self._log.items() if c.entry.at_ms < older_than_ms]
            for i in old:
                del self._log[i]
            return len(old)
