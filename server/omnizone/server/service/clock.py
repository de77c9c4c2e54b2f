"""The server's wall clock, in the epoch milliseconds every record uses.

Services take a clock argument that defaults to this, so tests and the
simulator can pass their own."""

import time


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000
