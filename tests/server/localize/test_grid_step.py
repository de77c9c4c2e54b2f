"""The fast position-filter step (``grid_forward``) against the reference
``forward_step`` over the full sparse transition: same posteriors to within
float rounding and the negligible-probability cut, same zone decisions."""

import math

import numpy as np
import pytest
from numpy.typing import NDArray

from omnizone.server.domain.localize import StoreLocalizer, forward_step
from omnizone.server.domain.localize.grid import (
    MODES,
    Motion,
    cell_points,
    floor_grid,
    mode_motion,
)
from omnizone.server.domain.localize.localizer import (
    GRID_BLOCK_DEVICES,
    GRID_HYSTERESIS,
    GridStep,
    device_rows,
    grid_forward,
    set_device_rows,
    state_membership,
)
from omnizone.server.domain.localize.radio_map import place_map
from omnizone.store import StorePlan

#: Agreement asked of the fast step: rounding, plus probabilities below 1e-120
#: set to 0 (docs/localization.md, "Speed").
RTOL, ATOL = 1e-9, 1e-12


def _step(plan: StorePlan, cell_m: float, motion: Motion) -> tuple[GridStep, int]:
    grid = floor_grid(plan, cell_m)
    parts = mode_motion(grid, plan, window_s=1.0, motion=motion)
    cells = len(grid)
    columns = np.append(np.tile(np.arange(cells), MODES), cells)
    membership = state_membership(
        MODES * cells + 1, len(grid.zones), np.tile(grid.zone_share, (MODES, 1))
    )
    assert membership is not None
    return GridStep.of(parts, parts.tocsr(), columns, membership), cells


