"""The marckolak-calib2021 flat as omnizone stores, readings, truth and surveys.

The flat (about 9 × 7 m) has six BLE anchors that hear a tag carried by a
robot with LiDAR ground truth. ``layout.csv`` is one outline polygon that
traces the walls including interior wall stubs; the rooms are read off it by
hand (docs/real-data.md shows the working) as axis-aligned rectangles whose
shared sides run along the middle of the wall between them:

* walls (bands in layout.csv): west room / hall y 2.07–2.18, hall / central
  room y 2.07–2.12, south room / central room y 1.93–2.12 — all cut at y 2.1;
  west / central room x 2.58–2.70 → x 2.64; hall / south room x 3.88–4.05 →
  x 3.97; central / east room (a stub x 6.27–6.37) → x 6.32;
* openings: west room–hall x 0.73–1.52 at y 2.1; hall–central room
  x 2.70–3.88 at y 2.1; hall–south room y 0.60–1.42 at x 3.97; central–east
  room y 4.82–7.10 at x 6.32. Touching rooms with no opening get a wall.

The small notch x 1.61–2.05, y 1.74–2.07 and the stubs x 1.93–2.04 and
x 3.88–4.05 up to y 0.64 from the south wall are left inside the hall.
"""

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from omnizone.contract import BleMessage, parse_message
from omnizone.server.domain.localize.survey import Survey
from omnizone.sim.recording.imports import (
    Reading,
    import_device_key,
    readings_to_messages,
    zone_of_point,
)
from omnizone.store import StorePlan, geometry

from .common import Cells, DatasetError, Output, Row, read_table

SOURCE = "marckolak-calib2021"
LICENCE = "CC BY 4.0"
CITATION = (
    'M. Kolakowski, "Automated Calibration of RSS Fingerprinting Based Systems Using a Mobile '
    'Robot and Machine Learning", Sensors 21, 6270 (2021); '
    "github.com/marckolak/ble-rss-fingerprints-calib2021"
)
DEVICE = "robot"
GRID_M = 2.5
#: A grid line closer than this to a room's wall does not cut the room (no slivers).
MIN_CELL_SIDE_M = 0.5
ANCHORS = 6


@dataclass(frozen=True, slots=True)
class Room:
    id: str
    name: str
    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def polygon(self) -> list[tuple[float, float]]:
        return [(self.x0, self.y0), (self.x1, self.y0), (self.x1, self.y1), (self.x0, self.y1)]


ROOMS: tuple[Room, ...] = (
    Room("hall", "Hall", 0.0, 0.0, 3.97, 2.1),
    Room("south-room", "South room", 3.97, 0.0, 6.22, 2.1),
    Room("west-room", "West room", 0.0, 2.1, 2.64, 7.1),
    Room("central-room", "Central room", 2.64, 2.1, 6.32, 7.1),
    Room("east-room", "East room", 6.32, 4.19, 9.07, 7.1),
)
#: Where one can walk between two rooms: (room, room, axis, at, from, to).
OPENINGS: tuple[tuple[str, str, str, float, float, float], ...] = (
    ("hall", "west-room", "y", 2.1, 0.73, 1.52),
    ("hall", "central-room", "y", 2.1, 2.70, 3.88),
    ("hall", "south-room", "x", 3.97, 0.60, 1.42),
    ("central-room", "east-room", "x", 6.32, 4.82, 7.10),
)
FLOOR = {"width_m": 9.1, "depth_m": 7.1}
_MIN_PASSAGE_M = 0.5  # what StorePlan.passages needs to call a shared side a passage


