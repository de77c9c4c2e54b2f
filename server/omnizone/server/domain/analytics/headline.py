"""Headline figures for the dashboard's first screen (issue 18, point 1).

Shoppers in the store right now against the usual count at this weekday and
time (the same moment of the previous weeks), and today's visitors, median
visit time and conversion against the same part of the same weekday last
week. Pure functions over ``Stays``/``Trips``: no framework, no clock.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .funnel import ShopperEvents, purchase_windows, trip_at
from .stays import Ints, Stays, Trips
from .timeline import DAY_MS

WEEK_MS = 7 * DAY_MS


def shoppers_at(stays: Stays, at_ms: int) -> int:
    """Distinct devices with a stay covering ``at_ms``: who is in the store then."""
    inside = (stays.entered_ms <= at_ms) & (stays.end_ms >= at_ms)
    return int(np.unique(stays.device[inside]).size)


def usual_shoppers(weeks_before: Sequence[tuple[Stays, int]]) -> tuple[float | None, list[int]]:
    """The usual count at this weekday and time: the mean of the counts at
    the same moment of earlier weeks, given as (that week's stays, moment).
    A week with no stay at all (closed, or nothing stored yet) is left out
    rather than counted as zero. Returns (mean or None, the counts used)."""
    samples = [shoppers_at(stays, at) for stays, at in weeks_before if len(stays)]
    return (float(np.mean(samples)) if samples else None), samples


@dataclass(frozen=True, slots=True)
class DayFigures:
    """Trips that began in one span: who came, how long, and who bought."""

    visitors: int  # distinct shoppers
    trips: int
    median_visit_s: float | None
    purchased_trips: int

    @property
    def conversion(self) -> float | None:
        return self.purchased_trips / self.trips if self.trips else None


def day_figures(
    stays: Stays,
    trips: Trips,
    purchases: ShopperEvents,
    midnights: Ints,
    from_ms: int,
    to_ms: int,
) -> DayFigures:
    """Figures of the trips starting in [from_ms, to_ms). A trip converts when
    its shopper bought something in its purchase window (``purchase_windows``:
    the trip's start to that store-local midnight, cut at the next trip)."""
    chosen = np.flatnonzero(trips.starting_within(from_ms, to_ms))
    if chosen.size == 0:
        return DayFigures(0, 0, None, 0)
    visitors = int(np.unique(trips.device[chosen]).size)
    durations = (trips.end_ms[chosen] - trips.start_ms[chosen]) / 1000.0
    windows = purchase_windows(trips, midnights)
    bought = trip_at(trips, purchases.device, purchases.at_ms, windows)
    bought_trips = np.unique(bought[bought >= 0])
    purchased = int(np.isin(chosen, bought_trips).sum())
    return DayFigures(visitors, int(chosen.size), float(np.median(durations)), purchased)
