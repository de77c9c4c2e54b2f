"""Phones that listen (issue 15): a shopper's phone reports what it heard of
the store's fixed beacons, and that joins the gateways' windows in one filter.

One batch (``omnizone.contract.phone.PhoneReport``) from one authenticated
shopper: accepted only with location consent, rate limited per shopper,
applied once however often it is resent (the batch id; the first answer is
kept and given again). Each window's beacon keys are mapped to the store
file's beacons; keys the store does not have are counted and named in the
answer and in the stats, never stored or localized. Windows too old or from
the future are counted as stale. The rest is stored (the shopper's export and
erasure include it) and handed to ingest (``IngestService.observe_listened``),
which feeds the store's locator, visits, triggers and offers as for gateway
sightings. A region entry opens a stay at the entrance unless the radio has
the shopper in the store already (``IngestService.enter_region``); a region
exit closes the shopper's stay unless the radio heard the phone in the store
since (``IngestService.leave_region``)."""

import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from omnizone.contract.phone import (
    MAX_WINDOW_AGE_MS,
    MIN_BATCH_INTERVAL_MS,
    PhoneReport,
    PhoneReportResult,
)
from omnizone.server.service.locators import ListenedWindow
from omnizone.server.service.ports.phones import PhoneSightingRow, PhoneSightingStore
from omnizone.store import StorePlan

#: How far ahead of the server's clock a window may start (phones' clocks drift).
MAX_FUTURE_MS = 30_000
#: Unknown beacon keys named in the stats (the rest are counted together).
MAX_NAMED_UNKNOWN = 50
#: Per shopper: a burst of this many batches (an offline phone catching up),
#: then one per ``MIN_BATCH_INTERVAL_MS``.
BURST_BATCHES = 60


