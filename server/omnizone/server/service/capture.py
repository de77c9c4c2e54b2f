"""The capture-rate view (issue 18, point 4): the body of
``GET /stores/{store}/analytics/capture`` and its CSV table, from the trips
that began in each hour and the stored passer-by counts
(``domain/analytics/capture.py``; counted by ``service/passers_by.py``).

The view works on whole store-local hours: those covering the asked range,
the first from the hour boundary at or before ``from_ms``, because a
passer-by count is one number per hour.
"""

from collections.abc import Mapping
from typing import Any

from omnizone.server.domain.analytics.capture import capture, entrants_per_hour
from omnizone.server.domain.analytics.stays import Ints
from omnizone.server.domain.analytics.timeline import HOUR_MS
from omnizone.store import StorePlan

ENTRANTS_ARE = (
    "store trips that began in the hour, of shoppers who allow location analytics (staff left out)"
)
PASSERS_BY_ARE = (
    "distinct phones the street-front gateways heard in the hour that are not such"
    " shoppers, counted anonymously: only the count is stored"
)
CSV_FIELDS = [
    "hour_start_ms",
    "entrants",
    "passers_by",
    "street",
    "capture_rate",
    "entrants_per_passer_by",
]


def capture_body(
    plan: StorePlan, buckets: Ints, trip_starts_ms: Ints, passers_by: Mapping[int, int]
) -> dict[str, Any]:
    """The view's fields (all but the store and range of every view)."""
    found = capture(buckets, entrants_per_hour(trip_starts_ms, buckets), dict(passers_by))
    return {
        "bucket_ms": HOUR_MS,
        "street_gateways": sorted(plan.street_gateways),
        "entrants_are": ENTRANTS_ARE,
        "passers_by_are": PASSERS_BY_ARE,
        "hours": [
            {
                "hour_ms": h.hour_ms,
                "entrants": h.entrants,
                "passers_by": h.passers_by if h.counted else None,
                "street": h.street if h.counted else None,
                "capture_rate": _rate(h.capture_rate),
                "entrants_per_passer_by": _rate(h.entrants_per_passer_by),
            }
            for h in found.hours
        ],
        "hours_counted": sum(1 for h in found.hours if h.counted),
        "entrants": found.entrants,
        "passers_by": found.passers_by,
        "capture_rate": _rate(found.capture_rate),
    }


def capture_csv_rows(body: Mapping[str, Any]) -> list[list[Any]]:
    """One row per hour; an hour without a stored count has empty figures."""
    rows: list[list[Any]] = [CSV_FIELDS]
    rows += [
        [h["hour_ms" if f == "hour_start_ms" else f] for f in CSV_FIELDS] for h in body["hours"]
    ]
    return rows


def _rate(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