def grid_cells(rooms: Sequence[Room] = ROOMS, size_m: float = GRID_M) -> list[tuple[Room, str]]:
    """Each room cut by the global grid lines (every ``size_m``) that cross it
    at least MIN_CELL_SIDE_M from its walls: rectangles that never straddle a
    wall. Each is named ``<room>-<column letter><row number>`` after the grid
    cell holding its centre (column a from x 0, row 1 from y 0)."""
    cells: list[tuple[Room, str]] = []
    for room in rooms:
        xs = _cuts(room.x0, room.x1, size_m)
        ys = _cuts(room.y0, room.y1, size_m)
        for x0, x1 in itertools.pairwise(xs):
            for y0, y1 in itertools.pairwise(ys):
                column = chr(ord("a") + math.floor((x0 + x1) / 2 / size_m))
                row = math.floor((y0 + y1) / 2 / size_m) + 1
                piece = Room(
                    f"{room.id}-{column}{row}", f"{room.name} {column}{row}", x0, y0, x1, y1
                )
                cells.append((piece, room.id))
    return cells


def _cuts(low: float, high: float, size_m: float) -> list[float]:
    inner = [
        k * size_m
        for k in range(math.ceil(low / size_m), math.floor(high / size_m) + 1)
        if low + MIN_CELL_SIDE_M <= k * size_m <= high - MIN_CELL_SIDE_M
    ]
    return [low, *inner, high]


def walls(zones: Sequence[tuple[Room, str]]) -> list[tuple[str, str]]:
    """Pairs of touching zones in different rooms whose shared side has less
    than half a metre of opening: no passage (zones of one room are open floor)."""
    found: list[tuple[str, str]] = []
    for i, (a, room_a) in enumerate(zones):
        for b, room_b in zones[i + 1 :]:
            if room_a == room_b:
                continue
            shared = geometry.shared_boundary(a.polygon, b.polygon)
            if shared is None or math.dist(*shared) < _MIN_PASSAGE_M:
                continue
            if _opening_m(room_a, room_b, shared) < _MIN_PASSAGE_M:
                found.append((a.id, b.id))
    return found


def _opening_m(
    room_a: str, room_b: str, shared: tuple[tuple[float, float], tuple[float, float]]
) -> float:
    (sx0, sy0), (sx1, sy1) = shared
    total = 0.0
    for one, other, axis, at, low, high in OPENINGS:
        if {one, other} != {room_a, room_b}:
            continue
        if axis == "y" and math.isclose(sy0, at) and math.isclose(sy1, at):
            total += max(0.0, min(high, max(sx0, sx1)) - max(low, min(sx0, sx1)))
        elif axis == "x" and math.isclose(sx0, at) and math.isclose(sx1, at):
            total += max(0.0, min(high, max(sy0, sy1)) - max(low, min(sy0, sy1)))
    return total


def store_document(
    store_id: str,
    name: str,
    zones: Sequence[tuple[Room, str]],
    anchors: Sequence[tuple[str, float, float, float]],
    survey: str | None = None,
) -> dict[str, Any]:
    """The store file as plain data (YAML-ready)."""
    document: dict[str, Any] = {
        "store": {"id": store_id, "name": name, "timezone": "UTC", "floor": FLOOR},
        "zones": [
            {"id": z.id, "name": z.name, "kind": "sales", "polygon": [list(p) for p in z.polygon]}
            for z, _ in zones
        ],
        "walls": [list(pair) for pair in walls(zones)],
        "gateways": [
            {"id": gateway, "position": [x, y], "height_m": z} for gateway, x, y, z in anchors
        ],
    }
    if survey is not None:
        document["localization"] = {"survey": survey}
    return document


def anchor_id(k: int) -> str:
    return f"anchor-{k}"


def read_anchors(folder: Path) -> list[tuple[str, float, float, float]]:
    path = folder / "anchors.csv"
    rows = read_table(path, ("id", "x", "y", "z"))
    cells = Cells(path)
    anchors = [
        (
            anchor_id(int(cells.number(row, "id"))),
            cells.number(row, "x"),
            cells.number(row, "y"),
            cells.number(row, "z"),
        )
        for row in rows
    ]
    cells.check()
    if sorted(a[0] for a in anchors) != [anchor_id(k) for k in range(1, ANCHORS + 1)]:
        raise DatasetError([f"{path}: expected anchors 1..{ANCHORS}"])
    return anchors


