"""``omnizone calibrate`` on a point survey of the example store with known
radio: it recovers them, writes a file the store can point to, and refuses
bad input by file and line without a traceback."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from omnizone.paths import shipped_config
from omnizone.server.domain.localize.propagation import anchor_positions, mean_rssi_dbm
from omnizone.server.domain.localize.survey import Survey, write_survey
from omnizone.store import load_store
from omnizone.store.calibration import load_calibration
from omnizone.suite.cli import app
from tests.server.localize.survey_points import points_in_zones

STORE = shipped_config("stores/rivoli.yaml")


def point_survey(path: Path, power: float = -50.0, exponent: float = 1.7) -> None:
    plan = load_store(STORE)
    anchors, xy = anchor_positions(plan)
    rng = np.random.default_rng(11)
    where, zones = points_in_zones(plan, rng)
    distance = np.linalg.norm(where[:, None, :] - xy[None, :, :], axis=2)
    rssi = mean_rssi_dbm(distance, power, exponent) + rng.normal(0, 3.0, distance.shape)
    rssi[rssi < -95] = np.nan
    write_survey(Survey(tuple(zones), anchors, rssi, points=where), path)


def test_calibrate_fits_a_point_survey_and_writes_the_calibration(tmp_path: Path) -> None:
    survey = tmp_path / "walk.csv"
    point_survey(survey)
    out = tmp_path / "calibration.yaml"
    result = CliRunner().invoke(
        app,
        ["calibrate", "--store", str(STORE), "--survey", str(survey), "--out", str(out), "--json"],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["positions"] == "surveyed points"
    assert report["power_1m_dbm"] == pytest.approx(-50.0, abs=1.5)
    for fit in report["anchors"].values():
        assert fit["exponent"] == pytest.approx(1.7, abs=0.25)
        assert set(fit) >= {"bias_db", "spread_db", "outlier_share", "flags"}
    accuracy = report["expected_zone_accuracy"]
    assert accuracy["calibrated_model"] > accuracy["default_model"]
    assert any("default radio map" in note for note in report["notes"])
    assert any("does not point to" in note for note in report["notes"])
    calibration = load_calibration(out, load_store(STORE))
    assert set(calibration.anchors) == {g.id for g in load_store(STORE).gateways}
    again = CliRunner().invoke(
        app, ["calibrate", "--store", str(STORE), "--survey", str(survey), "--out", str(out)]
    )
    assert again.exit_code == 2 and "--force" in again.output


def test_an_old_style_survey_is_placed_at_zone_centres_and_says_so(tmp_path: Path) -> None:
    survey = tmp_path / "walk.csv"
    point_survey(survey)
    rows = [line.split(",") for line in survey.read_text().splitlines()]
    survey.write_text("\n".join(",".join([r[0], *r[3:]]) for r in rows) + "\n")
    result = CliRunner().invoke(
        app, ["calibrate", "--store", str(STORE), "--survey", str(survey), "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["positions"] == "zone centres"
    assert any("no x,y columns" in note for note in report["notes"])


def test_a_bad_survey_line_is_named_and_nothing_is_written(tmp_path: Path) -> None:
    survey = tmp_path / "walk.csv"
    point_survey(survey)
    lines = survey.read_text().splitlines()
    lines[5] = lines[5].replace(lines[5].split(",")[3], "loud", 1)
    survey.write_text("\n".join(lines) + "\n")
    out = tmp_path / "calibration.yaml"
    result = CliRunner().invoke(
        app, ["calibrate", "--store", str(STORE), "--survey", str(survey), "--out", str(out)]
    )
    assert result.exit_code == 2
    assert "walk.csv:6" in result.output and "Traceback" not in result.output
    assert not out.exists()


def test_a_store_file_that_names_no_survey_needs_one(tmp_path: Path) -> None:
    store = tmp_path / "store.yaml"
    store.write_text(yaml.safe_dump(yaml.safe_load(STORE.read_text())))
    result = CliRunner().invoke(app, ["calibrate", "--store", str(store)])
    assert result.exit_code == 2 and "names none" in result.output
