"""Per-anchor radio parameters fitted from readings at known places.

The localizer's floor-plan map assumes one log-distance model for every anchor
(``rssi = power_1m - 10 · exponent · log10(d)``). Real anchors differ: a
gateway in a ceiling void, behind a pillar or with another antenna is several
dB off, and a building's walls change the exponent. A short walk with known
positions (a point survey) or the gateways hearing one another gives
(distance, RSSI) pairs per anchor; a robust fit of the model to them gives
that anchor's own parameters, and its residuals say how far to trust it.

Pure numpy. What the fit reports is meant to be read by people (``omnizone
calibrate``): every flag carries its likely cause in words.
"""

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypedDict, cast

import numpy as np
from numpy.typing import NDArray

from omnizone.store import StorePlan
from omnizone.store.calibration import AnchorCalibration, CalibrationSource, StoreCalibration

from .likelihood import log_likelihood
from .propagation import MIN_DISTANCE_M, anchor_positions, mean_rssi_dbm
from .radio_map import combine, fingerprint_map, path_loss_map
from .survey import Survey

#: The model's reference power at 1 m; an anchor's ``offset_db`` is its fitted power minus this.
REFERENCE_POWER_1M_DBM = -59.0
DEFAULT_EXPONENT = 2.2
#: Tukey's biweight constant (95 % efficiency under normal noise).
TUKEY_C = 4.685
#: Random pairs of readings tried for the least-median-of-squares start.
LMS_PAIRS = 300
#: A residual beyond this many robust sigmas is an outlier.
OUTLIER_SIGMAS = 3.0
#: Fewer heard samples than this: the anchor keeps the defaults.
MIN_SAMPLES = 8
#: Plausible exponents: free space is 2; open halls 1.5-2.5; walls 3-4.
EXPONENT_RANGE = (1.2, 4.5)
POOR_SPREAD_DB = 9.0
POOR_OUTLIER_SHARE = 0.15
#: Moving the anchor this far must improve the fit by this much to suspect its position.
POSITION_SHIFT_M = 3.0
POSITION_GAIN = 0.3
#: A fitted distance range narrower than this cannot separate power from exponent.
MIN_LOG_DISTANCE_SPAN = 0.3
#: One anchor's default-model error this far from the others' is worth a look.
STANDS_OUT_DB = 6.0
MAX_POSITION_SAMPLES = 600


@dataclass(frozen=True, slots=True)
class AnchorRadio:
    """What one anchor is expected to report: the model's parameters for it."""

    power_1m_dbm: float = REFERENCE_POWER_1M_DBM
    exponent: float = DEFAULT_EXPONENT
    spread_db: float = 4.0  # window-mean RSSI spread around the model

    @property
    def offset_db(self) -> float:
        return self.power_1m_dbm - REFERENCE_POWER_1M_DBM


@dataclass(frozen=True, slots=True)
class AnchorFit:
    anchor: str
    radio: AnchorRadio
    samples: int  # heard readings the fit used
    bias_db: float  # mean residual of the fit (near 0 unless the fit is poor)
    default_bias_db: float  # mean residual of the default model: how far off it was
    outlier_share: float
    fitted: bool  # False: too few readings, the defaults stand
    best_position: tuple[float, float] | None = None  # where the readings fit best
    flags: tuple[str, ...] = field(default=())


