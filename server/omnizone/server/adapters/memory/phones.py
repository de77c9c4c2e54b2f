"""The phone-sightings port in memory (tests, evaluations): a twin of ``phone_db``."""

import copy
import threading
from typing import Any

from omnizone.server.service.ports.phones import PhoneSightingRow, PhoneSightingStore


class MemoryPhoneSightings(PhoneSightingStore):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: list[tuple[int, PhoneSightingRow]] = []  # (received_ms, row)
        self._batches: dict[tuple[str, str], tuple[int, dict[str, Any]]] = {}

    def applied(self, device: str, batch: str) -> dict[str, Any] | None:
        with self._lock:
            found = self._batches.get((device, batch))
            return copy.deepcopy(found[1]) if found else None

    def apply(
        self,
        device: str,
        batch: str,
        received_ms: int,
        rows: list[PhoneSightingRow],
        answer: dict[str, Any],
    ) -> bool:
        with self._lock:
            if (device, batch) in self._batches:
                return False
            self._batches[(device, batch)] = (received_ms, copy.deepcopy(answer))
            self._rows += [(received_ms, row) for row in rows]
            return True

    def device_sightings(self, device: str) -> list[dict[str, Any]]:
        with self._lock:
            rows = sorted(
                (r for _, r in self._rows if r.device == device),
                key=lambda r: (r.window_start_ms, r.beacon),
            )
        return [_exported(r) for r in rows]

    def device_batches(self, device: str) -> list[dict[str, Any]]:
        with self._lock:
            found = sorted((k[1], v) for k, v in self._batches.items() if k[0] == device)
        return [
            {"batch": batch, "received_ms": at, "answer": copy.deepcopy(answer)}
            for batch, (at, answer) in found
        ]

    def erase_device(self, device: str) -> int:
        with self._lock:
            before = len(self._rows) + len(self._batches)
            self._rows = [(t, r) for t, r in self._rows if r.device != device]
            self._batches = {k: v for k, v in self._batches.items() if k[0] != device}
            return before - len(self._rows) - len(self._batches)

    def prune(self, before_ms: int) -> int:
        with self._lock:
            before = len(self._rows) + len(self._batches)
            self._rows = [(t, r) for t, r in self._rows if r.window_start_ms >= before_ms]
            self._batches = {k: v for k, v in self._batches.items() if v[0] >= before_ms}
            return before - len(self._rows) - len(self._batches)


def _exported(row: PhoneSightingRow) -> dict[str, Any]:
    return {
        "store": row.store,
        "beacon": row.beacon,
        "window_start_ms": row.window_start_ms,
        "window_ms": row.window_ms,
        "rssi_mean": row.rssi_mean,
        "count": row.count,
    }