@dataclass(frozen=True, slots=True)
class Track:
    """Rows of a robot CSV: time (epoch ms), position, RSSI per anchor (NaN = not heard)."""

    t_ms: list[int]
    xy: list[tuple[float, float]]
    rssi: list[list[float]]


def read_track(path: Path) -> Track:
    columns = ("ts", "x", "y", *(f"rssi_{k}" for k in range(1, ANCHORS + 1)))
    rows = read_table(path, columns)
    cells = Cells(path)
    t_ms: list[int] = []
    xy: list[tuple[float, float]] = []
    rssi: list[list[float]] = []
    for row in rows:
        ts = cells.number(row, "ts")
        t_ms.append(round(ts / 1e6) if math.isfinite(ts) else 0)  # epoch nanoseconds
        xy.append((cells.number(row, "x"), cells.number(row, "y")))
        rssi.append([_rssi(cells, row, k) for k in range(1, ANCHORS + 1)])
    cells.check()
    return Track(t_ms, xy, rssi)


def _rssi(cells: Cells, row: Row, k: int) -> float:
    value = cells.number(row, f"rssi_{k}", empty_ok=True)
    if math.isfinite(value) and not -127 <= value <= 20:
        cells.problem(row, f"rssi_{k}: {value} dBm is out of range")
    return value


def survey_of(plan: StorePlan, track: Track) -> tuple[Survey, list[float], int]:
    """One sample per calibration row, its zone from x,y (zone_of_point);
    rows in no zone are left out and counted."""
    zones: list[str] = []
    keep: list[int] = []
    for i, point in enumerate(track.xy):
        zone = zone_of_point(plan, point)
        if zone is not None:
            zones.append(zone)
            keep.append(i)
    survey = Survey(
        zones=tuple(zones),
        anchors=tuple(anchor_id(k) for k in range(1, ANCHORS + 1)),
        rssi=np.array([track.rssi[i] for i in keep], dtype=np.float64).reshape(len(keep), ANCHORS),
        points=np.array([track.xy[i] for i in keep], dtype=np.float64).reshape(len(keep), 2),
    )
    return survey, [float(track.t_ms[i]) for i in keep], len(track.xy) - len(keep)


def windowed_survey_of(
    plan: StorePlan, track: Track, window_ms: int = 1000
) -> tuple[Survey, list[float], int]:
    """One sample per aggregation window, as the localizer sees the robot: the
    rows become readings, the real gateway code (``readings_to_messages``)
    makes each anchor's window mean, and the sample stands at the mean
    position of the window's rows (its zone from there; none: left out)."""
    key = import_device_key(DEVICE)
    readings = [
        Reading(t_ms, anchor_id(k), key, value)
        for t_ms, row in zip(track.t_ms, track.rssi, strict=True)
        for k, value in enumerate(row, start=1)
        if not math.isnan(value)
    ]
    anchors = tuple(anchor_id(k) for k in range(1, ANCHORS + 1))
    means: dict[int, list[float]] = {}
    for recorded in readings_to_messages(plan, readings, window_ms=window_ms):
        message = parse_message(recorded.topic, recorded.payload)
        if not isinstance(message, BleMessage):
            continue
        for item in message.items:
            row = means.setdefault(item.window_start_ms, [math.nan] * ANCHORS)
            row[anchors.index(message.gateway)] = item.rssi_mean
    where: dict[int, list[tuple[float, float]]] = {}
    for t_ms, point in zip(track.t_ms, track.xy, strict=True):
        where.setdefault(t_ms - t_ms % window_ms, []).append(point)
    zones: list[str] = []
    rows: list[list[float]] = []
    points: list[tuple[float, float]] = []
    starts: list[float] = []
    for start in sorted(means):
        xs, ys = zip(*where[start], strict=True)
        point = (sum(xs) / len(xs), sum(ys) / len(ys))
        zone = zone_of_point(plan, point)
        if zone is None:
            continue
        zones.append(zone)
        rows.append(means[start])
        points.append(point)
        starts.append(float(start))
    survey = Survey(
        zones=tuple(zones),
        anchors=anchors,
        rssi=np.array(rows, dtype=np.float64).reshape(len(rows), ANCHORS),
        points=np.array(points, dtype=np.float64).reshape(len(rows), 2),
    )
    return survey, starts, len(means) - len(rows)


