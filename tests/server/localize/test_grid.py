"""The position filter: floor grid, motion model (walls, zone graph, modes),
the sparse forward step, and the localizer reading zones off cells."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import sparse

from omnizone.server.domain.localize import Hysteresis, StoreLocalizer, forward_step
from omnizone.server.domain.localize.grid import (
    MODES,
    Motion,
    floor_grid,
    motion_transition,
    street_doors,
)
from omnizone.server.domain.localize.propagation import anchor_positions, mean_rssi_dbm
from omnizone.store import StorePlan


@pytest.fixture(scope="module")
def grid_setup(plan: StorePlan) -> tuple[StorePlan, object, sparse.csr_array]:
    grid = floor_grid(plan, 1.0)
    return plan, grid, motion_transition(grid, plan, window_s=1.0)


def test_grid_covers_the_floor_and_shares_sum_to_one(plan: StorePlan) -> None:
    grid = floor_grid(plan, 1.0)
    floor = plan.store.floor
    assert len(grid) == floor.width_m * floor.depth_m  # the example store's zones tile it
    np.testing.assert_allclose(grid.zone_share.sum(axis=1), 1.0)
    for i in (0, 137, len(grid) - 1):
        centre = tuple(grid.centers[i])
        assert grid.zones[grid.cell_zone[i]] == plan.zone_at(centre)


def test_a_cell_across_a_boundary_is_shared(plan: StorePlan) -> None:
    grid = floor_grid(plan, 3.0)  # 3 m cells straddle the 4 m / 10 m zone edges
    straddling = (grid.zone_share > 0).sum(axis=1) > 1
    assert straddling.any()
    total = grid.zone_share.sum(axis=1)
    on_floor = grid.centers[:, 1] + 1.5 <= plan.store.floor.depth_m
    np.testing.assert_allclose(total[on_floor], 1.0)
    assert (total[~on_floor] < 1.0).all()  # the last row hangs off the 20 m floor


def test_transition_is_row_stochastic_and_sparse(grid_setup) -> None:  # type: ignore[no-untyped-def]
    _, grid, matrix = grid_setup
    states = MODES * len(grid) + 1
    assert matrix.shape == (states, states)
    np.testing.assert_allclose(np.asarray(matrix.sum(axis=1)).ravel(), 1.0)
    assert (matrix.data >= 0).all()
    assert matrix.nnz < 40 * states  # local steps only


def test_steps_never_cross_a_wall_or_skip_a_zone(grid_setup) -> None:  # type: ignore[no-untyped-def]
    plan, grid, matrix = grid_setup
    cells = len(grid)
    zone = np.tile(grid.cell_zone, MODES)
    coo = matrix.tocoo()
    inside = (coo.row < MODES * cells) & (coo.col < MODES * cells)
    steps = zip(coo.row[inside], coo.col[inside], strict=True)
    for a, b in {(int(zone[r]), int(zone[c])) for r, c in steps}:
        za, zb = grid.zones[a], grid.zones[b]
        assert za == zb or zb in plan.adjacency[za], (za, zb)
    walled = {frozenset(pair) for pair in plan.walls}
    assert frozenset(("fitting-room-1", "shoes")) in walled


def test_only_street_doors_lead_outside(grid_setup) -> None:  # type: ignore[no-untyped-def]
    plan, grid, matrix = grid_setup
    doors = street_doors(grid, plan)
    assert doors.any()
    assert {grid.zones[z] for z in grid.cell_zone[doors]} == {"entrance"}
    to_outside = matrix[:, [-1]].toarray().ravel()[:-1]
    np.testing.assert_array_equal(to_outside > 0, np.tile(doors, MODES))


def test_motion_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="crossing_factor"):
        Motion(crossing_factor=0.0)
    with pytest.raises(ValueError, match="positive"):
        Motion(walk_sigma_m=0.0)


@settings(max_examples=60, deadline=None)
@given(
    start=st.integers(0, 1200),
    log_lik=hnp.arrays(
        np.float64,
        (1, 1201),
        elements=st.one_of(
            st.floats(-1e4, 50, allow_nan=False), st.just(-math.inf), st.just(math.nan)
        ),
    ),
)
def test_sparse_forward_step_stays_normalized_and_local(
    grid_setup,  # type: ignore[no-untyped-def]
    start: int,
    log_lik: np.ndarray,
) -> None:
    _, _, matrix = grid_setup
    prior = np.zeros((1, matrix.shape[0]))
    prior[0, start] = 1.0
    posterior = forward_step(prior, log_lik, matrix)
    assert np.isfinite(posterior).all() and (posterior >= 0).all()
    np.testing.assert_allclose(posterior.sum(axis=1), 1.0)
    reachable = matrix[[start], :].toarray().ravel() > 0
    assert posterior[0, ~reachable].sum() == 0.0  # never somewhere one step cannot reach


def test_sparse_and_dense_steps_agree(grid_setup) -> None:  # type: ignore[no-untyped-def]
    _, _, matrix = grid_setup
    rng = np.random.default_rng(3)
    prior = rng.random((4, matrix.shape[0]))
    log_lik = rng.normal(0, 5, size=prior.shape)
    np.testing.assert_allclose(
        forward_step(prior, log_lik, matrix), forward_step(prior, log_lik, matrix.toarray())
    )


def _reading_at(plan: StorePlan, point: tuple[float, float]) -> np.ndarray:
    _, xy = anchor_positions(plan)
    return mean_rssi_dbm(np.linalg.norm(xy - np.array(point), axis=1), -59.0, 2.2)


def test_grid_localizer_places_and_follows_a_walk(plan: StorePlan) -> None:
    """Standing by a gateway, then walking entrance -> accessories -> shoes:
    each zone is reported in turn, never one the walk did not pass through."""
    localizer = StoreLocalizer.on_grid(plan)
    path = [(15.0, 1.5)] * 4 + [(15.0, 2.0 + 0.8 * k) for k in range(1, 20)] + [(15.0, 17.0)] * 4
    reported = []
    for w, point in enumerate(path):
        decision = localizer.update((w + 1) * 1000, ["eid:01"], _reading_at(plan, point)[None])[0]
        reported.append(decision.zone)
        assert sum(localizer.posterior("eid:01").values()) == pytest.approx(1.0)
    seen = [z for i, z in enumerate(reported) if z is not None and z != reported[i - 1]]
    assert seen == ["entrance", "accessories", "shoes"]


def test_blank_copy_tracks_nobody(plan: StorePlan) -> None:
    localizer = StoreLocalizer.on_grid(plan, hysteresis=Hysteresis(0.6))
    localizer.update(1000, ["eid:01"], _reading_at(plan, (15, 2))[None])
    fresh = localizer.blank()
    assert len(localizer) == 1 and len(fresh) == 0
    decision = fresh.update(1000, ["eid:02"], _reading_at(plan, (6, 5))[None])[0]
    assert decision.device == "eid:02" and "eid:01" not in fresh


def test_survey_rows_blend_into_the_cells(plan: StorePlan) -> None:
    from omnizone.paths import shipped_config
    from omnizone.server.domain.localize.survey import load_survey

    survey = load_survey(shipped_config("surveys/rivoli-train-3db.csv"))
    plain = StoreLocalizer.on_grid(plan)
    blended = StoreLocalizer.on_grid(plan, survey=survey)
    assert blended.radio.zones == plain.radio.zones
    assert not np.allclose(blended.radio.mean_dbm, plain.radio.mean_dbm[:, : len(plain.anchors)])


def test_the_hysteresis_bar_can_be_overridden_for_the_latency_trade_off(plan: StorePlan) -> None:
    from omnizone.server.service.locators import (
        WindowedLocator,
        default_enter_probability,
        make_locators,
    )

    default = make_locators({plan.id: plan}, "grid")[plan.id]
    eager = make_locators({plan.id: plan}, "grid", enter_probability=0.3)[plan.id]
    assert isinstance(default, WindowedLocator) and isinstance(eager, WindowedLocator)
    assert default._localizer is not None and eager._localizer is not None
    bar = default._localizer.hysteresis.enter_probability  # type: ignore[attr-defined]
    assert bar == default_enter_probability("grid") != 0.3
    assert eager._localizer.hysteresis.enter_probability == 0.3  # type: ignore[attr-defined]
    assert default_enter_probability("nearest") is None
