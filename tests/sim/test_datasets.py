"""The shared data sets converted into omnizone files: stores that load,
readings that import (counted against the source rows), surveys and splits."""

import csv
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from omnizone.server.domain.localize.survey import load_survey
from omnizone.sim.recording.imports import read_readings, read_truth, readings_to_messages
from omnizone.store import StorePlan, load_store, parse_store
from omnizone.suite.cli import app
from omnizone.suite.datasets import marckolak
from omnizone.suite.datasets.common import DatasetError, random_split, time_split
from omnizone.suite.datasets.convert import convert_all
from omnizone.suite.datasets.uci import block_of, cell_of

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"the shared data sets are not at {DATA}")


def _flat(zones: list[tuple[marckolak.Room, str]]) -> StorePlan:
    """The flat with one made-up anchor at the middle of each room."""
    import yaml

    anchors = [
        (f"anchor-{i}", (r.x0 + r.x1) / 2, (r.y0 + r.y1) / 2, 2.0)
        for i, r in enumerate(marckolak.ROOMS, start=1)
    ]
    document = marckolak.store_document("flat", "Flat", zones, anchors)
    return parse_store(yaml.safe_dump(document))


def test_rooms_connect_only_through_their_openings() -> None:
    plan = _flat([(room, room.id) for room in marckolak.ROOMS])
    assert plan.adjacency == {
        "hall": ["central-room", "south-room", "west-room"],
        "south-room": ["hall"],
        "west-room": ["hall"],
        "central-room": ["east-room", "hall"],
        "east-room": ["central-room"],
    }


def test_grid_cells_never_straddle_a_wall_and_follow_the_openings() -> None:
    cells = marckolak.grid_cells()
    plan = _flat(cells)
    assert len(plan.zones) == 14
    rooms = {room.id: room for room in marckolak.ROOMS}
    for cell, room_id in cells:
        room = rooms[room_id]
        assert room.x0 <= cell.x0 < cell.x1 <= room.x1 and room.y0 <= cell.y0 < cell.y1 <= room.y1
        assert min(cell.x1 - cell.x0, cell.y1 - cell.y0) >= marckolak.MIN_CELL_SIDE_M
        assert max(cell.x1 - cell.x0, cell.y1 - cell.y0) <= 2 * marckolak.GRID_M
    total = sum((c.x1 - c.x0) * (c.y1 - c.y0) for c, _ in cells)
    assert total == pytest.approx(sum((r.x1 - r.x0) * (r.y1 - r.y0) for r in marckolak.ROOMS))
    # open floor inside a room; the door from the hall into the west room is at x 0.73-1.52
    assert "central-room-c3" in plan.adjacency["central-room-b3"]
    assert plan.adjacency["west-room-a2"] == ["hall-a1", "west-room-a3"]
    # 0.18 m of the central/east boundary at y 4.19-5 is open: not a passage
    assert "east-room-c2" not in plan.adjacency["central-room-c2"]
    assert "east-room-c3" in plan.adjacency["central-room-c3"]


def test_uci_cells_merge_three_by_three() -> None:
    assert cell_of("O02") == (14, 2) and cell_of("2O") is None
    assert block_of(*cell_of("D01")) == block_of(*cell_of("F03")) == "d01-f03"
    assert block_of(*cell_of("G04")) == "g04-i06"
    assert block_of(*cell_of("O15")) == "m13-o15"


def test_splits_are_per_zone_seeded_and_time_ordered() -> None:
    zones = ["a"] * 10 + ["b"] * 4
    random_train = random_split(zones)
    assert random_train.tolist() == random_split(zones).tolist()
    assert random_train[:10].sum() == 7 and random_train[10:].sum() == 3
    order = [9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 0, 1, 2, 3]
    assert time_split(zones, order).tolist() == [False] * 3 + [True] * 7 + [True] * 3 + [False]


def test_a_missing_data_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no data folder here"):
        convert_all(tmp_path / "absent", tmp_path / "out")
    result = CliRunner().invoke(
        app, ["sim", "datasets", "convert", "--data", str(tmp_path / "nothing"), "--out", "x"]
    )
    assert result.exit_code == 2 and "pass --data" in result.stderr


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not DATA.is_dir():
        pytest.skip(f"the shared data sets are not at {DATA}")
    out = tmp_path_factory.mktemp("converted")
    result = CliRunner().invoke(
        app, ["sim", "datasets", "convert", "--data", str(DATA), "--out", str(out), "--json"]
    )
    assert result.exit_code == 0, result.output
    return out


