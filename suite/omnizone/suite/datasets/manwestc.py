"""The manwestc BLE sectors set (28 sectors on two floors, six beacons heard by
a phone) at 0 dBm tx power (``data/Tx0.csv``) as surveys.

Zones: the 28 sectors as they are (``sectors``: ``s01`` … ``s28`` after the
file's numeric label), and merged by floor (``floors``). The file labels
sectors 1–28; ``metadata/sector_metadata.csv`` names 1A–7A (first floor) then
1B–21B (ground floor). The data set does not say how the numbers map onto the
names; we take label k as the k-th row of the metadata (1–7 first floor,
8–28 ground floor). That is an assumption: in Tx0 the sectors 1–7 hear B1–B3
(listed as ground-floor beacons) loudest, so check the floor merge against
the original per-floor files (Tx0A, Tx0B, not in ../shared/data) before
trusting it.
"""

from pathlib import Path
from typing import Any

import numpy as np

from omnizone.server.domain.localize.survey import Survey

from .common import Cells, DatasetError, Output, Square, read_table, write_listening_stores

SOURCE = "manwestc-ble-sectors"
LICENCE = "Apache-2.0"
CITATION = "github.com/manwestc/ble-rssi-indoor-localization-dataset"
FILE = "data/Tx0.csv"
BEACONS = tuple(f"B{k}" for k in range(1, 7))
#: The data set gives no geometry: each sector is drawn as a square this wide.
SECTOR_M = 4.0
#: Sectors per row on the drawn plan; the first floor's row sits apart from
#: the ground floor's rows (a gap of one sector), so the floors never touch.
PER_ROW = 7


def read_floors(folder: Path) -> list[str]:
    """The metadata's floor of each sector, in file order."""
    path = folder / "metadata" / "sector_metadata.csv"
    rows = read_table(path, ("sector", "floor"), delimiter=";")
    return [row.cells["floor"] for row in rows]


def convert(folder: Path, out: Output) -> dict[str, Any]:
    path = folder / FILE
    rows = read_table(path, (*BEACONS, "Sector"))
    floors = read_floors(folder)
    cells = Cells(path)
    labels: list[int] = []
    rssi: list[list[float]] = []
    for row in rows:
        number = cells.number(row, "Sector")
        if number == number and not (number.is_integer() and 1 <= number <= len(floors)):
            cells.problem(row, f"Sector {row.cells['Sector']!r} is not 1..{len(floors)}")
            number = 1
        labels.append(int(number) if number == number else 1)
        rssi.append([cells.number(row, b, empty_ok=True) for b in BEACONS])
    cells.check()
    if len(set(labels)) != len(floors):
        raise DatasetError(
            [f"{path}: {len(set(labels))} sectors, the metadata lists {len(floors)}"]
        )
    matrix = np.array(rssi, dtype=np.float64)
    anchors = tuple(b.lower() for b in BEACONS)
    order = [float(i) for i in range(len(rows))]  # "in the order they were taken"
    names = {
        "sectors": [f"s{k:02d}" for k in labels],
        "floors": [floors[k - 1].replace("_", "-") for k in labels],
    }
    masks = {}
    for key, zones in names.items():
        survey = Survey(zones=tuple(zones), anchors=anchors, rssi=matrix)
        what = (
            "the 28 sectors as zones (s01 = label 1)"
            if key == "sectors"
            else "sectors merged by floor (label k = k-th row of sector_metadata.csv; assumed)"
        )
        masks[key] = out.surveys(f"manwestc-{key}", survey, order, SOURCE, f"{FILE}: {what}")
    squares = sector_squares(floors)
    placed = write_listening_stores(
        out,
        "manwestc-sectors",
        "Two-floor building, 28 sectors (phones that listen; drawn plan)",
        squares,
        anchors,
        list(range(1, len(BEACONS) + 1)),  # B1 -> minor 1
        {square.id: square for square in squares},
        names["sectors"],
        matrix,
        masks["sectors"],
        SOURCE,
        LICENCE,
    )
    return {
        "source": SOURCE,
        "licence": LICENCE,
        "citation": CITATION,
        "rows": len(rows),
        "sectors": len(set(labels)),
        "file_order": "each sector's 100 rows in the order they were taken",
        "plan": f"drawn, not surveyed: {SECTOR_M:g} m squares, {PER_ROW} a row, floors apart",
        "beacon_sectors_by_split": placed,
    }


def sector_squares(floors: list[str]) -> list[Square]:
    """A drawn plan (the data set has none): the sectors of each floor in
    label order, ``PER_ROW`` to a row; each floor's rows start one empty row
    below the last floor's, so no sector touches one on another floor."""
    squares: list[Square] = []
    y = 0.0
    for floor in dict.fromkeys(floors):
        labels = [k for k, f in enumerate(floors, start=1) if f == floor]
        for i, label in enumerate(labels):
            row, col = divmod(i, PER_ROW)
            x0, y0 = col * SECTOR_M, y + row * SECTOR_M
            squares.append(Square(f"s{label:02d}", x0, y0, x0 + SECTOR_M, y0 + SECTOR_M))
        y += (-(-len(labels) // PER_ROW) + 1) * SECTOR_M
    return squares
