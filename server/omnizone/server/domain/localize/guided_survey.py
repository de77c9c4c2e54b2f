"""A guided survey walk, as pure state: a staff phone's 1 s windows, as the
gateways reported them, joined per window into labelled samples.

Every gateway reports its own mean RSSI of a device per aggregation window
(``window_start_ms``); one survey sample is one window of the surveying
phone with the reading of every gateway that heard it, labelled with the
zone being walked (the row ``survey.write_survey`` writes). Nothing is
aggregated a second time: the gateways' window means are the cells.

A window is closed (becomes a sample) once a reading two windows later
arrives, or when the zone changes or the walk finishes; a reading for a
window already closed is counted as late, never silently merged. The first
``SETTLE_WINDOWS`` windows after a zone is picked are left out (counted):
the walker is still on the way in.

"Enough" for a zone (docs/localization.md, guided survey): at least
``MIN_WINDOWS`` samples, and at least ``MIN_ANCHORS`` distinct gateways
heard in them (fewer when the store has fewer BLE gateways): a fit of each
anchor's radio needs readings from several places, and a zone heard by one
anchor only cannot be told from its neighbours.
"""

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .survey import Survey

MIN_WINDOWS = 30
MIN_ANCHORS = 3
SETTLE_WINDOWS = 3
#: A session keeps at most this many samples (about 1.4 hours of walking).
MAX_WINDOWS = 5000


@dataclass(frozen=True, slots=True)
class Reading:
    """One gateway's mean RSSI of the surveying phone in one window."""

    gateway: str
    window_start_ms: int
    window_ms: int
    rssi_dbm: float


@dataclass(frozen=True, slots=True)
class EnoughRule:
    min_windows: int = MIN_WINDOWS
    min_anchors: int = MIN_ANCHORS

    @classmethod
    def for_store(cls, ble_gateways: int) -> "EnoughRule":
        """``MIN_ANCHORS``, or every BLE gateway of a smaller store."""
        return cls(MIN_WINDOWS, max(1, min(MIN_ANCHORS, ble_gateways)))


@dataclass(frozen=True, slots=True)
class ZoneProgress:
    zone: str
    windows: int
    anchors: tuple[str, ...]  # distinct gateways with at least one reading, sorted
    enough: bool


@dataclass(slots=True)
class SurveyWalk:
    """The samples of one walk; not thread-safe (the service holds a lock)."""

    anchors: tuple[str, ...]  # the store's BLE gateways, the survey's columns
    rule: EnoughRule
    max_windows: int = MAX_WINDOWS
    settle_windows: int = SETTLE_WINDOWS
    zone: str | None = None
    samples: list[tuple[str, dict[str, float]]] = field(default_factory=list)
    late_readings: int = 0
    settling_dropped: int = 0
    over_limit: int = 0
    unknown_gateway_readings: int = 0
    _open: dict[int, dict[str, float]] = field(default_factory=dict)
    _closed_until_ms: int = -1  # windows starting at or before this are closed
    _settle_left: int = 0

    def pick(self, zone: str | None) -> None:
        """Walk ``zone`` from now on (None: pause); open windows go to the old one."""
        self._close(math.inf)
        self.zone = zone
        self._settle_left = self.settle_windows if zone is not None else 0

    def add(self, readings: Iterable[Reading]) -> None:
        """Readings of one gateway message (the surveying phone's only)."""
        known = set(self.anchors)
        newest, window = -1, 0
        for reading in readings:
            if reading.gateway not in known:
                self.unknown_gateway_readings += 1
                continue
            start = reading.window_start_ms
            if start <= self._closed_until_ms:
                self.late_readings += 1
                continue
            if self.zone is None:
                continue  # paused: nothing is being surveyed
            self._open.setdefault(start, {})[reading.gateway] = reading.rssi_dbm
            newest, window = max(newest, start), reading.window_ms
        if newest >= 0:
            # a reading two windows newer closes a window: every gateway has reported it
            self._close(newest - 2 * window)

    def finish(self) -> None:
        self._close(math.inf)

    @property
    def full(self) -> bool:
        return len(self.samples) >= self.max_windows

    def progress(self, zones: Sequence[str]) -> list[ZoneProgress]:
        """Per zone of ``zones`` (the plan's order), what was collected."""
        windows = dict.fromkeys(zones, 0)
        heard: dict[str, set[str]] = {zone: set() for zone in zones}
        for zone, cells in self.samples:
            windows[zone] = windows.get(zone, 0) + 1
            heard.setdefault(zone, set()).update(cells)
        return [
            ZoneProgress(
                zone,
                windows[zone],
                tuple(sorted(heard[zone])),
                windows[zone] >= self.rule.min_windows
                and len(heard[zone]) >= self.rule.min_anchors,
            )
            for zone in windows
        ]

    def survey(self) -> Survey:
        """The samples as a survey (columns: the store's BLE gateways)."""
        rssi = np.full((len(self.samples), len(self.anchors)), np.nan)
        column = {anchor: i for i, anchor in enumerate(self.anchors)}
        for row, (_, cells) in enumerate(self.samples):
            for gateway, value in cells.items():
                rssi[row, column[gateway]] = value
        return Survey(
            zones=tuple(zone for zone, _ in self.samples), anchors=self.anchors, rssi=rssi
        )

    def _close(self, until_ms: float) -> None:
        for start in sorted(s for s in self._open if s <= until_ms):
            cells = self._open.pop(start)
            self._closed_until_ms = max(self._closed_until_ms, start)
            if self.zone is None:
                continue
            if self._settle_left > 0:
                self._settle_left -= 1
                self.settling_dropped += 1
            elif self.full:
                self.over_limit += 1
            else:
                self.samples.append((self.zone, cells))
