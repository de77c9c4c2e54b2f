"""Where the anonymous passer-by counts live (issue 18, point 4): one number
per store and store-local hour, nothing about any phone."""

from typing import Protocol


class PassersByCounts(Protocol):
    """Implemented by ``adapters.capture_db.PassersByRepository`` and
    ``adapters.memory.passers_by.MemoryPassersBy``."""

    def save_count(self, store: str, hour_ms: int, passers_by: int, updated_ms: int) -> None:
        """Set the hour's count (the row is replaced)."""
        ...

    def count(self, store: str, hour_ms: int) -> int | None:
        """The hour's stored count; None when none is stored."""
        ...

    def counts(self, store: str, from_ms: int, to_ms: int) -> dict[int, int]:
        """hour start -> count, for the hours starting in [from_ms, to_ms)."""
        ...
