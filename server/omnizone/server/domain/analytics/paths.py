"""Paths through the store: zone-to-zone transitions and the most common routes.

Both read the stays of each store trip in order, with consecutive stays in
the same zone collapsed into one (a stay broken by a short gap).
"""

from collections import Counter
from dataclasses import dataclass

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


def transitions(stays: Stays, trips: Trips, zones: int, chosen_trips: Ints) -> Ints:
    """(Z+1, Z+1) move counts over the chosen trips, street at index 0:
    street -> first zone, each change of zone, last zone -> street."""
    size = zones + 1
    matrix = np.zeros((size, size), dtype=np.int64)
    if chosen_trips.size == 0:
        return matrix
    wanted = np.zeros(len(trips), dtype=bool)
    wanted[chosen_trips] = True
    in_trip = wanted[trips.trip]
    zone, trip = _collapsed(stays.zone[trips.order][in_trip] + 1, trips.trip[in_trip])
    # Append the street after each trip's last stay and before its first.
    first = np.ones(zone.size, dtype=bool)
    first[1:] = trip[1:] != trip[:-1]
    last = np.ones(zone.size, dtype=bool)
    last[:-1] = trip[:-1] != trip[1:]
    src = np.concatenate([zone[:-1][~last[:-1]], np.full(int(first.sum()), STREET), zone[last]])
    dst = np.concatenate([zone[1:][~first[1:]], zone[first], np.full(int(last.sum()), STREET)])
    np.add.at(matrix, (src, dst), 1)
    return matrix


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
    counter: Counter[tuple[int, ...]] = Counter()
    if zone.size:
        cuts = np.flatnonzero(trip[1:] != trip[:-1]) + 1
        for part in np.split(zone, cuts):
            counter[tuple(part.tolist())] += 1
    with_stop = len(np.unique(trip))
    stopless = int(chosen_trips.size) - with_stop
    if stopless:
        counter[()] += stopless
    ranked = sorted(counter.items(), key=lambda item: (-item[1], item[0]))[:limit]
    return Routes(trips=int(chosen_trips.size), ranked=ranked, distinct=len(counter))
