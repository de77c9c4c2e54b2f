"""A survey from the phone's side through the phone path (issue 15, point 7):
the converted UCI / manwestc stores load, and a slice of the real manwestc
rows posted by the reference client through the shopper API is placed by the
server exactly as the server's own filter places them when fed directly."""

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from omnizone.server.domain.localize.survey import Survey, load_survey, write_survey
from omnizone.server.service.radio_setup import radio_setup
from omnizone.store import load_store
from omnizone.suite.cli import app
from omnizone.suite.datasets.common import loudest_places
from omnizone.suite.datasets.convert import convert_all
from omnizone.suite.datasets.uci import block_of, cell_of
from omnizone.suite.evaluation.phone_fingerprint import evaluate_through_phone
from omnizone.suite.evaluation.replay import with_survey, write_store_file

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
needs_data = pytest.mark.skipif(
    not DATA.is_dir(), reason=f"the real BLE data sets are not here ({DATA} is absent)"
)
#: The slice: the first sectors of the store (its other sectors have no
#: survey rows, so the filter has only the path-loss map for them), and the
#: first rows of each; small enough for a test (the peers train on it too).
SECTORS = 8
TRAIN_PER_ZONE = 20
TEST_PER_ZONE = 4


def test_a_beacon_is_placed_from_the_training_rows_only() -> None:
    rssi = np.array([[-60.0], [-61.0], [-62.0], [-40.0], [-41.0], [-42.0]])
    places = ["a", "a", "a", "b", "b", "b"]
    train = np.array([True, True, True, False, False, False])
    assert loudest_places(places, rssi, train) == ["a"]
    assert loudest_places(places, rssi, np.ones(6, dtype=bool)) == ["b"]
    # a loud place heard fewer than three times loses to one heard often
    few = np.array([[-60.0], [-61.0], [-62.0], [-40.0], [np.nan], [np.nan]])
    assert loudest_places(places, few, np.ones(6, dtype=bool)) == ["a"]


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not DATA.is_dir():
        pytest.skip(f"the real BLE data sets are not here ({DATA} is absent)")
    out = tmp_path_factory.mktemp("converted")
    convert_all(DATA, out, ["uci-wmu-ibeacon", "manwestc-ble-sectors"])
    return out


@needs_data
def test_the_listening_stores_load_with_their_training_survey(converted: Path) -> None:
    for stem, zones, beacons in (("uci-blocks", 23, 13), ("manwestc-sectors", 28, 6)):
        for split in ("random", "time"):
            plan = load_store(converted / f"{stem}-{split}.yaml")
            assert (len(plan.zones), len(plan.beacons)) == (zones, beacons)
            survey = radio_setup(plan).survey
            assert survey is not None
            assert Path(plan.localization.survey or "").name == f"{stem}-{split}-train.csv"
            assert set(survey.anchors) == {b.id for b in plan.beacons}
            assert all(b.device.startswith("ibeacon:") for b in plan.beacons)
            assert all(plan.zone_at(b.position) is not None for b in plan.beacons)
            load_survey(converted / f"{stem}-{split}-test.csv", plan)  # zones and anchors match
    uci = load_store(converted / "uci-blocks-time.yaml")
    first = cell_of("D07")
    assert first is not None and block_of(*first) in {z.id for z in uci.zones}


def _first_rows(survey: Survey, per_zone: int, zones: int = SECTORS) -> Survey:
    kept = sorted(set(survey.zones))[:zones]
    keep: list[int] = []
    seen: dict[str, int] = {}
    for i, zone in enumerate(survey.zones):
        if zone in kept and seen.get(zone, 0) < per_zone:
            keep.append(i)
            seen[zone] = seen.get(zone, 0) + 1
    return Survey(
        zones=tuple(survey.zones[i] for i in keep), anchors=survey.anchors, rssi=survey.rssi[keep]
    )


@pytest.fixture(scope="module")
def sliced(converted: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """manwestc, time split: the first rows of each sector, train and test,
    with the store file naming the sliced train half."""
    folder = tmp_path_factory.mktemp("slice")
    name = "manwestc-sectors-time"
    for half, per_zone in (("train", TRAIN_PER_ZONE), ("test", TEST_PER_ZONE)):
        whole = load_survey(converted / f"{name}-{half}.csv")
        write_survey(_first_rows(whole, per_zone), folder / f"{name}-{half}.csv")
    plan = with_survey(load_store(converted / f"{name}.yaml"), folder / f"{name}-train.csv")
    write_store_file(plan, folder / f"{name}.yaml")
    return folder


@needs_data
@pytest.mark.parametrize("mode", ["rows", "walk"])
def test_every_row_reaches_the_server_and_is_placed_as_its_filter_places_it(
    sliced: Path, mode: str
) -> None:
    name = "manwestc-sectors-time"
    result = evaluate_through_phone(
        sliced / f"{name}.yaml",
        sliced / f"{name}-test.csv",
        mode="walk" if mode == "walk" else "rows",
    )
    n = SECTORS * TEST_PER_ZONE
    phone = result["through_phone"]
    assert result["n_test"] == n and result["n_train"] == SECTORS * TRAIN_PER_ZONE
    assert phone["shoppers"] == (n if mode == "rows" else SECTORS)
    assert phone["batches_refused_or_retried"] == 0
    server = phone["server"]
    assert server["windows"] == n  # every row arrived as one window
    assert server["windows_late"] == server["windows_stale"] == 0
    assert server["unknown_beacons"] == {}
    assert phone["placed"] + phone["unplaced"] == n
    # the phone path loses nothing: the server places every row exactly as
    # its own filter does when fed the same rows directly
    assert result["server_model"]["same_zone_as_through_phone"] == n
    assert phone["zone_accuracy"] == result["server_model"]["zone_accuracy"]
    assert set(result["peers"]) == {"knn3", "random_forest", "hist_gradient_boosting"}
    assert result["margin_over_best_peer"] == pytest.approx(
        phone["zone_accuracy"] - result["best_peer_accuracy"], abs=1e-4
    )
    assert ("walk_forest" in result) == (mode == "walk")
    if mode == "walk":  # a phone standing in a sector is placed more often than one window
        rows = evaluate_through_phone(sliced / f"{name}.yaml", sliced / f"{name}-test.csv")
        assert phone["placed"] > rows["through_phone"]["placed"]


@needs_data
def test_the_command_runs_the_pairs_that_have_a_store(sliced: Path, converted: Path) -> None:
    lonely = load_survey(converted / "manwestc-floors-time-test.csv")
    write_survey(_first_rows(lonely, 2, 2), sliced / "floors-test.csv")
    write_survey(_first_rows(lonely, 5, 2), sliced / "floors-train.csv")
    result = CliRunner().invoke(
        app, ["eval", "fingerprint", "--through-phone", "--suite", str(sliced), "--json"]
    )
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert [p["name"] for p in printed["pairs"]] == ["manwestc-sectors-time"]
    assert printed["skipped_no_store"] == ["floors"]
    assert printed["pairs"][0]["through_phone"]["server"]["windows"] == SECTORS * TEST_PER_ZONE
    refused = CliRunner().invoke(
        app, ["eval", "fingerprint", "--through-phone", "--train", "x.csv", "--test", "y.csv"]
    )
    assert refused.exit_code == 2 and "--store" in refused.stderr
