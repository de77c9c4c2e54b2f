"""What every converter shares: strict reading of the source CSVs (every bad
cell named by file and line), train/test splits, and the manifest entries."""

import csv
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from omnizone.server.domain.localize.survey import Survey, write_survey

TRAIN_FRACTION = 0.7
SPLIT_SEED = 20_211_203
_MAX_LISTED = 20


class DatasetError(ValueError):
    """A source file that cannot be converted: each problem as ``file:line: what``."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        listed = problems[:_MAX_LISTED]
        more = len(problems) - len(listed)
        super().__init__("\n".join(listed) + (f"\n… and {more} more" if more > 0 else ""))


@dataclass(frozen=True, slots=True)
class Row:
    line: int
    cells: dict[str, str]


def read_table(path: Path, required: Sequence[str], *, delimiter: str = ",") -> list[Row]:
    """The rows of a source CSV that has at least the ``required`` columns."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as error:
        raise DatasetError([f"{path}: cannot read: {error.strerror}"]) from None
    reader = csv.reader(text.splitlines(), delimiter=delimiter)
    header = next(reader, None)
    if header is None:
        raise DatasetError([f"{path}: empty file"])
    names = [cell.strip() for cell in header]
    missing = [name for name in required if name not in names]
    if missing:
        raise DatasetError([f"{path}:1: no column {', '.join(map(repr, missing))} in {names}"])
    rows: list[Row] = []
    problems: list[str] = []
    for cells in reader:
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != len(names):
            problems.append(
                f"{path}:{reader.line_num}: {len(cells)} columns, the header has {len(names)}"
            )
            continue
        rows.append(Row(reader.line_num, dict(zip(names, (c.strip() for c in cells), strict=True))))
    if problems:
        raise DatasetError(problems)
    if not rows:
        raise DatasetError([f"{path}: no data rows"])
    return rows


