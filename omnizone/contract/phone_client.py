"""The reference client of the phone-to-server beacon contract (docs/mobile-sdk.md).

What a native SDK does, in about a hundred lines of standard-library Python, so
that the simulator's phones and the documentation point at one implementation
of ``omnizone.contract.phone``: it collects one window of ranging a second,
cuts batches of ``batch_windows`` windows, gives each batch an id once, keeps
unsent batches in a bounded buffer while offline (oldest dropped first, and
counted) and resends them with the same id, so a batch the server already
applied is answered as a duplicate, never applied twice.

The transport is a function ``post(body) -> (status, body)``: ``http_post``
for a real server (urllib, no dependency), a direct hand-off in evaluations.
"""

import json
import secrets
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from omnizone.contract.phone import (
    MAX_WINDOWS,
    HeardBeacon,
    PhoneReport,
    PhoneReportResult,
    PhoneWindow,
    RegionEvent,
    dump_phone_report,
)

#: (HTTP status, response body) for one POST of a batch.
Post = Callable[[bytes], tuple[int, bytes]]
BEACONS_PATH = "/api/v1/me/beacons"


def http_post(api_url: str, token: str, timeout_s: float = 10.0) -> Post:
    """POST to a server's beacon endpoint with the shopper's bearer token."""
    url = api_url.rstrip("/") + BEACONS_PATH

    def post(body: bytes) -> tuple[int, bytes]:
        request = urllib.request.Request(
            url,
            data=body,
            method="POST",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                return int(response.status), bytes(response.read())
        except urllib.error.HTTPError as error:
            return int(error.code), bytes(error.read())
        except (urllib.error.URLError, OSError):
            return 0, b""  # offline: keep the batch

    return post


@dataclass(slots=True)
class ClientCounters:
    sent: int = 0
    duplicates: int = 0
    refused: int = 0  # 400/404/409/413/422: the batch is dropped, never retried
    retried: int = 0
    dropped_offline: int = 0  # windows lost when the offline buffer was full


@dataclass
class PhoneBeaconClient:
    """One phone's reporter for one store."""

    store: str
    post: Post
    batch_windows: int = 2
    max_buffered_batches: int = 300
    new_id: Callable[[], str] = field(default=lambda: secrets.token_urlsafe(12))
    counters: ClientCounters = field(default_factory=ClientCounters)
    results: list[PhoneReportResult] = field(default_factory=list)
    _windows: list[PhoneWindow] = field(default_factory=list)
    _regions: list[RegionEvent] = field(default_factory=list)
    _outbox: deque[PhoneReport] = field(default_factory=deque)

    def __post_init__(self) -> None:
        if not 1 <= self.batch_windows <= MAX_WINDOWS:
            raise ValueError(f"batch_windows must be within 1..{MAX_WINDOWS}")

    def window(self, start_ms: int, heard: dict[str, tuple[float, int]]) -> None:
        """One window of ranging: beacon key -> (mean RSSI, samples)."""
        beacons = [HeardBeacon(beacon=k, rssi=r, count=n) for k, (r, n) in sorted(heard.items())]
        self._windows.append(PhoneWindow(start_ms=start_ms, beacons=beacons))
        if len(self._windows) >= self.batch_windows:
            self.cut()

    def region(self, event: str, at_ms: int) -> None:
        """Region entry or exit; cut at once (it wakes the app: send while awake)."""
        self._regions.append(RegionEvent.model_validate({"event": event, "at_ms": at_ms}))
        self.cut()

    def cut(self) -> None:
        """Close the current batch (it gets its id now, kept for every resend)."""
        if not self._windows and not self._regions:
            return
        report = PhoneReport(
            store=self.store, batch=self.new_id(), windows=self._windows, regions=self._regions
        )
        self._windows, self._regions = [], []
        self._outbox.append(report)
        while len(self._outbox) > self.max_buffered_batches:
            self.counters.dropped_offline += len(self._outbox.popleft().windows)

    @property
    def pending(self) -> int:
        return len(self._outbox)

    def flush(self) -> bool:
        """Send every buffered batch, oldest first; stop at the first that
        cannot go now (offline, 5xx, 429 too many, 401/403 until the token or
        consent is back) and keep it. True when all went."""
        while self._outbox:
            report = self._outbox[0]
            status, body = self.post(dump_phone_report(report))
            if status == 200:
                result = PhoneReportResult.model_validate(json.loads(body))
                self.results.append(result)
                self.counters.sent += 1
                self.counters.duplicates += result.duplicate
            elif status in (400, 404, 409, 413, 422):
                self.counters.refused += 1  # the server said why; resending will not help
            else:
                self.counters.retried += 1
                return False
            self._outbox.popleft()
        return True
