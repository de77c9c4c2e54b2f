"""``omnizone calibrate`` covers both kinds of anchor: a survey whose phone
also heard the store's fixed beacons (columns by beacon id or by the key it
advertises) fits each beacon's power at 1 m and exponent beside the
gateways', in the same calibration file; a phone-side survey with beacon
columns only fits the beacons and says what it cannot do."""

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from omnizone.paths import shipped_config
from omnizone.server.domain.localize.propagation import anchor_positions, mean_rssi_dbm
from omnizone.server.domain.localize.survey import Survey, write_survey
from omnizone.store import load_store
from omnizone.store.calibration import load_calibration
from omnizone.suite.cli import app
from tests.server.localize.survey_points import points_in_zones

STORE = shipped_config("stores/rivoli.yaml")
#: (power at 1 m, exponent) of the two fixed beacons, as the phone hears them.
BEACONS = {"bcn-outerwear-wall": (-45.0, 2.0), "bcn-checkout": (-58.0, 2.4)}


def survey_with_beacons(path: Path, *, gateways: bool = True) -> None:
    plan = load_store(STORE)
    anchors, xy = anchor_positions(plan)
    rng = np.random.default_rng(17)
    where, zones = points_in_zones(plan, rng)
    columns: list[str] = []
    blocks = []
    if gateways:
        distance = np.linalg.norm(where[:, None, :] - xy[None, :, :], axis=2)
        blocks.append(mean_rssi_dbm(distance, -50.0, 1.7) + rng.normal(0, 3.0, distance.shape))
        columns += anchors
    for beacon in (b for b in plan.beacons if b.id in BEACONS):  # the two the phone heard
        power, exponent = BEACONS[beacon.id]
        d = np.linalg.norm(where - np.asarray(beacon.position), axis=1)
        blocks.append((mean_rssi_dbm(d, power, exponent) + rng.normal(0, 3.0, d.shape))[:, None])
        # one column by id, the other by the key it advertises
        columns.append(beacon.id if beacon.id == "bcn-checkout" else beacon.device)
    rssi = np.concatenate(blocks, axis=1)
    rssi[rssi < -95] = np.nan
    write_survey(Survey(tuple(zones), tuple(columns), rssi, points=where), path)


def _run(survey: Path, out: Path) -> dict[str, object]:
    result = CliRunner().invoke(
        app,
        ["calibrate", "--store", str(STORE), "--survey", str(survey), "--out", str(out), "--json"],
    )
    assert result.exit_code == 0, result.output
    report: dict[str, object] = json.loads(result.stdout)
    return report


def test_calibrate_fits_fixed_beacons_beside_the_gateways(tmp_path: Path) -> None:
    survey = tmp_path / "walk.csv"
    survey_with_beacons(survey)
    out = tmp_path / "calibration.yaml"
    report = _run(survey, out)
    anchors = report["anchors"]
    assert isinstance(anchors, dict)
    assert report["power_1m_dbm"] == pytest.approx(-50.0, abs=1.5)  # the gateways set it
    for beacon, (power, exponent) in BEACONS.items():
        fit = anchors[beacon]
        assert fit["kind"] == "beacon" and fit["fitted"]
        assert fit["power_1m_dbm"] == pytest.approx(power, abs=1.5)
        assert fit["exponent"] == pytest.approx(exponent, abs=0.25)
    assert {a["kind"] for n, a in anchors.items() if n.startswith("gw-")} == {"gateway"}
    plan = load_store(STORE)
    calibration = load_calibration(out, plan)  # beacons are anchors the store file knows
    assert set(calibration.anchors) == {g.id for g in plan.gateways} | set(BEACONS)
    wall = calibration.anchors["bcn-outerwear-wall"]
    assert wall.power_1m_dbm(calibration.power_1m_dbm) == pytest.approx(-45.0, abs=1.5)
    expected = report["expected_zone_accuracy"]
    assert isinstance(expected, dict) and expected["calibrated_model"] > 0


def test_a_phone_side_survey_fits_the_beacons_alone_and_says_so(tmp_path: Path) -> None:
    survey = tmp_path / "phone.csv"
    survey_with_beacons(survey, gateways=False)
    out = tmp_path / "calibration.yaml"
    report = _run(survey, out)
    anchors = report["anchors"]
    assert isinstance(anchors, dict) and set(anchors) == set(BEACONS)
    assert anchors["bcn-checkout"]["power_1m_dbm"] == pytest.approx(-58.0, abs=1.5)
    assert report["expected_zone_accuracy"] is None
    notes = report["notes"]
    assert isinstance(notes, list) and any("no gateway column" in n for n in notes)
    calibration = load_calibration(out, load_store(STORE))
    assert set(calibration.anchors) == set(BEACONS)
