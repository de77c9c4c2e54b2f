"""``POST /api/v1/me/beacons`` through a real server (uvicorn, SQLite, the
grid filter), driven by the reference client as a native app would; the
refusals answer in one line; export and erasure include the phone's sightings."""

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from omnizone.contract.phone_client import PhoneBeaconClient, http_post
from omnizone.server.runtime import ServerRuntime
from omnizone.store import StorePlan
from tests.server.conftest import STORE
from tests.server.test_bootstrap import WAIT_S, settings_for

READER = {"X-API-Key": "phones-reader-0001"}


@dataclass
class Running:
    runtime: ServerRuntime
    client: httpx.Client
    plan: StorePlan

    def shopper(self, location: bool = True) -> tuple[str, str]:
        body = self.client.post("/api/v1/shoppers", json={"store": STORE}).json()
        auth = {"Authorization": f"Bearer {body['token']}"}
        consent = {"location_analytics": location, "personalized_offers": False}
        assert self.client.put("/api/v1/me/consent", json=consent, headers=auth).status_code == 200
        return body["shopper_id"], body["token"]

    def heard_at(self, xy: tuple[float, float]) -> dict[str, tuple[float, int]]:
        heard = {}
        for beacon in self.plan.beacons:
            rssi = beacon.tx_power - 22 * math.log10(max(0.5, math.dist(xy, beacon.position)))
            if rssi > -90:
                heard[beacon.device] = (round(rssi, 1), 10)
        return heard


@pytest.fixture
def running(plan: StorePlan, tmp_path: Path) -> Iterator[Running]:
    settings = settings_for(tmp_path, localizer="grid", api_keys={READER["X-API-Key"]: ["read"]})
    with (
        ServerRuntime(settings, stores={plan.id: plan}) as runtime,
        httpx.Client(base_url=runtime.api_url, timeout=WAIT_S) as client,
    ):
        yield Running(runtime, client, plan)


def _now_s() -> int:
    return time.time_ns() // 1_000_000 // 1000 * 1000


def test_a_listening_phone_is_placed_and_its_sightings_go_with_erasure(running: Running) -> None:
    shopper, token = running.shopper()
    client = PhoneBeaconClient(STORE, http_post(running.runtime.api_url, token), batch_windows=2)
    start = _now_s() - 40_000
    client.region("enter", start - 500)
    for second in range(40):
        client.window(start + second * 1000, running.heard_at((15.0, 16.0)))
    assert client.flush(), client.counters
    assert client.counters.sent == 21 and client.counters.refused == 0
    running.runtime.parts.ingest.finish(STORE)
    present = running.runtime.parts.ingest.present(STORE)
    assert present[shopper].zone == "shoes"
    stats = running.client.get(f"/api/v1/stores/{STORE}/phones/stats", headers=READER).json()
    assert stats["windows"] == 40 and stats["region_events"]["enter"] == 1

    auth = {"Authorization": f"Bearer {token}"}
    exported = running.client.get("/api/v1/me/export", headers=auth).json()
    assert {r["beacon"] for r in exported["beacon_sightings"]} >= {"bcn-shoes"}
    phones = running.runtime.parts.storage.phones
    assert phones.device_sightings(shopper)
    assert running.client.delete("/api/v1/me", headers=auth).status_code == 204
    assert phones.device_sightings(shopper) == []
    assert phones.applied(shopper, client.results[0].batch) is None


def _post(running: Running, token: str | None, body: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return running.client.post("/api/v1/me/beacons", json=body, headers=headers)


def test_refusals_say_what_is_wrong(running: Running) -> None:
    _, token = running.shopper()
    window = {"start_ms": _now_s(), "beacons": []}
    good = {"store": STORE, "batch": "api-test-0001", "windows": [window]}
    assert _post(running, None, good).status_code == 401
    assert _post(running, "nope.nope", good).status_code == 401
    bad = _post(
        running, token, {**good, "windows": [{**window, "start_ms": window["start_ms"] + 1}]}
    )
    assert bad.status_code == 422 and "multiple of 1000" in bad.text
    other = _post(running, token, {**good, "store": "lyon-part-dieu"})
    assert other.status_code == 403 and "registered" in other.json()["detail"]
    first, again = _post(running, token, good), _post(running, token, good)
    assert first.status_code == again.status_code == 200
    assert not first.json()["duplicate"] and again.json()["duplicate"]

    _, no_location = running.shopper(location=False)
    refused = _post(running, no_location, {**good, "batch": "api-test-0002"})
    assert refused.status_code == 403 and "location_analytics" in refused.json()["detail"]
    assert running.client.get(f"/api/v1/stores/{STORE}/phones/stats").status_code == 401


def test_the_openapi_spec_shows_the_contract_with_an_example(running: Running) -> None:
    spec = running.client.get("/openapi.json").json()
    route = spec["paths"]["/api/v1/me/beacons"]["post"]
    body = route["requestBody"]["content"]["application/json"]
    assert body["schema"]["$ref"].endswith("/PhoneReport")
    assert body["examples"]["batch"]["value"]["windows"]
    assert {"401", "403", "413", "429"} <= set(route["responses"])