class PhoneReportRefused(Exception):
    """A batch the server will not take; ``status`` is the HTTP answer."""

    def __init__(self, status: int, reason: str, retry_after_s: int | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.retry_after_s = retry_after_s


class ListeningIngest(Protocol):
    """What this service needs of ingest (``IngestService``)."""

    def observe_listened(
        self, store: str, device: str, windows: Sequence[ListenedWindow]
    ) -> int: ...
    def enter_region(self, store: str, device: str, at_ms: int) -> bool: ...
    def leave_region(self, store: str, device: str, at_ms: int, grace_ms: int = 5000) -> bool: ...


@dataclass(slots=True)
class PhoneCounters:
    batches: int = 0
    duplicates: int = 0
    windows: int = 0
    windows_stale: int = 0
    windows_late: int = 0  # accepted, but the filter had decided them already
    beacon_readings: int = 0
    unknown_readings: int = 0
    refused_consent: int = 0
    refused_rate: int = 0
    refused_store: int = 0
    region_enter: int = 0
    region_exit: int = 0
    region_enter_ignored: int = 0
    region_exit_ignored: int = 0  # the radio heard the phone in the store after it
    unknown_beacons: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        named = dict(self.unknown_beacons.most_common(MAX_NAMED_UNKNOWN))
        return {
            "batches": self.batches,
            "duplicates": self.duplicates,
            "windows": self.windows,
            "windows_stale": self.windows_stale,
            "windows_late": self.windows_late,
            "beacon_readings": self.beacon_readings,
            "unknown_readings": self.unknown_readings,
            "unknown_beacons": named,
            "refused": {
                "no_location_consent": self.refused_consent,
                "rate_limited": self.refused_rate,
                "wrong_store": self.refused_store,
            },
            "region_events": {
                "enter": self.region_enter,
                "exit": self.region_exit,
                "exit_ignored_heard_since": self.region_exit_ignored,
                "enter_ignored_in_store_or_stale": self.region_enter_ignored,
            },
        }


class PhoneSightings:
    """The use case behind ``POST /api/v1/me/beacons``."""

    def __init__(
        self,
        stores: Mapping[str, StorePlan],
        repository: PhoneSightingStore,
        ingest: ListeningIngest,
        *,
        may_store_location: Callable[[str], bool],
        shopper_store: Callable[[str], str | None],
        clock: Callable[[], int],
        store_clock: Callable[[str], int | None] | None = None,
        min_interval_ms: int = MIN_BATCH_INTERVAL_MS,
        burst: int = BURST_BATCHES,
    ) -> None:
        """``stores`` is read at each batch (a running store's new plan
        brings its new beacons). ``shopper_store``: the store a shopper
        registered with (a phone reports only there). ``clock`` is the wall
        clock (rate limits; no window from the future); ``store_clock`` the
        store's event time (ingest's newest window, None before any): a
        window older than ``MAX_WINDOW_AGE_MS`` behind it is stale."""
        self._stores = stores
        self._repo = repository
        self._ingest = ingest
        self._may_store = may_store_location
        self._shopper_store = shopper_store
        self._clock = clock
        self._store_clock = store_clock or (lambda _store: None)
        self._interval_ms = max(1, min_interval_ms)
        self._burst = burst
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, int]] = {}  # shopper -> (tokens, at_ms)
        self.counters: dict[str, PhoneCounters] = {}

    def stats(self, store: str) -> dict[str, Any]:
        with self._lock:
            return self._counters(store).as_dict()

    def report(self, shopper: str, report: PhoneReport) -> PhoneReportResult:
        """Apply one batch; raises ``PhoneReportRefused`` (403 without location
        consent or for another store, 429 over the rate)."""
        now = self._clock()
        plan = self._stores.get(report.store)
        registered = self._shopper_store(shopper)
        if plan is None or registered != report.store:
            with self._lock:
                self._counters(report.store if plan else "_unknown").refused_store += 1
            raise PhoneReportRefused(
                403, f"store {report.store!r}: not the store this shopper registered with"
            )
        counters = self._counters(plan.id)
        if not self._may_store(shopper):
            with self._lock:
                counters.refused_consent += 1
            raise PhoneReportRefused(
                403, "no location_analytics consent: beacon reports are not accepted"
            )
        earlier = self._repo.applied(shopper, report.batch)
        if earlier is not None:  # a resend: the same answer, nothing applied again
            with self._lock:
                counters.duplicates += 1
            return PhoneReportResult.model_validate({**earlier, "duplicate": True})
        self._take_token(shopper, now, counters)
        keys = {b.device: b.id for b in plan.beacons}
        oldest = (self._store_clock(plan.id) or now) - MAX_WINDOW_AGE_MS
        windows: list[ListenedWindow] = []
        rows: list[PhoneSightingRow] = []
        unknown: Counter[str] = Counter()
        stale = 0
        for window in report.windows:
            if not oldest <= window.start_ms <= now + MAX_FUTURE_MS:
                stale += 1
                continue
            heard: dict[str, float] = {}
            for b in window.beacons:
                beacon = keys.get(b.beacon)
                if beacon is None:
                    unknown[b.beacon] += 1
                    continue
                heard[beacon] = b.rssi
                rows.append(
                    PhoneSightingRow(
                        plan.id, shopper, beacon, window.start_ms, window.window_ms, b.rssi, b.count
                    )
                )
            windows.append(ListenedWindow(window.start_ms, window.window_ms, heard))
        result = PhoneReportResult(
            batch=report.batch,
            duplicate=False,
            windows_accepted=len(windows),
            windows_stale=stale,
            unknown_beacons=dict(unknown.most_common(MAX_NAMED_UNKNOWN)),
            region_events=len(report.regions),
        )
        answer = result.model_dump(mode="json")
        if not self._repo.apply(shopper, report.batch, now, rows, answer):  # a racing resend
            with self._lock:
                counters.duplicates += 1
            return result.model_copy(update={"duplicate": True})
        # an entry comes before the ranging it woke, an exit after it
        entries_ignored = sum(
            1
            for event in report.regions
            if event.event == "enter"
            and not self._ingest.enter_region(plan.id, shopper, event.at_ms)
        )
        late = self._ingest.observe_listened(plan.id, shopper, windows) if windows else 0
        ignored = 0
        for event in report.regions:
            if event.event == "exit" and not self._ingest.leave_region(
                plan.id, shopper, event.at_ms
            ):
                ignored += 1
        with self._lock:
            counters.batches += 1
            counters.windows += len(windows)
            counters.windows_stale += stale
            counters.windows_late += late
            counters.beacon_readings += len(rows)
            counters.unknown_readings += sum(unknown.values())
            for key, count in unknown.items():
                if (
                    key in counters.unknown_beacons
                    or len(counters.unknown_beacons) < MAX_NAMED_UNKNOWN
                ):
                    counters.unknown_beacons[key] += count
            counters.region_enter += sum(1 for e in report.regions if e.event == "enter")
            counters.region_exit += sum(1 for e in report.regions if e.event == "exit")
            counters.region_exit_ignored += ignored
            counters.region_enter_ignored += entries_ignored
        return result

    def _counters(self, store: str) -> PhoneCounters:
        return self.counters.setdefault(store, PhoneCounters())

    def _take_token(self, shopper: str, now: int, counters: PhoneCounters) -> None:
        with self._lock:
            tokens, at_ms = self._buckets.get(shopper, (float(self._burst), now))
            tokens = min(float(self._burst), tokens + max(0, now - at_ms) / self._interval_ms)
            if tokens < 1.0:
                counters.refused_rate += 1
                wait_s = max(1, round((1.0 - tokens) * self._interval_ms / 1000))
                raise PhoneReportRefused(
                    429, "too many beacon batches: resend this one later", retry_after_s=wait_s
                )
            self._buckets[shopper] = (tokens - 1.0, now)
            if len(self._buckets) > 100_000:  # bounded: the oldest buckets go
                for key in list(self._buckets)[:10_000]:
                    del self._buckets[key]

    def forget(self, shopper: str) -> None:
        """Erasure: the rate bucket goes (the rows go with the repository's erase)."""
        with self._lock:
            self._buckets.pop(shopper, None)
