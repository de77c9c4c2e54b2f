"""The HMM filter and the localizer shell: normalization, impossible transitions,
missing data, hysteresis, device bookkeeping."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from omnizone.server.domain.localize import (
    Hysteresis,
    StoreLocalizer,
    forward_step,
    path_loss_map,
    transition_matrix,
)
from omnizone.server.domain.localize.propagation import anchor_positions, mean_rssi_dbm
from omnizone.store import StorePlan

# A line of zones a-b-c-d (a is the entrance) plus an island e nobody can reach.
ZONES = ("a", "b", "c", "d", "e")
ADJACENCY = {"a": ["b"], "b": ["a", "c"], "c": ["b", "d"], "d": ["c"], "e": []}
T = transition_matrix(ZONES, ADJACENCY, ["a"], window_s=1.0, mean_dwell_s=20.0)
STATES = len(ZONES) + 1

finite_logs = st.floats(min_value=-1e4, max_value=50, allow_nan=False)
any_logs = st.one_of(finite_logs, st.just(-math.inf), st.just(math.nan))


def test_transition_matrix_structure() -> None:
    assert T.shape == (STATES, STATES)
    np.testing.assert_allclose(T.sum(axis=1), 1.0)
    allowed = {(i, i) for i in range(STATES)}
    index = {z: i for i, z in enumerate(ZONES)}
    for zone, neighbours in ADJACENCY.items():
        allowed |= {(index[zone], index[n]) for n in neighbours}
    allowed |= {(0, STATES - 1), (STATES - 1, 0)}  # entrance <-> OUTSIDE
    for i in range(STATES):
        for j in range(STATES):
            assert (T[i, j] > 0) == ((i, j) in allowed), (i, j)
    assert T[index["e"], index["e"]] == 1.0  # nowhere to go
    assert T[1, 1] == pytest.approx(math.exp(-1 / 20))


def test_store_without_entrance_connects_every_zone_to_outside() -> None:
    matrix = transition_matrix(("x", "y"), {"x": ["y"], "y": ["x"]}, [], window_s=1.0)
    assert (matrix[:2, 2] > 0).all() and (matrix[2, :2] > 0).all()


@settings(max_examples=200, deadline=None)
@given(
    prior=hnp.arrays(np.float64, (3, STATES), elements=st.floats(0, 1e3)),
    log_lik=hnp.arrays(np.float64, (3, STATES), elements=any_logs),
)
def test_posterior_rows_are_distributions(prior: np.ndarray, log_lik: np.ndarray) -> None:
    posterior = forward_step(prior, log_lik, T)
    assert np.isfinite(posterior).all()
    assert (posterior >= 0).all()
    np.testing.assert_allclose(posterior.sum(axis=1), 1.0, rtol=1e-9)


@settings(max_examples=200, deadline=None)
@given(
    start=st.integers(0, STATES - 1),
    log_lik=hnp.arrays(np.float64, (1, STATES), elements=any_logs),
)
def test_mass_never_jumps_to_a_non_adjacent_state(start: int, log_lik: np.ndarray) -> None:
    prior = np.zeros((1, STATES))
    prior[0, start] = 1.0
    posterior = forward_step(prior, log_lik, T)
    reachable = T[start] > 0
    assert (posterior[0, ~reachable] == 0.0).all()
    assert posterior[0, reachable].sum() == pytest.approx(1.0)


@settings(max_examples=100, deadline=None)
@given(steps=st.integers(1, 30), start=st.integers(0, STATES - 1))
def test_all_missing_rows_keep_rows_normalized(steps: int, start: int) -> None:
    prior = np.zeros((1, STATES))
    prior[0, start] = 1.0
    for _ in range(steps):
        prior = forward_step(prior, np.full((1, STATES), np.nan), T)
        np.testing.assert_allclose(prior.sum(), 1.0)
    # with no evidence the filter is the Markov chain itself
    expected = np.linalg.matrix_power(T, steps)[start]
    np.testing.assert_allclose(prior[0], expected, atol=1e-12)


def test_zero_prior_row_restarts_from_uniform() -> None:
    posterior = forward_step(np.zeros((1, STATES)), np.zeros((1, STATES)), T)
    np.testing.assert_allclose(posterior.sum(), 1.0)


# -- the localizer shell on the example store ------------------------------------------


def _reading_at(plan: StorePlan, point: tuple[float, float]) -> np.ndarray:
    """The noise-free window mean a device at ``point`` produces (all anchors hear it)."""
    _, xy = anchor_positions(plan)
    distance = np.linalg.norm(xy - np.array(point), axis=1)
    return mean_rssi_dbm(distance, -59.0, 2.2)


@settings(max_examples=40, deadline=None)
@given(
    rows=hnp.arrays(
        np.float64,
        (4, 10),
        elements=st.one_of(st.floats(-120, 0, allow_nan=False), st.just(math.nan)),
    ),
    windows=st.integers(1, 5),
)
def test_localizer_survives_any_readings(plan: StorePlan, rows: np.ndarray, windows: int) -> None:
    localizer = StoreLocalizer.for_store(plan, points_per_zone=20)
    devices = ["eid:01", "eid:02", "eid:03", "eid:04"]
    for w in range(windows):
        decisions = localizer.update((w + 1) * 1000, devices, rows)
        assert [d.device for d in decisions] == devices
        for decision in decisions:
            assert decision.zone is None or decision.zone in localizer.zones
            assert 0.0 <= decision.confidence <= 1.0 + 1e-12
    for device in devices:
        assert sum(localizer.posterior(device).values()) == pytest.approx(1.0)


def test_shopper_standing_by_a_gateway_is_placed_in_its_zone(plan: StorePlan) -> None:
    localizer = StoreLocalizer.for_store(plan)
    gateways = {gw.id: gw for gw in plan.gateways}
    devices = [f"eid:{i:02d}" for i in range(len(gateways))]
    rows = np.array([_reading_at(plan, gateways[a].position) for a in localizer.anchors])
    for w in range(4):
        decisions = localizer.update((w + 1) * 1000, devices, rows)
    for anchor, decision in zip(localizer.anchors, decisions, strict=True):
        assert decision.zone == plan.gateway_zones[anchor]
        assert decision.confidence > 0.9


def test_hysteresis_confirms_before_reporting(plan: StorePlan) -> None:
    localizer = StoreLocalizer.for_store(plan, hysteresis=Hysteresis(0.6, confirm_windows=3))
    row = _reading_at(plan, (15, 2))[None, :]  # by the entrance gateway
    zones = [localizer.update((w + 1) * 1000, ["eid:01"], row)[0] for w in range(4)]
    assert [d.zone for d in zones] == [None, None, "entrance", "entrance"]
    assert [d.changed for d in zones] == [False, False, True, False]
    assert zones[2].previous is None and zones[3].previous == "entrance"
    changes = localizer.update_changes(5000, ["eid:01"], row)
    assert changes == []


def test_filter_walks_through_adjacent_zones_only(plan: StorePlan) -> None:
    """A device heard at the entrance, then next to the checkout, cannot be
    reported there at once: the checkout is several zones away."""
    localizer = StoreLocalizer.for_store(plan, hysteresis=Hysteresis(0.6, 1))
    entrance = _reading_at(plan, (15, 2))[None, :]
    checkout = _reading_at(plan, (28, 17))[None, :]
    for w in range(5):
        localizer.update((w + 1) * 1000, ["eid:01"], entrance)
    first = localizer.update(6000, ["eid:01"], checkout)[0]
    assert first.zone in {"entrance", *plan.adjacency["entrance"]}
    path = [localizer.update((7 + w) * 1000, ["eid:01"], checkout)[0].zone for w in range(6)]
    assert path[-1] == "checkout"


def test_absent_devices_advance_and_are_forgotten(plan: StorePlan) -> None:
    localizer = StoreLocalizer.for_store(plan, outside_after_windows=5)
    row = _reading_at(plan, (15, 2))[None, :]
    for w in range(3):
        localizer.update((w + 1) * 1000, ["eid:01"], row)
    assert "eid:01" in localizer and len(localizer) == 1
    empty = np.empty((0, len(localizer.anchors)))
    decisions = [localizer.update((4 + w) * 1000, [], empty) for w in range(5)]
    assert all(len(d) == 1 for d in decisions)  # advanced while absent
    assert decisions[0][0].zone == "entrance"  # one silent window is not enough to leave
    assert sum(d[0].changed for d in decisions) == 1
    assert decisions[-1][0].zone is None
    assert "eid:01" not in localizer and len(localizer) == 0


def test_silent_device_deep_in_the_store_is_dropped_after_the_timeout(plan: StorePlan) -> None:
    localizer = StoreLocalizer.for_store(plan, outside_after_windows=3)
    row = _reading_at(plan, (28, 17))[None, :]  # checkout, four zones from the door
    for w in range(4):
        localizer.update((w + 1) * 1000, ["eid:01"], row)
    empty = np.empty((0, len(localizer.anchors)))
    zones = [localizer.update((5 + w) * 1000, [], empty)[0] for w in range(3)]
    assert [d.zone for d in zones[:2]] == ["checkout", "checkout"]
    assert zones[2].zone is None and zones[2].changed
    assert len(localizer) == 0


def test_rows_compact_after_forget(plan: StorePlan) -> None:
    localizer = StoreLocalizer.for_store(plan)
    devices = [f"eid:{i:03d}" for i in range(200)]  # beyond the initial capacity
    gateways = {gw.id: gw for gw in plan.gateways}
    anchors = localizer.anchors
    rows = np.array(
        [_reading_at(plan, gateways[anchors[i % len(anchors)]].position) for i in range(200)]
    )
    for w in range(3):
        localizer.update((w + 1) * 1000, devices, rows)
    for device in devices[:150:2]:
        localizer.forget(device)
    assert len(localizer) == 125
    kept = [d for d in devices if d in localizer]
    decisions = {
        d.device: d for d in localizer.update(4000, kept, rows[[devices.index(d) for d in kept]])
    }
    for device in kept:
        i = devices.index(device)
        assert decisions[device].zone == plan.gateway_zones[anchors[i % len(anchors)]]


def test_update_rejects_bad_calls(plan: StorePlan) -> None:
    localizer = StoreLocalizer.for_store(plan)
    row = np.full((1, len(localizer.anchors)), np.nan)
    with pytest.raises(ValueError, match="shape"):
        localizer.update(1000, ["eid:01"], row[:, :3])
    with pytest.raises(ValueError, match="twice"):
        localizer.update(1000, ["eid:01", "eid:01"], np.vstack([row, row]))
    localizer.update(1000, ["eid:01"], row)
    with pytest.raises(ValueError, match="not after"):
        localizer.update(1000, ["eid:01"], row)


def test_anchors_that_did_not_report_say_nothing(plan: StorePlan) -> None:
    radio = path_loss_map(plan, points_per_zone=50)
    localizer = StoreLocalizer.for_store(plan, points_per_zone=50)
    silent = np.full((1, len(radio.anchors)), np.nan)
    nobody = np.zeros(len(radio.anchors), dtype=bool)
    for w in range(3):
        localizer.update((w + 1) * 1000, ["eid:01"], silent, present=nobody)
    # no anchor reported anything: the belief is the prior pushed through the chain
    belief = localizer.posterior("eid:01")
    assert sum(belief.values()) == pytest.approx(1.0)
    assert max(belief.values()) < 0.9


def test_a_gap_of_windows_counts_as_that_many_silent_windows(plan: StorePlan) -> None:
    localizer = StoreLocalizer.for_store(plan, outside_after_windows=5)
    heard = _reading_at(plan, (28, 17))[None, :]
    other = _reading_at(plan, (15, 2))[None, :]
    for w in range(3):
        localizer.update((w + 1) * 1000, ["eid:01", "eid:02"], np.vstack([heard, other]))
    # nothing at all for 4 windows, then only eid:02 is heard: eid:01 has been silent 5 windows
    decisions = {d.device: d for d in localizer.update(8000, ["eid:02"], other)}
    assert decisions["eid:01"].zone is None and decisions["eid:01"].changed
    assert decisions["eid:02"].zone == "entrance"
    assert "eid:01" not in localizer and "eid:02" in localizer
