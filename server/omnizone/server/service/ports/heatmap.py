"""What the floor heatmap (issue 18, point 6) stores and reads: per store,
hour and 0.5 m floor cell, the shopper-seconds of presence there. No device,
no shopper: aggregates only (``domain/analytics/heatmap.py``)."""

from collections.abc import Mapping
from typing import Protocol

Cell = tuple[int, int]


class FloorCells(Protocol):
    """Implemented by ``adapters.heatmap_db.FloorCellRepository`` and
    ``adapters.memory.heatmap.MemoryFloorCells``."""

    def add_cells(self, store: str, hours: Mapping[int, Mapping[Cell, float]]) -> None:
        """Add seconds to the stored cells of each hour (hour start ms -> cell -> seconds);
        an hour written before is added to, not replaced."""
        ...

    def cells(self, store: str, from_ms: int, to_ms: int) -> list[tuple[int, int, float]]:
        """(ix, iy, seconds) summed over the hours starting in [from_ms, to_ms)."""
        ...

    def hours(self, store: str) -> tuple[int | None, int | None]:
        """The first and last stored hour start of the store (None: nothing stored)."""
        ...
