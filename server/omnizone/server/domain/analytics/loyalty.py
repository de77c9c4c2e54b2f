"""New and repeat visitors, visit frequency and recency (issue 18, point 3).

Counted per consented shopper identity: the ``device`` of a stored stay is
the shopper id ingest resolved a rotating id to, stored only with location
consent (docs/identity.md). A key that still names a kind (``eid:…``,
``ibeacon:…``) is not a shopper and is never counted here; raw radio
addresses never reach the database.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .stays import Stays, Trips
from .timeline import DAY_MS

#: Trips per shopper in the range: 1, 2, 3, 4-5, 6 and more.
FREQUENCY_BINS = (1, 2, 3, 4, 6)
#: Days from a returning shopper's previous trip to their first in the range.
RECENCY_BINS_DAYS = (0, 1, 7, 14, 30)


def is_shopper_id(device: str) -> bool:
    """A resolved shopper id carries no kind prefix (``service/device_identity.py``)."""
    return ":" not in device


@dataclass(frozen=True, slots=True)
class Loyalty:
    shoppers: int  # distinct shoppers with a trip starting in the range
    new: int  # of those, not seen in the lookback before the range
    repeat: int
    trips: int
    frequency: list[int]  # shoppers per FREQUENCY_BINS bin
    recency: list[int]  # repeat shoppers per RECENCY_BINS_DAYS bin
    mean_trips_per_shopper: float | None
    median_days_since_previous: float | None


def loyalty(
    stays: Stays,
    trips: Trips,
    from_ms: int,
    to_ms: int,
    last_seen_before: Mapping[str, int],
) -> Loyalty:
    """``last_seen_before``: per shopper id, their latest stay entry before
    ``from_ms`` within the lookback (those absent are new). A shopper whose
    earlier trip in the range repeats within it is still counted once, as new
    or repeat by what came before the range."""
    chosen = np.flatnonzero(trips.starting_within(from_ms, to_ms))
    ids = stays.devices
    keep = np.array([is_shopper_id(ids[d]) for d in trips.device[chosen]], dtype=bool)
    chosen = chosen[keep] if chosen.size else chosen
    if chosen.size == 0:
        return Loyalty(
            0, 0, 0, 0, [0] * len(FREQUENCY_BINS), [0] * len(RECENCY_BINS_DAYS), None, None
        )
    device = trips.device[chosen]
    start = trips.start_ms[chosen]
    shoppers, first_pos, per_shopper = np.unique(device, return_index=True, return_counts=True)
    first_start = start[first_pos]  # trips are ordered by (device, start)
    gaps_days: list[float] = []
    for d, first in zip(shoppers.tolist(), first_start.tolist(), strict=True):
        before = last_seen_before.get(ids[d])
        if before is not None:
            gaps_days.append((first - before) / DAY_MS)
    frequency = np.bincount(
        np.searchsorted(FREQUENCY_BINS, per_shopper, side="right") - 1,
        minlength=len(FREQUENCY_BINS),
    )
    recency = np.bincount(
        np.searchsorted(RECENCY_BINS_DAYS, np.asarray(gaps_days, dtype=float), side="right") - 1,
        minlength=len(RECENCY_BINS_DAYS),
    )
    repeat = len(gaps_days)
    return Loyalty(
        shoppers=int(shoppers.size),
        new=int(shoppers.size) - repeat,
        repeat=repeat,
        trips=int(chosen.size),
        frequency=frequency.tolist(),
        recency=recency.tolist(),
        mean_trips_per_shopper=float(per_shopper.mean()),
        median_days_since_previous=float(np.median(gaps_days)) if gaps_days else None,
    )


def bin_labels(edges: Sequence[int], unit: str) -> list[str]:
    """'1', '2', '4-5', '6+' (unit ''), or '0-1 d', '30+ d'."""
    out = []
    suffix = f" {unit}" if unit else ""
    for k, low in enumerate(edges):
        if k + 1 == len(edges):
            out.append(f"{low}+{suffix}")
        elif not unit and edges[k + 1] == low + 1:
            out.append(f"{low}")
        else:
            high = edges[k + 1] - (0 if unit else 1)
            out.append(f"{low}-{high}{suffix}")
    return out
