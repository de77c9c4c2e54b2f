"""A store's calibration reaches the deployed localizer: a server made by
``build_server`` reads ``localization.calibration`` and localizes with each
anchor's own power; a bad file stops the start naming file and field; a
rewritten file is picked up without a restart, by ``LocalizerReload`` and by a
running server's watch thread, and a broken one is reported in ``/health``,
``/metrics`` and ``GET /api/v1/localizer`` while the running one is kept."""

import os
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml

from omnizone.server.bootstrap import build_server
from omnizone.server.domain.localize.propagation import anchor_positions, mean_rssi_dbm
from omnizone.server.runtime import ServerRuntime
from omnizone.server.service.locators import ZonePlacement, make_locator
from omnizone.server.service.radio_reload import LocalizerReload
from omnizone.server.service.radio_setup import radio_setup
from omnizone.store import StoreConfigError, StorePlan, load_store
from omnizone.store.calibration import AnchorCalibration, StoreCalibration, dump_calibration
from omnizone.store.geometry import centroid

from .conftest import STORE, T0, ble
from .test_bootstrap import ADMIN, settings_for
from .test_radio_setup import TAG
from .test_radio_setup import _placements as placements

ZONE, LOUD, OFFSET_DB = "accessories", "gw-shoes", 30.0


def _store_file(plan: StorePlan, folder: Path, calibration: str | None) -> Path:
    data = plan.model_dump(mode="json")
    data["localization"] = {"calibration": calibration}
    path = folder / "store.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _loud(plan: StorePlan) -> StoreCalibration:
    """The shoe department's gateway has a better antenna: it hears 30 dB louder."""
    return StoreCalibration(
        store=plan.store.id,
        anchors={LOUD: AnchorCalibration(offset_db=OFFSET_DB, exponent=2.2, spread_db=3.0)},
    )


def _readings(plan: StorePlan) -> dict[str, float]:
    """What the gateways hear of a tag in the middle of accessories."""
    anchors, xy = anchor_positions(plan)
    zone = next(z for z in plan.zones if z.id == ZONE)
    here = np.array(centroid(zone.polygon))
    rssi = mean_rssi_dbm(np.linalg.norm(xy - here, axis=1), -59.0, 2.2)
    rssi = np.where(np.array(anchors) == LOUD, rssi + OFFSET_DB, rssi)
    return {a: round(float(v), 1) for a, v in zip(anchors, rssi, strict=True) if v > -95}


def test_a_built_server_localizes_with_its_calibration(plan: StorePlan, tmp_path: Path) -> None:
    plain, calibrated = tmp_path / "plain", tmp_path / "calibrated"
    plain.mkdir()
    calibrated.mkdir()
    (calibrated / "cal.yaml").write_text(dump_calibration(_loud(plan)))
    readings = _readings(plan)
    without = settings_for(plain, localizer="grid", store_files=[_store_file(plan, plain, None)])
    with_cal = settings_for(
        calibrated, localizer="grid", store_files=[_store_file(plan, calibrated, "cal.yaml")]
    )
    zones_without = [p.zone for p in placements(without, readings) if p.device == TAG]
    zones_with = [p.zone for p in placements(with_cal, readings) if p.device == TAG]
    assert zones_with[-1] == ZONE  # it knows the shoe gateway hears loud
    assert ZONE not in zones_without  # the default model takes loud for near


def test_a_bad_calibration_stops_the_start_naming_file_and_field(
    plan: StorePlan, tmp_path: Path
) -> None:
    (tmp_path / "cal.yaml").write_text(
        f"store: {plan.store.id}\nanchors:\n  gw-shoes: {{exponent: 99}}\n  gw-moon: {{}}\n"
    )
    settings = settings_for(tmp_path, store_files=[_store_file(plan, tmp_path, "cal.yaml")])
    with pytest.raises(StoreConfigError) as caught:
        build_server(settings)
    message = str(caught.value)
    assert "cal.yaml" in message and "gw-shoes" in message and "exponent" in message


def test_a_rewritten_calibration_is_picked_up_without_a_restart(
    plan: StorePlan, tmp_path: Path
) -> None:
    store_file = _store_file(plan, tmp_path, "cal.yaml")
    calibration = tmp_path / "cal.yaml"
    calibration.write_text(dump_calibration(StoreCalibration(store=plan.store.id)))
    settings = settings_for(tmp_path, localizer="grid", store_files=[store_file])
    parts = build_server(settings)
    running = load_store(store_file)
    reload = LocalizerReload(
        parts.ingest,
        {STORE: running},
        {STORE: running.localization},
        lambda p, radio: make_locator(p, "grid", radio=radio),
    )
    readings = _readings(plan)
    seen: list[ZonePlacement] = []
    parts.ingest.subscribe_to_placements(lambda _store, p: seen.append(p))
    window = 0

    def feed(windows: int) -> None:
        nonlocal window
        for _ in range(windows):
            window += 1
            for seq, (gateway, rssi) in enumerate(sorted(readings.items())):
                topic, payload = ble(gateway, window * 100 + seq, T0 + window * 1000, {TAG: rssi})
                parts.ingest.handle(topic, payload, T0 + window * 1000)

    try:
        assert reload.check_files() == []  # nothing changed yet
        feed(10)
        assert ZONE not in [p.zone for p in seen if p.device == TAG]
        calibration.write_text("store: [not, a, mapping\n")
        os.utime(calibration, ns=(1, 1))
        assert reload.check_files() == []
        assert "cal.yaml" in reload.status.errors[STORE]  # kept the running one, said why
        calibration.write_text(dump_calibration(_loud(plan)))
        assert reload.check_files() == [STORE]
        assert reload.status.errors == {} and reload.status.reloads == 1
        feed(10)
        parts.ingest.finish(STORE)
    finally:
        parts.close()
    assert [p.zone for p in seen if p.device == TAG][-1] == ZONE