def _random_case(
    cells: int, devices: int, seed: int
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Priors from flat to sharply peaked (tails far below 1e-120), and
    evidence with the awkward rows: no information, +inf, -inf columns, and
    evidence that contradicts the prior so much that its mass underflows."""
    rng = np.random.default_rng(seed)
    states = MODES * cells + 1
    sharpness = rng.uniform(0.0, 800.0, size=(devices, 1))
    prior = np.exp(-sharpness * rng.random((devices, states)))
    prior /= prior.sum(axis=1, keepdims=True)
    log_lik = rng.normal(0.0, 1.0, size=(devices, cells + 1)) * rng.uniform(
        0.1, 200.0, size=(devices, 1)
    )
    prior[0] = 0.0  # no mass: restarts from uniform
    log_lik[1] = np.nan  # nothing known this window
    log_lik[2, 5] = math.inf
    log_lik[3, : cells // 2] = -math.inf
    peak = int(np.argmax(prior[4, :cells]))
    prior[4] = 0.0
    prior[4, peak] = 1.0  # surely at one cell, still ...
    log_lik[4] = -5000.0
    log_lik[4, (peak + cells // 2) % cells] = 0.0  # ... heard far out of a step's reach
    return prior, log_lik


@pytest.mark.parametrize(
    ("cell_m", "motion"),
    [
        (1.0, Motion()),  # the production grid: a still shopper stays in the cell
        (1.0, Motion(still_sigma_m=0.8)),  # the still kernel moves too
        (2.0, Motion(walk_sigma_m=2.5, max_step_m=4.0)),  # coarse cells straddle zones
    ],
)
@pytest.mark.parametrize("seed", [1, 2])
def test_grid_forward_matches_the_reference_step(
    plan: StorePlan, cell_m: float, motion: Motion, seed: int
) -> None:
    step, cells = _step(plan, cell_m, motion)
    assert step.still_moves == (motion.still_sigma_m > 0.5)
    devices = 2 * GRID_BLOCK_DEVICES + 45  # two full blocks and a partial one
    prior, log_lik = _random_case(cells, devices, seed)

    expected = forward_step(prior, log_lik[:, step.columns], step.transition)
    expected_zones = expected @ step.membership

    blocks = np.zeros((3, prior.shape[1], GRID_BLOCK_DEVICES))
    set_device_rows(blocks, prior)
    zones = np.empty_like(expected_zones)
    grid_forward(blocks, log_lik, step, zones=zones)
    posterior = device_rows(blocks, devices)

    np.testing.assert_allclose(posterior, expected, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(zones, expected_zones, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(posterior.sum(axis=1), 1.0, rtol=1e-12)
    assert (posterior >= 0).all()
    # the rows the linear-space product cannot serve went through the reference step
    awkward = [0, 1, 2, 4]
    np.testing.assert_array_equal(posterior[awkward], expected[awkward])


def test_device_rows_round_trip() -> None:
    rows = np.random.default_rng(0).random((GRID_BLOCK_DEVICES + 7, 5))
    blocks = np.zeros((2, 5, GRID_BLOCK_DEVICES))
    set_device_rows(blocks, rows)
    np.testing.assert_array_equal(device_rows(blocks, rows.shape[0]), rows)
    assert (blocks[1, :, 7:] == 0).all()  # rows past the devices in use untouched


def _reference_localizer(plan: StorePlan) -> StoreLocalizer:
    """``on_grid`` without the motion's parts: every window takes ``forward_step``
    over the full sparse transition, as before ``grid_forward``."""
    grid = floor_grid(plan, 1.0)
    names = tuple(f"cell-{i}" for i in range(len(grid)))
    radio = place_map(plan, names, cell_points(grid), window_ms=1000)
    return StoreLocalizer(
        radio,
        mode_motion(grid, plan, window_s=1.0).tocsr(),
        GRID_HYSTERESIS,
        outside_after_windows=8,
        zones=grid.zones,
        zone_share=np.tile(grid.zone_share, (MODES, 1)),
        state_rows=np.tile(np.arange(len(grid)), MODES),
        state_points=np.tile(grid.centers, (MODES, 1)),
    )


def test_grid_localizer_decides_as_the_reference_step(plan: StorePlan) -> None:
    """Shoppers walking cell to cell, arriving, going quiet, a gap of windows
    and an anchor that does not report: the same decisions, window by window."""
    fast = StoreLocalizer.on_grid(plan, outside_after_windows=8)
    reference = _reference_localizer(plan)
    np.testing.assert_array_equal(fast.radio.mean_dbm, reference.radio.mean_dbm)
    radio = fast.radio
    rng = np.random.default_rng(5)
    devices = 300
    names = [f"eid:{i:016x}" for i in range(devices)]
    cell = rng.integers(0, len(radio.zones), size=devices)
    lattice = floor_grid(plan, 1.0).centers
    decisions = changes = 0
    t = 0
    for window in range(60):
        t += 4000 if window == 30 else 1000
        near = np.linalg.norm(lattice[:, None, :] - lattice[cell][None, :, :], axis=2) < 1.6
        for d in range(devices):  # a step to a neighbouring cell now and then
            if rng.random() < 0.3:
                cell[d] = rng.choice(np.flatnonzero(near[:, d]))
        mean, sigma = radio.mean_dbm[cell], radio.sigma_db[cell]
        rssi = mean + sigma * rng.standard_normal(mean.shape)
        rssi[rng.random(mean.shape) >= radio.p_heard[cell]] = np.nan
        live = rng.random(devices) < min(1.0, 0.2 + window / 20)
        live &= ~((np.arange(devices) % 5 == 0) & (40 <= window < 52))  # some go quiet
        present = None if window % 7 else np.arange(len(radio.anchors)) != window % 3
        which = np.flatnonzero(live)
        batch = [names[i] for i in which]
        got = fast.update(t, batch, rssi[which], present)
        want = reference.update(t, batch, rssi[which], present)
        assert [(d.device, d.zone, d.changed, d.previous) for d in got] == [
            (d.device, d.zone, d.changed, d.previous) for d in want
        ]
        np.testing.assert_allclose(
            [d.confidence for d in got], [d.confidence for d in want], rtol=RTOL, atol=ATOL
        )
        decisions += len(got)
        changes += sum(d.changed for d in got)
    assert decisions > 10_000 and changes > 100  # the run did exercise the hysteresis
    got_names, got_positions = fast.positions()
    want_names, want_positions = reference.positions()
    assert got_names == want_names
    np.testing.assert_allclose(got_positions, want_positions, rtol=RTOL, atol=1e-9)