def convert(folder: Path, out: Output) -> dict[str, Any]:
    """Write the flat's stores, the robot's readings and truth, and the surveys."""
    import yaml

    from omnizone.store import parse_store

    anchors = read_anchors(folder)
    rooms = [(room, room.id) for room in ROOMS]
    variants = {
        "rooms": ("flat-rooms", "Furnished flat (rooms)", rooms),
        "grid": ("flat-grid", f"Furnished flat ({GRID_M:g} m grid)", grid_cells()),
    }
    plans: dict[str, StorePlan] = {}
    for key, (store_id, name, zones) in variants.items():
        for surveyed in (False, True):
            survey = f"survey-{key}-windows.csv" if surveyed else None
            document = store_document(store_id, name, zones, anchors, survey)
            file = f"{store_id}{'-surveyed' if surveyed else ''}.yaml"
            text = f"# {name}: converted from {SOURCE} ({LICENCE}); see docs/real-data.md\n"
            text += yaml.safe_dump(document, sort_keys=False, default_flow_style=None, width=100)
            plan = parse_store(text, source=file)  # the converter's own check
            plans[key] = plan
            what = f"store file, {len(plan.zones)} zones" + (
                f", localization.survey: {survey}" if surveyed else ""
            )
            out.add(file, "store", SOURCE, what, zones=len(plan.zones)).write_text(text)
    robot = read_track(folder / "tests" / "test_robot_df.csv")
    readings = out.add(
        "robot-readings.csv",
        "readings",
        SOURCE,
        "tests/test_robot_df.csv: one reading per non-empty rssi_k cell, anchor anchor-k, "
        "device robot (values preprocessed/interpolated by the data set's authors)",
        rows=sum(1 for row in robot.rssi for v in row if not math.isnan(v)),
        source_rows=len(robot.t_ms),
    )
    with readings.open("w", encoding="utf-8") as handle:
        handle.write("time,anchor,device,rssi\n")
        for t_ms, row in zip(robot.t_ms, robot.rssi, strict=True):
            for k, value in enumerate(row, start=1):
                if not math.isnan(value):
                    handle.write(f"{t_ms},{anchor_id(k)},{DEVICE},{value:.4f}\n")
    truth = out.add(
        "robot-truth.csv",
        "truth",
        SOURCE,
        "tests/test_robot_df.csv: the robot's LiDAR position (x,y) at each row",
        rows=len(robot.t_ms),
    )
    with truth.open("w", encoding="utf-8") as handle:
        handle.write("time,device,x,y\n")
        for t_ms, (x, y) in zip(robot.t_ms, robot.xy, strict=True):
            handle.write(f"{t_ms},{DEVICE},{x:.4f},{y:.4f}\n")
    calibration = read_track(folder / "calibration" / "calibration_df.csv")
    outside: dict[str, int] = {}
    for key, plan in plans.items():
        samples, order, left_out = survey_of(plan, calibration)
        outside[key] = left_out
        out.surveys(
            f"survey-{key}",
            samples,
            order,
            SOURCE,
            f"calibration/calibration_df.csv, zone from x,y in {plan.id} "
            f"({left_out} rows in no zone left out); one row is one reading per anchor",
        )
        windows, starts, windows_out = windowed_survey_of(plan, calibration)
        out.surveys(
            f"survey-{key}-windows",
            windows,
            starts,
            SOURCE,
            f"calibration/calibration_df.csv through the gateway code: one sample per 1 s "
            f"window (each anchor's mean), at the window's mean position in {plan.id} "
            f"({windows_out} windows in no zone left out)",
        )
    return {
        "source": SOURCE,
        "licence": LICENCE,
        "citation": CITATION,
        "robot_rows": len(robot.t_ms),
        "calibration_rows": len(calibration.t_ms),
        "calibration_rows_in_no_zone": outside,
    }
