"""The floor as a grid of small cells, and how a shopper moves between them.

Placing a device in a zone directly blurs everything inside the zone: the
radio map of a zone must cover its door and its far wall at once, so a
shopper walking through a door is ambiguous for several windows. Tracking
the *position* on a grid of cells about a metre across keeps that detail: a
shopper one step from a door is one step from the next zone, and the zone is
then read off the cell's position. The filter is still the HMM forward pass
(``hmm.forward_step``); only its states are cells instead of zones.

Rules of motion (``motion_transition``), per window:

- a step is a Gaussian random walk with spread ``step_sigma_m`` (scaled by
  the square root of the window length), cut at ``max_step_m``;
- a step may only go to a cell of the same zone or of an adjacent zone (the
  zone graph: a wall blocks it), so a shopper cannot cross a wall;
- a step into another zone is weighed by ``crossing_factor`` (< 1): the
  dwell prior, shoppers linger in a zone more than a random walk would;
- cells of an entrance zone at the floor's edge lead OUTSIDE, and OUTSIDE
  leads back into them.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import sparse

from omnizone.store import StorePlan

#: Sub-samples per cell side: used for the cell's share of each zone.
_SUBSAMPLES = 4
_EPS = 1e-9
"""As ``omnizone.store.geometry``'s tolerance on a boundary."""
#: Steps less likely than this (relative to standing still) are left out of the
#: sparse transition: a still shopper then stays in the cell.
_NEGLIGIBLE_STEP = 1e-4


@dataclass(frozen=True)
class FloorGrid:
    """Cells that overlap at least one zone, in row-major order."""

    cell_m: float
    centers: NDArray[np.float64]  # (C, 2) metres
    lattice: NDArray[np.intp]  # (C, 2) column and row of each cell
    zone_share: NDArray[np.float64]  # (C, Z) fraction of the cell in each zone (store order)
    zones: tuple[str, ...]

    @property
    def cell_zone(self) -> NDArray[np.intp]:
        """The zone holding most of each cell."""
        result: NDArray[np.intp] = self.zone_share.argmax(axis=1)
        return result

    def __len__(self) -> int:
        return int(self.centers.shape[0])


def floor_grid(plan: StorePlan, cell_m: float = 1.0) -> FloorGrid:
    if cell_m <= 0:
        raise ValueError("cell_m must be positive")
    floor = plan.store.floor
    columns = max(1, math.ceil(floor.width_m / cell_m - 1e-9))
    rows = max(1, math.ceil(floor.depth_m / cell_m - 1e-9))
    zone_ids = [z.id for z in plan.zones]
    offsets = (np.arange(_SUBSAMPLES) + 0.5) / _SUBSAMPLES * cell_m
    # Every cell's sub-samples at once, in the order the cells are kept
    # (row by row): (rows * columns, _SUBSAMPLES²) points, each given the
    # first zone that contains it, as ``plan.zone_at`` does one by one.
    r, c = np.meshgrid(np.arange(rows), np.arange(columns), indexing="ij")
    x0 = (c.ravel() * cell_m)[:, None]
    y0 = (r.ravel() * cell_m)[:, None]
    dx, dy = np.meshgrid(offsets, offsets, indexing="ij")
    xs = x0 + dx.ravel()[None, :]
    ys = y0 + dy.ravel()[None, :]
    owner = np.full(xs.shape, -1, dtype=np.intp)
    for i, zone in enumerate(plan.zones):
        free = owner < 0
        if not free.any():
            break
        inside = contains_points(zone.polygon, xs[free], ys[free])
        picked = owner[free]
        picked[inside] = i
        owner[free] = picked
    counts = np.stack([(owner == i).sum(axis=1) for i in range(len(zone_ids))], axis=1)
    kept = counts.sum(axis=1) > 0
    if not kept.any():
        raise ValueError("no grid cell falls inside a zone: check the zones and the floor size")
    centers = np.stack([x0[kept, 0] + cell_m / 2, y0[kept, 0] + cell_m / 2], axis=1)
    lattice = np.stack([c.ravel()[kept], r.ravel()[kept]], axis=1)
    return FloorGrid(
        cell_m=cell_m,
        centers=centers.astype(np.float64),
        lattice=lattice.astype(np.intp),
        zone_share=counts[kept].astype(np.float64) / _SUBSAMPLES**2,
        zones=tuple(zone_ids),
    )


