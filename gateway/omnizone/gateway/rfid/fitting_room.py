"""Fitting-room rules over plain data: when has a garment arrived, when has it left.

A fitting-room antenna also catches tags that merely pass by (a shopper walking
the corridor, a rail behind the wall): a single read means little. An item
*arrives* when its tag is read at least ``arrive_reads`` times within
``arrive_within_ms``, and *departs* once it has not been read for
``depart_after_ms``. Between those, reads are aggregated per (antenna, EPC)
per window. Time is always passed in (epoch ms); nothing here reads a clock.
"""

from collections import deque
from dataclasses import dataclass, field
from typing import Literal

from omnizone.contract import RfidItem, RfidRead, TryOn
from omnizone.gateway.rfid.epc import decode_sgtin96


@dataclass(frozen=True, slots=True)
class FittingRoomRules:
    arrive_reads: int = 3
    arrive_within_ms: int = 2_000
    depart_after_ms: int = 10_000
    window_ms: int = 5_000
    publish_reads: bool = True

    def __post_init__(self) -> None:
        if self.arrive_reads < 1 or self.arrive_within_ms < 1:
            raise ValueError("arrive_reads and arrive_within_ms must be positive")
        if self.depart_after_ms < 1 or self.window_ms < 1:
            raise ValueError("depart_after_ms and window_ms must be positive")


@dataclass(frozen=True, slots=True)
class TagSeen:
    """One tag report, already decoded: EPC as lower-case hex, RSSI in dBm."""

    epc: str
    antenna: int
    rssi: float
    at_ms: int


@dataclass(slots=True)
class _Tag:
    recent: deque[int] = field(default_factory=deque)  # read times while not arrived
    arrived: bool = False
    last_ms: int = 0


@dataclass(slots=True)
class _Window:
    first_ms: int
    count: int = 0
    rssi_sum: float = 0.0


@dataclass(frozen=True, slots=True)
class _Identity:
    gtin: str | None
    serial: str | None


def identify(epc: str) -> _Identity:
    sgtin = decode_sgtin96(epc)
    if sgtin is None:
        return _Identity(None, None)
    return _Identity(sgtin.gtin, str(sgtin.serial))


class FittingRoom:
    """The state of one reader's fitting room: which items are in, what was read."""

    def __init__(self, reader: str, rules: FittingRoomRules | None = None) -> None:
        self.reader = reader
        self.rules = rules or FittingRoomRules()
        self.late_reads = 0
        self._tags: dict[str, _Tag] = {}
        self._window_start: int | None = None
        self._windows: dict[tuple[int, str], _Window] = {}
        self._ids: dict[str, _Identity] = {}

    @property
    def present(self) -> frozenset[str]:
        """EPCs currently in the room."""
        return frozenset(epc for epc, tag in self._tags.items() if tag.arrived)

    def set_rules(self, rules: FittingRoomRules, now_ms: int) -> list[RfidItem]:
        """New rules from the server; the open read window closes first."""
        changed = (rules.window_ms, rules.publish_reads) != (
            self.rules.window_ms,
            self.rules.publish_reads,
        )
        items = self._close_window() if changed else []
        self.rules = rules
        return items

    def observe(self, read: TagSeen) -> list[RfidItem]:
        """One tag report; returns an "arrived" event when this read makes it steady."""
        items = self._aggregate(read)
        tag = self._tags.get(read.epc)
        if tag is None:
            tag = self._tags[read.epc] = _Tag(last_ms=read.at_ms)
        tag.last_ms = max(tag.last_ms, read.at_ms)
        if tag.arrived:
            return items
        tag.recent.append(read.at_ms)
        horizon = tag.last_ms - self.rules.arrive_within_ms
        while tag.recent and tag.recent[0] <= horizon:
            tag.recent.popleft()
        if len(tag.recent) >= self.rules.arrive_reads:
            tag.arrived = True
            tag.recent.clear()
            items.append(self._try_on(read.epc, "arrived", read.at_ms))
        return items

    def advance(self, now_ms: int) -> list[RfidItem]:
        """Close due read windows and let quiet items depart."""
        items: list[RfidItem] = []
        if self._window_start is not None and now_ms >= self._window_start + self.rules.window_ms:
            items += self._close_window()
        for epc in list(self._tags):
            tag = self._tags[epc]
            if tag.arrived:
                if now_ms - tag.last_ms >= self.rules.depart_after_ms:
                    del self._tags[epc]
                    # at_ms is the last read: the item left the room then, not when we noticed.
                    items.append(self._try_on(epc, "departed", tag.last_ms))
            elif now_ms - tag.last_ms >= self.rules.arrive_within_ms:
                del self._tags[epc]  # a passer-by: forget it
        for epc in [e for e in self._ids if e not in self._tags]:
            del self._ids[epc]
        return items

    def _aggregate(self, read: TagSeen) -> list[RfidItem]:
        if not self.rules.publish_reads:
            return []
        items: list[RfidItem] = []
        window_ms = self.rules.window_ms
        start = read.at_ms - read.at_ms % window_ms
        if self._window_start is not None and start > self._window_start:
            items = self._close_window()
        if self._window_start is None:
            self._window_start = start
        elif start < self._window_start:
            self.late_reads += 1  # its window has been published already
            return items
        window = self._windows.get((read.antenna, read.epc))
        if window is None:
            window = self._windows[(read.antenna, read.epc)] = _Window(first_ms=read.at_ms)
        window.count += 1
        window.rssi_sum += read.rssi
        return items

    def close_window(self) -> list[RfidItem]:
        """Publish the open read window now (the driver is stopping)."""
        return self._close_window()

    def _close_window(self) -> list[RfidItem]:
        items: list[RfidItem] = []
        for (antenna, epc), window in sorted(self._windows.items(), key=lambda kv: kv[1].first_ms):
            ident = self._identity(epc)
            items.append(
                RfidRead(
                    reader=self.reader,
                    antenna=antenna,
                    epc=epc,
                    rssi=round(window.rssi_sum / window.count, 1),
                    at_ms=window.first_ms,
                    count=window.count,
                    gtin=ident.gtin,
                    serial=ident.serial,
                )
            )
        self._windows.clear()
        self._window_start = None
        return items

    def _try_on(self, epc: str, event: Literal["arrived", "departed"], at_ms: int) -> TryOn:
        ident = self._identity(epc)
        return TryOn(
            reader=self.reader,
            event=event,
            epc=epc,
            gtin=ident.gtin,
            serial=ident.serial,
            at_ms=at_ms,
        )

    def _identity(self, epc: str) -> _Identity:
        ident = self._ids.get(epc)
        if ident is None:
            ident = self._ids[epc] = identify(epc)
        return ident