def robust_line(
    x: NDArray[np.float64], y: NDArray[np.float64], iterations: int = 50, seed: int = 0
) -> tuple[float, float, float, NDArray[np.float64]]:
    """A robust fit of y = a + b·x: least median of squares over random pairs
    of readings to start (a wall behind a quarter of the walk cannot drag it),
    then Tukey's biweight by iteratively reweighted least squares.

    Returns (a, b, robust sigma, weights); the sigma is 1.4826·MAD of the
    residuals of the readings the fit kept.
    """
    rng = np.random.default_rng(seed)
    n = x.size
    i = rng.integers(0, n, size=LMS_PAIRS)
    j = rng.integers(0, n, size=LMS_PAIRS)
    ok = np.abs(x[i] - x[j]) > 1e-3
    i, j = i[ok], j[ok]
    slopes = (y[j] - y[i]) / (x[j] - x[i])
    intercepts = y[i] - slopes * x[i]
    if slopes.size:
        spread = np.median(
            np.abs(y[None, :] - intercepts[:, None] - slopes[:, None] * x[None, :]), axis=1
        )
        best = int(np.argmin(spread))
        coef = np.array([intercepts[best], slopes[best]])
    else:
        coef = np.array([float(np.median(y)), 0.0])
    design = np.column_stack([np.ones_like(x), x])
    weights = np.ones_like(y)
    sigma = 1.0
    for _ in range(iterations):
        residual = y - design @ coef
        sigma = max(1.4826 * float(np.median(np.abs(residual - np.median(residual)))), 0.5)
        u = residual / (TUKEY_C * sigma)
        weights = np.where(np.abs(u) < 1.0, (1.0 - u * u) ** 2, 0.0)
        if weights.sum() < 3:
            break
        root = np.sqrt(weights)
        updated = np.linalg.lstsq(design * root[:, None], y * root, rcond=None)[0]
        if np.allclose(updated, coef, atol=1e-6):
            coef = updated
            break
        coef = updated
    return float(coef[0]), float(coef[1]), sigma, weights


def fit_anchor(
    anchor: str,
    position: tuple[float, float],
    places: NDArray[np.float64],
    rssi: NDArray[np.float64],
    *,
    floor: tuple[float, float] | None = None,
    default: AnchorRadio = AnchorRadio(),
) -> AnchorFit:
    """Fit one anchor from readings ``rssi`` (N,) taken at ``places`` (N, 2);
    NaN = not heard (left out: a censored reading says only "weak").

    ``floor`` (width, depth): also search the floor for where the readings fit
    best, to catch an anchor whose position in the store file is wrong.
    """
    heard = ~np.isnan(rssi)
    values = rssi[heard]
    where = places[heard]
    if values.size < MIN_SAMPLES:
        return AnchorFit(
            anchor,
            default,
            int(values.size),
            0.0,
            0.0,
            0.0,
            fitted=False,
            flags=(
                f"only {values.size} readings heard (at least {MIN_SAMPLES} needed): "
                "the default radio parameters stand; walk closer to it or check it is powered",
            ),
        )
    distance = np.linalg.norm(where - np.asarray(position, dtype=np.float64), axis=1)
    log_d = np.log10(np.maximum(distance, MIN_DISTANCE_M))
    default_bias = float(
        np.mean(values - mean_rssi_dbm(distance, default.power_1m_dbm, default.exponent))
    )
    span = float(log_d.max() - log_d.min())
    implausible: float | None = None
    if span >= MIN_LOG_DISTANCE_SPAN:
        power, slope, sigma, _ = robust_line(log_d, values)
        exponent = -slope / 10.0
        residual = values - (power + slope * log_d)
        low, high = EXPONENT_RANGE
        if not low <= exponent <= high:
            implausible = exponent  # no radio behaves so: fit the power alone, below
    if span < MIN_LOG_DISTANCE_SPAN or implausible is not None:
        # Too narrow a range of distances to tell power from exponent (or a
        # line no radio follows, e.g. readings placed at zone centres): keep
        # the default exponent and fit the power alone.
        exponent = default.exponent
        power = float(np.median(values + 10.0 * exponent * log_d))
        residual = values - (power - 10.0 * exponent * log_d)
        sigma = max(1.4826 * float(np.median(np.abs(residual - np.median(residual)))), 0.5)
    outliers = float(np.mean(np.abs(residual) > OUTLIER_SIGMAS * sigma))
    spread = float(np.sqrt(np.mean(np.minimum(residual**2, (OUTLIER_SIGMAS * sigma) ** 2))))
    radio = AnchorRadio(power_1m_dbm=power, exponent=exponent, spread_db=max(spread, 1.0))
    best = _best_position(where, values, floor) if floor is not None else None
    flags = list(_flags(radio, sigma, outliers, span))
    if implausible is not None:
        low, high = EXPONENT_RANGE
        flags.append(
            f"the readings follow an exponent of {implausible:.2f}, outside {low}-{high}: "
            "the default exponent was kept and the power fitted alone; the survey may cover "
            "too few places (a point survey fits better), or a wall lies between the anchor "
            "and part of it"
        )
    if best is not None:
        shift = math.dist(best[0], position)
        if shift >= POSITION_SHIFT_M and best[1] <= (1.0 - POSITION_GAIN) * sigma:
            flags.append(
                f"position looks wrong: the readings fit best {shift:.1f} m away, at "
                f"({best[0][0]:.1f}, {best[0][1]:.1f}) (spread {best[1]:.1f} dB there against "
                f"{sigma:.1f} dB at the store file's position); check where it hangs"
            )
    return AnchorFit(
        anchor,
        radio,
        int(values.size),
        float(np.mean(residual)),
        default_bias,
        outliers,
        fitted=True,
        best_position=None if best is None else best[0],
        flags=tuple(flags),
    )