def contains_points(
    polygon: Sequence[tuple[float, float]], xs: NDArray[np.float64], ys: NDArray[np.float64]
) -> NDArray[np.bool_]:
    """``omnizone.store.geometry.contains`` for many points at once (the same
    ray casting and boundary test, the same arithmetic): building a store's
    grid point by point in Python was most of a chain worker's take-over."""
    inside = np.zeros(xs.shape, dtype=bool)
    on_edge = np.zeros(xs.shape, dtype=bool)
    points = list(polygon)
    for k, (x1, y1) in enumerate(points):
        x2, y2 = points[(k + 1) % len(points)]
        cross = (x2 - x1) * (ys - y1) - (y2 - y1) * (xs - x1)
        on_edge |= (
            (np.abs(cross) <= 1e-7)
            & (min(x1, x2) - _EPS <= xs)
            & (xs <= max(x1, x2) + _EPS)
            & (min(y1, y2) - _EPS <= ys)
            & (ys <= max(y1, y2) + _EPS)
        )
        if y2 != y1:  # a level edge is never crossed (and would divide by 0)
            straddles = (y1 > ys) != (y2 > ys)
            x_cross = x1 + (ys - y1) * (x2 - x1) / (y2 - y1)
            inside ^= straddles & (xs < x_cross)
    return inside | on_edge


def cell_points(grid: FloorGrid, per_side: int = 3) -> NDArray[np.float64]:
    """(C, per_side², 2): evenly spread points in each cell, for the radio map."""
    offsets = ((np.arange(per_side) + 0.5) / per_side - 0.5) * grid.cell_m
    dx, dy = np.meshgrid(offsets, offsets)
    local = np.stack([dx.ravel(), dy.ravel()], axis=1)
    points: NDArray[np.float64] = grid.centers[:, None, :] + local[None, :, :]
    return points


@dataclass(frozen=True)
class Motion:
    """How shoppers move, per second. Two modes: *still* (browsing a rail,
    trying on: the position barely moves, so evidence adds up over windows)
    and *walking* (a random walk of ``walk_sigma_m``); a shopper switches
    modes at the given rates."""

    still_sigma_m: float = 0.2
    walk_sigma_m: float = 1.5
    max_step_m: float = 2.5
    start_walking_per_s: float = 0.1
    stop_walking_per_s: float = 0.3
    crossing_factor: float = 1.0
    exit_per_s: float = 0.05
    entry_per_s: float = 0.05
    door_depth_m: float = 1.5

    def __post_init__(self) -> None:
        if min(self.still_sigma_m, self.walk_sigma_m, self.max_step_m) <= 0:
            raise ValueError("step spreads and max_step_m must be positive")
        if not 0.0 < self.crossing_factor <= 1.0:
            raise ValueError("crossing_factor must be within (0, 1]")
        rates = (self.start_walking_per_s, self.stop_walking_per_s)
        if min(*rates, self.exit_per_s, self.entry_per_s) < 0:
            raise ValueError("rates must not be negative")


MODES = 2  # still, walking


@dataclass(frozen=True)
class ModeMotion:
    """The motion transition kept in its parts: two walk kernels and a few
    per-cell rates. ``tocsr`` is the full (2C+1, 2C+1) matrix; ``predict``
    applies it from those parts, which costs about half the matrix's
    multiply-adds (the two modes share one kernel product each) and needs no
    kernel product at all for the still mode when it never leaves its cell."""

    still: sparse.csr_array  # (C, C) step while still
    walk: sparse.csr_array  # (C, C) step while walking
    start: float  # P(still -> walking) per window
    stop: float  # P(walking -> still) per window
    stay: NDArray[np.float64]  # (C,) P(not leaving the store) from each cell
    exits: NDArray[np.float64]  # (C,) P(leaving the store) from each cell
    walk_in: NDArray[np.float64]  # (C,) P(OUTSIDE -> walking in this cell)
    enter: float  # P(OUTSIDE -> in the store) per window

    @property
    def cells(self) -> int:
        return int(self.stay.size)

    @property
    def shape(self) -> tuple[int, int]:
        states = MODES * self.cells + 1
        return states, states

    def tocsr(self) -> sparse.csr_array:
        """(2C+1, 2C+1) row-stochastic, over [cells still, cells walking, OUTSIDE]."""
        stay = sparse.diags_array(self.stay)
        exits = sparse.csr_array(self.exits[:, None])
        start, stop = self.start, self.stop
        walk_in = sparse.csr_array(self.walk_in[None, :])
        matrix: sparse.csr_array = sparse.block_array(
            [
                [(1.0 - start) * (stay @ self.still), start * (stay @ self.walk), exits],
                [stop * (stay @ self.still), (1.0 - stop) * (stay @ self.walk), exits],
                [None, walk_in, sparse.csr_array([[1.0 - self.enter]])],
            ],
            format="csr",
        )
        return matrix


