"""Lift of a campaign over its holdout: the difference of conversion rates
(treated minus control) with Newcombe's hybrid score interval.

Newcombe (1998), "Interval estimation for the difference between independent
proportions: comparison of eleven methods", Statistics in Medicine 17, method
10: combine the Wilson score intervals of both rates. It keeps close to its
nominal coverage for small samples and rates near 0 or 1 (where the Wald
interval fails), never leaves [-1, 1] and is defined for zero conversions.
"""

import math
from dataclasses import dataclass
from statistics import NormalDist

__all__ = ["Lift", "campaign_lift", "wilson_interval"]


@dataclass(frozen=True, slots=True)
class Lift:
    """Rates are conversions / shoppers. None where a group is empty (the rate
    is undefined) or, for ``relative``, where the control rate is 0."""

    treated_rate: float | None
    control_rate: float | None
    absolute: float | None
    absolute_low: float | None
    absolute_high: float | None
    relative: float | None
    confidence: float
    method: str = "newcombe-wilson"


def _z(confidence: float) -> float:
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson_interval(conversions: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for one rate (n > 0)."""
    _check_counts("", n, conversions)
    if n == 0:
        raise ValueError("a rate needs at least one shopper")
    z = _z(_checked_confidence(confidence))
    p = conversions / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    low = 0.0 if conversions == 0 else max(0.0, centre - half)
    high = 1.0 if conversions == n else min(1.0, centre + half)
    return low, high


def campaign_lift(
    treated_n: int,
    treated_conversions: int,
    control_n: int,
    control_conversions: int,
    confidence: float = 0.95,
) -> Lift:
    """Absolute lift p_t - p_c with its interval, and relative lift p_t / p_c - 1."""
    _check_counts("treated", treated_n, treated_conversions)
    _check_counts("control", control_n, control_conversions)
    confidence = _checked_confidence(confidence)
    p_t = treated_conversions / treated_n if treated_n else None
    p_c = control_conversions / control_n if control_n else None
    if p_t is None or p_c is None:
        return Lift(p_t, p_c, None, None, None, None, confidence)
    low_t, high_t = wilson_interval(treated_conversions, treated_n, confidence)
    low_c, high_c = wilson_interval(control_conversions, control_n, confidence)
    diff = p_t - p_c
    low = diff - math.sqrt((p_t - low_t) ** 2 + (high_c - p_c) ** 2)
    high = diff + math.sqrt((high_t - p_t) ** 2 + (p_c - low_c) ** 2)
    relative = p_t / p_c - 1 if p_c > 0 else None
    return Lift(p_t, p_c, diff, max(-1.0, low), min(1.0, high), relative, confidence)


def _check_counts(group: str, n: int, conversions: int) -> None:
    label = f"{group} " if group else ""
    if n < 0 or conversions < 0:
        raise ValueError(f"{label}counts must not be negative (n={n}, conversions={conversions})")
    if conversions > n:
        raise ValueError(f"{label}conversions ({conversions}) exceed shoppers ({n})")


def _checked_confidence(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1 (exclusive), got {confidence}")
    return confidence