def _source_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@needs_data
def test_the_flat_converts_into_stores_that_load_and_readings_that_import(
    converted: Path,
) -> None:
    robot = _source_rows(DATA / marckolak.SOURCE / "tests" / "test_robot_df.csv")
    heard = sum(1 for row in robot for k in range(1, 7) if row[f"rssi_{k}"].strip())
    for variant, zones in (("rooms", 5), ("grid", 14)):
        plan = load_store(converted / f"flat-{variant}.yaml")
        assert len(plan.zones) == zones and len(plan.gateways) == 6
        readings = read_readings(converted / "robot-readings.csv", plan)
        assert len(readings) == heard
        assert {r.anchor for r in readings} == {g.id for g in plan.gateways}
        truth = read_truth(converted / "robot-truth.csv", plan)
        assert len(truth) == len(robot)
        assert {p.device for p in truth} == {r.device for r in readings}
        assert all(p.zone is not None for p in truth)  # the robot stays inside the flat
        messages = readings_to_messages(plan, readings)
        windows = {
            (m.topic, json.loads(m.payload)["items"][0]["window_start_ms"]) for m in messages
        }
        assert len(windows) == len(messages)  # one message per anchor and window
        surveyed = load_store(converted / f"flat-{variant}-surveyed.yaml")
        assert surveyed.localization.survey is not None
        named = Path(surveyed.localization.survey)
        assert named.name == f"survey-{variant}-windows.csv"
        assert load_survey(named, surveyed).points is not None
        survey = load_survey(converted / f"survey-{variant}.csv", plan)
        assert survey.points is not None
        calibration = DATA / marckolak.SOURCE / "calibration" / "calibration_df.csv"
        assert len(survey) == len(_source_rows(calibration))
        # each sample's zone is the zone its point is in
        for zone, (x, y) in zip(survey.zones[::97], survey.points[::97].tolist(), strict=True):
            assert plan.zone_at((x, y)) == zone


@needs_data
def test_survey_splits_partition_each_zone(converted: Path) -> None:
    stems = ("survey-rooms", "survey-grid-windows", "uci-cells", "uci-blocks", "manwestc-sectors")
    for stem in stems:
        whole = load_survey(converted / f"{stem}.csv")
        for split in ("random", "time"):
            train = load_survey(converted / f"{stem}-{split}-train.csv")
            test = load_survey(converted / f"{stem}-{split}-test.csv")
            assert Counter(train.zones) + Counter(test.zones) == Counter(whole.zones)
            for zone, n in Counter(whole.zones).items():
                assert Counter(train.zones)[zone] == max(1, round(0.7 * n))


@needs_data
def test_uci_and_manwestc_keep_every_source_row(converted: Path) -> None:
    uci = _source_rows(DATA / "uci-wmu-ibeacon" / "iBeacon_RSSI_Labeled.csv")
    cells = load_survey(converted / "uci-cells.csv")
    blocks = load_survey(converted / "uci-blocks.csv")
    assert len(cells) == len(blocks) == len(uci)
    assert cells.zones[0] == uci[0]["location"].lower()
    heard = sum(1 for row in uci for k in range(3001, 3014) if float(row[f"b{k}"]) > -150)
    assert int(np.isfinite(cells.rssi).sum()) == heard
    assert len(set(blocks.zones)) < len(set(cells.zones)) == 105
    tx0 = _source_rows(DATA / "manwestc-ble-sectors" / "data" / "Tx0.csv")
    sectors = load_survey(converted / "manwestc-sectors.csv")
    floors = load_survey(converted / "manwestc-floors.csv")
    assert len(sectors) == len(floors) == len(tx0) == 2800
    assert len(set(sectors.zones)) == 28 and set(floors.zones) == {"first-floor", "ground-floor"}
    # time order: each sector's first 70 rows, as taken, train
    train = load_survey(converted / "manwestc-sectors-time-train.csv")
    first = [row for row in tx0 if row["Sector"] == "1"][:70]
    expected = [[float(row[f"B{k}"]) for k in range(1, 7)] for row in first]
    got = train.rssi[[i for i, z in enumerate(train.zones) if z == "s01"]]
    assert got.tolist() == expected
    manifest = json.loads((converted / "manifest.json").read_text())
    assert {f["file"] for f in manifest["files"]} <= {p.name for p in converted.iterdir()}
    licences = {name: facts["licence"] for name, facts in manifest["sets"].items()}
    assert licences == {
        "marckolak-calib2021": "CC BY 4.0",
        "uci-wmu-ibeacon": "CC BY 4.0 (UCI)",
        "manwestc-ble-sectors": "Apache-2.0",
    }
    assert manifest["sets"]["uci-wmu-ibeacon"]["not_heard_cells_other_than_-200"] == 15


@needs_data
def test_the_windowed_survey_is_each_anchors_window_mean(converted: Path) -> None:
    """One sample per 1 s window with readings, each cell the mean of the
    window's rows, as the gateway code aggregates them."""
    rows = _source_rows(DATA / marckolak.SOURCE / "calibration" / "calibration_df.csv")
    windows: dict[int, list[dict[str, str]]] = {}
    for row in rows:
        t_ms = round(float(row["ts"]) / 1e6)
        windows.setdefault(t_ms - t_ms % 1000, []).append(row)
    plan = load_store(converted / "flat-rooms.yaml")
    survey = load_survey(converted / "survey-rooms-windows.csv", plan)
    assert len(survey) == len(windows)
    first = windows[min(windows)]
    for k in range(1, 7):
        heard = [float(r[f"rssi_{k}"]) for r in first if r[f"rssi_{k}"]]
        expected = round(sum(heard) / len(heard), 2) if heard else None
        got = survey.rssi[0, k - 1]
        assert (expected is None and np.isnan(got)) or got == pytest.approx(expected, abs=1e-3)
