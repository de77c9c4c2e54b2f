"""The floor heatmap's cells in memory (``ports.heatmap``); behaves as
``adapters.heatmap_db.FloorCellRepository``."""

from collections.abc import Mapping

from omnizone.server.service.ports.heatmap import Cell, FloorCells


class MemoryFloorCells(FloorCells):
    def __init__(self) -> None:
        self._hours: dict[str, dict[int, dict[Cell, float]]] = {}

    def add_cells(self, store: str, hours: Mapping[int, Mapping[Cell, float]]) -> None:
        mine = self._hours.setdefault(store, {})
        for hour, cells in hours.items():
            into = mine.setdefault(hour, {})
            for cell, s in cells.items():
                into[cell] = into.get(cell, 0.0) + s

    def cells(self, store: str, from_ms: int, to_ms: int) -> list[tuple[int, int, float]]:
        total: dict[Cell, float] = {}
        for hour, cells in self._hours.get(store, {}).items():
            if from_ms <= hour < to_ms:
                for cell, s in cells.items():
                    total[cell] = total.get(cell, 0.0) + s
        return [(x, y, s) for (x, y), s in total.items()]

    def hours(self, store: str) -> tuple[int | None, int | None]:
        mine = [h for h, cells in self._hours.get(store, {}).items() if cells]
        return (min(mine), max(mine)) if mine else (None, None)
