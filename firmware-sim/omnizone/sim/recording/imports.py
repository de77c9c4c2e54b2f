"""Readings from any tool become a recording, aggregated by the real gateway code.

Two plain CSV formats (docs/real-data.md):

* readings: ``time,anchor,device,rssi`` — one raw reading per line: when, which
  anchor (a gateway or fixed-beacon id of the store file) heard which device
  (any string), at what RSSI (dBm);
* ground truth: ``time,device,x,y`` (metres in the store's frame) or
  ``time,device,zone``.

Time rule, for both: a value below 10^11 is epoch seconds (fractions allowed),
anything else epoch milliseconds; one file uses one unit, and every time must
fall between 2000 and 2100 (what the wire contract carries). Lines need not be
in time order: the readers sort them (stably) by time, as a gateway would have
heard them.

Every bad line is reported as ``file:line: what`` in one :class:`ImportProblems`;
nothing is skipped. Raw device strings (often MAC addresses) never go past the
reader: each becomes :func:`import_device_key`.
"""

import csv
import hashlib
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from omnizone.gateway.ble.aggregate import RSSI_MAX, RSSI_MIN
from omnizone.gateway.node import GatewayNode
from omnizone.gateway.outbox import Outbox
from omnizone.store import StorePlan, geometry
from omnizone.store.problems import FileProblems

from .format import RecordedMessage

#: The Eddystone namespace of every imported device: the bytes ``omnizoneim``.
IMPORT_NAMESPACE: Final = b"omnizoneim".hex()
_IMPORTED_KEY = re.compile(rf"^eddystone-uid:{IMPORT_NAMESPACE}:[0-9a-f]{{12}}$")
_MAC = re.compile(r"(?i)[0-9a-f]{2}([:-]?)[0-9a-f]{2}(?:\1[0-9a-f]{2}){4}")

READINGS_HEADER: Final = ("time", "anchor", "device", "rssi")
TRUTH_XY_HEADER: Final = ("time", "device", "x", "y")
TRUTH_ZONE_HEADER: Final = ("time", "device", "zone")

#: Below this a time is epoch seconds, at or above it epoch milliseconds.
SECONDS_BELOW: Final = 1e11
_EARLIEST_MS: Final = 946_684_800_000  # 2000-01-01, the wire contract's bounds
_LATEST_MS: Final = 4_102_444_800_000  # 2100-01-01
#: A truth point in no zone but this close to one is in that zone (walls are drawn thin).
NEAREST_ZONE_M: Final = 0.5
_LINES_NAMED = 5


def import_device_key(device: str) -> str:
    """A contract device key for any device string: deterministic, and without
    the raw string (which may be a MAC address).

    ``eddystone-uid:<IMPORT_NAMESPACE>:<first 12 hex of sha256(device)>``. Not an
    ``eid:`` key, so the server treats the device as a tag, not a shopper (no
    consent to look up), which is right for an imported track. A MAC address
    is one device whatever its case and separators (``:``, ``-`` or none);
    a key this function made comes back unchanged. The hash keeps the raw string out of
    files and logs, but is not anonymisation: a MAC address can be found again
    by trying all of them, so an import is personal data like a recording.
    """
    if _IMPORTED_KEY.match(device):
        return device
    if _MAC.fullmatch(device):
        device = re.sub(r"[:-]", "", device).lower()
    digest = hashlib.sha256(device.encode("utf-8")).hexdigest()[:12]
    return f"eddystone-uid:{IMPORT_NAMESPACE}:{digest}"


@dataclass(frozen=True, slots=True)
class Reading:
    """One raw reading: ``device`` is already the :func:`import_device_key`."""

    t_ms: int
    anchor: str
    device: str
    rssi: float


@dataclass(frozen=True, slots=True)
class TruthPoint:
    """Where a device really was: ``zone`` None means outside every zone."""

    t_ms: int
    device: str  # the import_device_key
    zone: str | None


class ImportProblems(FileProblems):
    """Every problem found in an import file, each as ``file:line: what``."""


# -- readings -------------------------------------------------------------------


def read_readings(path: str | Path, plan: StorePlan) -> list[Reading]:
    """A readings CSV (``time,anchor,device,rssi``), checked against the store,
    sorted by time (stable)."""
    table = _Table.read(path, (READINGS_HEADER,))
    anchors = anchor_ids(plan)
    times = _Times(table.name)
    unknown: dict[str, list[int]] = defaultdict(list)
    problems: list[tuple[int, str]] = []
    readings: list[Reading] = []
    for line, cells in table.rows:
        found: list[str] = []
        time_text, anchor, device, rssi_text = cells
        t_ms = times.parse(line, time_text, found)
        if not anchor:
            found.append("empty anchor")
        elif anchor not in anchors:
            unknown[anchor].append(line)
        if not device:
            found.append("empty device")
        rssi = _number("rssi", rssi_text, found)
        if rssi is not None and not RSSI_MIN <= rssi <= RSSI_MAX:
            found.append(f"rssi {rssi_text} dBm is out of range ({RSSI_MIN:g} to {RSSI_MAX:g})")
        if found:
            problems.append((line, "; ".join(found)))
        elif t_ms is not None and rssi is not None and anchor in anchors:
            readings.append(Reading(t_ms, anchor, import_device_key(device), rssi))
    for anchor, lines in unknown.items():
        problems.append(
            (
                lines[0],
                f"anchor {anchor!r} is not a gateway or fixed beacon of store {plan.id!r} "
                f"({_name_lines(lines)})",
            )
        )
    problems.extend(times.mixed())
    table.raise_if(problems, nothing=not readings)
    return sorted(readings, key=lambda r: r.t_ms)


