"""The floor heatmap's pure core and its accumulator (issue 18, point 6)."""

import numpy as np
import pytest

from omnizone.server.adapters.memory.heatmap import MemoryFloorCells
from omnizone.server.domain.analytics import heatmap as core
from omnizone.server.service.analytics import BadRange
from omnizone.server.service.heatmap import FloorPresence, HeatmapService, heatmap_csv
from omnizone.server.service.locators import ZonePlacement
from omnizone.store import StorePlan

H = 3_600_000
T0 = 1_795_000_000 * 1000 // H * H


def test_a_position_falls_in_the_cell_counted_from_the_floor_origin() -> None:
    assert core.base_cell(0.0, 0.0, 10, 6) == (0, 0)
    assert core.base_cell(0.49, 0.51, 10, 6) == (0, 1)
    assert core.base_cell(10.0, 6.0, 10, 6) == (19, 11)  # the far wall: the last cell
    assert core.base_cell(-0.1, 1.0, 10, 6) is None
    assert core.base_cell(float("nan"), 1.0, 10, 6) is None
    into: dict[core.Cell, float] = {}
    assert core.accumulate(into, 1.2, 1.2, 2.0, 10, 6)
    assert core.accumulate(into, 1.3, 1.4, 1.0, 10, 6)
    assert not core.accumulate(into, 11.0, 1.0, 1.0, 10, 6)
    assert into == {(2, 2): 3.0}


def test_density_sums_base_cells_into_a_coarser_grid() -> None:
    g = core.grid(4.0, 2.0, 1.0)  # 4 columns, 2 rows of 1 m
    ix = np.array([0, 1, 2, 7, 9], dtype=np.int64)  # 9: beyond the floor (an older layout)
    iy = np.array([0, 1, 0, 3, 0], dtype=np.int64)
    s = np.array([1.0, 2.0, 4.0, 8.0, 16.0])
    found = core.density(g, ix, iy, s)
    assert found.shape == (2, 4)
    assert found[0, 0] == 3.0  # base (0,0) and (1,1) are both in the first metre
    assert found[0, 1] == 4.0
    assert found[1, 3] == 8.0
    assert found.sum() == 15.0
    with pytest.raises(ValueError, match="cell_m must be one of"):
        core.grid(4.0, 2.0, 0.7)


def test_zone_shares_and_the_hottest_cell() -> None:
    g = core.grid(4.0, 2.0, 1.0)
    left = [(0.0, 0.0), (2.0, 0.0), (2.0, 2.0), (0.0, 2.0)]
    right = [(2.0, 0.0), (3.0, 0.0), (3.0, 2.0), (2.0, 2.0)]  # x from 3 to 4: no zone
    assert core.zone_of_cells(g, [left, right]).tolist() == [[0, 0, 1, -1], [0, 0, 1, -1]]
    zones = core.zone_of_cells(core.grid(4.0, 2.0, 0.5), [left, right])  # counted on 0.5 m
    ix = np.array([0, 5, 7, 3], dtype=np.int64)
    iy = np.array([0, 1, 2, 0], dtype=np.int64)
    found = core.heatmap(g, ix, iy, np.array([1.0, 6.0, 3.0, 2.0]), zones, 2)
    assert found.zone_s.tolist() == [3.0, 6.0]  # base (3, 0) is left of x 2: the left zone
    assert found.outside_s == 3.0
    assert found.hottest() == (2, 0)
    assert found.cells() == [(0, 0, 1.0), (1, 0, 2.0), (2, 0, 6.0), (3, 1, 3.0)]
    assert core.shares(found.zone_s).tolist() == pytest.approx([1 / 3, 2 / 3])
    empty = core.heatmap(g, ix[:0], iy[:0], np.zeros(0), zones, 2)
    assert empty.hottest() is None and empty.total_s == 0.0


def _placement(
    device: str, at_ms: int, xy: tuple[float, float] | None, zone: str | None = "z"
) -> ZonePlacement:
    return ZonePlacement(device, zone, at_ms, at_ms, xy=xy)


