"""Passers-by counted, not tracked (issue 18, point 4; docs/analytics.md,
"Capture rate"; docs/security.md).

Ingest hands this counter, after each commit, what a store's street-front
gateways heard that is not a shopper whose location may be stored: the
advertised key of a phone nobody registered, or the id of a registered
shopper who allows no location analytics. Per store and store-local hour
the counter keeps, in memory only, a random salt drawn when the hour opens
and the set of the phones' salted digests (``passer_digest``). The count of
that set is what is written (``ports.passers_by``), nothing else. When a
newer hour opens, the hour before last is closed: its salt and its set are
dropped, so no digest can ever be compared with another hour's, another
day's or another store's. One hour back stays open for windows that arrive
late (a gateway draining its outbox); older windows are counted as ``late``
and dropped.

Counting a set is idempotent: a batch that is redelivered after a rollback
counts nobody twice. After a restart the hour's stored count is the base
and the new set adds to it, so a phone heard before and after the restart
counts twice (an over-count bounded by one hour's passers-by).
"""

import secrets
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from omnizone.server.domain.analytics.capture import hour_start, passer_digest
from omnizone.server.domain.analytics.timeline import HOUR_MS
from omnizone.server.service.ports.passers_by import PassersByCounts
from omnizone.store import StorePlan

#: How many hours stay open per store: the current one and the one before.
OPEN_HOURS = 2


@dataclass(slots=True)
class _Hour:
    salt: bytes
    base: int  # the count stored before this process opened the hour
    digests: set[bytes] = field(default_factory=set)
    saved: int | None = None

    @property
    def count(self) -> int:
        return self.base + len(self.digests)


@dataclass(slots=True)
class PasserCounters:
    heard: int = 0  # keys handed in (one per phone and window)
    late: int = 0  # windows of an hour already closed: dropped
    hours_closed: int = 0


class PasserByCounter:
    def __init__(
        self,
        stores: Mapping[str, StorePlan],
        counts: PassersByCounts,
        *,
        salt: Callable[[], bytes] = lambda: secrets.token_bytes(16),
    ) -> None:
        self._stores = stores  # the running plans: a saved layout's timezone is the store's
        self._counts = counts
        self._salt = salt
        self._hours: dict[str, dict[int, _Hour]] = {}
        self._lock = threading.Lock()
        self.counters = PasserCounters()

    def hear(self, store: str, heard: Sequence[tuple[int, str]], saved_ms: int) -> None:
        """``heard``: (window end ms, key) of phones a street-front gateway
        heard; an empty list still opens the hours of ``saved_ms`` (the
        gateway listened then and heard no passer-by: a count of 0)."""
        plan = self._stores.get(store)
        if plan is None:
            return
        tz = plan.store.timezone
        with self._lock:
            hours = self._hours.setdefault(store, {})
            if not heard:
                self._open(store, hours, hour_start(saved_ms, tz))
            for at_ms, key in heard:
                self.counters.heard += 1
                hour = self._open(store, hours, hour_start(at_ms, tz))
                if hour is not None:
                    hour.digests.add(passer_digest(hour.salt, key))
            for start, hour in hours.items():
                if hour.count != hour.saved:
                    self._counts.save_count(store, start, hour.count, saved_ms)
                    hour.saved = hour.count

    def open_hours(self, store: str) -> list[int]:
        """Starts of the hours whose salt and set are still held (tests)."""
        with self._lock:
            return sorted(self._hours.get(store, {}))

    def _open(self, store: str, hours: dict[int, _Hour], start: int) -> _Hour | None:
        if start in hours:
            return hours[start]
        if hours and start < max(hours) - (OPEN_HOURS - 1) * HOUR_MS:
            self.counters.late += 1
            return None
        base = self._counts.count(store, start) or 0
        hours[start] = _Hour(self._salt(), base, saved=base if base else None)
        for old in sorted(hours)[:-OPEN_HOURS]:
            del hours[old]  # its salt and digests are gone for good
            self.counters.hours_closed += 1
        return hours.get(start)
