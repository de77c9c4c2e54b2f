"""One wall clock (``omnizone.contract.timefmt.wall_clock_ms``) for every part."""

import re
import time
from pathlib import Path

from omnizone.contract.timefmt import ms_to_datetime, wall_clock_ms

ROOT = Path(__file__).resolve().parents[2]
PARTS = ("omnizone", "gateway", "server", "firmware-sim", "suite")
# Reading the system time in epoch milliseconds by hand, however it is spelt.
READS_THE_CLOCK_IN_MS = re.compile(
    r"time\.time\(\)\s*\*\s*1000|time\.time_ns\(\)\s*//\s*1_?000_?000\b"
)


def test_the_wall_clock_reads_epoch_milliseconds_now() -> None:
    before = time.time_ns() // 1_000_000
    now = wall_clock_ms()
    after = time.time_ns() // 1_000_000
    assert isinstance(now, int) and before <= now <= after
    assert ms_to_datetime(now).year >= 2024


def test_nothing_else_reads_the_wall_clock_in_milliseconds() -> None:
    home = ROOT / "omnizone" / "contract" / "timefmt.py"
    sources = [p for part in PARTS for p in (ROOT / part).rglob("*.py") if p != home]
    assert len(sources) > 100
    offenders = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in sources
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if READS_THE_CLOCK_IN_MS.search(line)
    ]
    assert offenders == []
    assert READS_THE_CLOCK_IN_MS.search(home.read_text(encoding="utf-8"))
    assert READS_THE_CLOCK_IN_MS.search("at_ms = round(time.time() * 1000)")
