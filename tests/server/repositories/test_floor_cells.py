"""The floor heatmap's cells (issue 18 point 6) on every backend: added to,
summed over a range's hours, never replaced."""

import pytest

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


def test_a_range_over_whole_days_and_partial_ones_sums_every_hour_once(storage: Storage) -> None:
    """The SQL table keeps day totals beside the hours: a range reads the
    days it covers whole and the hours at its ends; each hour counts once."""
    cells = cells_of(storage)
    day = 24 * H
    d0 = (T0 // day + 1) * day  # a UTC midnight
    hours = {d0 - 2 * H + k * H: {(k % 3, 0): float(k + 1)} for k in range(4 * 24)}
    cells.add_cells("s", hours)
    cells.add_cells("s", {d0 + H: {(0, 0): 1000.0}})  # added to an hour and its day
    for lo, hi in [(d0 - H, d0 + 3 * day + 5 * H), (d0, d0 + 2 * day), (d0 + H, d0 + 2 * H)]:
        expected: dict[tuple[int, int], float] = {}
        for hour, found in hours.items():
            if lo <= hour < hi:
                for cell, s in found.items():
                    expected[cell] = expected.get(cell, 0.0) + s
        if lo <= d0 + H < hi:
            expected[(0, 0)] += 1000.0
        got = {(x, y): s for x, y, s in cells.cells("s", lo, hi)}
        assert got == pytest.approx(expected), (lo - d0, hi - d0)
    assert cells.hours("s") == (d0 - 2 * H, d0 - 2 * H + 95 * H)
