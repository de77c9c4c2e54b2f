"""The floor heatmap (issue 18, point 6): presence density over floor cells,
from the localizer's position estimates, not one colour per zone.

Positions are binned into square cells of ``BASE_CELL_M`` (0.5 m) counted
from the floor's origin (the street-front corner, x along the street, y into
the store): cell (ix, iy) covers [ix * 0.5, (ix + 1) * 0.5) x [iy * 0.5, ...).
What is stored is, per store, hour and cell, the shopper-seconds spent there
(``accumulate``); a view sums the hours of its range (``density``), on the
base grid or a coarser one (a multiple of 0.5 m). Indices from the origin do
not move when a saved layout changes the floor's size, so stored hours stay
comparable. Pure: plain numbers and polygons in, numpy arrays and records
out (docs/analytics.md, "Floor heatmap").
"""

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from omnizone.store.geometry import Polygon, contains

#: The stored grid's cell side (metres). Views may ask for any multiple.
BASE_CELL_M = 0.5
#: The cell sides a view may ask for.
CELL_SIZES_M = (0.5, 1.0, 2.0)

Cell = tuple[int, int]


@dataclass(frozen=True, slots=True)
class Grid:
    """Square cells of ``cell_m`` over a ``width_m`` x ``depth_m`` floor."""

    width_m: float
    depth_m: float
    cell_m: float = BASE_CELL_M

    @property
    def columns(self) -> int:
        return max(1, math.ceil(self.width_m / self.cell_m - 1e-9))

    @property
    def rows(self) -> int:
        return max(1, math.ceil(self.depth_m / self.cell_m - 1e-9))

    @property
    def factor(self) -> int:
        """How many base cells a side of one of these cells spans."""
        return round(self.cell_m / BASE_CELL_M)

    def centre(self, ix: int, iy: int) -> tuple[float, float]:
        return ((ix + 0.5) * self.cell_m, (iy + 0.5) * self.cell_m)


def grid(width_m: float, depth_m: float, cell_m: float = BASE_CELL_M) -> Grid:
    """The grid of a floor; ``cell_m`` must be one of ``CELL_SIZES_M``."""
    if cell_m not in CELL_SIZES_M:
        sizes = ", ".join(f"{c:g}" for c in CELL_SIZES_M)
        raise ValueError(f"cell_m must be one of {sizes} (metres), not {cell_m:g}")
    return Grid(width_m, depth_m, cell_m)


def base_cell(x: float, y: float, width_m: float, depth_m: float) -> Cell | None:
    """The base (0.5 m) cell of a position, None off the floor (or NaN)."""
    if not (0.0 <= x <= width_m and 0.0 <= y <= depth_m):  # NaN compares False
        return None
    top_x = max(0, math.ceil(width_m / BASE_CELL_M - 1e-9) - 1)
    top_y = max(0, math.ceil(depth_m / BASE_CELL_M - 1e-9) - 1)
    return (min(int(x // BASE_CELL_M), top_x), min(int(y // BASE_CELL_M), top_y))


def accumulate(
    into: dict[Cell, float], x: float, y: float, seconds: float, width_m: float, depth_m: float
) -> bool:
    """Add ``seconds`` of presence at (x, y) to ``into``; False when off the floor."""
    cell = base_cell(x, y, width_m, depth_m)
    if cell is None or seconds <= 0:
        return False
    into[cell] = into.get(cell, 0.0) + seconds
    return True


def density(
    g: Grid,
    ix: NDArray[np.int64],
    iy: NDArray[np.int64],
    seconds: NDArray[np.float64],
) -> NDArray[np.float64]:
    """Stored base cells (their indices and seconds, any number of rows per
    cell, e.g. one per hour) summed into ``g``: a rows x columns array of
    shopper-seconds. Cells beyond the floor (an older, larger layout) are dropped."""
    cx = ix // g.factor
    cy = iy // g.factor
    keep = (cx >= 0) & (cx < g.columns) & (cy >= 0) & (cy < g.rows)
    flat = cy[keep] * g.columns + cx[keep]
    total = np.bincount(flat, weights=seconds[keep], minlength=g.rows * g.columns)
    out: NDArray[np.float64] = total.reshape(g.rows, g.columns).astype(np.float64)
    return out


def zone_of_cells(g: Grid, polygons: Sequence[Polygon]) -> NDArray[np.int64]:
    """Per cell (rows x columns), the index of the zone its centre lies in, -1 none.
    Where zones overlap, the first listed wins (the store file's order)."""
    out = np.full((g.rows, g.columns), -1, dtype=np.int64)
    for iy in range(g.rows):
        for ix in range(g.columns):
            centre = g.centre(ix, iy)
            for k, polygon in enumerate(polygons):
                if contains(polygon, centre):
                    out[iy, ix] = k
                    break
    return out


@dataclass(frozen=True, slots=True)
class Heatmap:
    grid: Grid
    seconds: NDArray[np.float64]
    """rows x columns shopper-seconds."""
    zone_s: NDArray[np.float64]
    """Per zone, the seconds of the base cells whose centre lies in it."""
    outside_s: float
    """Seconds in cells in no zone (aisles between zones, walls)."""

    @property
    def total_s(self) -> float:
        return float(self.seconds.sum())

    @property
    def max_s(self) -> float:
        return float(self.seconds.max()) if self.seconds.size else 0.0

    def hottest(self) -> Cell | None:
        """The cell with the most presence, (ix, iy); None when all are empty."""
        if self.max_s <= 0:
            return None
        flat = int(np.argmax(self.seconds))
        return (flat % self.grid.columns, flat // self.grid.columns)

    def cells(self) -> list[tuple[int, int, float]]:
        """The non-empty cells as (ix, iy, seconds), row by row."""
        iy, ix = np.nonzero(self.seconds > 0)
        return [(int(x), int(y), float(self.seconds[y, x])) for y, x in zip(iy, ix, strict=True)]


def heatmap(
    g: Grid,
    ix: NDArray[np.int64],
    iy: NDArray[np.int64],
    seconds: NDArray[np.float64],
    zones: NDArray[np.int64],
    zone_count: int,
) -> Heatmap:
    """The heatmap of stored cells over ``g``. ``zones`` is ``zone_of_cells``
    of the base (0.5 m) grid of the same floor: zone totals are counted on the
    base cells whatever ``g`` is, so a coarse cell straddling two zones does
    not move presence from one to the other."""
    found = density(g, ix, iy, seconds)
    base = density(Grid(g.width_m, g.depth_m, BASE_CELL_M), ix, iy, seconds)
    inside = zones >= 0
    zone_s = np.bincount(zones[inside], weights=base[inside], minlength=zone_count)
    return Heatmap(g, found, zone_s.astype(np.float64), float(base[~inside].sum()))


def shares(values: NDArray[np.float64]) -> NDArray[np.float64]:
    """Each value's share of the total (zeros when the total is zero)."""
    total = float(values.sum())
    return values / total if total > 0 else np.zeros_like(values)


def sum_cells(rows: Iterable[tuple[int, int, float]]) -> dict[Cell, float]:
    """Rows of (ix, iy, seconds) summed per cell."""
    out: dict[Cell, float] = {}
    for x, y, s in rows:
        out[(x, y)] = out.get((x, y), 0.0) + s
    return out


def merge(a: Mapping[Cell, float], b: Mapping[Cell, float]) -> dict[Cell, float]:
    out = dict(a)
    for cell, s in b.items():
        out[cell] = out.get(cell, 0.0) + s
    return out
