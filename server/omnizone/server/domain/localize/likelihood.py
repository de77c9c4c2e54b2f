"""How well one window of readings fits each zone, for many devices at once.

An anchor that hears the device contributes ``log N(rssi; mean, sigma) +
log p_heard``; an anchor that reports but does not hear it contributes
``log(1 - p_heard)``: silence from a gateway next to a zone is evidence
against that zone. Anchors assumed independent given the zone (naive Bayes).

The sum is computed as one matrix product: expanding the square,
``sum_a h_a (-(r_a - m)^2 / 2s^2 + c)`` is linear in ``h r^2``, ``h r`` and
``h``, so a (D, 3A) feature matrix times a (3A, Z) weight matrix gives every
device × zone score, which is what keeps the localizer fast.
"""

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from .radio_map import RadioMap

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
#: Devices scored per block; a block's temporaries fit in a typical L2 cache.
BLOCK_ROWS = 512

#: The "outside/unknown" state: a device out of the store is rarely heard, and weakly.
OUTSIDE_P_HEARD = 0.02
OUTSIDE_MEAN_DBM = -92.0
OUTSIDE_SIGMA_DB = 6.0


def _weights(radio: RadioMap) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """((3A, Z) weights on [h r², h r, h], (A, Z) silence terms log(1 - p))."""
    inv_var = 1.0 / radio.sigma_db**2
    heard_const = (
        -0.5 * radio.mean_dbm**2 * inv_var
        - np.log(radio.sigma_db)
        - _HALF_LOG_2PI
        + np.log(radio.p_heard)
    )
    silent = np.log1p(-radio.p_heard)
    weights = np.concatenate([-0.5 * inv_var, radio.mean_dbm * inv_var, heard_const - silent], 1)
    return np.ascontiguousarray(weights.T), np.ascontiguousarray(silent.T)


class LikelihoodModel:
    """``log_likelihood`` with the radio map's weights computed once (the hot path)."""

    def __init__(
        self,
        radio: RadioMap,
        *,
        outside_p_heard: float = OUTSIDE_P_HEARD,
        outside_mean_dbm: float = OUTSIDE_MEAN_DBM,
        outside_sigma_db: float = OUTSIDE_SIGMA_DB,
    ) -> None:
        self.radio = radio
        self.weights, self.silent = _weights(radio)
        outside = RadioMap(
            zones=("_outside",),
            anchors=radio.anchors,
            mean_dbm=np.full((1, len(radio.anchors)), outside_mean_dbm),
            sigma_db=np.full((1, len(radio.anchors)), outside_sigma_db),
            p_heard=np.full((1, len(radio.anchors)), outside_p_heard),
        )
        out_weights, out_silent = _weights(outside)
        # zones then OUTSIDE as the last column
        self.weights_with_outside = np.ascontiguousarray(np.hstack([self.weights, out_weights]))
        self.silent_with_outside = np.ascontiguousarray(np.hstack([self.silent, out_silent]))

    def __call__(
        self,
        rssi: NDArray[np.float64],
        present: NDArray[np.bool_] | None = None,
        *,
        with_outside: bool = False,
        out: NDArray[np.float64] | None = None,
    ) -> NDArray[np.float64]:
        """(D, Z) scores, or (D, Z + 1) ``with_outside`` (OUTSIDE last), into
        ``out`` when given: a caller that scores every window can keep one
        array, rather than have fresh memory mapped (and zeroed by the
        kernel) for each window."""
        weights = self.weights_with_outside if with_outside else self.weights
        silent = self.silent_with_outside if with_outside else self.silent
        rssi = np.asarray(rssi, dtype=np.float64)
        if out is not None and out.shape != (rssi.shape[0], weights.shape[1]):
            raise ValueError(f"out must be ({rssi.shape[0]}, {weights.shape[1]}), not {out.shape}")
        if rssi.ndim != 2 or rssi.shape[0] <= BLOCK_ROWS:
            return _score(rssi, weights, silent, present, out=out)
        # in blocks, so the temporaries stay in the CPU cache: cost stays linear
        result = np.empty((rssi.shape[0], weights.shape[1])) if out is None else out
        per_row = present is not None and np.ndim(present) == 2
        for start in range(0, rssi.shape[0], BLOCK_ROWS):
            stop = start + BLOCK_ROWS
            rows_present = present[start:stop] if per_row and present is not None else present
            _score(rssi[start:stop], weights, silent, rows_present, out=result[start:stop])
        return result

    def silence(
        self, present: NDArray[np.bool_] | None = None, *, with_outside: bool = False
    ) -> NDArray[np.float64]:
        """Scores of a device no anchor heard: one (Z,) or (Z+1,) row."""
        silent = self.silent_with_outside if with_outside else self.silent
        if present is None:
            total: NDArray[np.float64] = silent.sum(axis=0)
            return total
        result: NDArray[np.float64] = silent[np.asarray(present, dtype=bool)].sum(axis=0)
        return result


