"""A zone likelihood learned from a survey: per-zone, per-anchor RSSI densities as lookup tables.

Why: the Gaussian radio map (``radio_map.fingerprint_map``) assumes one bell
curve per zone and anchor, but real rooms give skewed, multi-modal readings
(a wall between two spots of one zone, a body blocking half the time).
A kernel density estimate per zone and anchor follows whatever shape the
survey shows, and "not heard" keeps its own probability, so silence is
evidence as in ``likelihood``.

Everything is chosen inside the training survey by a fixed rule, never by
hand per store: the kernel bandwidth and the temperature (how sharply the
summed log densities are trusted, which makes the output calibrated
probabilities) each minimise the cross-validated log loss, with folds that
are contiguous blocks of each zone's rows in file order (rows taken one after
another are not independent, so a random fold would flatter small bandwidths).

Scoring is a table lookup and a sum: each reading is quantized to a
``GRID_STEP_DB`` bin and the (anchors, bins + 1, zones) table gives its log
density per zone, so one device-window costs about anchors × zones additions;
``score`` takes many devices at once, as the localizer does.
"""

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from .survey import Survey

GRID_LO_DBM = -110.0
GRID_HI_DBM = -20.0
GRID_STEP_DB = 0.5
#: Candidate kernel bandwidths (dB); cross-validation picks one per survey.
BANDWIDTHS_DB = (0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)
#: Candidate temperatures applied to the summed log densities.
TEMPERATURES = (0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.7, 1.0, 1.4, 2.0)
#: Share of each density spread uniformly over the grid: a reading no survey
#: sample came near costs a bounded penalty rather than minus infinity.
UNIFORM_SHARE = 0.05
#: Pseudo-counts on "heard" and "not heard" per zone and anchor (Laplace).
HEARD_PSEUDOCOUNT = 1.0
FOLDS = 5
#: Candidate weights of the linear part against the tables (0 = tables only).
LINEAR_WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0)
#: Candidate overall scales of the blended logits, for calibrated probabilities.
SCALES = (0.5, 0.7, 1.0, 1.4)
#: "Not heard" as a number for the linear part.
LINEAR_MISSING_DBM = -100.0
#: Devices scored per block in ``score_learned``.
BLOCK_ROWS = 256

_BINS = round((GRID_HI_DBM - GRID_LO_DBM) / GRID_STEP_DB) + 1


@dataclass(frozen=True)
class LearnedLikelihood:
    """Per anchor, per quantized reading (bin 0 = not heard), the log density per zone."""

    zones: tuple[str, ...]  # (Z,)
    anchors: tuple[str, ...]  # (A,)
    table: NDArray[np.float64]  # (A, 1 + bins, Z)
    bandwidth_db: float
    temperature: float
    # the linear part: logits += linear_weight * (features @ linear + linear_bias)
    linear: NDArray[np.float64] | None = None  # (2A, Z), None = tables only
    linear_bias: NDArray[np.float64] | None = None  # (Z,)
    linear_fill: NDArray[np.float64] | None = None  # (2A,) features of an anchor not reporting
    linear_weight: float = 0.0
    log_prior: NDArray[np.float64] | None = None  # (Z,) the survey's zone shares; None = flat

    def __post_init__(self) -> None:
        expected = (len(self.anchors), 1 + _BINS, len(self.zones))
        if self.table.shape != expected:
            raise ValueError(f"table has shape {self.table.shape}, expected {expected}")


