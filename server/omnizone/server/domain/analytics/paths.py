"""Paths through the store: zone-to-zone transitions and the most common routes.

Both read the stays of each store trip in order, with consecutive stays in
the same zone collapsed into one (a stay broken by a short gap).

A shopper leaves through a door, but the stays rarely say so: the walk out
through the entrance takes a few seconds, less than the exit grace, so
ingest never opens a stay there and the trip's last stay is the zone before
it (menswear, next to the door). ``transitions`` therefore credits each exit
to the zone holding the store's exit (``exit_via``), adding the step into it.
"""

from collections import Counter
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from .stays import PASS_BY, Ints, Stays, Trips

#: Index of the street pseudo-zone in the transition matrix; zone z is z + 1.
STREET = 0


def _collapsed(zone: Ints, trip: Ints) -> tuple[Ints, Ints]:
    """Drop every stay whose zone repeats the previous stay's in the same trip."""
    if zone.size == 0:
        return zone, trip
    keep = np.ones(zone.size, dtype=bool)
    keep[1:] = (zone[1:] != zone[:-1]) | (trip[1:] != trip[:-1])
    return zone[keep], trip[keep]


@dataclass(frozen=True, slots=True)
class Transitions:
    matrix: Ints
    """(Z+1, Z+1) move counts, street at index 0, zone z at z + 1."""
    inferred_exits: int
    """Trips whose last stay was not in an exit zone: the step into the exit
    zone was added (``exit_via``)."""


def transitions(
    stays: Stays,
    trips: Trips,
    zones: int,
    chosen_trips: Ints,
    exit_via: Ints | None = None,
) -> Transitions:
    """Move counts over the chosen trips: street -> first zone, each change of
    zone, last zone -> street. ``exit_via[z]`` is the zone a shopper whose
    trip ends in zone ``z`` leaves the store through (``z`` itself for an
    exit zone, -1 for none known): the trip then ends ``z -> exit -> street``,
    the exit credited to the zone it happens from."""
    size = zones + 1
    matrix = np.zeros((size, size), dtype=np.int64)
    if chosen_trips.size == 0:
        return Transitions(matrix, 0)
    wanted = np.zeros(len(trips), dtype=bool)
    wanted[chosen_trips] = True
    in_trip = wanted[trips.trip]
    zone, trip = _collapsed(stays.zone[trips.order][in_trip] + 1, trips.trip[in_trip])
    # Append the street after each trip's last stay and before its first.
    first = np.ones(zone.size, dtype=bool)
    first[1:] = trip[1:] != trip[:-1]
    last = np.ones(zone.size, dtype=bool)
    last[:-1] = trip[:-1] != trip[1:]
    ends = zone[last]
    exits = ends
    if exit_via is not None and ends.size:
        via = exit_via[ends - 1]
        exits = np.where(via >= 0, via + 1, ends)
    inferred = exits != ends
    src = np.concatenate(
        [zone[:-1][~last[:-1]], np.full(int(first.sum()), STREET), ends[inferred], exits]
    )
    dst = np.concatenate(
        [zone[1:][~first[1:]], zone[first], exits[inferred], np.full(ends.size, STREET)]
    )
    np.add.at(matrix, (src, dst), 1)
    return Transitions(matrix, int(inferred.sum()))


def nearest_exit(centres: list[tuple[float, float]], exits: list[int]) -> Ints:
    """``exit_via`` for ``transitions``: per zone, the exit zone whose centre
    is nearest its own (an exit zone is its own); all -1 when the plan has no
    exit zone (then exits stay where the stays end)."""
    if not exits:
        return np.full(len(centres), -1, dtype=np.int64)
    xy = np.asarray(centres, dtype=float)
    distance = np.linalg.norm(xy[:, None, :] - xy[None, exits, :], axis=2)
    nearest: Ints = np.asarray(exits, dtype=np.int64)[np.argmin(distance, axis=1)]
    return nearest


@dataclass(frozen=True, slots=True)
class Routes:
    trips: int
    ranked: list[tuple[tuple[int, ...], int]]  # (zone indices, trips), most common first
    distinct: int


def routes(stays: Stays, trips: Trips, chosen_trips: Ints, limit: int) -> Routes:
    """The zones each chosen trip *visited* (pass-bys dropped), in order with
    repeats collapsed; ranked by how many trips took them, then by the route."""
    wanted = np.zeros(len(trips), dtype=bool)
    wanted[chosen_trips] = True
    ordered_status = stays.status[trips.order]
    keep = wanted[trips.trip] & (ordered_status != PASS_BY)
    zone, trip = _collapsed(stays.zone[trips.order][keep], trips.trip[keep])
    # Each route as bytes: two big-endian bytes a zone, so that comparing the
    # bytes orders routes as comparing their tuples of zone indices would.
    counter: Counter[bytes] = Counter()
    if zone.size:
        if int(zone.max()) >= 1 << 16:
            raise ValueError("more than 65,536 zones")
        cuts = np.flatnonzero(trip[1:] != trip[:-1]) + 1
        edges = (2 * np.concatenate([[0], cuts, [zone.size]])).tolist()
        packed = zone.astype(">u2").tobytes()
        counter.update(packed[a:b] for a, b in pairwise(edges))
    with_stop = len(np.unique(trip))
    stopless = int(chosen_trips.size) - with_stop
    if stopless:
        counter[b""] += stopless
    ranked = [
        (tuple(np.frombuffer(route, dtype=">u2").tolist()), n)
        for route, n in sorted(counter.items(), key=lambda item: (-item[1], item[0]))[:limit]
    ]
    return Routes(trips=int(chosen_trips.size), ranked=ranked, distinct=len(counter))