def fit_anchors(
    anchors: Sequence[str],
    positions: NDArray[np.float64],
    places: NDArray[np.float64],
    rssi: NDArray[np.float64],
    *,
    floor: tuple[float, float] | None = None,
) -> list[AnchorFit]:
    """``rssi`` (N, A) in ``anchors`` order, ``positions`` (A, 2). An anchor
    whose default-model error stands out from the others' is flagged: a
    store-wide error is the devices' power, one anchor's is that anchor."""
    fits = [
        fit_anchor(
            a, (float(positions[i, 0]), float(positions[i, 1])), places, rssi[:, i], floor=floor
        )
        for i, a in enumerate(anchors)
    ]
    fitted = [f.default_bias_db for f in fits if f.fitted]
    if not fitted:
        return fits
    typical = float(np.median(fitted))
    out = []
    for fit in fits:
        apart = fit.default_bias_db - typical
        if fit.fitted and abs(apart) >= STANDS_OUT_DB:
            note = (
                f"{apart:+.1f} dB against the other anchors: a different antenna, a mounting "
                "height, an enclosure or something in front of it; the fitted power corrects it"
            )
            fit = dataclasses.replace(fit, flags=(*fit.flags, note))
        out.append(fit)
    return out


def typical_default_bias_db(fits: Sequence[AnchorFit]) -> float | None:
    """How far the default model was off across the store (median over fitted anchors)."""
    fitted = [f.default_bias_db for f in fits if f.fitted]
    return float(np.median(fitted)) if fitted else None


def _flags(radio: AnchorRadio, sigma: float, outliers: float, span: float) -> list[str]:
    out = []
    low, high = EXPONENT_RANGE
    if not low <= radio.exponent <= high:
        out.append(
            f"exponent {radio.exponent:.2f} is outside {low}-{high}: the survey may cover too "
            "narrow a range of distances, or a wall or floor lies between the anchor and part of it"
        )
    if sigma > POOR_SPREAD_DB:
        out.append(
            f"readings scatter {sigma:.1f} dB around the fit (poor above {POOR_SPREAD_DB:g}): "
            "furniture, people or reflections; the survey's fingerprint will do better "
            "than the model"
        )
    if outliers > POOR_OUTLIER_SHARE:
        out.append(
            f"{outliers:.0%} of the readings are far from the fit: likely a wall or metal "
            "shelving between the anchor and part of the walk"
        )
    if span < MIN_LOG_DISTANCE_SPAN:
        out.append(
            "readings cover too narrow a range of distances to fit the exponent: "
            "the default exponent was kept; walk both near and far from it"
        )
    return out


