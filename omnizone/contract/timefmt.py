"""Times are UTC epoch milliseconds on the wire and aware datetimes inside.

``wall_clock_ms`` is the one wall clock: gateway, server and simulator read
the time in the wire's unit from here. Whatever needs the time takes a clock
argument that defaults to it, so tests and the simulator can pass their own."""

import time
from datetime import UTC, datetime


def wall_clock_ms() -> int:
    """Now, in epoch milliseconds (truncated, never ahead of the system clock)."""
    return time.time_ns() // 1_000_000


def ms_to_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def datetime_to_ms(value: datetime) -> int:
    if value.tzinfo is None:
        raise ValueError("naive datetime: omnizone only handles timezone-aware times")
    return round(value.timestamp() * 1000)