def _score(
    rssi: NDArray[np.float64],
    weights: NDArray[np.float64],
    silent: NDArray[np.float64],
    present: NDArray[np.bool_] | None,
    *,
    out: NDArray[np.float64] | None = None,
) -> NDArray[np.float64]:
    """(D, Z) scores, into ``out`` when given (a block of the caller's result:
    no temporary of the result's size)."""
    rssi = np.asarray(rssi, dtype=np.float64)
    if rssi.ndim != 2 or rssi.shape[1] != silent.shape[0]:
        raise ValueError(f"rssi must have shape (devices, {silent.shape[0]}), got {rssi.shape}")
    heard = ~np.isnan(rssi)
    if present is not None and np.ndim(present) == 2:
        # per device (issue 15): a listening phone's own beacons report for it only
        mask = np.asarray(present, dtype=bool)
        heard &= mask
        base = mask.astype(np.float64) @ silent
    elif present is not None:
        present = np.asarray(present, dtype=bool)
        heard &= present[None, :]
        base = silent[present].sum(axis=0)
    else:
        base = silent.sum(axis=0)
    h = heard.astype(np.float64)
    r = np.where(heard, rssi, 0.0)
    features = np.concatenate([r * r, r, h], axis=1)
    result: NDArray[np.float64] = np.matmul(features, weights, out=out)
    result += base
    return result


def log_likelihood(
    radio: RadioMap,
    rssi: NDArray[np.float64],
    present: NDArray[np.bool_] | None = None,
) -> NDArray[np.float64]:
    """(D, A) readings in ``radio.anchors`` order, NaN = not heard -> (D, Z) log-likelihoods.

    ``present`` (A,), or (D, A) per device, marks the anchors that reported this window; an anchor
    that did not report (offline gateway, message not yet arrived) says
    nothing, rather than "not heard". Default: all anchors reported.
    """
    return LikelihoodModel(radio)(rssi, present)


def outside_log_likelihood(
    rssi: NDArray[np.float64],
    present: NDArray[np.bool_] | None = None,
    *,
    p_heard: float = OUTSIDE_P_HEARD,
    mean_dbm: float = OUTSIDE_MEAN_DBM,
    sigma_db: float = OUTSIDE_SIGMA_DB,
) -> NDArray[np.float64]:
    """(D,) log-likelihood of the "outside/unknown" state: rarely heard, and weakly."""
    rssi = np.asarray(rssi, dtype=np.float64)
    heard = ~np.isnan(rssi)
    reporting = np.ones(rssi.shape[1], dtype=bool) if present is None else np.asarray(present)
    heard &= reporting[None, :]
    z = (np.where(heard, rssi, mean_dbm) - mean_dbm) / sigma_db
    heard_term = -0.5 * z * z - math.log(sigma_db) - _HALF_LOG_2PI + math.log(p_heard)
    silent_term = math.log1p(-p_heard)
    per_anchor = np.where(heard, heard_term, silent_term) * reporting[None, :]
    result: NDArray[np.float64] = per_anchor.sum(axis=1)
    return result


# -- tempering learned from the residuals ------------------------------------------

#: A reading's squared z-score counts at most this much (a 4σ outlier), so a few
#: wild readings do not decide how far the whole store is trusted.
RESIDUAL_Z2_CLIP = 16.0
#: Only windows heard by this many anchors say something about the spread.
RESIDUAL_MIN_HEARD = 3


