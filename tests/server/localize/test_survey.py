"""Survey CSV import: the exact format, every bad line reported with its number."""

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
