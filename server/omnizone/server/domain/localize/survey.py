"""Fingerprint surveys: labelled RSSI samples, read from and written to CSV.

The format (docs/localization.md) is deliberately plain so any tool can produce
it: a header ``zone,<anchor id>,<anchor id>,…`` then one row per sample with
the true zone and the RSSI (dBm) per anchor. An empty cell, or -150 and
below, means "not heard". Optional ``x,y`` columns right after ``zone`` say
where (metres, the store's frame) each sample was taken: ``zone,x,y,<anchor>,…``.
One sample should be one aggregation window (the mean RSSI a gateway reports
for a device), which is what the localizer sees.
"""

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from omnizone.store import StorePlan
from omnizone.store.problems import FileProblems

from .propagation import anchor_positions, mean_rssi_dbm, packet_loss, zone_points

NOT_HEARD_AT_OR_BELOW_DBM = -150.0
RSSI_MAX_DBM = 20.0


@dataclass(frozen=True)
class Survey:
    zones: tuple[str, ...]  # (N,) the true zone of each sample
    anchors: tuple[str, ...]  # (A,)
    rssi: NDArray[np.float64]  # (N, A), NaN = not heard
    skipped: tuple[str, ...] = field(default=())  # bad lines left out (strict=False)
    points: NDArray[np.float64] | None = None  # (N, 2) where each sample was taken, if known

    def __post_init__(self) -> None:
        if self.rssi.shape != (len(self.zones), len(self.anchors)):
            raise ValueError(
                f"survey rssi has shape {self.rssi.shape}, "
                f"expected {(len(self.zones), len(self.anchors))}"
            )
        if self.points is not None and (
            self.points.shape != (len(self.zones), 2) or not np.isfinite(self.points).all()
        ):
            raise ValueError(
                f"survey points must be finite with shape {(len(self.zones), 2)}, "
                f"got {self.points.shape}"
            )

    def __len__(self) -> int:
        return len(self.zones)


class SurveyError(FileProblems):
    """Every problem found in a survey file, each as ``file:line: what``."""

    what = "in the survey"


def load_survey(path: str | Path, plan: StorePlan | None = None, *, strict: bool = True) -> Survey:
    """Read a survey CSV.

    With ``strict`` (the default) any bad line raises :class:`SurveyError`
    listing every bad line. With ``strict=False`` bad rows are left out and
    listed in ``Survey.skipped``; a bad header or a file with no good row still
    raises, since nothing sensible can be read from it. With a plan, zones must
    be the store's, and anchors its gateways or beacons (by id or by key).
    """
    path = Path(path)
    name = path.name
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as error:
        raise SurveyError(path, [f"{name}: cannot read: {error.strerror}"]) from None
    except UnicodeDecodeError:
        raise SurveyError(path, [f"{name}: not UTF-8 text"]) from None
    reader = csv.reader(text.splitlines())
    header: list[str] | None = None
    header_line = 0
    for cells in reader:
        if any(cell.strip() for cell in cells):
            header = [cell.strip() for cell in cells]
            header_line = reader.line_num
            break
    if header is None:
        raise SurveyError(path, [f"{name}: empty file, expected a header 'zone,<anchor>,…'"])
    header_problems = _check_header(header, plan)
    if header_problems:
        raise SurveyError(path, [f"{name}:{header_line}: {p}" for p in header_problems])
    first_anchor = _first_anchor_column(header)
    anchors = tuple(header[first_anchor:])
    store_zones = {zone.id for zone in plan.zones} if plan is not None else None
    zones: list[str] = []
    rows: list[list[float]] = []
    points: list[tuple[float, float]] = []
    problems: list[str] = []
    for cells in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != len(header):
            problems.append(f"{name}:{line}: {len(cells)} columns, the header has {len(header)}")
            continue
        row_problems: list[str] = []
        zone = cells[0].strip()
        if not zone:
            row_problems.append("empty zone")
        elif store_zones is not None and zone not in store_zones:
            row_problems.append(f"zone {zone!r} is not in the store")
        point = [
            _parse_coordinate(axis, cell, row_problems)
            for axis, cell in zip("xy", cells[1:first_anchor], strict=False)
        ]
        values: list[float] = []
        for anchor, cell in zip(anchors, cells[first_anchor:], strict=True):
            value, problem = _parse_rssi(cell)
            if problem:
                row_problems.append(f"{anchor}: {problem}")
            values.append(value)
        if row_problems:
            problems.append(f"{name}:{line}: " + "; ".join(row_problems))
            continue
        zones.append(zone)
        rows.append(values)
        if point:
            points.append((point[0], point[1]))
    if problems and strict:
        raise SurveyError(path, problems)
    if not rows:
        raise SurveyError(path, [*problems, f"{name}: no usable sample rows"])
    return Survey(
        zones=tuple(zones),
        anchors=anchors,
        rssi=np.array(rows, dtype=np.float64).reshape(len(rows), len(anchors)),
        skipped=tuple(problems),
        points=np.array(points, dtype=np.float64).reshape(len(rows), 2)
        if first_anchor == 3
        else None,
    )


