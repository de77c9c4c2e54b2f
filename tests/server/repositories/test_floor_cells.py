"""The floor heatmap's cells (issue 18 point 6) on every backend: added to,
summed over a range's hours, never replaced."""

from omnizone.server.adapters.heatmap_db import FloorCellRepository
from omnizone.server.adapters.memory.heatmap import MemoryFloorCells
from omnizone.server.service.ports.heatmap import FloorCells

from .conftest import Storage

H = 3_600_000
T0 = 1_795_000_000 * 1000 // H * H


def cells_of(storage: Storage) -> FloorCells:
    if storage.backend == "memory":
        return MemoryFloorCells()
    return FloorCellRepository(storage.ingest.engine)  # type: ignore[attr-defined]


def test_cells_are_summed_over_the_hours_of_a_range(storage: Storage) -> None:
    cells = cells_of(storage)
    assert cells.hours("s") == (None, None)
    cells.add_cells("s", {T0: {(1, 2): 10.0, (3, 4): 1.5}, T0 + H: {(1, 2): 5.0}})
    cells.add_cells("s", {T0: {(1, 2): 2.0}})  # the same hour again: added to
    cells.add_cells("other", {T0: {(1, 2): 99.0}})
    assert sorted(cells.cells("s", T0, T0 + 2 * H)) == [(1, 2, 17.0), (3, 4, 1.5)]
    assert sorted(cells.cells("s", T0 + H, T0 + 2 * H)) == [(1, 2, 5.0)]
    assert cells.cells("s", T0 + 2 * H, T0 + 3 * H) == []
    assert cells.hours("s") == (T0, T0 + H)
