"""Expected footfall per zone and hour for the next days (issue 18, point 9).

The history is a cube of counts ``(zone, day, hour of day)``: stays of any
status that began in each store-local hour (the footfall view's count), the
days consecutive and ending at the forecast's start (a local midnight).

The model (``seasonal_forecast``) is a damped multiplicative decomposition:

1. the store's daily totals are fitted as ``log(1 + total) = a + b * day +
   g[weekday]`` by least squares; days that sit far off the fit (a holiday,
   a closure, an outage) are dropped and the fit is repeated;
2. each zone's weekday x hour profile is the mean, over the last ``weeks``
   kept days of that weekday, of the counts divided by the trend ``exp(b *
   day)``;
3. the forecast of a zone, day and hour is its profile times the trend
   carried to that day.

The naive baseline (``last_week_forecast``) repeats the same hour of the
same weekday one week before. ``footfall_errors`` scores either against what
happened: mean absolute error per zone-hour and WAPE (the absolute errors
summed over the summed actual counts). docs/analytics.md says where the model
is weak. Pure numpy; no clock, no I/O.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray

from .stays import Stays
from .timeline import HOUR_MS

__all__ = [
    "FootfallForecast",
    "daily_hours",
    "footfall_errors",
    "last_week_forecast",
    "seasonal_forecast",
]

Floats = NDArray[np.float64]

#: A day whose log total sits further than this off the fit is an outlier
#: (also at least this many robust standard deviations, see ``_kept_days``).
_OUTLIER_LOG = 0.35
_OUTLIER_SIGMAS = 4.0


def daily_hours(stays: Stays, zones: int, first_day: str, days: int, timezone: str) -> Floats:
    """(Z, days, 24): stays that began in each store-local hour of each day
    from ``first_day`` (ISO date), for ``days`` days."""
    return binned_daily_hours(
        stays.zone, stays.entered_ms, np.ones(len(stays)), zones, first_day, days, timezone
    )


def binned_daily_hours(
    zone: NDArray[np.int64],
    at_ms: NDArray[np.int64],
    count: Floats,
    zones: int,
    first_day: str,
    days: int,
    timezone: str,
) -> Floats:
    """(Z, days, 24): ``count[i]`` entries of ``zone[i]`` at ``at_ms[i]`` (an
    event, or the start of a bin shorter than any UTC offset's step), added
    into the store-local hour of each day from ``first_day``."""
    tz = ZoneInfo(timezone)
    start = datetime.fromisoformat(first_day).date()
    out = np.zeros((zones, days, 24), dtype=np.float64)
    for d in range(days):
        day = start + timedelta(days=d)
        midnight = datetime(day.year, day.month, day.day, tzinfo=tz)
        lo = round(midnight.astimezone(UTC).timestamp() * 1000)
        nxt = day + timedelta(days=1)
        hi = round(datetime(nxt.year, nxt.month, nxt.day, tzinfo=tz).timestamp() * 1000)
        noon = datetime(day.year, day.month, day.day, 12, tzinfo=tz)
        offset_ms = round((noon.utcoffset() or timedelta()).total_seconds() * 1000)
        local_midnight = lo + round((midnight.utcoffset() or timedelta()).total_seconds() * 1000)
        chosen = (at_ms >= lo) & (at_ms < hi)
        hour = np.clip((at_ms[chosen] + offset_ms - local_midnight) // HOUR_MS, 0, 23)
        np.add.at(out[:, d, :], (zone[chosen], hour), count[chosen])
    return out


@dataclass(frozen=True, slots=True)
class FootfallForecast:
    """(Z, horizon, 24) expected counts, and what the fit found."""

    expected: Floats
    trend_per_week: float  # the fitted growth of the daily total, as a fraction per week
    dropped_days: tuple[int, ...]  # history days (indices) left out as outliers
    weekday_factor: tuple[float, ...]  # Monday ... Sunday, relative to their mean


def _fit(day: Floats, weekday: NDArray[np.int64], y: Floats, trend: bool) -> Floats:
    """Least squares of y on [1, day, weekday dummies (Monday is the base)]."""
    columns = [np.ones_like(day)]
    if trend:
        columns.append(day)
    columns += [(weekday == w).astype(np.float64) for w in range(1, 7)]
    x = np.stack(columns, axis=1)
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    if not trend:
        coef = np.insert(coef, 1, 0.0)
    return np.asarray(coef, dtype=np.float64)


def _predict(coef: Floats, day: Floats, weekday: NDArray[np.int64]) -> Floats:
    dummies = np.zeros(day.size)
    for w in range(1, 7):
        dummies += coef[1 + w] * (weekday == w)
    return np.asarray(coef[0] + coef[1] * day + dummies, dtype=np.float64)


def _kept_days(
    totals: Floats, weekday: NDArray[np.int64], trend: bool
) -> tuple[Floats, NDArray[np.bool_]]:
    """The fit of the daily totals, without outlier days, and which days it kept."""
    day = np.arange(totals.size, dtype=np.float64)
    y = np.log1p(totals)
    keep = np.ones(totals.size, dtype=bool)
    coef = _fit(day, weekday, y, trend)
    for _ in range(3):
        resid = y - _predict(coef, day, weekday)
        spread = 1.4826 * float(np.median(np.abs(resid[keep] - np.median(resid[keep]))))
        limit = max(_OUTLIER_LOG, _OUTLIER_SIGMAS * spread)
        new_keep = np.abs(resid) <= limit
        # Never drop a weekday altogether: its profile needs at least one day.
        for w in range(7):
            if (weekday == w).any() and not new_keep[weekday == w].any():
                new_keep[weekday == w] = keep[weekday == w]
        if (new_keep == keep).all():
            break
        keep = new_keep
        coef = _fit(day[keep], weekday[keep], y[keep], trend)
    return coef, keep


def seasonal_forecast(
    history: Floats, first_weekday: int, horizon_days: int = 7, *, weeks: int = 4
) -> FootfallForecast:
    """Forecast the ``horizon_days`` after the history (``history``: (Z, D, 24),
    day 0 a ``first_weekday``, 0 = Monday). Needs at least 7 days; a trend is
    fitted from 14 days of history on."""
    zones, days, _ = history.shape
    if days < 7:
        raise ValueError(f"a footfall forecast needs at least 7 days of history, got {days}")
    weekday = (first_weekday + np.arange(days, dtype=np.int64)) % 7
    totals = history.sum(axis=(0, 2))
    trend = days >= 14
    coef, keep = _kept_days(totals, weekday, trend)
    slope = float(coef[1])
    level = np.exp(slope * np.arange(days, dtype=np.float64))  # trend relative to day 0
    expected = np.zeros((zones, horizon_days, 24), dtype=np.float64)
    for k in range(horizon_days):
        d = days + k
        w = d % 7  # the future day's weekday, counted from day 0's
        same = np.flatnonzero((np.arange(days) % 7 == w) & keep)[-weeks:]
        if same.size == 0:  # every such day was an outlier: take them all
            same = np.flatnonzero(np.arange(days) % 7 == w)[-weeks:]
        profile = (history[:, same, :] / level[same][None, :, None]).mean(axis=1)
        expected[:, k, :] = profile * np.exp(slope * d)
    factors = np.exp(_predict(coef, np.zeros(7), np.arange(7, dtype=np.int64)))
    factors = factors / factors.mean()
    return FootfallForecast(
        expected=expected,
        trend_per_week=round(float(np.exp(7 * slope) - 1.0), 4),
        dropped_days=tuple(int(i) for i in np.flatnonzero(~keep)),
        weekday_factor=tuple(round(float(f), 3) for f in factors),
    )


def last_week_forecast(history: Floats, horizon_days: int = 7) -> Floats:
    """The naive baseline: each hour as it was on the same weekday a week before."""
    days = history.shape[1]
    if days < 7:
        raise ValueError(f"the same-hour-last-week baseline needs 7 days, got {days}")
    picks = [days - 7 + (k % 7) for k in range(horizon_days)]
    return np.asarray(history[:, picks, :], dtype=np.float64)


def footfall_errors(
    forecast: Floats, actual: Floats, cells: NDArray[np.bool_] | None = None
) -> dict[str, float | None]:
    """Mean absolute error per zone-hour cell and WAPE. The mean is over
    ``cells`` (default: where the forecast or the actual is not zero; give
    the same cells to compare two forecasts), so closed hours do not dilute it."""
    error = np.abs(forecast - actual)
    if cells is None:
        cells = (forecast > 0) | (actual > 0)
    total = float(actual.sum())
    return {
        "mae": round(float(error[cells].mean()), 4) if cells.any() else None,
        "wape": round(float(error.sum()) / total, 4) if total else None,
        "cells": int(cells.sum()),
    }
