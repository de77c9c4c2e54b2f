"""The floor heatmap (issue 18, point 6): presence density over floor cells.

Two halves. ``FloorPresence`` listens to ingest's placements (each carries
the localizer's expected position, ``ZonePlacement.xy``) and adds, per
store, hour and 0.5 m cell, the seconds since the device's previous
placement (at most ``max_gap_ms``; the first placement of a stay counts one
``first_s``). Only devices whose location may be stored (consent) count.
It keeps, in memory, the current hour per device; when the store's event
time is ``grace_ms`` past an hour's end, that hour is flushed (and every
hour held is, whenever a heatmap is asked for: what comes later for an
hour is added to what was written, so early is safe): the devices
to leave out (staff, as ``InsightService.staff_ids`` says at that moment)
are dropped, and the rest is summed over devices and written as cell totals
(``ports.heatmap``). So what is stored has no device in it: nothing to erase
per shopper, and staff are left out at accumulation time, not per view (a
device found to be staff later stays in the hours already written).
Erasure drops what memory holds of the device (``forget``).

``HeatmapService`` answers a range: the stored hours overlapping it, summed
per cell by the pure core (``domain/analytics/heatmap.py``), on a 0.5, 1 or
2 m grid, with each zone's share, the hottest cell, and optionally a second
range to compare (docs/analytics.md, "Floor heatmap").
"""

import csv
import io
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from omnizone.server.domain.analytics import heatmap as core
from omnizone.server.domain.analytics.compare import Figure, difference
from omnizone.server.domain.analytics.timeline import HOUR_MS
from omnizone.server.service.analytics import MAX_RANGE_DAYS, BadRange
from omnizone.server.service.locators import ZonePlacement
from omnizone.server.service.ports.heatmap import Cell, FloorCells
from omnizone.server.service.queries import plan_of
from omnizone.store import StorePlan

#: Seconds since the previous placement count up to this gap; longer, the
#: device was not placed meanwhile (the filter lost it) and counts ``first_s``.
MAX_GAP_MS = 5_000
FIRST_S = 1.0
#: An hour is written once the store's event time is this far past its end
#: (placements are decided a window or two late).
GRACE_MS = 60_000
DAY_MS = 24 * HOUR_MS
DEFAULT_SPAN_MS = DAY_MS

Exclude = Callable[[str, int, int], Iterable[str]]
log = logging.getLogger(__name__)


class FloorPresence:
    """The placement listener that accumulates the heatmap's cells."""

    def __init__(
        self,
        stores: Mapping[str, StorePlan],
        cells: FloorCells,
        *,
        may_store: Callable[[str], bool] = lambda _device: True,
        exclude: Exclude | None = None,
        max_gap_ms: int = MAX_GAP_MS,
        first_s: float = FIRST_S,
        grace_ms: int = GRACE_MS,
    ) -> None:
        """``stores``: the running plans (their floors); ``exclude``: devices
        to leave out of an hour (store, hour start, hour end), asked at flush."""
        self._stores = stores
        self._cells = cells
        self._may_store = may_store
        self._exclude = exclude
        self._max_gap_ms = max_gap_ms
        self._first_s = first_s
        self._grace_ms = grace_ms
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()  # one writer of the table at a time
        # store -> hour start -> device -> cell -> seconds
        self._pending: dict[str, dict[int, dict[str, dict[Cell, float]]]] = {}
        self._last: dict[str, dict[str, int]] = {}  # store -> device -> previous at_ms
        self._clock: dict[str, int] = {}
        self.flushed_hours = 0

    def exclude_devices(self, devices: Exclude) -> None:
        self._exclude = devices

    def on_placement(self, store: str, placement: ZonePlacement) -> None:
        plan = self._stores.get(store)
        if plan is None:
            return
        device, at = placement.device, placement.at_ms
        with self._lock:
            last = self._last.setdefault(store, {})
            if placement.zone is None or placement.xy is None:
                last.pop(device, None)
            elif self._may_store(device):
                before = last.get(device)
                gap = at - before if before is not None else None
                seconds = (
                    gap / 1000 if gap is not None and 0 < gap <= self._max_gap_ms else self._first_s
                )
                if before is None or at > before:
                    last[device] = at
                    floor = plan.store.floor
                    hour = at - at % HOUR_MS
                    hours = self._pending.setdefault(store, {})
                    into = hours.setdefault(hour, {}).setdefault(device, {})
                    core.accumulate(into, *placement.xy, seconds, floor.width_m, floor.depth_m)
            clock = max(self._clock.get(store, at), at)
            self._clock[store] = clock
            due = [h for h in self._pending.get(store, {}) if h + HOUR_MS + self._grace_ms <= clock]
            if due:  # once an hour: forget devices not placed for a while
                self._last[store] = {d: t for d, t in last.items() if t >= clock - self._max_gap_ms}
        if due:
            self._flush(store, due)

    def flush(self, store: str | None = None) -> int:
        """Write every hour held, the current one too (the end of a replay, a
        shutdown, a heatmap asked for now); the hours written. Writing an hour
        early is safe: what comes later for it is added to what was written."""
        stores = [store] if store is not None else list(self._pending)
        written = 0
        for s in stores:
            with self._lock:
                hours = list(self._pending.get(s, {}))
            written += self._flush(s, hours)
        return written

    def _flush(self, store: str, hours: list[int]) -> int:
        """Write ``hours``; when that fails (the database away), they are
        kept and tried again with the next hour: ingest goes on meanwhile."""
        with self._lock:
            pending = self._pending.get(store, {})
            taken = {h: pending.pop(h) for h in hours if h in pending}
        if not taken:
            return 0
        with self._write_lock:
            return self._write(store, taken)

    def _write(self, store: str, taken: dict[int, dict[str, dict[Cell, float]]]) -> int:
        try:
            out: dict[int, dict[Cell, float]] = {}
            for hour, devices in taken.items():
                staff = set(self._exclude(store, hour, hour + HOUR_MS)) if self._exclude else set()
                total: dict[Cell, float] = {}
                for device, cells in devices.items():
                    if device not in staff:
                        for cell, seconds in cells.items():
                            total[cell] = total.get(cell, 0.0) + seconds
                out[hour] = total
            self._cells.add_cells(store, out)
        except Exception:
            log.exception("%s: floor heatmap hours not written; kept for the next try", store)
            with self._lock:
                pending = self._pending.setdefault(store, {})
                for hour, devices in taken.items():
                    held = pending.setdefault(hour, {})
                    for device, cells in devices.items():
                        held[device] = core.merge(held.get(device, {}), cells)
            return 0
        self.flushed_hours += len(out)
        return len(out)

    def forget(self, device: str) -> None:
        """Erasure: what memory holds of the device (its hours not yet written)."""
        with self._lock:
            for hours in self._pending.values():
                for devices in hours.values():
                    devices.pop(device, None)
            for last in self._last.values():
                last.pop(device, None)