class Cells:
    """Parses cells and collects every problem, to raise them all at once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.problems: list[str] = []

    def number(self, row: Row, column: str, *, empty_ok: bool = False) -> float:
        text = row.cells[column]
        if not text and empty_ok:
            return math.nan
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            self.problems.append(f"{self.path}:{row.line}: {column}: {text!r} is not a number")
        return value

    def problem(self, row: Row, what: str) -> None:
        self.problems.append(f"{self.path}:{row.line}: {what}")

    def check(self) -> None:
        if self.problems:
            raise DatasetError(self.problems)


# -- splits -------------------------------------------------------------------------


def random_split(
    zones: Sequence[str], *, seed: int = SPLIT_SEED, fraction: float = TRAIN_FRACTION
) -> NDArray[np.bool_]:
    """Train mask: within each zone, a seeded random ``fraction`` of its rows."""
    rng = np.random.default_rng(seed)
    train = np.zeros(len(zones), dtype=bool)
    for rows in _rows_by_zone(zones).values():
        chosen = rng.permutation(rows)[: _train_count(len(rows), fraction)]
        train[chosen] = True
    return train


def time_split(
    zones: Sequence[str], order: Sequence[float], *, fraction: float = TRAIN_FRACTION
) -> NDArray[np.bool_]:
    """Train mask: within each zone, its first ``fraction`` of rows in ``order``
    (ties keep file order). Rows taken one after another are alike, so this
    is the honest split; the random one flatters every classifier."""
    train = np.zeros(len(zones), dtype=bool)
    for rows in _rows_by_zone(zones).values():
        ordered = sorted(rows, key=lambda i: order[i])
        train[ordered[: _train_count(len(rows), fraction)]] = True
    return train


def _rows_by_zone(zones: Sequence[str]) -> dict[str, list[int]]:
    rows: dict[str, list[int]] = defaultdict(list)
    for i, zone in enumerate(zones):
        rows[zone].append(i)
    return rows


def _train_count(n: int, fraction: float) -> int:
    return max(1, round(n * fraction))


def subset(survey: Survey, mask: NDArray[np.bool_]) -> Survey:
    zones = tuple(z for z, keep in zip(survey.zones, mask.tolist(), strict=True) if keep)
    points = survey.points[mask] if survey.points is not None else None
    return replace(survey, zones=zones, rssi=survey.rssi[mask], points=points, skipped=())


# -- output --------------------------------------------------------------------------


@dataclass(slots=True)
class Output:
    """The files one converter wrote, for the manifest."""

    folder: Path
    files: list[dict[str, Any]] = field(default_factory=list)

    def add(self, name: str, kind: str, source: str, what: str, **facts: Any) -> Path:
        self.files.append({"file": name, "kind": kind, "source": source, "what": what, **facts})
        return self.folder / name

    def surveys(
        self, stem: str, survey: Survey, order: Sequence[float], source: str, what: str
    ) -> dict[str, NDArray[np.bool_]]:
        """The whole survey and its four halves: random and time-ordered, train
        and test. Returns each split's train mask (the stores of phones that
        listen place their beacons from the train half alone)."""
        write_survey(survey, self.add(f"{stem}.csv", "survey", source, what, **_facts(survey)))
        masks: dict[str, NDArray[np.bool_]] = {}
        for split, mask in (
            ("random", random_split(survey.zones)),
            ("time", time_split(survey.zones, order)),
        ):
            for half, keep in (("train", mask), ("test", ~mask)):
                part = subset(survey, keep)
                how = (
                    f"seeded random {TRAIN_FRACTION:.0%} of each zone's rows (seed {SPLIT_SEED})"
                    if split == "random"
                    else f"first {TRAIN_FRACTION:.0%} of each zone's rows in time order"
                )
                label = how if half == "train" else f"the rest ({split} split)"
                name = f"{stem}-{split}-{half}.csv"
                write_survey(part, self.add(name, "survey", source, label, **_facts(part)))
            masks[split] = mask
        return masks


def _facts(survey: Survey) -> dict[str, Any]:
    return {"rows": len(survey), "zones": len(set(survey.zones))}


# -- stores of phones that listen (issue 15) ----------------------------------------

#: The data sets name their beacons but not their iBeacon UUID: the converted
#: stores advertise under this one (uuid5 of the project's URL namespace and
#: ``omnizone/shared-data``), major 1, minor = the beacon's number.
CONVERTED_UUID = "fdc37a6e-0653-50b6-b0a1-4e21e35c05eb"
#: A beacon's place is the centre of the training cell where it is loudest,
#: among cells where the training rows heard it at least this often.
MIN_HEARD_ROWS = 3
LISTENING_GATEWAY = "gw-placeholder"


@dataclass(frozen=True, slots=True)
class Square:
    """A zone (or a cell) as an axis-aligned rectangle, metres."""

    id: str
    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def centre(self) -> tuple[float, float]:
        return ((self.x0 + self.x1) / 2, (self.y0 + self.y1) / 2)

    @property
    def polygon(self) -> list[list[float]]:
        return [[self.x0, self.y0], [self.x1, self.y0], [self.x1, self.y1], [self.x0, self.y1]]


def loudest_places(
    places: Sequence[str], rssi: NDArray[np.float64], mask: NDArray[np.bool_]
) -> list[str]:
    """For each anchor column, the place (cell, sector) whose ``mask``-ed rows
    hear it loudest (median RSSI), preferring places that heard it at least
    ``MIN_HEARD_ROWS`` times: where a beacon most probably is when the data
    set does not say. Train rows only, so the test rows never place a beacon."""
    names = np.array(places, dtype=object)[mask]
    values = rssi[mask]
    found: list[str] = []
    for column in range(values.shape[1]):
        best: tuple[bool, float, str] | None = None
        for place in sorted(set(names.tolist())):
            heard = values[names == place, column]
            heard = heard[np.isfinite(heard)]
            if heard.size == 0:
                continue
            key = (heard.size >= MIN_HEARD_ROWS, float(np.median(heard)), place)
            if best is None or key[:2] > best[:2]:
                best = key
        found.append(best[2] if best is not None else sorted(set(names.tolist()))[0])
    return found


def listening_store_document(
    store_id: str,
    name: str,
    zones: Sequence[Square],
    beacons: Sequence[tuple[str, tuple[float, float], int]],
    survey: str,
) -> dict[str, Any]:
    """A store file (YAML-ready) for a data set where a phone heard fixed
    beacons: its zones, the beacons (``id``, position, iBeacon minor) under
    ``CONVERTED_UUID``, major 1, and the training survey the localizer
    learns from. The store file needs a gateway: one placeholder in the first
    zone, which never reports (a window it did not report says nothing)."""
    width = max(z.x1 for z in zones)
    depth = max(z.y1 for z in zones)
    return {
        "store": {
            "id": store_id,
            "name": name,
            "timezone": "UTC",
            "floor": {"width_m": width, "depth_m": depth},
        },
        "zones": [
            {"id": z.id, "name": z.id.upper(), "kind": "sales", "polygon": z.polygon} for z in zones
        ],
        "gateways": [{"id": LISTENING_GATEWAY, "position": list(zones[0].centre)}],
        "beacons": [
            {
                "id": beacon,
                "position": [round(x, 3), round(y, 3)],
                "device": f"ibeacon:{CONVERTED_UUID}:1:{minor}",
            }
            for beacon, (x, y), minor in beacons
        ],
        "localization": {"survey": survey},
    }


def write_listening_stores(
    out: "Output",
    stem: str,
    name: str,
    zones: Sequence[Square],
    anchors: Sequence[str],
    minors: Sequence[int],
    places: Mapping[str, Square],
    place_of_row: Sequence[str],
    rssi: NDArray[np.float64],
    masks: Mapping[str, NDArray[np.bool_]],
    source: str,
    licence: str,
) -> dict[str, dict[str, str]]:
    """One store file per split, ``<stem>-<split>.yaml``, naming that split's
    training survey, its beacons placed by ``loudest_places`` on the training
    rows. Each is parsed here (the converter's own check). Returns, per
    split, where each beacon was placed (for the manifest)."""
    import yaml

    from omnizone.store import parse_store

    placed: dict[str, dict[str, str]] = {}
    for split, mask in masks.items():
        loudest = loudest_places(place_of_row, rssi, mask)
        beacons = [
            (anchor, places[place].centre, minor)
            for anchor, place, minor in zip(anchors, loudest, minors, strict=True)
        ]
        survey = f"{stem}-{split}-train.csv"
        document = listening_store_document(f"{stem}-{split}", name, zones, beacons, survey)
        file = f"{stem}-{split}.yaml"
        text = f"# {name}: converted from {source} ({licence}); see docs/real-data.md\n"
        text += "# beacon positions: the loudest training cell of each (the data set gives none)\n"
        text += yaml.safe_dump(document, sort_keys=False, default_flow_style=None, width=100)
        plan = parse_store(text, source=file)
        what = (
            f"store file for phones that listen, {len(plan.zones)} zones, "
            f"{len(plan.beacons)} beacons, localization.survey: {survey}"
        )
        out.add(file, "store", source, what, zones=len(plan.zones)).write_text(text)
        placed[split] = dict(zip(anchors, loudest, strict=True))
    return placed
