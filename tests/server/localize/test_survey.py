"""Survey CSV import: the exact format, every bad line reported with its number."""

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest

from omnizone.server.domain.localize import (
    SurveyError,
    fingerprint_map,
    load_survey,
    simulate_survey,
    write_survey,
)
from omnizone.store import StorePlan

ROOT = Path(__file__).resolve().parents[3]
SURVEYS = ROOT / "config" / "surveys"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "survey.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_reads_the_format(tmp_path: Path, plan: StorePlan) -> None:
    path = _write(
        tmp_path,
        "zone,gw-entrance,gw-womenswear,bcn-checkout\n"
        "entrance,-61.5,,-150\n"
        "\n"
        "womenswear, -80 ,-62,-200\n",
    )
    survey = load_survey(path, plan)
    assert survey.zones == ("entrance", "womenswear")
    assert survey.anchors == ("gw-entrance", "gw-womenswear", "bcn-checkout")
    assert survey.rssi[0, 0] == -61.5
    assert math.isnan(survey.rssi[0, 1]) and math.isnan(survey.rssi[0, 2])  # empty, -150
    assert survey.rssi[1].tolist()[:2] == [-80.0, -62.0] and math.isnan(survey.rssi[1, 2])


def test_every_bad_line_is_reported_with_its_number(tmp_path: Path, plan: StorePlan) -> None:
    path = _write(
        tmp_path,
        "zone,gw-entrance,gw-womenswear\n"
        "entrance,-60,-80\n"
        "foo,-60,-80\n"
        "entrance,-60\n"
        "entrance,loud,-80\n"
        "entrance,35,-80\n"
        "entrance,nan,-80\n"
        ",-60,-80\n"
        "womenswear,-80,-61\n",
    )
    with pytest.raises(SurveyError) as caught:
        load_survey(path, plan)
    problems = caught.value.problems
    assert problems == [
        "survey.csv:3: zone 'foo' is not in the store",
        "survey.csv:4: 2 columns, the header has 3",
        "survey.csv:5: gw-entrance: 'loud' is not a number",
        "survey.csv:6: gw-entrance: RSSI 35 dBm is out of range (at most 20)",
        "survey.csv:7: gw-entrance: 'nan' is not a finite number",
        "survey.csv:8: empty zone",
    ]
    assert "survey.csv:3" in str(caught.value)
    # without a plan the zone is not checked
    with pytest.raises(SurveyError) as caught:
        load_survey(path)
    assert not any("foo" in p for p in caught.value.problems)


def test_lenient_mode_keeps_the_good_rows(tmp_path: Path, plan: StorePlan) -> None:
    path = _write(tmp_path, "zone,gw-entrance\nentrance,-60\nfoo,-60\nentrance,x\nentrance,-70\n")
    survey = load_survey(path, plan, strict=False)
    assert survey.zones == ("entrance", "entrance")
    assert survey.rssi[:, 0].tolist() == [-60.0, -70.0]
    assert [p.split(":")[1] for p in survey.skipped] == ["3", "4"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "empty file"),
        ("zone\nentrance\n", "no anchor columns"),
        ("place,gw-entrance\n", "first column must be 'zone'"),
        ("zone,gw-entrance,gw-entrance\n", "appears twice"),
        ("zone,gw-nowhere\nentrance,-60\n", "'gw-nowhere' is not a gateway or beacon"),
        ("zone,gw-entrance\n", "no usable sample rows"),
    ],
)
def test_bad_files(tmp_path: Path, plan: StorePlan, text: str, expected: str) -> None:
    with pytest.raises(SurveyError, match=expected):
        load_survey(_write(tmp_path, text), plan, strict=False)


def test_missing_file_is_a_survey_error(tmp_path: Path) -> None:
    with pytest.raises(SurveyError, match="cannot read"):
        load_survey(tmp_path / "absent.csv")


