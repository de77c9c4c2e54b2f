"""Per-anchor radio fits: recover known parameters, flag what looks wrong, and
travel through the calibration file unchanged."""

import numpy as np
import pytest

from omnizone.paths import shipped_config
from omnizone.server.domain.localize.calibration import (
    MIN_SAMPLES,
    fit_anchor,
    fit_anchors,
    radio_parameters,
    store_calibration,
)
from omnizone.server.domain.localize.propagation import mean_rssi_dbm
from omnizone.store import StoreConfigError, load_store
from omnizone.store.calibration import dump_calibration, parse_calibration

FLOOR = (12.0, 9.0)


def walk(
    position: tuple[float, float], power: float, exponent: float, noise_db: float, n: int = 600
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    places = rng.uniform((0, 0), FLOOR, size=(n, 2))
    distance = np.linalg.norm(places - np.array(position), axis=1)
    rssi = mean_rssi_dbm(distance, power, exponent) + rng.normal(0, noise_db, n)
    rssi[rssi < -95] = np.nan  # the receiver's sensitivity: not heard
    return places, rssi


def test_the_fit_recovers_an_anchors_own_power_and_exponent() -> None:
    places, rssi = walk((4.0, 3.0), power=-50.0, exponent=1.6, noise_db=3.0)
    fit = fit_anchor("gw-a", (4.0, 3.0), places, rssi, floor=FLOOR)
    assert fit.fitted
    assert fit.radio.power_1m_dbm == pytest.approx(-50.0, abs=1.5)
    assert fit.radio.exponent == pytest.approx(1.6, abs=0.15)
    assert fit.radio.spread_db == pytest.approx(3.0, abs=0.6)
    assert fit.default_bias_db > 5  # the default (-59 dBm, 2.2) was far too quiet here
    assert fit.flags == ()


def test_a_wall_behind_part_of_the_walk_is_an_outlier_not_a_new_exponent() -> None:
    places, rssi = walk((4.0, 3.0), power=-55.0, exponent=2.0, noise_db=2.0)
    blocked = places[:, 0] > 9.0  # a concrete wall at x = 9 m: 20 dB less beyond it
    rssi = np.where(blocked, rssi - 20.0, rssi)
    fit = fit_anchor("gw-a", (4.0, 3.0), places, rssi, floor=FLOOR)
    assert fit.radio.exponent == pytest.approx(2.0, abs=0.35)
    assert fit.outlier_share > 0.05
    assert any("wall" in flag for flag in fit.flags)


def test_an_anchor_whose_stated_position_is_wrong_is_flagged_with_where_it_fits() -> None:
    places, rssi = walk((9.0, 6.0), power=-55.0, exponent=2.2, noise_db=2.0)
    wrong = fit_anchor("gw-a", (2.0, 1.5), places, rssi, floor=FLOOR)
    right = fit_anchor("gw-a", (9.0, 6.0), places, rssi, floor=FLOOR)
    assert any("position looks wrong" in flag for flag in wrong.flags)
    assert wrong.best_position is not None
    assert np.hypot(wrong.best_position[0] - 9.0, wrong.best_position[1] - 6.0) < 1.0
    assert not any("position" in flag for flag in right.flags)


def test_too_few_readings_keep_the_defaults_and_say_so() -> None:
    places, rssi = walk((4.0, 3.0), power=-50.0, exponent=1.6, noise_db=3.0, n=MIN_SAMPLES - 1)
    fit = fit_anchor("gw-a", (4.0, 3.0), places, rssi)
    assert not fit.fitted
    assert fit.radio.power_1m_dbm == -59.0
    assert "readings heard" in fit.flags[0]


def test_one_anchor_much_louder_than_the_others_is_pointed_out() -> None:
    positions = np.array([[2.0, 2.0], [10.0, 2.0], [6.0, 7.0]])
    columns = []
    for i, power in enumerate((-55.0, -55.0, -43.0)):
        places, rssi = walk(tuple(positions[i]), power=power, exponent=2.0, noise_db=2.0)
        columns.append(rssi)
    fits = fit_anchors(["a", "b", "c"], positions, places, np.column_stack(columns))
    assert not any("against the other anchors" in f for f in fits[0].flags + fits[1].flags)
    assert any("against the other anchors" in f for f in fits[2].flags)


def test_the_calibration_file_round_trips_and_feeds_the_radio_map() -> None:
    plan = load_store(shipped_config("stores/rivoli.yaml"))
    gateways = [g.id for g in plan.gateways]
    positions = np.array([g.position for g in plan.gateways])
    rng = np.random.default_rng(5)
    places = rng.uniform((0, 0), (30, 20), size=(800, 2))
    distance = np.linalg.norm(places[:, None, :] - positions[None, :, :], axis=2)
    rssi = mean_rssi_dbm(distance, -50.0, 1.8) + rng.normal(0, 2.0, distance.shape)
    fits = fit_anchors(gateways, positions, places, rssi)
    calibration = store_calibration(plan.store.id, fits)
    again = parse_calibration(dump_calibration(calibration), plan, source="cal.yaml")
    assert again == calibration
    params = radio_parameters(gateways, again)
    assert params["tx_power_1m_dbm"] == pytest.approx(np.full(len(gateways), -50.0), abs=1.5)
    assert params["exponent"] == pytest.approx(np.full(len(gateways), 1.8), abs=0.2)
    untouched = radio_parameters(["gw-unknown"], again)
    assert untouched["tx_power_1m_dbm"][0] == -59.0


def test_a_calibration_naming_an_unknown_anchor_or_store_is_refused_by_field() -> None:
    plan = load_store(shipped_config("stores/rivoli.yaml"))
    text = "store: elsewhere\nanchors:\n  gw-nowhere: {exponent: 2.0}\n  gw-shoes: {exponent: -1}\n"
    with pytest.raises(StoreConfigError) as caught:
        parse_calibration(text, plan, source="cal.yaml")
    message = str(caught.value)
    assert "cal.yaml" in message and "gw-shoes" in message and "exponent" in message
    text = "store: elsewhere\nanchors:\n  gw-nowhere: {exponent: 2.0}\n"
    with pytest.raises(StoreConfigError) as caught:
        parse_calibration(text, plan, source="cal.yaml")
    assert "gw-nowhere" in str(caught.value) and "elsewhere" in str(caught.value)


def test_a_line_no_radio_follows_keeps_the_default_exponent_and_still_writes() -> None:
    """Readings placed at two zone centres can fit a slope of almost nothing
    (exponent 0.2): that is not a radio, and the calibration file refuses
    it, so the power is fitted alone and the anchor is flagged."""
    rng = np.random.default_rng(5)
    places = np.repeat([[2.0, 2.0], [10.0, 8.0]], 40, axis=0)
    distance = np.linalg.norm(places - np.array([4.0, 3.0]), axis=1)
    rssi = mean_rssi_dbm(distance, -62.0, 0.3) + rng.normal(0, 1.0, len(places))
    fit = fit_anchor("gw-a", (4.0, 3.0), places, rssi, floor=FLOOR)
    assert fit.fitted and fit.radio.exponent == pytest.approx(2.2)
    kept = "outside 1.2-4.5: the default exponent was kept"
    assert any(kept in flag for flag in fit.flags), fit.flags
    written = parse_calibration(dump_calibration(store_calibration("s", [fit])), source="c.yaml")
    assert written.anchors["gw-a"].exponent == pytest.approx(2.2)