def anchor_ids(plan: StorePlan) -> set[str]:
    """What a reading's ``anchor`` may name: the store's gateways and fixed beacons."""
    return {g.id for g in plan.gateways} | {b.id for b in plan.beacons}


# -- readings to gateway messages -----------------------------------------------


class _Clock:
    """The injected clock of the gateways an import drives."""

    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms


_NO_HEALTH_MS: Final = 10**15


def readings_to_messages(
    plan: StorePlan, readings: Iterable[Reading], *, window_ms: int = 1000
) -> list[RecordedMessage]:
    """Each anchor acts as a gateway: one real :class:`GatewayNode` per anchor
    aggregates its readings, and every message it publishes becomes a
    :class:`RecordedMessage` received when it was published.

    A gateway closes a window at the window's end (epoch-aligned, so every
    anchor closes the same windows); the import publishes it at exactly that
    moment, which a live gateway does within one tick. A beacon anchor publishes
    under the beacon's id, which the server accepts only if the store also has
    a gateway of that id. No health messages: an import knows nothing of the
    gateway's health. Messages come out ordered by receive time, each anchor's
    in its own publishing order.
    """
    known = anchor_ids(plan)
    by_anchor: dict[str, list[Reading]] = defaultdict(list)
    for reading in readings:
        by_anchor[reading.anchor].append(reading)
    strangers = sorted(set(by_anchor) - known)
    if strangers:
        raise ValueError(f"anchors not in store {plan.id!r}: {', '.join(strangers)}")
    messages: list[RecordedMessage] = []
    for anchor in sorted(by_anchor):
        ordered = sorted(by_anchor[anchor], key=lambda r: r.t_ms)
        messages.extend(_gateway_messages(plan.id, anchor, ordered, window_ms))
    messages.sort(key=lambda m: m.rx_ms)  # stable: each anchor keeps its own order
    return messages


def _gateway_messages(
    store: str, anchor: str, readings: Sequence[Reading], window_ms: int
) -> list[RecordedMessage]:
    clock = _Clock(readings[0].t_ms)
    outbox = Outbox(":memory:")
    node = GatewayNode(
        store, anchor, outbox, window_ms=window_ms, health_interval_ms=_NO_HEALTH_MS, clock=clock
    )
    out: list[RecordedMessage] = []

    def publish_at(moment_ms: int) -> None:
        clock.now_ms = moment_ms
        node.tick()
        entries = outbox.pending(limit=10**9)
        out.extend(RecordedMessage(moment_ms, e.topic, e.payload) for e in entries)
        if entries:
            outbox.remove_range(entries[0].seq, entries[-1].seq)

    try:
        window_end: int | None = None
        for reading in readings:
            if window_end is not None and reading.t_ms >= window_end:
                publish_at(window_end)
            clock.now_ms = reading.t_ms
            node.on_reading(reading.device, reading.rssi, None, reading.t_ms)
            window_end = reading.t_ms - reading.t_ms % window_ms + window_ms
        if window_end is not None:
            publish_at(window_end)
    finally:
        outbox.close()
    return out


# -- ground truth -----------------------------------------------------------------


def read_truth(path: str | Path, plan: StorePlan) -> list[TruthPoint]:
    """A truth CSV, ``time,device,x,y`` or ``time,device,zone``, sorted by time (stable).

    A point x,y is in the zone whose polygon holds it; a point in no zone is in
    the nearest zone if one is within :data:`NEAREST_ZONE_M` (walls are drawn
    as thin lines, a robot's LiDAR pose is not), else outside (zone None).
    Zone names must be the store's.
    """
    table = _Table.read(path, (TRUTH_XY_HEADER, TRUTH_ZONE_HEADER))
    by_xy = table.header == TRUTH_XY_HEADER
    zone_ids = {zone.id for zone in plan.zones}
    times = _Times(table.name)
    unknown: dict[str, list[int]] = defaultdict(list)
    problems: list[tuple[int, str]] = []
    points: list[TruthPoint] = []
    for line, cells in table.rows:
        found: list[str] = []
        t_ms = times.parse(line, cells[0], found)
        device = cells[1]
        if not device:
            found.append("empty device")
        zone: str | None = None
        known_zone = True
        if by_xy:
            x = _number("x", cells[2], found)
            y = _number("y", cells[3], found)
            if x is not None and y is not None:
                zone = zone_of_point(plan, (x, y))
        elif not cells[2]:
            found.append("empty zone")
        elif cells[2] not in zone_ids:
            unknown[cells[2]].append(line)
            known_zone = False
        else:
            zone = cells[2]
        if found:
            problems.append((line, "; ".join(found)))
        elif t_ms is not None and known_zone:
            points.append(TruthPoint(t_ms, import_device_key(device), zone))
    for zone_id, lines in unknown.items():
        problems.append(
            (
                lines[0],
                f"zone {zone_id!r} is not a zone of store {plan.id!r} ({_name_lines(lines)})",
            )
        )
    problems.extend(times.mixed())
    table.raise_if(problems, nothing=not points)
    return sorted(points, key=lambda p: p.t_ms)


