"""Store analytics over stored events: pure functions over numpy columns.

Stays (zone visits) are grouped into store trips; presence, dwell, footfall
and visit counts are per zone and hour; transitions and routes follow each
trip; the funnel attributes anonymous taps and try-ons to the trips present
and matches purchases to trips (docs/analytics.md). No framework imports.
"""

from .funnel import (
    STEPS,
    FunnelFigures,
    ShopperEvents,
    ZoneEvents,
    attribute,
    covering_stays,
    funnel,
    purchase_windows,
    trip_at,
)
from .paths import STREET, Routes, Transitions, nearest_exit, routes, transitions
from .stays import OPEN, PASS_BY, STATUS_CODES, VISIT, StayRow, Stays, Trips, split_trips
from .timeline import DAY_MS, HOUR_MS, hour_buckets, local_midnights
from .zones import (
    DWELL_BINS_S,
    Dwell,
    Presence,
    VisitCounts,
    dwell,
    footfall,
    presence,
    visit_counts,
)

__all__ = [
    "DAY_MS",
    "DWELL_BINS_S",
    "HOUR_MS",
    "OPEN",
    "PASS_BY",
    "STATUS_CODES",
    "STEPS",
    "STREET",
    "VISIT",
    "Dwell",
    "FunnelFigures",
    "Presence",
    "Routes",
    "ShopperEvents",
    "StayRow",
    "Stays",
    "Transitions",
    "Trips",
    "VisitCounts",
    "ZoneEvents",
    "attribute",
    "covering_stays",
    "dwell",
    "footfall",
    "funnel",
    "hour_buckets",
    "local_midnights",
    "nearest_exit",
    "presence",
    "purchase_windows",
    "routes",
    "split_trips",
    "transitions",
    "trip_at",
    "visit_counts",
]