class HeatmapService:
    """The heatmap of a range, from the stored cells."""

    def __init__(
        self,
        stores: Mapping[str, StorePlan],
        cells: FloorCells,
        *,
        before_read: Callable[[str], object] | None = None,
    ) -> None:
        """``before_read``: told the store before each read (the server's
        ``FloorPresence.flush``, so a heatmap of now has the hour under way)."""
        self._stores = stores
        self._cells = cells
        self._before_read = before_read
        self._zone_cache: dict[tuple[str, float, str], np.ndarray[Any, np.dtype[np.int64]]] = {}

    def read_after(self, flush: Callable[[str], object]) -> None:
        """Call ``flush(store)`` before each read (set once the accumulator exists)."""
        self._before_read = flush

    def resolve_range(self, store: str, from_ms: int | None, to_ms: int | None) -> tuple[int, int]:
        """As the analytics views: missing ends default to 24 h, up to just
        after the latest stored hour."""
        if to_ms is None:
            if from_ms is not None:
                to_ms = from_ms + DEFAULT_SPAN_MS
            else:
                last = self._cells.hours(store)[1]
                to_ms = (last + HOUR_MS) if last is not None else DEFAULT_SPAN_MS
        if from_ms is None:
            from_ms = max(0, to_ms - DEFAULT_SPAN_MS)
        if from_ms >= to_ms:
            raise BadRange("to_ms", f"to_ms ({to_ms}) must be after from_ms ({from_ms})")
        if to_ms - from_ms > MAX_RANGE_DAYS * DAY_MS:
            raise BadRange(
                "to_ms", f"the range is longer than {MAX_RANGE_DAYS} days: ask for less at once"
            )
        return from_ms, to_ms

    def heatmap(
        self,
        store: str,
        from_ms: int | None = None,
        to_ms: int | None = None,
        *,
        cell_m: float = 1.0,
        compare: tuple[int | None, int | None] | None = None,
    ) -> dict[str, Any]:
        """The heatmap of [from_ms, to_ms) (hours starting in it); with
        ``compare``, also that range's, and the difference (this minus that)."""
        plan = plan_of(self._stores, store)
        try:
            g = core.grid(plan.store.floor.width_m, plan.store.floor.depth_m, cell_m)
        except ValueError as error:
            raise BadRange("cell_m", str(error)) from None
        if self._before_read is not None:
            self._before_read(store)
        start, end = self.resolve_range(store, from_ms, to_ms)
        zones = self._zones(plan, core.grid(g.width_m, g.depth_m, core.BASE_CELL_M))
        found = self._map(plan, g, zones, start, end)
        body: dict[str, Any] = {
            "store": store,
            "timezone": plan.store.timezone,
            "from_ms": start,
            "to_ms": end,
            "hours_from_ms": _hour_down(start),
            "hours_to_ms": _hour_up(end),
            "width_m": plan.store.floor.width_m,
            "depth_m": plan.store.floor.depth_m,
            **_map_dict(plan, found),
        }
        if compare is not None:
            try:
                a_start, a_end = self.resolve_range(store, *compare)
            except BadRange as error:
                raise BadRange(f"compare_{error.field}", f"compare range: {error}") from None
            other = self._map(plan, g, zones, a_start, a_end)
            body["compare"] = {
                "from_ms": a_start,
                "to_ms": a_end,
                **_map_dict(plan, other),
                "difference_cells": [
                    [ix, iy, round(float(v), 3)]
                    for (iy, ix), v in np.ndenumerate(found.seconds - other.seconds)
                    if v != 0
                ],
                "zone_differences": [
                    {
                        "zone": z.id,
                        **_diff(float(other.zone_s[k]), float(found.zone_s[k])),
                    }
                    for k, z in enumerate(plan.zones)
                ],
            }
        return body

    def _map(
        self,
        plan: StorePlan,
        g: core.Grid,
        zones: np.ndarray[Any, np.dtype[np.int64]],
        start: int,
        end: int,
    ) -> core.Heatmap:
        # Stored hours start on the hour: every hour that overlaps the range.
        rows = self._cells.cells(plan.id, _hour_down(start), end)
        ix = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        iy = np.fromiter((r[1] for r in rows), dtype=np.int64, count=len(rows))
        seconds = np.fromiter((r[2] for r in rows), dtype=np.float64, count=len(rows))
        return core.heatmap(g, ix, iy, seconds, zones, len(plan.zones))

    def _zones(self, plan: StorePlan, g: core.Grid) -> np.ndarray[Any, np.dtype[np.int64]]:
        key = (plan.id, g.cell_m, repr([(z.id, z.polygon) for z in plan.zones]) + repr(g))
        if key not in self._zone_cache:
            if len(self._zone_cache) > 64:
                self._zone_cache.clear()
            self._zone_cache[key] = core.zone_of_cells(g, [z.polygon for z in plan.zones])
        return self._zone_cache[key]


