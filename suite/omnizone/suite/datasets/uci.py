"""The UCI WMU iBeacon set (a library floor; 13 iBeacons heard by a phone) as surveys.

Zones: each grid cell (``O02`` = column O, row 2) is a zone of its own
(``cells``), and 3 × 3 blocks of cells are merged (``blocks``): columns
A–C, D–F, G–I, … and rows 1–3, 4–6, …; a block is named after its corners,
``d01-f03``. The phone is the receiver, so the anchors are the beacons
(``b3001`` … ``b3013``); -200 means not heard, and so do a few -198 and -199
(at or below the survey's -150 dBm: an empty cell in the survey).
"""

import math
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from omnizone.server.domain.localize.survey import NOT_HEARD_AT_OR_BELOW_DBM, Survey

from .common import Cells, DatasetError, Output, Square, read_table, write_listening_stores

SOURCE = "uci-wmu-ibeacon"
LICENCE = "CC BY 4.0 (UCI)"
CITATION = (
    'UCI Machine Learning Repository, "BLE RSSI Dataset for Indoor localization and '
    'Navigation"; copy from github.com/MDAyesha/BLE-RSSI-Dataset'
)
FILE = "iBeacon_RSSI_Labeled.csv"
BLOCK = 3
#: The data set gives no cell size; the converted store assumes this (metres).
CELL_M = 3.0
_DATE_FORMATS = ("%m-%d-%Y %H:%M:%S", "%m-%d-%Y %H:%M")


def cell_of(location: str) -> tuple[int, int] | None:
    """``O02`` → (column index from A, row number); None if it is not a cell name."""
    if len(location) < 2 or not location[0].isalpha() or not location[1:].isdigit():
        return None
    return ord(location[0].upper()) - ord("A"), int(location[1:])


def block_of(column: int, row: int, size: int = BLOCK) -> str:
    """The 3 × 3 block holding a cell, named after its corner cells: ``d01-f03``."""
    c0 = column - column % size
    r0 = (row - 1) - (row - 1) % size + 1
    return f"{chr(ord('a') + c0)}{r0:02d}-{chr(ord('a') + c0 + size - 1)}{r0 + size - 1:02d}"


def parse_date(text: str) -> datetime | None:
    for pattern in _DATE_FORMATS:
        try:
            return datetime.strptime(text, pattern)
        except ValueError:
            continue
    return None


def convert(folder: Path, out: Output) -> dict[str, Any]:
    path = folder / FILE
    rows = read_table(path, ("location", "date"))
    anchors = tuple(c for c in rows[0].cells if c.startswith("b3"))
    if not anchors:
        raise DatasetError([f"{path}:1: no beacon columns (b3001 …)"])
    cells = Cells(path)
    locations: list[tuple[int, int]] = []
    order: list[float] = []
    rssi: list[list[float]] = []
    odd_not_heard = 0
    for index, row in enumerate(rows):
        cell = cell_of(row.cells["location"])
        when = parse_date(row.cells["date"])
        if cell is None:
            cells.problem(row, f"location {row.cells['location']!r} is not a grid cell like O02")
        if when is None:
            cells.problem(row, f"date {row.cells['date']!r} is not month-day-year hour:minute")
        locations.append(cell or (0, 0))
        # The file runs newest first; -index keeps rows of one second in time order.
        order.append(when.timestamp() - index * 1e-6 if when is not None else 0.0)
        values = [cells.number(row, a) for a in anchors]
        odd_not_heard += sum(-200 < v <= NOT_HEARD_AT_OR_BELOW_DBM for v in values)
        rssi.append([math.nan if v <= NOT_HEARD_AT_OR_BELOW_DBM else v for v in values])
    cells.check()
    matrix = np.array(rssi, dtype=np.float64)
    names = {
        "cells": [f"{chr(ord('a') + c)}{r:02d}" for c, r in locations],
        "blocks": [block_of(c, r) for c, r in locations],
    }
    masks = {}
    for key, zones in names.items():
        survey = Survey(zones=tuple(zones), anchors=anchors, rssi=matrix)
        what = (
            "one zone per grid cell"
            if key == "cells"
            else f"grid cells merged {BLOCK} x {BLOCK} (columns a-c, d-f, …; rows 1-3, 4-6, …)"
        )
        masks[key] = out.surveys(f"uci-{key}", survey, order, SOURCE, f"{FILE}: {what}")
    placed = write_listening_stores(
        out,
        "uci-blocks",
        f"WMU library floor ({BLOCK} x {BLOCK} cells, phones that listen)",
        block_squares(sorted(set(names["blocks"]))),
        anchors,
        [int(a[1:]) for a in anchors],  # b3001 -> minor 3001
        {name: cell_square(c, r) for name, (c, r) in zip(names["cells"], locations, strict=True)},
        names["cells"],
        matrix,
        masks["blocks"],
        SOURCE,
        LICENCE,
    )
    return {
        "source": SOURCE,
        "licence": LICENCE,
        "citation": CITATION,
        "rows": len(rows),
        "cells": len(set(names["cells"])),
        "blocks": len(set(names["blocks"])),
        "file_order": "newest first (dates never increase down the file)",
        "not_heard_cells_other_than_-200": odd_not_heard,
        "cell_m_assumed": CELL_M,
        "beacon_cells_by_split": placed,
    }


def cell_square(column: int, row: int) -> Square:
    """Cell ``(column, row)`` on the floor: column A at x 0, row 1 at y 0."""
    name = f"{chr(ord('a') + column)}{row:02d}"
    return Square(name, column * CELL_M, (row - 1) * CELL_M, (column + 1) * CELL_M, row * CELL_M)


def block_squares(blocks: list[str]) -> list[Square]:
    """Each ``d01-f03`` block as the rectangle of its 3 × 3 cells."""
    squares = []
    for block in blocks:
        first, last = block.split("-")
        c0, r0 = cell_of(first) or (0, 1)
        c1, r1 = cell_of(last) or (0, 1)
        low, high = cell_square(c0, r0), cell_square(c1, r1)
        squares.append(Square(block, low.x0, low.y0, high.x1, high.y1))
    return squares
