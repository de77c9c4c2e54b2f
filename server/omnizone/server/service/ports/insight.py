"""What the retail insight views read beyond the analytics' own reads
(``ports.analytics``): when each shopper was last seen before a range, and
the store's registered staff devices."""

from typing import Protocol


class InsightReads(Protocol):
    """Implemented by ``adapters.insight_db.InsightRepository`` and
    ``adapters.memory.insight.MemoryInsightStore``."""

    def last_entries(self, store: str, from_ms: int, to_ms: int) -> dict[str, int]:
        """Per device, its latest stay entry in [from_ms, to_ms)."""
        ...

    def staff_devices(self, store: str) -> dict[str, str]:
        """Registered staff devices of the store: device (shopper id) -> label."""
        ...

    def register_staff(self, store: str, device: str, label: str, at_ms: int) -> None: ...

    def remove_staff(self, store: str, device: str) -> bool:
        """False when the device was not registered."""
        ...
