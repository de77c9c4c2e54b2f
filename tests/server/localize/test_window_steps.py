"""The localizer's window steps as pure functions: evidence (who was heard,
the unheard counter, the silent-window mixture) and the hysteresis that turns
a zone posterior into reported zones."""

import math

import numpy as np
import pytest
from numpy.typing import NDArray

from omnizone.server.domain.localize import Hysteresis
from omnizone.server.domain.localize.localizer import (
    HysteresisStep,
    heard_devices,
    hysteresis_step,
    unheard_windows,
    window_evidence,
)

# three zones a, b, c and OUTSIDE (index 3)
OUTSIDE = 3


class Device:
    """One device's hysteresis state carried from window to window."""

    def __init__(self, hysteresis: Hysteresis, *, outside_after_windows: int = 30) -> None:
        self.hysteresis = hysteresis
        self.outside_after_windows = outside_after_windows
        self.zone = np.array([OUTSIDE], dtype=np.intp)
        self.candidate = np.array([-1], dtype=np.intp)
        self.streak = np.zeros(1, dtype=np.int32)

    def window(self, posterior: list[float], unheard: int = 0) -> HysteresisStep:
        step = hysteresis_step(
            np.array([posterior]),
            self.zone,
            self.candidate,
            self.streak,
            np.array([unheard], dtype=np.int32),
            self.hysteresis,
            outside_after_windows=self.outside_after_windows,
            outside=OUTSIDE,
        )
        self.zone, self.candidate, self.streak = step.reported, step.candidate, step.streak
        return step

    def reports(self, posteriors: list[list[float]]) -> list[int]:
        return [int(self.window(p).reported[0]) for p in posteriors]


IN_A = [0.8, 0.1, 0.05, 0.05]
IN_B = [0.1, 0.8, 0.05, 0.05]
SURELY_B = [0.01, 0.97, 0.01, 0.01]
UNSURE = [0.4, 0.3, 0.2, 0.1]


def test_a_candidate_must_lead_for_confirm_windows_windows() -> None:
    device = Device(Hysteresis(0.6, confirm_windows=3))
    assert device.reports([IN_A, IN_A, IN_A, IN_A]) == [OUTSIDE, OUTSIDE, 0, 0]


def test_a_change_of_lead_restarts_the_count() -> None:
    device = Device(Hysteresis(0.6, confirm_windows=3))
    assert device.reports([IN_A, IN_A, IN_B, IN_B, IN_B]) == [OUTSIDE] * 4 + [1]


def test_a_lead_below_enter_probability_is_no_candidate() -> None:
    device = Device(Hysteresis(0.6, confirm_windows=2))
    # a weak window in between breaks the streak
    assert device.reports([IN_A, UNSURE, IN_A, IN_A]) == [OUTSIDE, OUTSIDE, OUTSIDE, 0]
    step = device.window(UNSURE)
    assert step.candidate[0] == -1 and step.streak[0] == 0


def test_a_lead_above_sure_probability_switches_at_once() -> None:
    device = Device(Hysteresis(0.6, confirm_windows=3, sure_probability=0.95))
    assert device.reports([SURELY_B]) == [1]
    # below sure_probability, the usual wait
    assert device.reports([IN_A, IN_A, IN_A]) == [1, 1, 0]


def test_a_switch_clears_the_candidate_and_is_a_change() -> None:
    device = Device(Hysteresis(0.6, confirm_windows=2))
    steps = [device.window(p) for p in (IN_A, IN_A, IN_A)]
    assert [bool(s.changed[0]) for s in steps] == [False, True, False]
    assert (steps[1].candidate[0], steps[1].streak[0]) == (-1, 0)


def test_a_device_silent_for_outside_after_windows_is_reported_outside_and_gone() -> None:
    device = Device(Hysteresis(0.6), outside_after_windows=5)
    device.window(IN_A)
    assert device.zone[0] == 0
    still = device.window(IN_A, unheard=4)
    assert still.reported[0] == 0 and not still.gone[0]
    gone = device.window(IN_A, unheard=5)  # the posterior still says a: silence wins
    assert gone.reported[0] == OUTSIDE and gone.gone[0] and gone.changed[0]