def fit_learned(
    survey: Survey,
    *,
    bandwidths_db: tuple[float, ...] = BANDWIDTHS_DB,
    temperatures: tuple[float, ...] = TEMPERATURES,
    folds: int = FOLDS,
) -> LearnedLikelihood:
    """Learn the tables from ``survey``, bandwidth and temperature by blocked cross-validation."""
    if len(survey) == 0:
        raise ValueError("cannot learn from an empty survey")
    zones = tuple(sorted(set(survey.zones)))
    labels = np.searchsorted(np.array(zones, dtype=object), np.array(survey.zones, dtype=object))
    labels = labels.astype(np.intp)
    shares = np.bincount(labels, minlength=len(zones)) / len(labels)
    log_prior = np.log(shares)
    fold_of = _blocked_folds(labels, len(zones), folds)
    n_folds = int(fold_of.max()) + 1
    bandwidth, temperature = bandwidths_db[0], 1.0
    linear_weight = 0.0
    if n_folds >= 2:
        # out-of-fold summed log densities per candidate bandwidth, then one grid over both
        best = math.inf
        best_summed = np.zeros((len(survey), len(zones)))
        for candidate in bandwidths_db:
            summed = np.zeros((len(survey), len(zones)))
            for fold in range(n_folds):
                held = fold_of == fold
                table = _tables(survey.rssi[~held], labels[~held], len(zones), candidate)
                summed[held] = _summed(table, survey.rssi[held])
            for t in temperatures:
                loss = _log_loss(t * summed + log_prior, labels)
                if loss < best:
                    best, bandwidth, temperature, best_summed = loss, candidate, t, summed
        # then the linear part's weight by out-of-fold accuracy, and one scale by log loss
        linear_oof = np.zeros((len(survey), len(zones)))
        for fold in range(n_folds):
            held = fold_of == fold
            w, b, _ = _linear_fit(survey.rssi[~held], labels[~held], len(zones))
            linear_oof[held] = _features(survey.rssi[held]) @ w + b
        right = -1
        for candidate_weight in LINEAR_WEIGHTS:
            logits = temperature * best_summed + candidate_weight * linear_oof + log_prior
            hits = int((logits.argmax(axis=1) == labels).sum())
            if hits > right:
                right, linear_weight = hits, candidate_weight
        blended = temperature * best_summed + linear_weight * linear_oof
        scale = min(SCALES, key=lambda c: _log_loss(c * blended + log_prior, labels))
        temperature, linear_weight = scale * temperature, scale * linear_weight
    table = _tables(survey.rssi, labels, len(zones), bandwidth)
    linear: NDArray[np.float64] | None = None
    bias: NDArray[np.float64] | None = None
    fill: NDArray[np.float64] | None = None
    if linear_weight > 0.0:
        linear, bias, fill = _linear_fit(survey.rssi, labels, len(zones))
    return LearnedLikelihood(
        zones=zones,
        anchors=survey.anchors,
        table=table,
        bandwidth_db=bandwidth,
        temperature=temperature,
        linear=linear,
        linear_bias=bias,
        linear_fill=fill,
        linear_weight=linear_weight,
        log_prior=log_prior,
    )


def score_learned(
    model: LearnedLikelihood,
    rssi: NDArray[np.float64],
    present: NDArray[np.bool_] | None = None,
    *,
    with_prior: bool = True,
) -> NDArray[np.float64]:
    """(N, Z) log-probabilities over zones for (N, A) readings in ``model.anchors`` order.

    NaN = the anchor reported but did not hear the device; an anchor with
    ``present[a]`` False reported nothing this window and adds nothing.
    With ``with_prior`` the survey's zone shares are the prior (a classifier
    on its own, as the eval's peers learn it); without, the prior is flat and
    the rows serve as a per-window log-likelihood for the localizer's filter,
    which brings its own prior.
    """
    rssi = np.asarray(rssi, dtype=np.float64)
    if rssi.ndim != 2 or rssi.shape[1] != len(model.anchors):
        raise ValueError(f"rssi has shape {rssi.shape}, expected (N, {len(model.anchors)})")
    table = model.table
    readings = rssi
    if present is not None and not bool(np.all(present)):
        table = table[present]
        readings = rssi[:, present]
    linear = model.linear
    silent: NDArray[np.bool_] | None = None
    if present is not None and not bool(np.all(present)):
        silent = np.concatenate([~present, ~present])
    logits = np.empty((rssi.shape[0], len(model.zones)))
    for start in range(0, rssi.shape[0], BLOCK_ROWS):  # temporaries stay in cache
        block = slice(start, start + BLOCK_ROWS)
        logits[block] = model.temperature * _summed(table, readings[block])
        if linear is not None and model.linear_bias is not None and model.linear_fill is not None:
            features = _features(rssi[block])
            if silent is not None:
                features[:, silent] = model.linear_fill[silent]
            logits[block] += model.linear_weight * (features @ linear + model.linear_bias)
    if with_prior and model.log_prior is not None:
        logits += model.log_prior
    return logits - _logsumexp(logits)[:, None]


