"""The zone filter: a hidden Markov model over the store's walkable zone graph.

States are the store's zones plus a last state OUTSIDE ("outside the store or
unknown"). In one window a shopper either stays, or steps into an adjacent
zone (a shared boundary with no wall), or leaves/enters through an entrance
zone. Every other transition has probability exactly 0, so the filter cannot
teleport a shopper across the store on one noisy window.
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeAlias

import numpy as np
from numpy.typing import NDArray
from scipy import sparse


@dataclass(frozen=True)
class Hysteresis:
    """When a new most-likely zone is reported: it must hold at least
    ``enter_probability`` of the posterior for ``confirm_windows`` windows in a row.

    The defaults were tuned on simulated walks in the example store (docs/localization.md):
    a high bar for one window reacts faster than a low bar held for two.
    """

    enter_probability: float = 0.9
    confirm_windows: int = 1
    #: A lead this strong switches at once, without waiting for ``confirm_windows``.
    sure_probability: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.enter_probability <= 1.0:
            raise ValueError("enter_probability must be within [0, 1]")
        if not 0.0 <= self.sure_probability <= 1.0:
            raise ValueError("sure_probability must be within [0, 1]")
        if self.confirm_windows < 1:
            raise ValueError("confirm_windows must be at least 1")


def transition_matrix(
    zones: Sequence[str],
    adjacency: Mapping[str, Sequence[str]],
    entrances: Sequence[str],
    *,
    window_s: float,
    mean_dwell_s: float = 60.0,
    outside_entry_per_s: float = 0.05,
) -> NDArray[np.float64]:
    """(Z+1, Z+1) row-stochastic; row = from, column = to, last state = OUTSIDE.

    Dwell prior: time in a zone is exponential with mean ``mean_dwell_s``, so
    the chance of staying one more window is ``exp(-window_s / mean_dwell_s)``;
    the rest is shared equally by the ways out (adjacent zones, and OUTSIDE for
    an entrance). From OUTSIDE a device enters at ``outside_entry_per_s`` (as a
    rate), shared by the entrances. A store with no entrance zone has not said
    where its doors are, so every zone is taken to connect to OUTSIDE.
    """
    if window_s <= 0 or mean_dwell_s <= 0 or outside_entry_per_s < 0:
        raise ValueError("window_s and mean_dwell_s must be positive, the entry rate >= 0")
    index = {zone: i for i, zone in enumerate(zones)}
    n = len(zones)
    doors = [z for z in entrances if z in index] or list(zones)
    outside = n
    leave = -math.expm1(-window_s / mean_dwell_s)
    matrix = np.zeros((n + 1, n + 1))
    for zone, i in index.items():
        ways = sorted({index[z] for z in adjacency.get(zone, ()) if z in index and z != zone})
        if zone in doors:
            ways.append(outside)
        matrix[i, i] = 1.0 - leave if ways else 1.0
        for j in ways:
            matrix[i, j] = leave / len(ways)
    enter = -math.expm1(-window_s * outside_entry_per_s)
    matrix[outside, outside] = 1.0 - enter
    for zone in doors:
        matrix[outside, index[zone]] = enter / len(doors)
    return matrix


#: A row-stochastic transition matrix: dense, or sparse (scipy) for many states.
Transition: TypeAlias = NDArray[np.float64] | sparse.csr_array


def forward_step(
    prior: NDArray[np.float64],
    log_lik: NDArray[np.float64],
    transition: Transition,
) -> NDArray[np.float64]:
    """One HMM forward step for every device: predict through ``transition``,
    weigh by the window's likelihood, normalize.

    Works in log space, so likelihoods that underflow in linear space are fine.
    A prior row without mass restarts from uniform; a likelihood row with no
    usable information (all NaN, or -inf wherever the state may be) leaves
    the prediction as the posterior. Every returned row sums to 1.
    """
    prior = np.asarray(prior, dtype=np.float64)
    log_lik = np.asarray(log_lik, dtype=np.float64)
    states = transition.shape[0]
    if prior.ndim != 2 or prior.shape[1] != states or log_lik.shape != prior.shape:
        raise ValueError(
            f"prior and log_lik must both have shape (devices, {states}); "
            f"got {prior.shape} and {log_lik.shape}"
        )
    mass = prior.sum(axis=1, keepdims=True)
    good = np.isfinite(mass) & (mass > 0)
    if not good.all():
        prior = np.where(good, prior, 1.0 / states)
        mass = np.where(good, mass, 1.0)
    predicted = predict(prior / mass, transition)
    with np.errstate(divide="ignore"):
        log_predicted = np.log(predicted)
    return _normalize_log(log_predicted, log_lik)


def predict(belief: NDArray[np.float64], transition: Transition) -> NDArray[np.float64]:
    """``belief @ transition``; a sparse matrix is applied from the left
    (``(Tᵀ beliefᵀ)ᵀ``), which scipy does much faster than dense @ sparse."""
    if sparse.issparse(transition):
        result: NDArray[np.float64] = np.ascontiguousarray((transition.T @ belief.T).T)
        return result
    dense: NDArray[np.float64] = belief @ transition
    return dense


def _normalize_log(
    log_predicted: NDArray[np.float64], log_lik: NDArray[np.float64]
) -> NDArray[np.float64]:
    log_lik = np.clip(np.where(np.isnan(log_lik), 0.0, log_lik), -np.inf, 1e300)
    joint = log_predicted + log_lik
    top = joint.max(axis=1, keepdims=True)
    lost = ~np.isfinite(top)
    if lost.any():  # the evidence rules out every reachable state: keep the prediction
        joint = np.where(lost, log_predicted, joint)
        top = joint.max(axis=1, keepdims=True)
    joint -= top
    posterior = np.exp(joint)
    posterior /= posterior.sum(axis=1, keepdims=True)
    return posterior