def _first_anchor_column(header: list[str]) -> int:
    """1, or 3 when ``x,y`` follow ``zone`` (so no anchor may be called x, then y)."""
    return 3 if [cell.lower() for cell in header[1:3]] == ["x", "y"] else 1


def _parse_coordinate(axis: str, cell: str, problems: list[str]) -> float:
    text = cell.strip()
    try:
        value = float(text)
    except ValueError:
        problems.append(f"{axis}: {text!r} is not a number" if text else f"empty {axis}")
        return math.nan
    if not math.isfinite(value):
        problems.append(f"{axis}: {text!r} is not a finite number")
    return value


def _check_header(header: list[str], plan: StorePlan | None) -> list[str]:
    problems: list[str] = []
    if header[0].lower() != "zone":
        problems.append(f"the first column must be 'zone', not {header[0]!r}")
    first = _first_anchor_column(header)
    anchors = header[first:]
    if not anchors:
        problems.append(f"no anchor columns after {','.join(header[:first])!r}")
    seen: set[str] = set()
    for column, anchor in enumerate(anchors, start=first + 1):
        if not anchor:
            problems.append(f"column {column} has an empty anchor id")
        elif anchor in seen:
            problems.append(f"anchor {anchor!r} appears twice")
        seen.add(anchor)
    if plan is not None:
        known = {gw.id for gw in plan.gateways} | {b.id for b in plan.beacons}
        known |= {b.device for b in plan.beacons}
        for anchor in anchors:
            if anchor and anchor not in known:
                problems.append(f"anchor {anchor!r} is not a gateway or beacon of the store")
    return problems


def _parse_rssi(cell: str) -> tuple[float, str | None]:
    text = cell.strip()
    if not text:
        return math.nan, None
    try:
        value = float(text)
    except ValueError:
        return math.nan, f"{text!r} is not a number"
    if not math.isfinite(value):
        return math.nan, f"{text!r} is not a finite number"
    if value > RSSI_MAX_DBM:
        return math.nan, f"RSSI {text} dBm is out of range (at most {RSSI_MAX_DBM:g})"
    if value <= NOT_HEARD_AT_OR_BELOW_DBM:
        return math.nan, None
    return value, None


def write_survey(survey: Survey, path: str | Path) -> None:
    """Write in the import format: not heard is an empty cell; x,y when known."""
    path = Path(path)
    where: list[list[str]] = (
        [[f"{x:g}", f"{y:g}"] for x, y in survey.points.tolist()]
        if survey.points is not None
        else [[] for _ in survey.zones]
    )
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(
            ["zone", *(["x", "y"] if survey.points is not None else []), *survey.anchors]
        )
        for zone, xy, row in zip(survey.zones, where, survey.rssi.tolist(), strict=True):
            writer.writerow([zone, *xy, *("" if math.isnan(v) else f"{v:g}" for v in row)])


def simulate_survey(
    plan: StorePlan,
    samples_per_zone: int,
    shadowing_db: float = 3.0,
    seed: int = 0,
    *,
    tx_power_1m_dbm: float = -59.0,
    exponent: float = 2.2,
    sensitivity_dbm: float = -95.0,
    base_loss: float = 0.05,
    loss_per_10m: float = 0.10,
    window_ms: int = 1000,
    advert_interval_ms: int = 500,
    zones: Sequence[str] | None = None,
) -> Survey:
    """A survey as the simulator's radio would produce it, for tests and evals.

    Each sample stands at a uniform random point of its zone, sends one
    window's worth of adverts, and records per gateway the mean of the heard
    adverts' integer RSSI (as the gateway aggregates them), rounded to 0.01 dB.
    """
    anchors, anchor_xy = anchor_positions(plan)
    adverts = max(1, round(window_ms / advert_interval_ms))
    rng = np.random.default_rng(seed)
    wanted = set(zones) if zones is not None else None
    labels: list[str] = []
    blocks: list[NDArray[np.float64]] = []
    points = zone_points(plan, samples_per_zone, seed)
    for zone, xy in zip(plan.zones, points, strict=True):
        if wanted is not None and zone.id not in wanted:
            continue
        distance = np.linalg.norm(xy[:, None, :] - anchor_xy[None, :, :], axis=2)  # (N, A)
        mu = mean_rssi_dbm(distance, tx_power_1m_dbm, exponent)
        loss = packet_loss(distance, base_loss, loss_per_10m)
        shape = (adverts, *distance.shape)
        rssi = np.round(mu + rng.normal(0.0, shadowing_db, size=shape))
        heard = (rssi >= sensitivity_dbm) & (rng.random(shape) >= loss)
        count = heard.sum(axis=0)
        total = np.where(heard, rssi, 0.0).sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            window_mean = np.where(count > 0, np.round(total / np.maximum(count, 1), 2), np.nan)
        labels.extend([zone.id] * samples_per_zone)
        blocks.append(window_mean)
    matrix = np.concatenate(blocks) if blocks else np.empty((0, len(anchors)))
    return Survey(zones=tuple(labels), anchors=anchors, rssi=matrix)