def test_write_then_load_round_trips(tmp_path: Path, plan: StorePlan) -> None:
    survey = simulate_survey(plan, 5, 3.0, seed=4)
    write_survey(survey, tmp_path / "out.csv")
    again = load_survey(tmp_path / "out.csv", plan)
    assert again.zones == survey.zones and again.anchors == survey.anchors
    np.testing.assert_array_equal(np.isnan(again.rssi), np.isnan(survey.rssi))
    np.testing.assert_allclose(np.nan_to_num(again.rssi), np.nan_to_num(survey.rssi))


def test_simulated_survey_is_seeded_and_plausible(plan: StorePlan) -> None:
    a = simulate_survey(plan, 20, 3.0, seed=9)
    b = simulate_survey(plan, 20, 3.0, seed=9)
    np.testing.assert_array_equal(a.rssi, b.rssi)
    assert len(a) == 20 * len(plan.zones)
    radio = fingerprint_map(a)
    # each zone hears its own gateway loudest on average
    for gateway, zone in plan.gateway_zones.items():
        z = radio.zones.index(zone)
        assert radio.mean_dbm[z].argmax() == radio.anchors.index(gateway)


def test_shipped_surveys_load(plan: StorePlan) -> None:
    train = load_survey(SURVEYS / "rivoli-train-3db.csv", plan)
    test = load_survey(SURVEYS / "rivoli-test-3db.csv", plan)
    assert set(train.zones) == set(test.zones) == {z.id for z in plan.zones}


def test_points_columns_are_read_after_zone(tmp_path: Path, plan: StorePlan) -> None:
    path = _write(
        tmp_path,
        "zone,x,y,gw-entrance,gw-womenswear\nentrance,14.5,1.25,-61,\nwomenswear,6,5,-80,-62\n",
    )
    survey = load_survey(path, plan)
    assert survey.anchors == ("gw-entrance", "gw-womenswear")
    assert survey.points is not None
    assert survey.points.tolist() == [[14.5, 1.25], [6.0, 5.0]]
    assert survey.rssi[1].tolist() == [-80.0, -62.0]
    # the old format has no points
    assert load_survey(_write(tmp_path, "zone,gw-entrance\nentrance,-60\n"), plan).points is None


def test_bad_points_are_reported_with_their_line(tmp_path: Path, plan: StorePlan) -> None:
    path = _write(
        tmp_path,
        "zone,x,y,gw-entrance\nentrance,1,2,-60\nentrance,,2,-60\nentrance,1,inf,-60\n"
        "entrance,east,2,-60\n",
    )
    with pytest.raises(SurveyError) as caught:
        load_survey(path, plan)
    assert caught.value.problems == [
        "survey.csv:3: empty x",
        "survey.csv:4: y: 'inf' is not a finite number",
        "survey.csv:5: x: 'east' is not a number",
    ]
    lenient = load_survey(path, plan, strict=False)
    assert lenient.points is not None and lenient.points.tolist() == [[1.0, 2.0]]


def test_points_need_an_anchor_after_them(tmp_path: Path, plan: StorePlan) -> None:
    with pytest.raises(SurveyError, match="no anchor columns after 'zone,x,y'"):
        load_survey(_write(tmp_path, "zone,x,y\nentrance,1,2\n"), plan)


def test_write_then_load_keeps_the_points(tmp_path: Path, plan: StorePlan) -> None:
    simulated = simulate_survey(plan, 3, 3.0, seed=2)
    points = np.arange(len(simulated) * 2, dtype=np.float64).reshape(-1, 2) / 4
    survey = dataclasses.replace(simulated, points=points)
    write_survey(survey, tmp_path / "out.csv")
    assert (tmp_path / "out.csv").read_text().startswith("zone,x,y,")
    again = load_survey(tmp_path / "out.csv", plan)
    assert again.points is not None
    np.testing.assert_allclose(again.points, points)
    np.testing.assert_allclose(np.nan_to_num(again.rssi), np.nan_to_num(survey.rssi))
