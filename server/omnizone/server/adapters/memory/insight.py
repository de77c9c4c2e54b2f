"""The insight views' reads over the in-memory stores (``ports.insight``);
behaves as ``adapters.insight_db.InsightRepository``."""

from omnizone.server.adapters.memory.ingest import MemoryRepository
from omnizone.server.service.ports.insight import InsightReads


class MemoryInsightStore(InsightReads):
    def __init__(self, ingest: MemoryRepository) -> None:
        self._ingest = ingest
        self._staff: dict[str, dict[str, str]] = {}

    def last_entries(self, store: str, from_ms: int, to_ms: int) -> dict[str, int]:
        found: dict[str, int] = {}
        for v in self._ingest.visits_of(store):
            if from_ms <= v.entered_ms < to_ms:
                found[v.device] = max(found.get(v.device, v.entered_ms), v.entered_ms)
        return found

    def staff_devices(self, store: str) -> dict[str, str]:
        return dict(self._staff.get(store, {}))

    def register_staff(self, store: str, device: str, label: str, at_ms: int) -> None:
        self._staff.setdefault(store, {})[device] = label

    def remove_staff(self, store: str, device: str) -> bool:
        return self._staff.get(store, {}).pop(device, None) is not None
