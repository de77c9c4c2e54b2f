"""Period comparison (issue 18, point 2): two ranges side by side, the
difference, and whether it is larger than chance would make it.

A figure is one of three kinds, each with its own test at about 95 %:

- a **count** (visits, entries, trips): two Poisson counts; the difference is
  noise when |a - b| < 1.96 * sqrt(a + b) (normal approximation of the
  conditional binomial test, the usual one for "did footfall change");
- a **rate** (conversion, visit rate): two proportions, pooled z test;
- a **mean** (dwell, visit time): Welch's z from each range's n, mean and
  standard deviation.

A figure with none of these (shopper-seconds, a median) is compared without
a test. Pure: plain numbers in, plain records out.
"""

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from .stays import Stays

Kind = Literal["count", "rate", "mean", "plain"]
Z_95 = 1.96


@dataclass(frozen=True, slots=True)
class Figure:
    """One figure of one range, with what its test needs (``n`` and ``sd`` for
    a mean, ``n`` the denominator for a rate)."""

    value: float | None
    kind: Kind = "plain"
    n: int = 0
    sd: float = 0.0


@dataclass(frozen=True, slots=True)
class Difference:
    a: float | None
    b: float | None
    difference: float | None  # b - a
    relative: float | None  # (b - a) / a
    z: float | None  # the test's statistic; None when untested
    within_noise: bool | None  # None: no test for this kind, or nothing to test

    @property
    def note(self) -> str:
        if self.difference is None:
            return "no data in one of the ranges"
        if self.within_noise is None:
            return "no noise test for this figure"
        if self.within_noise:
            return "within noise: a difference this size happens by chance"
        way = "up" if (self.difference or 0) > 0 else "down"
        return f"{way}, beyond noise (z = {self.z:.1f})"


def difference(a: Figure, b: Figure) -> Difference:
    """Range ``b`` against range ``a`` (``a`` is the reference: last week)."""
    if a.value is None or b.value is None:
        return Difference(a.value, b.value, None, None, None, None)
    diff = b.value - a.value
    relative = diff / a.value if a.value else None
    z = _z(a, b, diff)
    within = None if z is None else bool(abs(z) < Z_95)
    return Difference(a.value, b.value, diff, relative, z, within)


def _z(a: Figure, b: Figure, diff: float) -> float | None:
    kind = a.kind if a.kind == b.kind else "plain"
    if kind == "count":
        total = a.value + b.value  # type: ignore[operator]
        return 0.0 if total <= 0 else diff / math.sqrt(total)
    if kind == "rate":
        if a.n == 0 or b.n == 0:
            return None
        pooled = (a.value * a.n + b.value * b.n) / (a.n + b.n)  # type: ignore[operator]
        se = math.sqrt(pooled * (1 - pooled) * (1 / a.n + 1 / b.n))
        return 0.0 if se == 0 else diff / se
    if kind == "mean":
        if a.n < 2 or b.n < 2:
            return None
        se = math.sqrt(a.sd**2 / a.n + b.sd**2 / b.n)
        return 0.0 if se == 0 else diff / se
    return None


def dwell_moments(
    stays: Stays, zones: int, from_ms: int, to_ms: int, status: int
) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64]]:
    """Per zone, of the stays of ``status`` that entered in the range: their
    number, mean dwell and standard deviation in seconds (NaN when none)."""
    chosen = stays.entered_within(from_ms, to_ms) & (stays.status == status)
    zone = stays.zone[chosen]
    seconds = stays.dwell_ms[chosen] / 1000.0
    n = np.bincount(zone, minlength=zones).astype(np.int64)
    total = np.bincount(zone, weights=seconds, minlength=zones)
    squares = np.bincount(zone, weights=seconds * seconds, minlength=zones)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / n
        var = (squares - n * mean * mean) / np.maximum(n - 1, 1)
    return n, mean, np.sqrt(np.maximum(var, 0.0))
