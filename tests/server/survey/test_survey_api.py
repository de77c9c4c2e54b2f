"""The guided survey through the whole server (``build_server`` in
``ServerRuntime``, real SQLite), ingest fed as the MQTT adapter feeds it: a
staff key starts a survey, a registered phone with no consent pairs with
its code, its windows at every gateway become samples of the zone picked,
and finishing writes a survey and a calibration the store can read back.
Plus who may do what, what is refused, and the bounds."""

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml

from omnizone.contract.eid import eid_device_key
from omnizone.server.domain.localize.propagation import anchor_positions, mean_rssi_dbm
from omnizone.server.domain.localize.survey import load_survey, simulate_survey, write_survey
from omnizone.server.runtime import ServerRuntime
from omnizone.store import StorePlan, load_store
from omnizone.store.calibration import load_calibration
from omnizone.store.geometry import centroid
from tests.server.conftest import STORE, ble
from tests.server.test_bootstrap import WAIT_S, Phone, settings_for

ADMIN = {"X-API-Key": "survey-admin-0001"}
SURVEYOR = {"X-API-Key": "survey-staff-0001"}
READER = {"X-API-Key": "survey-reader-0001"}
BASE = f"/api/v1/stores/{STORE}/surveys"


@dataclass
class Running:
    runtime: ServerRuntime
    client: httpx.Client
    plan: StorePlan
    seq: int = 0
    at_ms: int = 0

    def phone(self) -> Phone:
        """Registered, and no consent at all: staff equipment."""
        registered = self.client.post("/api/v1/shoppers", json={"store": STORE})
        assert registered.status_code == 201, registered.text
        return Phone.registered(registered.json())

    def heard_in(self, phone: Phone, zone: str, windows: int) -> None:
        """Every gateway within range hears the phone at the zone's centre."""
        anchors, xy = anchor_positions(self.plan)
        here = np.array(centroid(self.plan.zone(zone).polygon))
        rssi = mean_rssi_dbm(np.linalg.norm(xy - here, axis=1), -59.0, 2.2)
        gateways = {g.id for g in self.plan.gateways if g.ble}
        rng = np.random.default_rng(len(zone))
        for _ in range(windows):
            self.at_ms += 1000
            for anchor, mean in zip(anchors, rssi, strict=True):
                if anchor in gateways and mean > -90:
                    self.seq += 1
                    key = eid_device_key(phone.eid, self.at_ms)
                    value = round(float(mean + rng.normal(0, 2)), 1)
                    topic, payload = ble(anchor, self.seq, self.at_ms, {key: value})
                    self.runtime.parts.ingest.handle(topic, payload, self.at_ms)