def test_presence_is_accumulated_per_hour_without_devices_staff_and_refusers_left_out(
    plan: StorePlan,
) -> None:
    cells = MemoryFloorCells()
    asked: list[tuple[str, int, int]] = []

    def staff(store: str, from_ms: int, to_ms: int) -> list[str]:
        asked.append((store, from_ms, to_ms))
        return ["staff-phone"]

    floor = FloorPresence(
        {plan.id: plan}, cells, may_store=lambda d: d != "offers-only", exclude=staff
    )
    zone = plan.zones[1]
    x, y = zone.polygon[0][0] + 0.2, zone.polygon[0][1] + 0.2
    for k in range(10):  # 10 placements a second apart: 1 s first, then 9 x 1 s
        at = T0 + 1000 * k
        for device in ("shopper", "staff-phone", "offers-only"):
            floor.on_placement(plan.id, _placement(device, at, (x, y), zone.id))
    floor.on_placement(plan.id, _placement("shopper", T0 + 20_000, (x, y)))  # a 10 s gap: 1 s
    floor.on_placement(plan.id, _placement("shopper", T0 + 21_000, None))  # no position: none
    floor.on_placement(plan.id, _placement("shopper", T0 + 22_000, (x, y), None))  # outside
    assert cells.hours(plan.id) == (None, None)  # the hour is still open
    # Another shopper's placement past the hour and its grace writes the hour.
    floor.on_placement(plan.id, _placement("later", T0 + H + 61_000, (x, y)))
    assert asked == [(plan.id, T0, T0 + H)]
    [(ix, iy, seconds)] = cells.cells(plan.id, T0, T0 + H)
    assert (ix, iy) == (int(x // 0.5), int(y // 0.5)) and seconds == pytest.approx(11.0)
    floor.forget("later")  # erasure: the open hour holds nothing of it any more
    assert floor.flush() == 1
    assert cells.cells(plan.id, T0 + H, T0 + 2 * H) == []


def test_the_heatmap_of_a_range_with_its_comparison(plan: StorePlan) -> None:
    cells = MemoryFloorCells()
    zone = plan.zones[1]
    x, y = zone.polygon[0][0] + 0.7, zone.polygon[0][1] + 0.7
    cell = core.base_cell(x, y, plan.store.floor.width_m, plan.store.floor.depth_m)
    assert cell is not None
    cells.add_cells(plan.id, {T0: {cell: 30.0}, T0 + 24 * H: {cell: 90.0}})
    service = HeatmapService({plan.id: plan}, cells)
    body = service.heatmap(
        plan.id, T0 + 24 * H + 5, T0 + 48 * H, cell_m=0.5, compare=(T0 + 5, T0 + 24 * H)
    )
    assert body["hours_from_ms"] == T0 + 24 * H  # the hour the range begins in counts
    assert body["total_s"] == 90.0
    assert body["cells"] == [[cell[0], cell[1], 90.0]]
    assert body["hottest"]["zone"] == zone.id
    shares = {z["zone"]: z["share"] for z in body["zones"]}
    assert shares[zone.id] == 1.0
    assert body["compare"]["total_s"] == 30.0
    assert body["compare"]["difference_cells"] == [[cell[0], cell[1], 60.0]]
    moved = next(d for d in body["compare"]["zone_differences"] if d["zone"] == zone.id)
    assert moved["difference_s"] == 60.0 and moved["relative"] == 2.0
    assert heatmap_csv(body).splitlines()[1].split(",")[-1] == "90.0"
    with pytest.raises(BadRange) as error:
        service.heatmap(plan.id, T0, T0 + H, cell_m=3.0)
    assert error.value.field == "cell_m"
    with pytest.raises(BadRange) as error:
        service.heatmap(plan.id, T0, T0 + H, compare=(T0 + H, T0))
    assert error.value.field == "compare_to_ms"


def test_an_hour_that_cannot_be_written_is_kept_and_written_later(plan: StorePlan) -> None:
    class Flaky(MemoryFloorCells):
        down = True

        def add_cells(self, store, hours):  # type: ignore[no-untyped-def]
            if self.down:
                raise OSError("database away")
            super().add_cells(store, hours)

    cells = Flaky()
    floor = FloorPresence({plan.id: plan}, cells)
    zone = plan.zones[1]
    xy = (zone.polygon[0][0] + 0.2, zone.polygon[0][1] + 0.2)
    floor.on_placement(plan.id, _placement("a", T0, xy))
    floor.on_placement(plan.id, _placement("b", T0 + H + 61_000, xy))  # the first hour is due
    assert floor.flushed_hours == 0 and cells.hours(plan.id) == (None, None)
    cells.down = False
    assert floor.flush() == 2
    assert cells.hours(plan.id) == (T0, T0 + H)
