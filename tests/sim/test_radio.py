"""The radio model: log-distance path loss, shadowing, loss and sensitivity."""

import numpy as np

from omnizone.sim.radio import receptions
from omnizone.sim.scenario import RadioModel


def test_without_noise_rssi_follows_log_distance_path_loss() -> None:
    model = RadioModel(
        tx_power_1m_dbm=-59,
        path_loss_exponent=2.0,
        shadowing_sigma_db=0,
        base_loss=0,
        loss_per_10m=0,
        sensitivity_dbm=-200,
    )
    phones = np.array([[1.0, 0.0], [10.0, 0.0]])
    rssi, heard = receptions(phones, np.zeros((1, 2)), model, np.random.default_rng(0))
    assert np.allclose(rssi[:, 0], [-59.0, -79.0])
    assert heard.all()


def test_shadowing_has_the_configured_spread() -> None:
    model = RadioModel(shadowing_sigma_db=6, base_loss=0, loss_per_10m=0, sensitivity_dbm=-200)
    phones = np.tile([[5.0, 0.0]], (20_000, 1))
    rssi, _ = receptions(phones, np.zeros((1, 2)), model, np.random.default_rng(1))
    assert abs(float(rssi.std()) - 6.0) < 0.2


def test_far_phones_are_lost_more_often_and_below_sensitivity_never_heard() -> None:
    model = RadioModel(shadowing_sigma_db=0, base_loss=0.05, loss_per_10m=0.2, sensitivity_dbm=-85)
    near = np.tile([[1.0, 0.0]], (5_000, 1))
    far = np.tile([[15.0, 0.0]], (5_000, 1))
    beyond = np.tile([[60.0, 0.0]], (100, 1))
    rng = np.random.default_rng(2)
    _, heard_near = receptions(near, np.zeros((1, 2)), model, rng)
    _, heard_far = receptions(far, np.zeros((1, 2)), model, rng)
    _, heard_beyond = receptions(beyond, np.zeros((1, 2)), model, rng)
    assert heard_near.mean() > heard_far.mean() + 0.2
    assert not heard_beyond.any()
