"""How long raw BLE sightings (``sighting_retention_days``) and dead letters
(``dead_letter_retention_days``) are kept.

Sightings are the most detailed location data the server holds: every
window, every gateway, every phone. Visits and dwell, which analytics and
offers use, are derived from them at ingest, so the raw rows are only needed
for a while (a shopper's export, checking a radio map). Keeping them for a
bounded time is data minimisation, and it keeps the table, and with it a
shopper's export and erasure, from growing without end."""

import logging
import threading
from collections.abc import Callable

from omnizone.contract.timefmt import wall_clock_ms

log = logging.getLogger(__name__)

DAY_MS = 86_400_000


class SightingRetention:
    """Deletes rows older than the limit: once at start, then every ``interval_s``.

    ``what`` names them in the log and the thread: raw sightings by default,
    ``dead letters`` for ``dead_letter_retention_days``."""

    def __init__(
        self,
        prune: Callable[[int], int],
        retention_days: float,
        *,
        interval_s: float = 3600.0,
        clock_ms: Callable[[], int] = wall_clock_ms,
        what: str = "sightings",
    ) -> None:
        if retention_days <= 0:
            raise ValueError("retention_days must be positive (0 means: do not run this)")
        self._prune = prune
        self._retention_ms = round(retention_days * DAY_MS)
        self._interval_s = interval_s
        self._clock_ms = clock_ms
        self._what = what
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.deleted = 0

    def run_once(self) -> int:
        cutoff = self._clock_ms() - self._retention_ms
        deleted = self._prune(cutoff)
        self.deleted += deleted
        if deleted:
            log.info("deleted %d %s older than the retention limit", deleted, self._what)
        return deleted

    def start(self) -> None:
        if self._thread is not None:
            return

        def run() -> None:
            while True:
                try:
                    self.run_once()
                except Exception:  # the database may be away: the next round tries again
                    log.warning("deleting old %s failed", self._what, exc_info=True)
                if self._stop.wait(self._interval_s):
                    return

        self._thread = threading.Thread(
            target=run, name=f"{self._what.replace(' ', '-')}-retention", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
