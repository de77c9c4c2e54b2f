"""Debouncing tag reads into taps: pure logic over plain data, no clock, no I/O.

A shopper's tap is not a clean event: a tag lying on the reader, a phone held
a little too long, or a tag that bounces in and out of the field all produce
several detections. The rule is simple and per tag: a detection counts as a
tap only if the same UID was not in the field during the last `debounce_ms`.
"In the field" includes the time it was held there, so the driver reports the
moment a tag leaves (`left`) as well as the moment it arrives (`offer`).
"""

from collections.abc import Iterable
from dataclasses import dataclass, field

from omnizone.contract import NfcTap


@dataclass(frozen=True, slots=True)
class TagRead:
    """One detection of a tag or phone by a reader, as the driver saw it."""

    uid: bytes
    at_ms: int
    ndef_uri: str | None = None
    tag_type: str | None = None


@dataclass(slots=True)
class TapDebouncer:
    """Per-UID debounce state of one tap point.

    Memory is bounded by the number of distinct UIDs seen within one debounce
    period: older entries are forgotten as time moves on.
    """

    tap_point: str
    debounce_ms: int
    taps: int = 0
    debounced: int = 0
    _last_seen: dict[bytes, int] = field(default_factory=dict)

    def offer(self, read: TagRead) -> NfcTap | None:
        """The tap for this detection, or None if it repeats a recent one."""
        last = self._last_seen.get(read.uid)
        self._last_seen[read.uid] = read.at_ms
        self._forget_before(read.at_ms - self.debounce_ms)
        # A clock that stepped backwards (NTP, a replaced RTC battery) must not
        # silence a tag for hours: a read "before" the last one counts.
        if last is not None and 0 <= read.at_ms - last < self.debounce_ms:
            self.debounced += 1
            return None
        self.taps += 1
        return NfcTap(
            tap_point=self.tap_point,
            uid=read.uid.hex(),
            at_ms=read.at_ms,
            ndef_uri=read.ndef_uri,
            tag_type=read.tag_type,
        )

    def left(self, uid: bytes, at_ms: int) -> None:
        """The tag left the field: its debounce period runs from now."""
        if uid in self._last_seen and at_ms >= self._last_seen[uid]:
            self._last_seen[uid] = at_ms

    def set_debounce(self, debounce_ms: int) -> None:
        self.debounce_ms = debounce_ms

    def _forget_before(self, cutoff_ms: int) -> None:
        if len(self._last_seen) > 64:
            for uid in [u for u, t in self._last_seen.items() if t < cutoff_ms]:
                del self._last_seen[uid]


def debounce(tap_point: str, debounce_ms: int, reads: Iterable[TagRead]) -> list[NfcTap]:
    """The taps in a sequence of detections (replays, tests, the simulator)."""
    debouncer = TapDebouncer(tap_point, debounce_ms)
    return [tap for read in reads if (tap := debouncer.offer(read)) is not None]


UID_BYTES = range(4, 11)  # the contract's 8..20 hex digits
MAX_URI = 2048
MAX_TAG_TYPE = 40


def read_problem(read: TagRead) -> str | None:
    """Why this detection cannot become a contract tap, or None if it can."""
    if len(read.uid) not in UID_BYTES:
        return f"uid of {len(read.uid)} bytes (expected 4 to 10)"
    if read.ndef_uri is not None and len(read.ndef_uri) > MAX_URI:
        return f"NDEF URI of {len(read.ndef_uri)} characters (at most {MAX_URI})"
    if read.tag_type is not None and len(read.tag_type) > MAX_TAG_TYPE:
        return f"tag type {read.tag_type[:MAX_TAG_TYPE]!r}... is too long"
    return None
