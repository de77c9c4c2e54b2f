"""The evidence weight learned from residuals, and point surveys spread by position."""

import numpy as np
import pytest

from omnizone.server.domain.localize import StoreLocalizer
from omnizone.server.domain.localize.hmm import transition_matrix
from omnizone.server.domain.localize.learned import fit_learned
from omnizone.server.domain.localize.likelihood import (
    LikelihoodModel,
    ResidualState,
    ResidualTempering,
    best_fit_residuals,
    expected_residual,
)
from omnizone.server.domain.localize.radio_map import (
    RadioMap,
    fingerprint_map,
    point_fingerprint_map,
)
from omnizone.server.domain.localize.survey import Survey

ZONES = tuple(f"z{i}" for i in range(6))
ANCHORS = tuple(f"gw{i}" for i in range(8))


def _map(sigma: float = 3.0) -> RadioMap:
    rng = np.random.default_rng(1)
    return RadioMap(
        zones=ZONES,
        anchors=ANCHORS,
        mean_dbm=rng.uniform(-85, -55, (len(ZONES), len(ANCHORS))),
        sigma_db=np.full((len(ZONES), len(ANCHORS)), sigma),
        p_heard=np.full((len(ZONES), len(ANCHORS)), 0.95),
    )


def _windows(radio: RadioMap, scale: float, n: int, seed: int) -> np.ndarray:
    """Readings of devices in random zones with ``scale`` times the map's spread."""
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, len(radio.zones), n)
    rssi = rng.normal(radio.mean_dbm[rows], scale * radio.sigma_db[rows])
    rssi[rng.random(rssi.shape) > radio.p_heard[rows]] = np.nan
    return rssi


def _learned_weight(scale: float) -> float:
    radio = _map()
    tempering = ResidualTempering(memory_readings=5_000.0)
    state = ResidualState.start(expected_residual(radio), tempering)
    model = LikelihoodModel(radio)
    for window in range(40):
        rssi = _windows(radio, scale, 64, seed=100 + window)
        state.add(*best_fit_residuals(radio, rssi, model(rssi)), tempering)
    return state.weight(tempering)


def test_radio_as_the_map_says_keeps_the_weight_near_one() -> None:
    assert _learned_weight(1.0) == pytest.approx(1.0, abs=0.15)


def test_noisier_radio_than_the_map_lowers_the_weight() -> None:
    # 1.5 times the spread: 2.25 times the variance, so about 1 / 2.25
    weight = _learned_weight(1.5)
    assert 0.4 <= weight < 0.6


def test_steadier_radio_than_the_map_raises_the_weight() -> None:
    assert _learned_weight(0.6) > 1.8


def test_the_weight_stays_within_its_bounds() -> None:
    tempering = ResidualTempering(min_weight=0.5, max_weight=2.0)
    state = ResidualState.start(0.8, tempering)
    state.add(1e6, 10.0, tempering)
    assert state.weight(tempering) == 0.5
    state = ResidualState.start(0.8, tempering)
    state.add(0.0, 1e6, tempering)
    assert state.weight(tempering) == 2.0


def test_devices_heard_by_too_few_anchors_are_left_out() -> None:
    radio = _map()
    rssi = np.full((2, len(ANCHORS)), np.nan)
    rssi[:, :2] = -60.0
    assert best_fit_residuals(radio, rssi, LikelihoodModel(radio)(rssi)) == (0.0, 0.0)


def test_a_localizer_learns_its_weight_while_it_places() -> None:
    radio = _map()
    transition = transition_matrix(ZONES, {z: list(ZONES) for z in ZONES}, ["z0"], window_s=1.0)
    localizer = StoreLocalizer(radio, transition, tempering=ResidualTempering())
    fixed = StoreLocalizer(radio, transition)
    devices = [f"d{i}" for i in range(64)]
    for window in range(30):
        rssi = _windows(radio, 1.6, len(devices), seed=window)
        localizer.update(1000 * (window + 1), devices, rssi)
        fixed.update(1000 * (window + 1), devices, rssi)
    assert localizer.current_evidence_weight() < 0.6
    assert fixed.current_evidence_weight() == 1.0
    # a fresh start keeps what was learned of the radio, not the devices
    blank = localizer.blank()
    assert len(blank) == 0
    assert blank.current_evidence_weight() == localizer.current_evidence_weight()


def test_point_survey_describes_each_side_of_a_zone_by_its_own_samples() -> None:
    # one zone 10 m wide: the left samples hear gw-a loudly, the right ones weakly
    rows, points = [], []
    for x in np.linspace(0.5, 9.5, 40):
        rows.append([-50.0 if x < 5 else -80.0, -70.0])
        points.append([x, 1.0])
    survey = Survey(("hall",) * 40, ("gw-a", "gw-b"), np.array(rows), points=np.array(points))
    zone_map = fingerprint_map(survey)
    places = ("left", "middle", "right", "elsewhere")
    centres = np.array([[1.0, 1.0], [5.0, 1.0], [9.0, 1.0], [20.0, 1.0]])
    cells = point_fingerprint_map(
        survey, zone_map, places, centres, ["hall", "hall", "hall", "hall"], radius_m=1.0
    )
    mean = cells.mean_dbm[:, 0]
    # the zone's average is -65 dBm; each side is pulled most of the way to its own
    assert -58.0 < mean[0] < -50.0
    assert -80.0 < mean[2] < -72.0
    assert -75.0 < mean[1] < -55.0
    # far from every sample: the zone's own row, as without positions
    assert mean[3] == pytest.approx(zone_map.mean_dbm[0, 0])
    assert cells.sigma_db[0, 0] < zone_map.sigma_db[0, 0]


def test_point_survey_needs_points() -> None:
    survey = Survey(("hall",), ("gw-a",), np.array([[-60.0]]))
    with pytest.raises(ValueError, match="x,y points"):
        point_fingerprint_map(survey, fingerprint_map(survey), ("c",), np.zeros((1, 2)), ["hall"])


def test_the_learned_likelihood_can_share_the_filter_evidence() -> None:
    radio = _map()
    transition = transition_matrix(ZONES, {z: list(ZONES) for z in ZONES}, ["z0"], window_s=1.0)
    rng = np.random.default_rng(3)
    rows = np.repeat(np.arange(len(ZONES)), 30)
    train = rng.normal(radio.mean_dbm[rows], radio.sigma_db[rows])
    survey = Survey(tuple(ZONES[r] for r in rows), ANCHORS, train)
    learned = fit_learned(survey)
    with pytest.raises(ValueError, match="learned_share"):
        StoreLocalizer(radio, transition, learned=learned, learned_share=1.5)
    plain = StoreLocalizer(radio, transition)
    blended = StoreLocalizer(radio, transition, learned=learned, learned_share=0.5)
    device = rng.normal(radio.mean_dbm[2], radio.sigma_db[2])[None, :]
    for window in range(1, 6):
        plain.update(1000 * window, ["d"], device)
        decision = blended.update(1000 * window, ["d"], device)[0]
    assert decision.zone == "z2"
    assert blended.posterior("d") != plain.posterior("d")