def mode_motion(
    grid: FloorGrid, plan: StorePlan, *, window_s: float, motion: Motion = Motion()
) -> ModeMotion:
    """The parts of ``motion_transition`` (see ``ModeMotion``)."""
    if window_s <= 0:
        raise ValueError("window_s must be positive")
    doors = street_doors(grid, plan, motion.door_depth_m)
    leave = -math.expm1(-window_s * motion.exit_per_s)
    enter = -math.expm1(-window_s * motion.entry_per_s)
    return ModeMotion(
        still=_walk_kernel(grid, plan, motion.still_sigma_m, window_s, motion),
        walk=_walk_kernel(grid, plan, motion.walk_sigma_m, window_s, motion),
        start=-math.expm1(-window_s * motion.start_walking_per_s),
        stop=-math.expm1(-window_s * motion.stop_walking_per_s),
        stay=np.where(doors, 1.0 - leave, 1.0),
        exits=np.where(doors, leave, 0.0),
        walk_in=enter * doors / doors.sum(),
        enter=enter,
    )


def motion_transition(
    grid: FloorGrid, plan: StorePlan, *, window_s: float, motion: Motion = Motion()
) -> sparse.csr_array:
    """(2C+1, 2C+1) row-stochastic, sparse, over [cells still, cells walking, OUTSIDE]."""
    return mode_motion(grid, plan, window_s=window_s, motion=motion).tocsr()


def _walk_kernel(
    grid: FloorGrid, plan: StorePlan, sigma_m: float, window_s: float, motion: Motion
) -> sparse.csr_array:
    """(C, C) random-walk step between cells, kept to the zone graph. Built
    from lattice offsets, so it costs cells × offsets, not cells²."""
    zone = grid.cell_zone
    index = {z: i for i, z in enumerate(grid.zones)}
    allowed_zones = np.eye(len(grid.zones), dtype=bool)
    for a, neighbours in plan.adjacency.items():
        for b in neighbours:
            allowed_zones[index[a], index[b]] = True
    sigma = sigma_m * math.sqrt(window_s)
    reach = max(motion.max_step_m * math.sqrt(window_s), grid.cell_m * 1.01)
    span = int(reach // grid.cell_m)
    columns, rows = grid.lattice[:, 0], grid.lattice[:, 1]
    cell_at = np.full((rows.max() + 1 + 2 * span, columns.max() + 1 + 2 * span), -1, np.intp)
    cell_at[rows + span, columns + span] = np.arange(len(grid))
    sources: list[NDArray[np.intp]] = []
    targets: list[NDArray[np.intp]] = []
    weights: list[NDArray[np.float64]] = []
    for dr in range(-span, span + 1):
        for dc in range(-span, span + 1):
            distance = math.hypot(dr, dc) * grid.cell_m
            weight = math.exp(-0.5 * (distance / sigma) ** 2)
            if distance > reach or weight < _NEGLIGIBLE_STEP:
                continue
            target = cell_at[rows + span + dr, columns + span + dc]
            ok = target >= 0
            ok[ok] &= allowed_zones[zone[ok], zone[target[ok]]]
            source = np.flatnonzero(ok)
            crossing = zone[source] != zone[target[ok]]
            sources.append(source)
            targets.append(target[ok])
            weights.append(np.where(crossing, weight * motion.crossing_factor, weight))
    kernel = sparse.coo_array(
        (np.concatenate(weights), (np.concatenate(sources), np.concatenate(targets))),
        shape=(len(grid), len(grid)),
    ).tocsr()
    row_sums = np.asarray(kernel.sum(axis=1)).ravel()
    normalized: sparse.csr_array = sparse.diags_array(1.0 / row_sums) @ kernel
    return normalized.tocsr()


def street_doors(grid: FloorGrid, plan: StorePlan, depth_m: float = 1.5) -> NDArray[np.bool_]:
    """Cells a shopper comes in and goes out through: entrance-zone cells near
    the floor's edge (any edge cell when the store names no entrance)."""
    floor = plan.store.floor
    x, y = grid.centers[:, 0], grid.centers[:, 1]
    edge = np.minimum(np.minimum(x, y), np.minimum(floor.width_m - x, floor.depth_m - y))
    near_edge: NDArray[np.bool_] = edge <= max(depth_m, grid.cell_m)
    entrances = [grid.zones.index(z) for z in plan.entrances]
    if not entrances:
        return near_edge
    in_entrance = np.isin(grid.cell_zone, entrances)
    doors: NDArray[np.bool_] = near_edge & in_entrance
    return doors if doors.any() else in_entrance