def best_fit_residuals(
    radio: RadioMap,
    rssi: NDArray[np.float64],
    scores: NDArray[np.float64],
    present: NDArray[np.bool_] | None = None,
) -> tuple[float, float]:
    """(sum of clipped squared z-scores, readings counted) at each device's best row.

    ``scores`` are ``rssi``'s (D, Z[+1]) log-likelihoods (an OUTSIDE column
    beyond the map's rows is ignored). Where the map's spread is right, the
    readings of a window sit about one ``sigma_db`` from the best-fitting
    row's means; where the radio is noisier than the map says they sit
    further, and where it is steadier they sit closer. Devices heard by fewer
    than ``RESIDUAL_MIN_HEARD`` anchors are left out."""
    rssi = np.asarray(rssi, dtype=np.float64)
    heard = ~np.isnan(rssi)
    if present is not None:
        heard &= np.asarray(present, dtype=bool)[None, :]
    keep = heard.sum(axis=1) >= RESIDUAL_MIN_HEARD
    if not keep.any():
        return 0.0, 0.0
    zones = len(radio.zones)
    best = np.argmax(scores[keep, :zones], axis=1)
    mean = radio.mean_dbm[best]
    sigma = radio.sigma_db[best]
    h = heard[keep]
    z = np.where(h, (np.where(h, rssi[keep], 0.0) - mean) / sigma, 0.0)
    z2 = np.minimum(z * z, RESIDUAL_Z2_CLIP)
    return float(z2.sum()), float(h.sum())


def expected_residual(radio: RadioMap, *, samples: int = 4000, seed: int = 0) -> float:
    """Mean clipped squared z-score per reading when the radio is exactly the map.

    Readings drawn from the map itself (rows at random, each anchor heard with
    its ``p_heard`` at ``N(mean, sigma)``), scored and fitted as live windows
    are: the best row over-fits a little, so this is below 1, and it is what
    the live figure is compared with (``ResidualTempering``)."""
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, len(radio.zones), samples)
    heard = rng.random((samples, len(radio.anchors))) < radio.p_heard[rows]
    rssi = rng.normal(radio.mean_dbm[rows], radio.sigma_db[rows])
    rssi[~heard] = np.nan
    scores = LikelihoodModel(radio)(rssi)
    total, count = best_fit_residuals(radio, rssi, scores)
    return total / count if count > 0 else 1.0


@dataclass(frozen=True, slots=True)
class ResidualTempering:
    """Learn the evidence weight from how far readings fall from the map.

    The naive-Bayes sum is overconfident when the radio is noisier than the
    map says (6 dB of shadowing against a map made for 4) and underconfident
    when it is steadier (a survey whose spread covers a whole room). The
    store-wide ratio ``expected / observed`` of mean squared z-scores at the
    best-fitting row says which, and by how much; the weight is that ratio
    to the power ``power``, kept within [``min_weight``, ``max_weight``]. The
    observed figure is a running mean over about ``memory_readings``
    readings, started at the expected one (weight 1) with
    ``prior_readings`` of pseudo-evidence. At most ``sample_devices`` devices
    a window feed it, so it costs nothing at scale."""

    power: float = 1.0
    min_weight: float = 0.4
    max_weight: float = 2.5
    memory_readings: float = 20_000.0
    prior_readings: float = 500.0
    sample_devices: int = 256

    def __post_init__(self) -> None:
        if not 0 < self.min_weight <= 1.0 <= self.max_weight:
            raise ValueError("min_weight must be in (0, 1] and max_weight at least 1")
        if self.power <= 0 or self.memory_readings <= 0 or self.prior_readings <= 0:
            raise ValueError("power, memory_readings and prior_readings must be positive")
        if self.sample_devices < 1:
            raise ValueError("sample_devices must be at least 1")


@dataclass(slots=True)
class ResidualState:
    """The running sums behind ``ResidualTempering``: mutable, one per localizer."""

    expected: float
    z2: float
    readings: float

    @classmethod
    def start(cls, expected: float, tempering: ResidualTempering) -> "ResidualState":
        prior = tempering.prior_readings
        return cls(expected, expected * prior, prior)

    def add(self, z2: float, readings: float, tempering: ResidualTempering) -> None:
        if readings <= 0:
            return
        keep = tempering.memory_readings / (tempering.memory_readings + readings)
        self.z2 = self.z2 * keep + z2
        self.readings = self.readings * keep + readings

    def weight(self, tempering: ResidualTempering) -> float:
        observed = self.z2 / self.readings
        if observed <= 0:
            return tempering.max_weight
        ratio = (self.expected / observed) ** tempering.power
        return float(min(tempering.max_weight, max(tempering.min_weight, ratio)))
