"""Passer-by counts in memory (``ports.passers_by``); behaves as
``adapters.capture_db.PassersByRepository``."""

from omnizone.server.service.ports.passers_by import PassersByCounts


class MemoryPassersBy(PassersByCounts):
    def __init__(self) -> None:
        self._counts: dict[tuple[str, int], int] = {}

    def save_count(self, store: str, hour_ms: int, passers_by: int, updated_ms: int) -> None:
        self._counts[(store, hour_ms)] = passers_by

    def count(self, store: str, hour_ms: int) -> int | None:
        return self._counts.get((store, hour_ms))

    def counts(self, store: str, from_ms: int, to_ms: int) -> dict[int, int]:
        return {h: n for (s, h), n in self._counts.items() if s == store and from_ms <= h < to_ms}
