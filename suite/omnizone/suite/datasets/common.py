"""What every converter shares: strict reading of the source CSVs (every bad
cell named by file and line), train/test splits, and the manifest entries."""

import csv
import math
from collections import defaultdict
from collections.abc import Sequence
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
    ) -> None:
        """The whole survey and its four halves: random and time-ordered, train and test."""
        write_survey(survey, self.add(f"{stem}.csv", "survey", source, what, **_facts(survey)))
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


def _facts(survey: Survey) -> dict[str, Any]:
    return {"rows": len(survey), "zones": len(set(survey.zones))}
