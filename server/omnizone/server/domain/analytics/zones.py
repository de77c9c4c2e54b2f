"""Per-zone figures over a range: presence, dwell, footfall, visits vs pass-bys.

Every function takes the stays and the number of zones of the plan and
returns arrays indexed by zone (and hour), zeros where nothing happened.
"""

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from .stays import OPEN, PASS_BY, VISIT, Ints, Stays

Floats = NDArray[np.float64]

#: Lower edges of the dwell bins, seconds; the last bin is open-ended.
DWELL_BINS_S: tuple[float, ...] = (0, 15, 30, 60, 120, 300, 600, 1200)


@dataclass(frozen=True, slots=True)
class Presence:
    total_s: Floats  # (Z,)
    matrix_s: Floats  # (Z, B)


def presence(
    stays: Stays, zones: int, from_ms: int, to_ms: int, buckets_ms: Ints, bucket_ms: int
) -> Presence:
    """Shopper-seconds per zone, and per zone and bucket: each stay's
    [entered, end] clipped to the range, then split over the buckets it spans."""
    n_buckets = int(buckets_ms.size)
    matrix = np.zeros((zones, n_buckets), dtype=np.float64)
    start = np.maximum(stays.entered_ms, from_ms)
    end = np.minimum(stays.end_ms, to_ms)
    keep = end > start
    start, end, zone = start[keep], end[keep], stays.zone[keep]
    total = np.bincount(zone, weights=(end - start) / 1000, minlength=zones).astype(np.float64)
    if n_buckets == 0 or start.size == 0:
        return Presence(total, matrix)
    t0 = int(buckets_ms[0])
    first = (start - t0) // bucket_ms
    last = (end - 1 - t0) // bucket_ms
    flat = matrix.reshape(-1)
    for k in range(int((last - first).max()) + 1):
        bucket = first + k
        hit = bucket <= last
        if not hit.any():
            break
        b = bucket[hit]
        lo = np.maximum(start[hit], t0 + b * bucket_ms)
        hi = np.minimum(end[hit], t0 + (b + 1) * bucket_ms)
        cell = zone[hit] * n_buckets + b
        flat += np.bincount(cell, weights=(hi - lo) / 1000, minlength=flat.size)
    return Presence(total, matrix)


@dataclass(frozen=True, slots=True)
class Dwell:
    bins_s: tuple[float, ...]
    counts: Ints  # (Z, K)
    visits: Ints  # (Z,)
    mean_s: Floats  # (Z,), NaN without visits
    median_s: Floats
    p90_s: Floats


def dwell(
    stays: Stays,
    zones: int,
    from_ms: int,
    to_ms: int,
    bins_s: tuple[float, ...] = DWELL_BINS_S,
) -> Dwell:
    """Distribution of the dwell of closed visits that entered in the range
    (pass-bys and open stays left out)."""
    chosen = stays.entered_within(from_ms, to_ms) & (stays.status == VISIT)
    zone = stays.zone[chosen]
    seconds = stays.dwell_ms[chosen] / 1000
    edges = np.asarray(bins_s, dtype=np.float64)
    k = np.searchsorted(edges, seconds, side="right") - 1
    k = np.clip(k, 0, edges.size - 1)
    counts = np.bincount(zone * edges.size + k, minlength=zones * edges.size).reshape(
        zones, edges.size
    )
    visits = np.bincount(zone, minlength=zones)
    mean = np.full(zones, np.nan)
    median = np.full(zones, np.nan)
    p90 = np.full(zones, np.nan)
    if seconds.size:
        order = np.argsort(zone, kind="stable")
        grouped = np.split(seconds[order], np.cumsum(visits)[:-1])
        for z, values in enumerate(grouped):
            if values.size:
                mean[z] = float(values.mean())
                median[z], p90[z] = np.percentile(values, [50, 90])
    return Dwell(tuple(bins_s), counts.astype(np.int64), visits.astype(np.int64), mean, median, p90)


def footfall(
    stays: Stays, zones: int, from_ms: int, to_ms: int, buckets_ms: Ints, bucket_ms: int
) -> Ints:
    """(Z, B): stays of any status that began in each bucket of the range."""
    n_buckets = int(buckets_ms.size)
    if n_buckets == 0:
        return np.zeros((zones, 0), dtype=np.int64)
    chosen = stays.entered_within(from_ms, to_ms)
    b = (stays.entered_ms[chosen] - int(buckets_ms[0])) // bucket_ms
    cell = stays.zone[chosen] * n_buckets + b
    return np.bincount(cell, minlength=zones * n_buckets).reshape(zones, n_buckets)


@dataclass(frozen=True, slots=True)
class VisitCounts:
    visits: Ints
    pass_bys: Ints
    open: Ints
    mean_dwell_s: Floats  # of closed visits, NaN without any


def visit_counts(stays: Stays, zones: int, from_ms: int, to_ms: int) -> VisitCounts:
    """Stays that entered in the range, by status, per zone."""
    chosen = stays.entered_within(from_ms, to_ms)
    zone, status = stays.zone[chosen], stays.status[chosen]

    def count(code: int) -> Ints:
        return np.bincount(zone[status == code], minlength=zones).astype(np.int64)

    visits = count(VISIT)
    is_visit = status == VISIT
    total = np.bincount(
        zone[is_visit], weights=stays.dwell_ms[chosen][is_visit] / 1000, minlength=zones
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(visits > 0, total / np.maximum(visits, 1), np.nan)
    return VisitCounts(visits, count(PASS_BY), count(OPEN), mean)