def _hour_down(ms: int) -> int:
    return ms - ms % HOUR_MS


def _hour_up(ms: int) -> int:
    """The first hour start at or after ``ms``."""
    return -(-ms // HOUR_MS) * HOUR_MS


def _map_dict(plan: StorePlan, found: core.Heatmap) -> dict[str, Any]:
    g = found.grid
    hottest = found.hottest()
    share = core.shares(found.zone_s)
    hot_zone = None if hottest is None else plan.zone_at(g.centre(*hottest))
    return {
        "cell_m": g.cell_m,
        "columns": g.columns,
        "rows": g.rows,
        "total_s": round(found.total_s, 3),
        "max_s": round(found.max_s, 3),
        "outside_zones_s": round(found.outside_s, 3),
        "hottest": None
        if hottest is None
        else {
            "ix": hottest[0],
            "iy": hottest[1],
            "x_m": g.centre(*hottest)[0],
            "y_m": g.centre(*hottest)[1],
            "zone": hot_zone,
            "seconds": round(found.max_s, 3),
        },
        "zones": [
            {
                "zone": z.id,
                "name": z.name,
                "presence_s": round(float(found.zone_s[k]), 3),
                "share": round(float(share[k]), 4),
            }
            for k, z in enumerate(plan.zones)
        ],
        "cells": [[ix, iy, round(s, 3)] for ix, iy, s in found.cells()],
    }


def _diff(a: float, b: float) -> dict[str, Any]:
    d = difference(Figure(a), Figure(b))
    return {
        "a_s": d.a,
        "b_s": d.b,
        "difference_s": None if d.difference is None else round(d.difference, 3),
        "relative": None if d.relative is None else round(d.relative, 4),
    }


def heatmap_csv(body: Mapping[str, Any]) -> str:
    """The heatmap as one CSV table: one row per non-empty cell, with its
    centre and the zone it lies in."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    cell = body["cell_m"]
    writer.writerow(["ix", "iy", "x_m", "y_m", "cell_m", "seconds"])
    for ix, iy, s in body["cells"]:
        writer.writerow([ix, iy, (ix + 0.5) * cell, (iy + 0.5) * cell, cell, s])
    return out.getvalue()
