"""Zone stays as columns of numpy arrays, and their grouping into store trips.

A week of a busy store is a few hundred thousand stays: every view works on
whole columns at once rather than on one object per stay.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Ints = NDArray[np.int64]

#: Stay status codes (the ``visits.status`` column).
VISIT, PASS_BY, OPEN = 0, 1, 2
STATUS_CODES = {"visit": VISIT, "pass_by": PASS_BY, "open": OPEN}

#: (device, zone, entered_ms, end_ms, status): one stored stay. ``end_ms`` is
#: when it closed or, while open, when the device was last placed there.
StayRow = tuple[str, str, int, int, str]


@dataclass(frozen=True, slots=True)
class Stays:
    """Stays of one store, one row per index. Zones are indices into the
    plan's zone list; devices are indices into ``devices``."""

    device: Ints
    zone: Ints
    entered_ms: Ints
    end_ms: Ints
    status: Ints
    devices: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.device.size)

    @property
    def dwell_ms(self) -> Ints:
        return self.end_ms - self.entered_ms

    @classmethod
    def from_rows(cls, rows: Iterable[StayRow], zones: Sequence[str]) -> "Stays":
        """Rows in any order; rows of zones not in ``zones`` are dropped
        (a zone removed from the plan since)."""
        zone_index = {z: i for i, z in enumerate(zones)}
        device_index: dict[str, int] = {}
        device: list[int] = []
        zone: list[int] = []
        entered: list[int] = []
        end: list[int] = []
        status: list[int] = []
        for d, z, e, f, s in rows:
            zi = zone_index.get(z)
            if zi is None:
                continue
            device.append(device_index.setdefault(d, len(device_index)))
            zone.append(zi)
            entered.append(e)
            end.append(max(e, f))
            status.append(STATUS_CODES[s])
        return cls(
            device=np.asarray(device, dtype=np.int64),
            zone=np.asarray(zone, dtype=np.int64),
            entered_ms=np.asarray(entered, dtype=np.int64),
            end_ms=np.asarray(end, dtype=np.int64),
            status=np.asarray(status, dtype=np.int64),
            devices=tuple(device_index),
        )

    def take(self, index: Ints | NDArray[np.bool_]) -> "Stays":
        return Stays(
            self.device[index],
            self.zone[index],
            self.entered_ms[index],
            self.end_ms[index],
            self.status[index],
            self.devices,
        )

    def entered_within(self, from_ms: int, to_ms: int) -> NDArray[np.bool_]:
        return (self.entered_ms >= from_ms) & (self.entered_ms < to_ms)


@dataclass(frozen=True, slots=True)
class Trips:
    """Store trips: ``order`` sorts the stays by (device, entry); ``trip[k]``
    is the trip of the k-th stay in that order. Per trip: its device, start
    and end, and the position in ``order`` of its first stay."""

    order: Ints
    trip: Ints
    device: Ints
    start_ms: Ints
    end_ms: Ints
    first: Ints

    def __len__(self) -> int:
        return int(self.device.size)

    def of_stay(self) -> Ints:
        """The trip of every stay, in the stays' own order."""
        out = np.empty_like(self.trip)
        out[self.order] = self.trip
        return out

    def starting_within(self, from_ms: int, to_ms: int) -> NDArray[np.bool_]:
        return (self.start_ms >= from_ms) & (self.start_ms < to_ms)


def split_trips(stays: Stays, gap_ms: int) -> Trips:
    """One device's stays, ordered by entry, belong to one trip until the
    gap between the latest end so far and the next entry exceeds ``gap_ms``
    (the device was unheard that long: ingest's rule for leaving the store)."""
    n = len(stays)
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return Trips(empty, empty, empty, empty, empty, empty)
    order = np.lexsort((stays.entered_ms, stays.device)).astype(np.int64)
    device = stays.device[order]
    entered = stays.entered_ms[order]
    end = stays.end_ms[order]
    new_device = np.empty(n, dtype=bool)
    new_device[0] = True
    new_device[1:] = device[1:] != device[:-1]
    # Latest end so far within the device: stays of one device never overlap
    # in ingest, but a running maximum keeps a stray overlap from splitting.
    segment = np.cumsum(new_device) - 1
    base = int(entered.min())
    span = int(end.max()) - base + 1
    offset = segment * span  # lifts each device above the previous one's times
    running_end = np.maximum.accumulate(end - base + offset) - offset + base
    gap = np.empty(n, dtype=bool)
    gap[0] = True
    gap[1:] = entered[1:] - running_end[:-1] > gap_ms
    starts = new_device | gap
    trip = np.cumsum(starts) - 1
    first = np.flatnonzero(starts).astype(np.int64)
    # a trip's stays are contiguous in ``order``: its end is the max of its run
    trip_end = np.maximum.reduceat(end, first).astype(np.int64)
    return Trips(
        order=order,
        trip=trip.astype(np.int64),
        device=device[first],
        start_ms=entered[first],
        end_ms=trip_end,
        first=first,
    )
