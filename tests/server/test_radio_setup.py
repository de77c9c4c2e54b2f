"""A store's survey reaches the deployed localizer: the server that
``build_server`` makes reads ``localization.survey`` of its store file, and a
bad survey stops the start naming the file and line."""

from pathlib import Path

import numpy as np
import pytest
import yaml

from omnizone.server.bootstrap import build_server
from omnizone.server.domain.localize.survey import (
    Survey,
    SurveyError,
    simulate_survey,
    write_survey,
)
from omnizone.server.service.locators import ZonePlacement
from omnizone.server.service.radio_setup import radio_setup
from omnizone.server.settings import ServerSettings
from omnizone.store import StorePlan, load_store

from .conftest import STORE, T0, ble
from .test_bootstrap import settings_for

TAG = "ibeacon:00000000-0000-0000-0000-000000000001:1:1"
SHOWN, SWAPPED = "womenswear", "shoes"


def _store_file(plan: StorePlan, folder: Path, survey: str | None) -> Path:
    """The plan as a store file, naming ``survey`` (relative to the file)."""
    data = plan.model_dump(mode="json")
    data["localization"] = {"survey": survey}
    path = folder / "store.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _swapped_survey(plan: StorePlan) -> tuple[Survey, dict[str, float]]:
    """A survey that says womenswear's radio is the shoe department's (and the
    other way round), and the mean readings of a tag standing in womenswear."""
    true = simulate_survey(plan, samples_per_zone=30, shadowing_db=1.0, seed=3)
    swap = {SHOWN: SWAPPED, SWAPPED: SHOWN}
    lied = Survey(tuple(swap.get(z, z) for z in true.zones), true.anchors, true.rssi)
    rows = true.rssi[np.array(true.zones) == SHOWN]
    mean = np.nanmean(rows, axis=0)
    heard = {a: round(float(v), 1) for a, v in zip(true.anchors, mean, strict=True) if v == v}
    return lied, heard


def _placements(settings: ServerSettings, readings: dict[str, float]) -> list[ZonePlacement]:
    """What a server built by ``build_server`` places the tag in, window by window."""
    parts = build_server(settings)
    seen: list[ZonePlacement] = []
    try:
        parts.ingest.subscribe_to_placements(lambda _store, p: seen.append(p))
        for window in range(1, 16):
            for seq, (gateway, rssi) in enumerate(sorted(readings.items())):
                topic, payload = ble(gateway, window * 100 + seq, T0 + window * 1000, {TAG: rssi})
                parts.ingest.handle(topic, payload, T0 + window * 1000)
        parts.ingest.finish(STORE)
    finally:
        parts.close()
    return seen


def test_a_built_server_localizes_with_its_store_survey(plan: StorePlan, tmp_path: Path) -> None:
    lied, readings = _swapped_survey(plan)
    write_survey(lied, tmp_path / "survey.csv")
    plain, surveyed = tmp_path / "plain", tmp_path / "surveyed"
    plain.mkdir()
    surveyed.mkdir()
    (surveyed / "survey.csv").write_bytes((tmp_path / "survey.csv").read_bytes())
    without = settings_for(plain, localizer="grid", store_files=[_store_file(plan, plain, None)])
    with_survey = settings_for(
        surveyed, localizer="grid", store_files=[_store_file(plan, surveyed, "survey.csv")]
    )
    zones_without = [p.zone for p in _placements(without, readings) if p.device == TAG]
    zones_with = [p.zone for p in _placements(with_survey, readings) if p.device == TAG]
    assert zones_without[-1] == SHOWN  # the floor plan's radio alone: where the tag is
    assert zones_with[-1] == SWAPPED  # the store's survey says otherwise, and is believed
    assert SWAPPED not in zones_without


def test_a_bad_survey_stops_the_start_naming_file_and_line(plan: StorePlan, tmp_path: Path) -> None:
    anchors = ",".join(g.id for g in plan.gateways)
    cells = ",".join("-70" for _ in plan.gateways)
    (tmp_path / "survey.csv").write_text(
        f"zone,{anchors}\nwomenswear,{cells}\nno-such-zone,{cells}\n", encoding="utf-8"
    )
    settings = settings_for(tmp_path, store_files=[_store_file(plan, tmp_path, "survey.csv")])
    with pytest.raises(SurveyError, match=r"survey\.csv:3: zone 'no-such-zone' is not in"):
        build_server(settings)


def test_a_missing_survey_file_is_named(plan: StorePlan, tmp_path: Path) -> None:
    store = load_store(_store_file(plan, tmp_path, "nowhere.csv"))
    with pytest.raises(SurveyError, match=r"nowhere\.csv: cannot read"):
        radio_setup(store)


def test_a_store_without_a_survey_learns_from_its_plan_alone(plan: StorePlan) -> None:
    setup = radio_setup(plan)
    assert setup.survey is None and setup.survey_file is None


def test_a_saved_layout_keeps_the_store_files_survey(plan: StorePlan, tmp_path: Path) -> None:
    """The dashboard saves the floor; the store file names the radio. A layout
    saved without ``localization`` (or from before it existed) runs with the
    file's survey, not without one."""
    from omnizone.server.bootstrap import open_storage

    lied, readings = _swapped_survey(plan)
    write_survey(lied, tmp_path / "survey.csv")
    settings = settings_for(
        tmp_path, localizer="grid", store_files=[_store_file(plan, tmp_path, "survey.csv")]
    )
    layout = plan.model_dump(mode="json")
    del layout["localization"]
    storage = open_storage(settings.database_url)
    try:
        storage.layouts.save(STORE, layout, None, "moved nothing", T0)
    finally:
        storage.close()
    zones = [p.zone for p in _placements(settings, readings) if p.device == TAG]
    assert zones[-1] == SWAPPED
