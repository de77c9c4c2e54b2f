"""Gateway-to-gateway sightings through ingest: never a shopper, always
self-calibration; the fit reaches the running localizer and the API."""

import math

import numpy as np
import pytest
from fastapi.testclient import TestClient

from omnizone.contract.ids import gateway_beacon_key
from omnizone.server.adapters.db import SqlRepository
from omnizone.server.entrypoints.api import create_app
from omnizone.server.entrypoints.self_calibration_api import (
    SelfCalibrationCollector,
    self_calibration_router,
)
from omnizone.server.service.ingest import IngestService
from omnizone.server.service.locators import ZonePlacement
from omnizone.server.service.queries import StoreQueries
from omnizone.server.service.self_calibration import SelfCalibration, SelfCalibrationJob
from omnizone.store import StorePlan
from omnizone.store.calibration import StoreCalibration

from .conftest import DEVICE_A, STORE, T0, ble

READ = {"X-API-Key": "read-key-123456"}


def _beacon_rounds(
    plan: StorePlan, service: IngestService, rounds: int, *, power: float = -52.0, n: float = 1.7
) -> None:
    """Every gateway hears every other once a second: power - 10 n log10(d)."""
    rng = np.random.default_rng(3)
    seq = {g.id: 0 for g in plan.gateways}
    for k in range(rounds):
        for receiver in plan.gateways:
            heard = {}
            for sender in plan.gateways:
                if sender.id == receiver.id:
                    continue
                d = math.dist(sender.position, receiver.position)
                heard[plan.gateway_beacon(sender)] = round(
                    power - 10 * n * math.log10(d) + rng.normal(0, 2), 1
                )
            if receiver.id == "gw-womenswear":
                heard[DEVICE_A] = -45.0  # a shopper in the same message
            service.handle(*ble(receiver.id, seq[receiver.id], T0 + k * 1000, heard), T0)
            seq[receiver.id] += 1


def test_gateway_beacons_feed_self_calibration_and_never_become_visits(
    plan: StorePlan, repo: SqlRepository
) -> None:
    fit = SelfCalibration({plan.id: plan})
    placed: list[str] = []

    def placement(_store: str, p: ZonePlacement) -> None:
        placed.append(p.device)

    service = IngestService(
        {plan.id: plan},
        repo,
        placement_listeners=[placement],
        gateway_hearing_listeners=[fit.observe],
    )
    _beacon_rounds(plan, service, 40)
    service.finish(plan.id)
    beacons = set(plan.gateway_beacons)
    assert service.counters.gateway_beacons == 40 * 10 * 9
    assert beacons.isdisjoint(placed)  # no zone placement, hence no visit and no offer
    assert DEVICE_A in placed  # the shopper in the same messages still is one
    visits = repo.recent_visits(STORE, 10**9, None)
    assert visits and {v.device for v in visits} == {DEVICE_A}
    calibration = fit.fit(plan.id)
    assert calibration is not None and calibration.source == "self"
    for gateway in plan.gateways:
        entry = calibration.anchors[gateway.id]
        assert entry.power_1m_dbm(calibration.power_1m_dbm) == pytest.approx(-52.0, abs=2.0)
        assert abs(entry.exponent - 1.7) <= 0.2


def test_gateway_beacon_keys_are_fixed_per_store_and_gateway(plan: StorePlan) -> None:
    key = gateway_beacon_key(STORE, "gw-shoes")
    assert key == gateway_beacon_key(STORE, "gw-shoes")
    assert key != gateway_beacon_key(STORE, "gw-denim")
    assert key != gateway_beacon_key("another-store", "gw-shoes")
    assert plan.gateway_beacons[key] == "gw-shoes"
    assert key.startswith("eddystone-uid:")


def test_the_job_applies_a_fit_to_the_running_localizer_and_the_api_shows_it(
    plan: StorePlan, repo: SqlRepository
) -> None:
    fit = SelfCalibration({plan.id: plan})
    service = IngestService({plan.id: plan}, repo, gateway_hearing_listeners=[fit.observe])
    applied: list[StoreCalibration] = []
    job = SelfCalibrationJob(fit, {plan.id: plan}, lambda _store, c: applied.append(c))
    assert job.applies_to(plan.id)  # the store file names no calibration: auto applies
    _beacon_rounds(plan, service, 30)
    assert job.run_once() == [plan.id]
    assert job.run_once() == []  # within the minute: no refit
    assert applied and applied[0].source == "self"

    queries = StoreQueries({plan.id: plan}, repo, service.event_time)
    app = create_app(
        queries,
        {"read-key-123456": ["read"]},
        routers=[lambda require: self_calibration_router(job, require)],
        collectors=[SelfCalibrationCollector(job)],
    )
    client = TestClient(app)
    url = f"/api/v1/stores/{STORE}/gateways/calibration"
    assert client.get(url).status_code == 401
    body = client.get(url, headers=READ).json()
    assert body["applied"] is True and body["fitted_at"] is not None
    rows = {r["gateway"]: r for r in body["gateways"]}
    assert set(rows) == {g.id for g in plan.gateways}
    assert all(r["fitted"] and r["pairs_heard"] == 9 for r in rows.values())
    assert abs(rows["gw-shoes"]["exponent"] - 1.7) <= 0.2
    assert body["alerts"] == []
    assert (
        client.get("/api/v1/stores/nowhere/gateways/calibration", headers=READ).status_code == 404
    )
    metrics = client.get("/metrics", headers=READ).text
    assert 'omnizone_gateway_fitted_power_dbm{gateway="gw-shoes",store="paris-rivoli"}' in metrics


def test_a_named_calibration_file_outranks_self_calibration_unless_the_store_opts_in(
    plan: StorePlan,
) -> None:
    surveyed = plan.model_copy(
        update={"localization": plan.localization.model_copy(update={"calibration": "c.yaml"})}
    )
    opted = plan.model_copy(
        update={
            "localization": surveyed.localization.model_copy(update={"self_calibration": "always"})
        }
    )
    fit = SelfCalibration({plan.id: plan})
    assert not SelfCalibrationJob(fit, {plan.id: surveyed}, lambda *_: None).applies_to(plan.id)
    assert SelfCalibrationJob(fit, {plan.id: opted}, lambda *_: None).applies_to(plan.id)


def test_a_gateway_beacon_that_is_another_devices_key_is_refused(plan: StorePlan) -> None:
    data = plan.model_dump(mode="json")
    data["gateways"][1]["beacon"] = plan.gateway_beacon(plan.gateways[0])
    womenswear = r"gateways\[1\] \(gw-womenswear\)\.beacon: "
    with pytest.raises(ValueError, match=womenswear + ".* is also gateway gw-entrance's"):
        StorePlan.model_validate(data)
    data["gateways"][1]["beacon"] = plan.beacons[0].device
    with pytest.raises(ValueError, match=r"is also beacon bcn-outerwear-wall's"):
        StorePlan.model_validate(data)
