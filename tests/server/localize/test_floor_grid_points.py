"""The grid's cells and zone shares, computed for all points at once, are
what the store's own ``zone_at`` gives point by point (boundaries included)."""

import numpy as np
import pytest

from omnizone.paths import shipped_config
from omnizone.server.domain.localize.grid import contains_points, floor_grid
from omnizone.store import geometry, load_store


@pytest.mark.parametrize("store", ["stores/rivoli.yaml", "stores/boutique.yaml"])
@pytest.mark.parametrize("cell_m", [1.0, 0.7])
def test_floor_grid_matches_zone_at_point_by_point(store: str, cell_m: float) -> None:
    plan = load_store(shipped_config(store))
    grid = floor_grid(plan, cell_m)
    offsets = (np.arange(4) + 0.5) / 4 * cell_m
    for (c, r), share in zip(grid.lattice, grid.zone_share, strict=True):
        expected = np.zeros(len(grid.zones))
        for dx in offsets:
            for dy in offsets:
                zone = plan.zone_at((c * cell_m + float(dx), r * cell_m + float(dy)))
                if zone is not None:
                    expected[grid.zones.index(zone)] += 1
        assert np.array_equal(share, expected / 16)
    kept = {(int(c), int(r)) for c, r in grid.lattice}
    width, depth = plan.store.floor.width_m, plan.store.floor.depth_m
    for r in range(int(np.ceil(depth / cell_m))):
        for c in range(int(np.ceil(width / cell_m))):
            centre = (c * cell_m + cell_m / 2, r * cell_m + cell_m / 2)
            if plan.zone_at(centre) is not None:
                assert (c, r) in kept


def test_points_on_a_boundary_or_a_corner_are_inside() -> None:
    square = [(0.0, 0.0), (2.0, 0.0), (2.0, 2.0), (0.0, 2.0)]
    points = [(0.0, 1.0), (2.0, 2.0), (1.0, 1.0), (2.5, 1.0), (1.0, -0.1), (1.0, 0.0)]
    xs = np.array([p[0] for p in points])
    ys = np.array([p[1] for p in points])
    got = contains_points(square, xs, ys)
    assert got.tolist() == [geometry.contains(square, p) for p in points]
    assert got.tolist() == [True, True, True, False, False, True]