def align_readings(
    survey: Survey, anchors: tuple[str, ...]
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """``survey``'s readings in ``anchors`` order; anchors it lacks are "not reported"."""
    column = {anchor: i for i, anchor in enumerate(survey.anchors)}
    matrix = np.full((len(survey), len(anchors)), np.nan)
    present = np.zeros(len(anchors), dtype=bool)
    for j, anchor in enumerate(anchors):
        if anchor in column:
            matrix[:, j] = survey.rssi[:, column[anchor]]
            present[j] = True
    return matrix, present


def _features(rssi: NDArray[np.float64]) -> NDArray[np.float64]:
    """(N, 2A) features of the linear part: the reading (not heard = -100 dBm), not-heard flags."""
    heard = ~np.isnan(rssi)
    return np.hstack([np.where(heard, rssi, LINEAR_MISSING_DBM), (~heard).astype(np.float64)])


def _linear_fit(
    rssi: NDArray[np.float64], labels: NDArray[np.intp], zones: int
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Linear discriminant analysis with Ledoit-Wolf shrinkage: (weights, bias, feature means).

    Why: the tables treat anchors as independent given the zone; a shared
    covariance between anchors (a body shadowing two gateways at once) is what
    they miss, and a shrunk estimate stays sane on a few hundred rows.
    A flat prior over zones, like the tables.
    """
    features = _features(rssi)
    n, width = features.shape
    counts = np.maximum(np.bincount(labels, minlength=zones), 1)
    means = np.zeros((zones, width))
    np.add.at(means, labels, features)
    means /= counts[:, None]
    covariance = np.zeros((width, width))
    for zone in range(zones):
        rows = features[labels == zone]
        if len(rows):
            covariance += len(rows) / n * _shrunk_covariance(rows - means[zone])
    weights = np.asarray(np.linalg.lstsq(covariance, means.T, rcond=None)[0], dtype=np.float64)
    bias: NDArray[np.float64] = -0.5 * np.einsum("zf,fz->z", means, weights)
    fill: NDArray[np.float64] = features.mean(axis=0)
    return weights, bias, fill


def _shrunk_covariance(centred: NDArray[np.float64]) -> NDArray[np.float64]:
    """Ledoit-Wolf covariance of centred rows, shrunk on standardised features (as scikit-learn)."""
    n, width = centred.shape
    scale = centred.std(axis=0)
    scale[scale < 1e-9] = 1.0
    standard = centred / scale
    covariance = standard.T @ standard / n
    mu = float(np.trace(covariance)) / width
    delta = float(((covariance - mu * np.eye(width)) ** 2).sum()) / width
    fourth = float(((standard**2).sum(axis=1) ** 2).sum())
    beta = (fourth / n - float((covariance**2).sum())) / (n * width)
    shrink = 1.0 if delta <= 0.0 else min(max(beta, 0.0), delta) / delta
    shrunk = (1.0 - shrink) * covariance + shrink * mu * np.eye(width)
    result: NDArray[np.float64] = scale[:, None] * shrunk * scale[None, :]
    return result


def _blocked_folds(labels: NDArray[np.intp], zones: int, folds: int) -> NDArray[np.intp]:
    """Fold of each row: each zone's rows, in file order, cut into ``folds`` contiguous blocks.

    Fewer folds when the smallest zone has fewer rows than ``folds``; all zeros
    (no cross-validation) when some zone has a single row.
    """
    counts = np.bincount(labels, minlength=zones)
    k = int(min(folds, counts.min()))
    fold_of = np.zeros(len(labels), dtype=np.intp)
    if k < 2:
        return fold_of
    for zone in range(zones):
        rows = np.flatnonzero(labels == zone)
        fold_of[rows] = (np.arange(len(rows)) * k) // len(rows)
    return fold_of


def _tables(
    rssi: NDArray[np.float64], labels: NDArray[np.intp], zones: int, bandwidth_db: float
) -> NDArray[np.float64]:
    """(A, 1 + bins, Z) log tables: log P(not heard) and log P(heard) + log density per bin."""
    anchors = rssi.shape[1]
    heard = ~np.isnan(rssi)
    values = np.clip(np.nan_to_num(rssi, nan=GRID_LO_DBM), GRID_LO_DBM, GRID_HI_DBM)
    # Gaussian kernel on the bin grid, truncated at 4 bandwidths, applied as a histogram convolution
    bins = _bin_index(values)
    reach = math.ceil(4.0 * bandwidth_db / GRID_STEP_DB)
    offsets = np.arange(-reach, reach + 1) * GRID_STEP_DB
    kernel = np.exp(-0.5 * (offsets / bandwidth_db) ** 2)
    kernel /= kernel.sum() * GRID_STEP_DB  # a density in 1/dB
    uniform = 1.0 / (GRID_HI_DBM - GRID_LO_DBM + GRID_STEP_DB)
    table = np.empty((anchors, 1 + _BINS, zones))
    for zone in range(zones):
        rows = labels == zone
        n = int(rows.sum())
        for a in range(anchors):
            hit = heard[rows, a]
            n_heard = int(hit.sum())
            p_heard = (n_heard + HEARD_PSEUDOCOUNT) / (n + 2.0 * HEARD_PSEUDOCOUNT)
            if n_heard:
                histogram = np.bincount(bins[rows, a][hit], minlength=_BINS).astype(np.float64)
                density = np.convolve(histogram, kernel, mode="same") / n_heard
                density = (1.0 - UNIFORM_SHARE) * density + UNIFORM_SHARE * uniform
            else:
                density = np.full(_BINS, uniform)
            table[a, 0, zone] = math.log1p(-p_heard)
            table[a, 1:, zone] = math.log(p_heard) + np.log(density)
    return table


def _bin_index(values: NDArray[np.float64]) -> NDArray[np.intp]:
    index = np.rint((values - GRID_LO_DBM) / GRID_STEP_DB)
    return np.clip(index, 0, _BINS - 1).astype(np.intp)


def _summed(table: NDArray[np.float64], rssi: NDArray[np.float64]) -> NDArray[np.float64]:
    """(N, Z): the sum over anchors of each reading's table row (one gather, one sum)."""
    heard = ~np.isnan(rssi)
    values = np.clip(np.nan_to_num(rssi, nan=GRID_LO_DBM), GRID_LO_DBM, GRID_HI_DBM)
    index = np.where(heard, 1 + _bin_index(values), 0)
    anchors = table.shape[0]
    flat = table.reshape(anchors * (1 + _BINS), table.shape[2])
    index = index + (1 + _BINS) * np.arange(anchors)
    summed: NDArray[np.float64] = flat[index].sum(axis=1)
    return summed


def _logsumexp(logits: NDArray[np.float64]) -> NDArray[np.float64]:
    top = logits.max(axis=1)
    total: NDArray[np.float64] = top + np.log(np.exp(logits - top[:, None]).sum(axis=1))
    return total


def _log_loss(logits: NDArray[np.float64], labels: NDArray[np.intp]) -> float:
    rows = np.arange(len(labels))
    return float(np.mean(_logsumexp(logits) - logits[rows, labels]))
