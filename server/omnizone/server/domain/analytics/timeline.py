"""Hours and days in the store's own timezone, as epoch-ms edges."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from .stays import Ints

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


def hour_buckets(from_ms: int, to_ms: int, timezone: str) -> Ints:
    """Starts of the hours covering [from_ms, to_ms): the first is the store-local
    hour boundary at or before ``from_ms``, then one every 3600 s (local hour
    boundaries stay on that grid across DST changes of whole hours)."""
    if to_ms <= from_ms:
        return np.zeros(0, dtype=np.int64)
    offset = _offset_ms(from_ms, timezone)
    first = (from_ms + offset) // HOUR_MS * HOUR_MS - offset
    count = -(-(to_ms - first) // HOUR_MS)
    return first + HOUR_MS * np.arange(count, dtype=np.int64)


def local_midnights(from_ms: int, to_ms: int, timezone: str) -> Ints:
    """Every store-local midnight from the one at or before ``from_ms`` to the
    first one after ``to_ms`` (days are 23 or 25 h on DST changes)."""
    zone = ZoneInfo(timezone)
    day = datetime.fromtimestamp(from_ms / 1000, zone).date()
    out: list[int] = []
    while True:
        midnight = datetime(day.year, day.month, day.day, tzinfo=zone)
        ms = round(midnight.astimezone(UTC).timestamp() * 1000)
        out.append(ms)
        if ms > to_ms:
            break
        day += timedelta(days=1)
    return np.asarray(out, dtype=np.int64)


def _offset_ms(at_ms: int, timezone: str) -> int:
    local = datetime.fromtimestamp(at_ms / 1000, ZoneInfo(timezone))
    offset = local.utcoffset()
    return 0 if offset is None else round(offset.total_seconds() * 1000)