def test_hysteresis_is_vectorized_and_leaves_its_inputs_alone() -> None:
    posterior = np.array([IN_A, IN_B, SURELY_B, UNSURE])
    zone = np.array([0, 0, 2, 0], dtype=np.intp)
    candidate = np.array([-1, 1, -1, 0], dtype=np.intp)
    streak = np.array([0, 1, 0, 1], dtype=np.int32)
    unheard = np.array([0, 0, 0, 9], dtype=np.int32)
    inputs = [a.copy() for a in (posterior, zone, candidate, streak, unheard)]
    step = hysteresis_step(
        posterior,
        zone,
        candidate,
        streak,
        unheard,
        Hysteresis(0.6, confirm_windows=2, sure_probability=0.95),
        outside_after_windows=9,
        outside=OUTSIDE,
    )
    # stays; confirmed on its second window; sure at once; silent too long
    assert step.reported.tolist() == [0, 1, 1, OUTSIDE]
    assert step.changed.tolist() == [False, True, True, True]
    assert step.gone.tolist() == [False, False, False, True]
    assert step.candidate.tolist() == [-1, -1, -1, -1]
    assert step.streak.tolist() == [0, 0, 0, 0]
    for before, after in zip(inputs, (posterior, zone, candidate, streak, unheard), strict=True):
        np.testing.assert_array_equal(before, after)


# -- evidence -------------------------------------------------------------------------


def test_only_anchors_that_reported_make_a_device_heard() -> None:
    rssi = np.array([[-70.0, np.nan], [np.nan, -80.0], [np.nan, np.nan]])
    rows = np.array([3, 0, 1], dtype=np.intp)
    assert heard_devices(4, rows, rssi, None).tolist() == [True, False, False, True]
    only_first = np.array([True, False])
    assert heard_devices(4, rows, rssi, only_first).tolist() == [False, False, False, True]


def test_unheard_counts_windows_and_resets_when_heard() -> None:
    unheard = np.array([0, 2, 5], dtype=np.int32)
    heard = np.array([False, True, False])
    counted = unheard_windows(unheard, heard, 3)
    assert counted.tolist() == [3, 0, 8] and counted.dtype == np.int32
    assert unheard.tolist() == [0, 2, 5]


def _evidence(silent: float, weight: float = 1.0) -> NDArray[np.float64]:
    silence = np.array([-3.0, -2.0, -1.0])  # two zones, OUTSIDE last
    readings = np.array([[-10.0, -20.0, -30.0]])
    heard = np.array([False, True])
    return window_evidence(
        silence,
        readings,
        np.array([1], dtype=np.intp),
        heard,
        columns=None,
        silent_window_probability=silent,
        evidence_weight=weight,
    )


def test_silence_in_the_store_is_explained_by_the_silent_window_probability() -> None:
    np.testing.assert_array_equal(_evidence(0.0), [[-3.0, -2.0, -1.0], [-10.0, -20.0, -30.0]])
    s = 0.2
    mixed = _evidence(s)
    # a quiet device: in a zone, silent by chance or unheard; OUTSIDE unchanged
    quiet = [math.log(s + (1 - s) * math.exp(v)) for v in (-3.0, -2.0)]
    assert mixed[0].tolist() == pytest.approx([*quiet, -1.0])
    # a heard device: the phone did send, which it does with probability 1 - s
    assert mixed[1].tolist() == pytest.approx([-10 + math.log(0.8), -20 + math.log(0.8), -30.0])


def test_evidence_weight_scales_the_whole_row() -> None:
    np.testing.assert_allclose(_evidence(0.2, weight=0.5), 0.5 * _evidence(0.2))


def test_evidence_picks_each_states_column() -> None:
    silence = np.array([-3.0, -2.0, -1.0])
    log_lik = window_evidence(
        silence,
        np.empty((0, 3)),
        np.empty(0, dtype=np.intp),
        np.zeros(1, dtype=bool),
        columns=np.array([1, 1, 0, 2], dtype=np.intp),
        silent_window_probability=0.0,
        evidence_weight=1.0,
    )
    assert log_lik.tolist() == [[-2.0, -2.0, -3.0, -1.0]]