def _best_position(
    places: NDArray[np.float64],
    values: NDArray[np.float64],
    floor: tuple[float, float],
    step_m: float = 0.25,
) -> tuple[tuple[float, float], float] | None:
    """The floor point where a (least-squares) fit of the model has the lowest
    robust spread, and that spread."""
    width, depth = floor
    if values.size > MAX_POSITION_SAMPLES:  # an even subsample: the search is O(cells × N)
        keep = np.linspace(0, values.size - 1, MAX_POSITION_SAMPLES).round().astype(np.intp)
        places, values = places[keep], values[keep]
    xs = np.arange(step_m / 2, width, step_m)
    ys = np.arange(step_m / 2, depth, step_m)
    if xs.size == 0 or ys.size == 0:
        return None
    candidates = np.stack(np.meshgrid(xs, ys, indexing="ij"), axis=-1).reshape(-1, 2)
    best: tuple[tuple[float, float], float] | None = None
    for block in np.array_split(candidates, max(1, candidates.shape[0] // 256)):
        d = np.linalg.norm(block[:, None, :] - places[None, :, :], axis=2)
        x = np.log10(np.maximum(d, MIN_DISTANCE_M))  # (C, N)
        xm = x.mean(axis=1, keepdims=True)
        ym = values.mean()
        slope = ((x - xm) * (values - ym)).sum(axis=1) / np.maximum(
            ((x - xm) ** 2).sum(axis=1), 1e-12
        )
        residual = values[None, :] - (ym + slope[:, None] * (x - xm))
        # only physical fits: RSSI falls with distance
        mad = 1.4826 * np.median(
            np.abs(residual - np.median(residual, axis=1, keepdims=True)), axis=1
        )
        mad = np.where(slope < 0, mad, np.inf)
        i = int(np.argmin(mad))
        if best is None or mad[i] < best[1]:
            best = ((float(block[i, 0]), float(block[i, 1])), float(mad[i]))
    return best


def store_calibration(
    store: str, fits: Sequence[AnchorFit], *, source: str = "survey", fitted_at: str | None = None
) -> StoreCalibration:
    """The file's form of a fit: the store's typical power at 1 m, each fitted
    anchor's offset from it. Anchors the fit could not place keep no entry
    (the defaults apply to them)."""
    fitted = [f for f in fits if f.fitted]
    power = float(np.median([f.radio.power_1m_dbm for f in fitted])) if fitted else None
    return StoreCalibration(
        store=store,
        source=cast(CalibrationSource, source),
        fitted_at=fitted_at,
        power_1m_dbm=round(power, 2) if power is not None else REFERENCE_POWER_1M_DBM,
        anchors={
            f.anchor: AnchorCalibration(
                offset_db=round(f.radio.power_1m_dbm - (power or 0.0), 2),
                exponent=round(f.radio.exponent, 3),
                spread_db=round(f.radio.spread_db, 2),
                samples=f.samples,
            )
            for f in fitted
        },
    )


def with_anchors(calibration: StoreCalibration, fits: Sequence[AnchorFit]) -> StoreCalibration:
    """``calibration`` with each fitted anchor of ``fits`` added, its offset
    from the same store power at 1 m: how fixed beacons join the gateways'
    fit without moving it."""
    anchors = dict(calibration.anchors)
    for f in fits:
        if f.fitted:
            anchors[f.anchor] = AnchorCalibration(
                offset_db=round(f.radio.power_1m_dbm - calibration.power_1m_dbm, 2),
                exponent=round(f.radio.exponent, 3),
                spread_db=round(f.radio.spread_db, 2),
                samples=f.samples,
            )
    return calibration.model_copy(update={"anchors": anchors})


def radio_parameters(
    anchors: Sequence[str], calibration: StoreCalibration | None
) -> "RadioParameters":
    """Per-anchor ``tx_power_1m_dbm``, ``exponent`` and ``shadowing_db`` in
    ``anchors`` order, for ``path_loss_map``/``place_map``; anchors the
    calibration does not name keep the defaults."""
    default = AnchorRadio()
    power = np.full(len(anchors), default.power_1m_dbm)
    exponent = np.full(len(anchors), default.exponent)
    spread = np.full(len(anchors), default.spread_db)
    if calibration is not None:
        for i, anchor in enumerate(anchors):
            entry = calibration.anchors.get(anchor)
            if entry is not None:
                power[i] = entry.power_1m_dbm(calibration.power_1m_dbm)
                exponent[i] = entry.exponent
                spread[i] = entry.spread_db
    return RadioParameters(tx_power_1m_dbm=power, exponent=exponent, shadowing_db=spread)


class RadioParameters(TypedDict, total=False):
    """Keyword arguments of ``path_loss_map``/``place_map``, one value per anchor."""

    tx_power_1m_dbm: NDArray[np.float64]
    exponent: NDArray[np.float64]
    shadowing_db: NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class ExpectedAccuracy:
    """Zone accuracy of single windows, by cross-validation over the survey."""

    default_model: float  # the floor plan's map with the default radio parameters
    calibrated_model: float  # the same map with the fitted parameters
    calibrated_with_survey: float  # and the survey's fingerprint blended in
    folds: int


def expected_accuracy(
    plan: StorePlan,
    zones: Sequence[str],
    places: NDArray[np.float64],
    rssi: NDArray[np.float64],
    anchors: Sequence[str],
    *,
    folds: int = 5,
    survey_weight: float = 0.7,
) -> ExpectedAccuracy:
    """Fit on all folds but one, classify the held-out fold's windows, repeat.

    Folds are contiguous blocks of the survey, not a shuffle: readings taken
    one after another are alike, and a shuffled split would flatter the fit.
    """
    n = len(zones)
    folds = max(2, min(folds, n))
    labels = np.array(zones, dtype=object)
    order = list(anchors)
    plan_anchors, positions = anchor_positions(plan)
    column = {a: i for i, a in enumerate(order)}
    at = [column[a] for a in plan_anchors if a in column]
    fitted_anchors = [a for a in plan_anchors if a in column]
    fitted_positions = np.array(
        [positions[i] for i, a in enumerate(plan_anchors) if a in column]
    ).reshape(-1, 2)
    right = np.zeros(3)
    for test in np.array_split(np.arange(n), folds):
        train = np.setdiff1d(np.arange(n), test)
        fits = fit_anchors(fitted_anchors, fitted_positions, places[train], rssi[train][:, at])
        calibration = store_calibration(plan.store.id, fits)
        default_map = path_loss_map(plan)
        calibrated = path_loss_map(plan, **radio_parameters(default_map.anchors, calibration))
        survey = Survey(tuple(labels[train]), tuple(order), rssi[train])
        surveyed = combine(
            calibrated,
            fingerprint_map(survey, zones=[z for z in calibrated.zones if z in set(survey.zones)]),
            survey_weight,
        )
        for k, radio in enumerate((default_map, calibrated, surveyed)):
            aligned = _aligned(rssi[test], order, radio.anchors)
            guess = np.array(radio.zones, dtype=object)[
                log_likelihood(radio, aligned).argmax(axis=1)
            ]
            right[k] += float(np.sum(guess == labels[test]))
    share = [round(float(r) / n, 4) for r in right]
    return ExpectedAccuracy(share[0], share[1], share[2], folds=folds)


def _aligned(
    rssi: NDArray[np.float64], columns: Sequence[str], anchors: Sequence[str]
) -> NDArray[np.float64]:
    index = {a: i for i, a in enumerate(columns)}
    out = np.full((rssi.shape[0], len(anchors)), np.nan)
    for j, anchor in enumerate(anchors):
        if anchor in index:
            out[:, j] = rssi[:, index[anchor]]
    return out
