"""The learned likelihood: lookup tables per zone and anchor, chosen by blocked cross-validation."""

import numpy as np
import pytest

from omnizone.server.domain.localize import Survey, fingerprint_map, log_likelihood, simulate_survey
from omnizone.server.domain.localize.learned import (
    BANDWIDTHS_DB,
    TEMPERATURES,
    LearnedLikelihood,
    _blocked_folds,
    align_readings,
    fit_learned,
    score_learned,
)
from omnizone.store import StorePlan


def _accuracy(zones: tuple[str, ...], log_p: np.ndarray, truth: tuple[str, ...]) -> float:
    guesses = np.array(zones, dtype=object)[log_p.argmax(axis=1)]
    return float(np.mean(guesses == np.array(truth, dtype=object)))


def test_scores_are_normalised_log_probabilities(plan: StorePlan) -> None:
    train = simulate_survey(plan, 40, 4.0, seed=1)
    model = fit_learned(train)
    test = simulate_survey(plan, 10, 4.0, seed=2)
    rssi, present = align_readings(test, model.anchors)
    log_p = score_learned(model, rssi, present)
    assert log_p.shape == (len(test), len(model.zones))
    assert np.all(log_p <= 0.0)
    np.testing.assert_allclose(np.exp(log_p).sum(axis=1), 1.0)
    assert model.bandwidth_db in BANDWIDTHS_DB and model.temperature in TEMPERATURES
    assert model.zones == tuple(sorted(set(train.zones)))


def test_it_classifies_the_simulator_at_least_as_well_as_the_gaussian_map(plan: StorePlan) -> None:
    train = simulate_survey(plan, 60, 6.0, seed=3)
    test = simulate_survey(plan, 60, 6.0, seed=4)
    model = fit_learned(train)
    rssi, present = align_readings(test, model.anchors)
    ours = _accuracy(model.zones, score_learned(model, rssi, present), test.zones)
    radio = fingerprint_map(train)
    gaussian = _accuracy(radio.zones, log_likelihood(radio, rssi), test.zones)
    assert ours >= gaussian - 0.02
    assert ours > 2.0 / len(model.zones)  # far above chance


def test_an_anchor_that_did_not_report_says_nothing(plan: StorePlan) -> None:
    model = fit_learned(simulate_survey(plan, 30, 4.0, seed=5))
    rssi, _ = align_readings(simulate_survey(plan, 5, 4.0, seed=6), model.anchors)
    present = np.ones(len(model.anchors), dtype=bool)
    present[0] = False
    changed = rssi.copy()
    changed[:, 0] = np.where(np.isnan(changed[:, 0]), -40.0, np.nan)
    np.testing.assert_allclose(
        score_learned(model, rssi, present), score_learned(model, changed, present)
    )
    assert not np.allclose(score_learned(model, rssi), score_learned(model, changed))


def test_silence_from_the_zone_anchor_counts_against_its_zone() -> None:
    zones = ("a",) * 20 + ("b",) * 20
    rssi = np.array([[-50.0, np.nan]] * 20 + [[np.nan, -50.0]] * 20)
    model = fit_learned(Survey(zones=zones, anchors=("gw-a", "gw-b"), rssi=rssi))
    log_p = score_learned(model, np.array([[np.nan, np.nan], [-50.0, np.nan]]))
    assert log_p[1].argmax() == model.zones.index("a")
    # heard by nobody: neither zone is favoured (both anchors were silent half the time)
    assert abs(log_p[0, 0] - log_p[0, 1]) < 1e-9


def test_folds_are_contiguous_blocks_of_each_zone() -> None:
    labels = np.array([0, 1] * 10, dtype=np.intp)
    folds = _blocked_folds(labels, 2, 5)
    for zone in (0, 1):
        order = folds[labels == zone]
        assert list(order) == sorted(order) and set(order) == set(range(5))
    # a zone with a single row: no cross-validation
    assert not _blocked_folds(np.array([0, 0, 1], dtype=np.intp), 2, 5).any()


def test_a_tiny_survey_still_fits_without_cross_validation() -> None:
    survey = Survey(zones=("a", "b"), anchors=("gw",), rssi=np.array([[-50.0], [-80.0]]))
    model = fit_learned(survey)
    assert model.bandwidth_db == BANDWIDTHS_DB[0] and model.temperature == 1.0
    assert score_learned(model, np.array([[-52.0]]))[0].argmax() == 0


def test_bad_input_is_refused_with_a_clear_message() -> None:
    with pytest.raises(ValueError, match="empty survey"):
        fit_learned(Survey(zones=(), anchors=("gw",), rssi=np.empty((0, 1))))
    tiny = Survey(zones=("a", "b"), anchors=("gw",), rssi=np.array([[-50.0], [-80.0]]))
    model = fit_learned(tiny)
    with pytest.raises(ValueError, match=r"expected \(N, 1\)"):
        score_learned(model, np.zeros((3, 2)))
    with pytest.raises(ValueError, match="table has shape"):
        LearnedLikelihood(
            zones=("a",), anchors=("gw",), table=np.zeros((1, 2, 1)), bandwidth_db=1, temperature=1
        )


def test_the_survey_prior_can_be_left_to_the_filter() -> None:
    """A zone surveyed three times as long is favoured by the prior; a flat prior
    (what the localizer's filter wants) removes exactly that log-share."""
    rng = np.random.default_rng(0)
    zones = ("big",) * 60 + ("small",) * 20
    rssi = np.concatenate([rng.normal(-60, 4, (60, 2)), rng.normal(-62, 4, (20, 2))])
    model = fit_learned(Survey(zones=zones, anchors=("gw-1", "gw-2"), rssi=rssi))
    window = np.array([[-61.0, -61.0]])
    with_prior = score_learned(model, window)
    flat = score_learned(model, window, with_prior=False)
    difference = (with_prior - flat)[0]
    np.testing.assert_allclose(
        difference - difference.mean(), np.log([0.75, 0.25]) - np.log([0.75, 0.25]).mean()
    )