@pytest.fixture
def running(plan: StorePlan, tmp_path: Path) -> Iterator[Running]:
    settings = settings_for(
        tmp_path,
        api_keys={
            ADMIN["X-API-Key"]: ["admin"],
            SURVEYOR["X-API-Key"]: ["survey"],
            READER["X-API-Key"]: ["read"],
        },
        survey_dir=tmp_path / "surveys",
    )
    with (
        ServerRuntime(settings, stores={plan.id: plan}) as runtime,
        httpx.Client(base_url=runtime.api_url, timeout=WAIT_S) as client,
    ):
        yield Running(runtime, client, plan, at_ms=time.time_ns() // 1_000_000 // 1000 * 1000)


def _ok(response: httpx.Response, code: int = 200) -> Any:
    assert response.status_code == code, response.text
    return response.json() if response.content else None


def _paired(running: Running, phone: Phone, headers: dict[str, str] = ADMIN) -> tuple[str, str]:
    started = _ok(running.client.post(BASE, headers=headers), 201)
    assert started["state"] == "waiting_for_phone" and len(started["code"]) == 6
    assert started["pair_path"] == f"/app/#survey={started['code']}"
    paired = _ok(
        running.client.post(
            "/api/v1/surveys/pair", json={"code": started["code"].lower()}, headers=phone.auth
        )
    )
    assert paired["state"] == "paired" and paired["code"] is None and paired["pair_path"] is None
    return started["id"], paired["token"]


def test_a_guided_walk_writes_a_survey_and_a_calibration(running: Running) -> None:
    phone = running.phone()
    survey, token = _paired(running, phone, SURVEYOR)
    for zone in ("shoes", "menswear"):
        _ok(running.client.post(f"{BASE}/{survey}/zone", json={"zone": zone}, headers=SURVEYOR))
        running.heard_in(phone, zone, windows=36)
    progress = _ok(running.client.get("/api/v1/surveys/current", headers={"X-Survey-Token": token}))
    zones = {z["zone"]: z for z in progress["zones"]}
    assert progress["zone"] == "menswear"
    assert zones["shoes"]["enough"] and zones["shoes"]["anchors"] >= 3
    # the walk-in is left out, and the newest windows wait for the other gateways
    assert 30 <= zones["shoes"]["windows"] <= 36 - 3
    assert not zones["denim"]["enough"] and zones["denim"]["windows"] == 0
    # the staff phone gave no consent: nothing of it is stored or localized
    assert running.runtime.parts.ingest.counters.not_consented_dropped > 0
    assert running.runtime.parts.ingest.live(STORE)[0] == {}

    report = _ok(running.client.post(f"{BASE}/{survey}/finish", headers=SURVEYOR))
    walked = load_survey(report["survey"], running.plan)
    assert set(walked.zones) == {"shoes", "menswear"} and len(walked) == report["samples"]
    calibration = load_calibration(Path(report["written"]), running.plan)
    assert calibration.store == STORE and set(report["anchors"]) >= set(calibration.anchors)
    assert report["positions"] == "zone centres"
    assert set(report["expected_zone_accuracy"]) >= {"default_model", "calibrated_model"}
    assert any("store file names no" in note for note in report["notes"])
    finished = _ok(running.client.get(f"{BASE}/{survey}", headers=SURVEYOR))
    assert finished["state"] == "finished" and finished["report"] == report
    # the phone sees the end, and its windows no longer reach any survey
    assert running.runtime.parts.surveys.wanted(STORE, phone.shopper_id) is False


def test_staff_routes_need_the_survey_or_admin_scope(running: Running) -> None:
    assert running.client.post(BASE).status_code == 401
    refused = running.client.post(BASE, headers=READER)
    assert refused.status_code == 403 and "survey" in refused.json()["detail"]
    survey = _ok(running.client.post(BASE, headers=ADMIN), 201)["id"]
    assert running.client.get(f"{BASE}/{survey}", headers=READER).status_code == 403
    assert running.client.get(f"{BASE}/{survey}", headers=SURVEYOR).status_code == 200


def test_the_phone_needs_its_shopper_token_then_the_survey_token(running: Running) -> None:
    code = _ok(running.client.post(BASE, headers=ADMIN), 201)["code"]
    assert running.client.post("/api/v1/surveys/pair", json={"code": code}).status_code == 401
    phone = running.phone()
    wrong = running.client.post("/api/v1/surveys/pair", json={"code": "ZZZZZZ"}, headers=phone.auth)
    assert wrong.status_code == 404 and "pairing code" in wrong.json()["detail"]
    assert running.client.get("/api/v1/surveys/current").status_code == 401
    bad = running.client.get("/api/v1/surveys/current", headers={"X-Survey-Token": "nope"})
    assert bad.status_code == 401
    _ok(running.client.post("/api/v1/surveys/pair", json={"code": code}, headers=phone.auth))
    again = running.client.post("/api/v1/surveys/pair", json={"code": code}, headers=phone.auth)
    assert again.status_code == 404  # a code pairs one phone once


def test_what_is_refused_and_why(running: Running) -> None:
    assert running.client.post("/api/v1/stores/nowhere/surveys", headers=ADMIN).status_code == 404
    waiting = _ok(running.client.post(BASE, headers=ADMIN), 201)["id"]
    early = running.client.post(f"{BASE}/{waiting}/zone", json={"zone": "shoes"}, headers=ADMIN)
    assert early.status_code == 409 and "paired" in early.json()["detail"]
    survey, _ = _paired(running, running.phone())
    # at most two open surveys per store
    third = running.client.post(BASE, headers=ADMIN)
    assert third.status_code == 409 and "open surveys" in third.json()["detail"]
    unknown = running.client.post(f"{BASE}/{survey}/zone", json={"zone": "attic"}, headers=ADMIN)
    assert unknown.status_code == 422 and "attic" in unknown.json()["detail"]
    extra = running.client.post(
        f"{BASE}/{survey}/zone", json={"zone": "shoes", "x": 1}, headers=ADMIN
    )
    assert extra.status_code == 422
    empty = running.client.post(f"{BASE}/{survey}/finish", headers=ADMIN)
    assert empty.status_code == 409 and "no window" in empty.json()["detail"]
    assert running.client.get(f"{BASE}/nosuch", headers=ADMIN).status_code == 404
    assert running.client.post(f"{BASE}/{survey}/cancel", headers=ADMIN).status_code == 204
    assert _ok(running.client.get(f"{BASE}/{survey}", headers=ADMIN))["state"] == "cancelled"
    closed = running.client.post(f"{BASE}/{survey}/zone", json={"zone": "shoes"}, headers=ADMIN)
    assert closed.status_code == 409 and "cancelled" in closed.json()["detail"]


def test_a_session_keeps_at_most_its_bound_of_windows(
    running: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    phone = running.phone()
    survey, _ = _paired(running, phone)
    session = running.runtime.parts.surveys._sessions[survey]
    monkeypatch.setattr(session.walk, "max_windows", 10)
    _ok(running.client.post(f"{BASE}/{survey}/zone", json={"zone": "shoes"}, headers=ADMIN))
    running.heard_in(phone, "shoes", windows=20)
    progress = _ok(running.client.get(f"{BASE}/{survey}", headers=ADMIN))
    assert progress["windows"] == 10 and progress["full"] and progress["over_limit_windows"] > 0


def test_guessing_pairing_codes_is_rate_limited(plan: StorePlan, tmp_path: Path) -> None:
    settings = settings_for(
        tmp_path,
        api_keys={ADMIN["X-API-Key"]: ["admin"]},
        open_route_rate_per_minute=0.001,
        open_route_burst=3,
    )
    with (
        ServerRuntime(settings, stores={plan.id: plan}) as runtime,
        httpx.Client(base_url=runtime.api_url, timeout=WAIT_S) as client,
    ):
        phone = Running(runtime, client, plan).phone()  # one token of three
        answers = [
            client.post("/api/v1/surveys/pair", json={"code": f"ZZZZZ{n}"}, headers=phone.auth)
            for n in range(2, 5)
        ]
    assert [a.status_code for a in answers] == [404, 404, 429]
    assert answers[-1].headers["retry-after"]


def test_the_survey_the_store_file_names_is_rewritten_and_the_old_one_kept(
    plan: StorePlan, tmp_path: Path
) -> None:
    """Where the store file points, the running server's reload reads: the
    guided survey is written there too, and what was there is kept."""
    folder = tmp_path / "store"
    folder.mkdir()
    write_survey(simulate_survey(plan, 5, seed=1), folder / "walk.csv")
    before = (folder / "walk.csv").read_text()
    data = plan.model_dump(mode="json")
    data["localization"] = {"survey": "walk.csv"}
    (folder / "store.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    named = load_store(folder / "store.yaml")
    settings = settings_for(
        tmp_path, api_keys={ADMIN["X-API-Key"]: ["admin"]}, store_files=[folder / "store.yaml"]
    )
    with (
        ServerRuntime(settings) as runtime,
        httpx.Client(base_url=runtime.api_url, timeout=WAIT_S) as client,
    ):
        running = Running(runtime, client, named, at_ms=time.time_ns() // 1_000_000 // 1000 * 1000)
        phone = running.phone()
        survey, _ = _paired(running, phone)
        _ok(client.post(f"{BASE}/{survey}/zone", json={"zone": "denim"}, headers=ADMIN))
        running.heard_in(phone, "denim", windows=20)
        report = _ok(client.post(f"{BASE}/{survey}/finish", headers=ADMIN))
    assert report["installed"] == [str((folder / "walk.csv").resolve())]
    assert set(load_survey(folder / "walk.csv", plan).zones) == {"denim"}
    (previous,) = report["previous"]
    assert Path(previous).read_text() == before
    assert Path(previous).parent == tmp_path / "surveys"  # beside the database
    assert any("names no calibration" in note for note in report["notes"])


def test_a_survey_folder_that_cannot_be_written_is_named_and_the_survey_stays_open(
    running: Running, tmp_path: Path
) -> None:
    blocked = tmp_path / "surveys"
    blocked.write_text("a file, not a folder")
    phone = running.phone()
    survey, _ = _paired(running, phone)
    _ok(running.client.post(f"{BASE}/{survey}/zone", json={"zone": "denim"}, headers=ADMIN))
    running.heard_in(phone, "denim", windows=12)
    failed = running.client.post(f"{BASE}/{survey}/finish", headers=ADMIN)
    assert failed.status_code == 500 and str(blocked) in failed.json()["detail"]
    assert _ok(running.client.get(f"{BASE}/{survey}", headers=ADMIN))["state"] == "paired"
    blocked.unlink()
    report = _ok(running.client.post(f"{BASE}/{survey}/finish", headers=ADMIN))
    assert Path(report["survey"]).parent == blocked
