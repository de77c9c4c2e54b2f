"""Staff filtering (issue 18, point 5): staff phones and devices out of every
shopper figure, and listed for review.

A device is staff when it is registered as such, or when its presence looks
like work rather than shopping: present at least ``min_daily_hours`` on at
least ``min_days`` store-local days of the lookback, or any real time in a
back-office zone (no shopper goes there). Pure: stays in, verdicts out.
"""

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np

from .stays import Ints, Stays

MIN_DAILY_HOURS = 4.0
MIN_DAYS = 3
MIN_BACK_OFFICE_S = 60.0


@dataclass(frozen=True, slots=True)
class StaffDevice:
    device: str
    reason: str  # "registered", "long daily presence", "back office"
    days_present: int  # days of the lookback with any stay
    long_days: int  # of those, days with at least min_daily_hours
    mean_daily_hours: float
    back_office_s: float


def detect_staff(
    stays: Stays,
    midnights: Ints,
    back_office_zones: Sequence[int],
    registered: Collection[str] = (),
    *,
    min_daily_hours: float = MIN_DAILY_HOURS,
    min_days: int = MIN_DAYS,
) -> list[StaffDevice]:
    """Every staff device among ``stays`` (the lookback's), registered ones
    first, then by device; ``midnights`` are the store-local day edges."""
    found: dict[str, StaffDevice] = {}
    n_dev = len(stays.devices)
    if len(stays):
        day = np.searchsorted(midnights, stays.entered_ms, side="right") - 1
        days = max(int(midnights.size), 1)
        cell = stays.device * days + np.clip(day, 0, days - 1)
        hours = np.bincount(cell, weights=stays.dwell_ms / 3_600_000.0, minlength=n_dev * days)
        per_day = hours.reshape(n_dev, days)
        present = (per_day > 0).sum(axis=1)
        long_days = (per_day >= min_daily_hours).sum(axis=1)
        back = np.isin(stays.zone, np.asarray(back_office_zones, dtype=np.int64))
        back_s = np.bincount(
            stays.device[back], weights=stays.dwell_ms[back] / 1000.0, minlength=n_dev
        )
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_hours = np.where(present > 0, per_day.sum(axis=1) / np.maximum(present, 1), 0.0)
        # Only the devices that qualify, or are registered, are looked at one by one.
        named = np.fromiter((n in registered for n in stays.devices), dtype=bool, count=n_dev)
        candidates = named | (back_s >= MIN_BACK_OFFICE_S) | (long_days >= min_days)
        for d in np.flatnonzero(candidates).tolist():
            name = stays.devices[d]
            reason = (
                "registered"
                if name in registered
                else "back office"
                if back_s[d] >= MIN_BACK_OFFICE_S
                else "long daily presence"
                if long_days[d] >= min_days
                else None
            )
            if reason is not None:
                found[name] = StaffDevice(
                    name,
                    reason,
                    int(present[d]),
                    int(long_days[d]),
                    round(float(mean_hours[d]), 2),
                    round(float(back_s[d]), 1),
                )
    for name in registered:
        found.setdefault(name, StaffDevice(name, "registered", 0, 0, 0.0, 0.0))
    return sorted(found.values(), key=lambda s: (s.reason != "registered", s.device))