def test_the_setup_carries_each_anchors_parameters(plan: StorePlan, tmp_path: Path) -> None:
    (tmp_path / "cal.yaml").write_text(dump_calibration(_loud(plan)))
    setup = radio_setup(load_store(_store_file(plan, tmp_path, "cal.yaml")))
    anchors, _ = anchor_positions(plan)
    power = setup.model_parameters(plan)["tx_power_1m_dbm"]
    assert power[anchors.index(LOUD)] == -59.0 + OFFSET_DB
    assert all(p == -59.0 for a, p in zip(anchors, power, strict=True) if a != LOUD)


def _until(done: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    """Wait for the watch thread (which looks every 0.1 s here) to get there."""
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_running_server_picks_up_a_rewritten_calibration_and_reports_a_broken_one(
    plan: StorePlan, tmp_path: Path
) -> None:
    store_file = _store_file(plan, tmp_path, "cal.yaml")
    calibration = tmp_path / "cal.yaml"
    calibration.write_text(dump_calibration(StoreCalibration(store=plan.store.id)))
    settings = settings_for(
        tmp_path, localizer="grid", store_files=[store_file], radio_check_interval_s=0.1
    )
    readings = _readings(plan)
    seen: list[ZonePlacement] = []
    window = 0
    with ServerRuntime(settings) as server, httpx.Client(base_url=server.api_url) as api:
        server.ingest.subscribe_to_placements(lambda _store, p: seen.append(p))

        def feed(windows: int) -> list[str]:
            nonlocal window
            start = len(seen)
            for _ in range(windows):
                window += 1
                for seq, (gateway, rssi) in enumerate(sorted(readings.items())):
                    at = T0 + window * 1000
                    server.ingest.handle(*ble(gateway, window * 100 + seq, at, {TAG: rssi}), at)
            return [p.zone for p in seen[start:] if p.device == TAG and p.zone is not None]

        def localizer() -> dict:  # type: ignore[type-arg]
            found = api.get("/api/v1/localizer", headers=ADMIN)
            assert found.status_code == 200, found.text
            return found.json()  # type: ignore[no-any-return]

        assert ZONE not in feed(10)  # the default model takes the loud gateway for near
        assert api.get("/health").json()["radio_not_applied"] == []

        calibration.write_text("store: [not, a, mapping\n")
        _until(lambda: localizer()["failures"] == 1, "the broken file to be seen")
        assert api.get("/health").json()["radio_not_applied"] == [STORE]
        (found,) = localizer()["stores"]
        assert found["applied"] is False and found["calibration"] == str(calibration)
        assert found["error"].startswith(f"calibration {calibration} not applied")
        metrics = api.get("/metrics", headers=ADMIN).text
        assert f'omnizone_localizer_radio_not_applied{{store="{STORE}"}} 1.0' in metrics
        assert ZONE not in feed(5)  # still placing, with the running localizer
        # a layout saved now would not start: refused, naming the file, nothing stored
        layouts = f"/api/v1/stores/{STORE}/layouts"
        body = {"plan": plan.model_dump(mode="json")}
        refused = api.post(layouts, json=body, headers=ADMIN)
        assert refused.status_code == 422
        assert refused.json()["detail"][0].startswith(f"localization: {calibration}")
        assert api.get(layouts, headers=ADMIN).json() == []

        calibration.write_text(dump_calibration(_loud(plan)))
        _until(lambda: localizer()["reloads"] == 1, "the new calibration to be applied")
        assert api.get("/health").json()["radio_not_applied"] == []
        assert localizer()["stores"][0]["error"] is None
        assert feed(10)[-1] == ZONE  # placed with the new calibration, no restart
        metrics = api.get("/metrics", headers=ADMIN).text
        assert "omnizone_localizer_reloads_total 1.0" in metrics


def test_a_layout_whose_radio_broke_meanwhile_runs_on_the_defaults_and_says_so(
    plan: StorePlan, tmp_path: Path
) -> None:
    store_file = _store_file(plan, tmp_path, "cal.yaml")
    calibration = tmp_path / "cal.yaml"
    calibration.write_text(dump_calibration(_loud(plan)))
    parts = build_server(settings_for(tmp_path, localizer="grid", store_files=[store_file]))
    try:
        calibration.write_text("anchors: {}\n")  # after the save's check, before it applies
        renamed = plan.model_copy(update={"store": plan.store.model_copy(update={"name": "R"})})
        assert parts.radio.layout_saved(STORE, renamed) is False
        assert parts.ingest.stores[STORE].store.name == "R"  # the layout runs all the same
        error = parts.radio.status.errors[STORE]
        assert error.startswith(f"calibration {calibration} not applied, the new layout runs")
        assert parts.radio.status.failures == 1
    finally:
        parts.close()