def zone_of_point(plan: StorePlan, point: geometry.Point) -> str | None:
    """The zone holding a point, else the nearest within NEAREST_ZONE_M, else None."""
    inside = plan.zone_at(point)
    if inside is not None:
        return inside
    distance, nearest = min((geometry.distance(z.polygon, point), z.id) for z in plan.zones)
    return nearest if distance <= NEAREST_ZONE_M else None


# -- shared CSV plumbing ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Table:
    path: Path
    header: tuple[str, ...]
    rows: list[tuple[int, list[str]]]  # (line number, stripped cells of the header's width)
    width_problems: list[tuple[int, str]]

    @property
    def name(self) -> str:
        return self.path.name

    @classmethod
    def read(cls, path: str | Path, headers: Sequence[tuple[str, ...]]) -> "_Table":
        path = Path(path)
        wanted = " or ".join(",".join(h) for h in headers)
        try:
            text = path.read_text(encoding="utf-8-sig")
        except OSError as error:
            raise ImportProblems(path, [f"{path.name}: cannot read: {error.strerror}"]) from None
        except UnicodeDecodeError:
            raise ImportProblems(path, [f"{path.name}: not UTF-8 text"]) from None
        reader = csv.reader(text.splitlines())
        header: tuple[str, ...] | None = None
        rows: list[tuple[int, list[str]]] = []
        width: list[tuple[int, str]] = []
        for cells in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in cells):
                continue
            stripped = [cell.strip() for cell in cells]
            if header is None:
                found = tuple(cell.lower() for cell in stripped)
                if found not in headers:
                    raise ImportProblems(
                        path,
                        [f"{path.name}:{line}: header {','.join(stripped)!r}; expected {wanted}"],
                    )
                header = found
            elif len(stripped) != len(header):
                width.append((line, f"{len(stripped)} columns, the header has {len(header)}"))
            else:
                rows.append((line, stripped))
        if header is None:
            raise ImportProblems(path, [f"{path.name}: empty file, expected a header {wanted}"])
        return cls(path, header, rows, width)

    def raise_if(self, problems: list[tuple[int, str]], *, nothing: bool) -> None:
        everything = sorted([*self.width_problems, *problems])
        listed = [f"{self.name}:{line}: {what}" for line, what in everything]
        if nothing and not listed:
            listed = [f"{self.name}: no data lines after the header"]
        if listed:
            raise ImportProblems(self.path, listed)


class _Times:
    """Parses times and remembers which unit each line used, to refuse a mix."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._lines: dict[str, list[int]] = {"seconds": [], "milliseconds": []}

    def parse(self, line: int, text: str, found: list[str]) -> int | None:
        value = _number("time", text, found)
        if value is None:
            return None
        if value >= 1e14:
            found.append(f"time {text} looks like micro- or nanoseconds; use seconds or ms")
            return None
        unit = "seconds" if value < SECONDS_BELOW else "milliseconds"
        t_ms = round(value * 1000) if unit == "seconds" else round(value)
        if not _EARLIEST_MS <= t_ms < _LATEST_MS:
            found.append(
                f"time {text} ({unit}) is not between 2000 and 2100: "
                "give epoch seconds or epoch milliseconds, not a relative time"
            )
            return None
        self._lines[unit].append(line)
        return t_ms

    def mixed(self) -> list[tuple[int, str]]:
        seconds, millis = self._lines["seconds"], self._lines["milliseconds"]
        if not seconds or not millis:
            return []
        (few_unit, few), (many_unit, many) = sorted(
            (("seconds", seconds), ("milliseconds", millis)), key=lambda kv: len(kv[1])
        )
        return [
            (
                few[0],
                f"time in {few_unit} but line {many[0]} is in {many_unit}: one file uses one "
                f"unit ({len(few)} line(s) in {few_unit}: {_name_lines(few)})",
            )
        ]


def _number(field: str, text: str, found: list[str]) -> float | None:
    if not text:
        found.append(f"empty {field}")
        return None
    try:
        value = float(text)
    except ValueError:
        found.append(f"{field} {text!r} is not a number")
        return None
    if not math.isfinite(value):
        found.append(f"{field} {text!r} is not a finite number")
        return None
    return value


def _name_lines(lines: list[int]) -> str:
    shown = ", ".join(map(str, lines[:_LINES_NAMED]))
    more = len(lines) - _LINES_NAMED
    word = "line" if len(lines) == 1 else "lines"
    return f"{word} {shown}" + (f" and {more} more" if more > 0 else "")
