"""The HTTP API over a real SQLite file, through FastAPI's TestClient."""

import pytest
from fastapi.testclient import TestClient

from omnizone.server.adapters.db import SqlRepository
from omnizone.server.entrypoints.api import create_app
from omnizone.server.service.ingest import IngestService
from omnizone.server.service.queries import StoreQueries
from omnizone.store import StorePlan

from .conftest import DEVICE_A, DEVICE_B, STORE, T0, ble

READ_KEY = "read-key-123456"
ADMIN_KEY = "admin-key-123456"
READ = {"X-API-Key": READ_KEY}
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture
def client(plan: StorePlan, repo: SqlRepository, service: IngestService) -> TestClient:
    # A in womenswear for 20 s then accessories; B passes through the entrance.
    for t in range(0, 21):
        service.handle(*ble("gw-womenswear", t, T0 + t * 1000, {DEVICE_A: -50}), T0)
    for t in range(21, 41):
        service.handle(*ble("gw-accessories", t, T0 + t * 1000, {DEVICE_A: -50}), T0)
    service.handle(*ble("gw-entrance", 0, T0 + 40_000, {DEVICE_B: -60}), T0)
    service.handle("omnizone/v1/paris-rivoli/gw-shoes/ble", b"garbage", T0)
    queries = StoreQueries({plan.id: plan}, repo, service.event_time)
    keys = {READ_KEY: ["read"], ADMIN_KEY: ["admin"]}
    app = create_app(queries, keys, mqtt_connected=lambda: True)
    return TestClient(app)


def test_health_needs_no_key(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "problems": [],
        "mqtt_connected": True,
        "radio_not_applied": None,
    }


def test_health_is_not_ok_while_the_broker_is_disconnected(
    plan: StorePlan, repo: SqlRepository
) -> None:
    """Issue 16: ``mqtt_connected: false`` under ``status: ok`` hid that no
    data comes in; now it is 503 and says why."""
    queries = StoreQueries({plan.id: plan}, repo, lambda _s: None)
    app = create_app(queries, {READ_KEY: ["read"]}, mqtt_connected=lambda: False)
    response = TestClient(app).get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "degraded" and body["mqtt_connected"] is False
    assert "broker is disconnected" in body["problems"][0]


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/stores",
        f"/api/v1/stores/{STORE}/occupancy",
        f"/api/v1/stores/{STORE}/visits",
        f"/api/v1/stores/{STORE}/zones/summary",
        "/api/v1/ingest/stats",
        "/api/v1/dead-letters",
        "/metrics",
    ],
)
def test_every_endpoint_but_health_needs_a_valid_key(client: TestClient, path: str) -> None:
    missing = client.get(path)
    assert missing.status_code == 401 and "missing API key" in missing.json()["detail"]
    assert client.get(path, headers={"X-API-Key": "wrong-key-123"}).status_code == 401
    bad_bearer = client.get(path, headers={"Authorization": "Bearer nope-nope-nope"})
    assert bad_bearer.status_code == 401
    assert client.get(path, headers=ADMIN).status_code == 200


def test_dead_letters_need_the_admin_scope(client: TestClient) -> None:
    response = client.get("/api/v1/dead-letters", headers=READ)
    assert response.status_code == 403 and "'admin'" in response.json()["detail"]
    [letter] = client.get("/api/v1/dead-letters", headers=ADMIN).json()
    assert letter["payload_text"] == "garbage" and "not JSON" in letter["reason"]


def test_occupancy_lists_every_zone_at_event_time(client: TestClient, plan: StorePlan) -> None:
    body = client.get(f"/api/v1/stores/{STORE}/occupancy", headers=READ).json()
    assert body["store"] == STORE and body["at_ms"] == T0 + 40_000
    assert [z["zone"] for z in body["zones"]] == [z.id for z in plan.zones]
    devices = {z["zone"]: z["devices"] for z in body["zones"] if z["devices"]}
    assert devices == {"accessories": 1, "entrance": 1}
    assert body["zones"][0]["name"] == "Entrance"


def test_visits_newest_first_with_zone_filter_and_limit(client: TestClient) -> None:
    body = client.get(f"/api/v1/stores/{STORE}/visits", headers=READ).json()
    assert [(v["zone"], v["status"]) for v in body] == [
        ("entrance", "open"),
        ("accessories", "open"),
        ("womenswear", "visit"),
    ]
    womenswear = client.get(
        f"/api/v1/stores/{STORE}/visits", params={"zone": "womenswear"}, headers=READ
    ).json()
    assert womenswear == [
        {
            "device": DEVICE_A,
            "zone": "womenswear",
            "entered_ms": T0,
            "left_ms": T0 + 20_000,
            "dwell_s": 20.0,
            "status": "visit",
        }
    ]
    assert len(client.get(f"/api/v1/stores/{STORE}/visits?limit=1", headers=READ).json()) == 1
    assert client.get(f"/api/v1/stores/{STORE}/visits?limit=0", headers=READ).status_code == 422
    unknown_zone = client.get(f"/api/v1/stores/{STORE}/visits?zone=attic", headers=READ)
    assert unknown_zone.status_code == 404 and "no zone 'attic'" in unknown_zone.json()["detail"]


def test_zone_summary(client: TestClient) -> None:
    body = client.get(f"/api/v1/stores/{STORE}/zones/summary", headers=READ).json()
    rows = {row["zone"]: row for row in body}
    assert rows["womenswear"] == {
        "zone": "womenswear",
        "visits": 1,
        "pass_bys": 0,
        "open_visits": 0,
        "mean_dwell_s": 20.0,
    }
    assert rows["accessories"]["open_visits"] == 1
    assert rows["shoes"] == {
        "zone": "shoes",
        "visits": 0,
        "pass_bys": 0,
        "open_visits": 0,
        "mean_dwell_s": None,
    }


def test_unknown_store_is_404_with_a_clear_message(client: TestClient) -> None:
    for path in ("occupancy", "visits", "zones/summary"):
        response = client.get(f"/api/v1/stores/lyon/{path}", headers=READ)
        assert response.status_code == 404
        assert response.json()["detail"] == "unknown store 'lyon' (known: paris-rivoli)"


def test_stores_stats_and_metrics(client: TestClient) -> None:
    [store] = client.get("/api/v1/stores", headers=READ).json()
    assert store["id"] == STORE and len(store["zones"]) == 10
    stats = client.get("/api/v1/ingest/stats", headers=READ).json()
    assert stats == {
        "ingested": 42,
        "duplicates": 0,
        "dead_lettered": 1,
        "gaps": 0,
        "unresolved_dropped": None,
        "not_consented_dropped": None,
        "replayed_dropped": None,
    }
    metrics = client.get("/metrics", headers=READ)
    assert metrics.status_code == 200
    assert "omnizone_dead_letters 1.0" in metrics.text
    assert 'omnizone_zone_devices{store="paris-rivoli",zone="accessories"} 1.0' in metrics.text


def test_openapi_is_served(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert "/api/v1/stores/{store}/occupancy" in schema["paths"]


def test_dead_letters_show_the_original_size_of_a_capped_payload(
    client: TestClient, service: IngestService
) -> None:
    service.handle("omnizone/v1/paris-rivoli/gw-shoes/ble", b"{" * 100_000, T0)
    newest = client.get("/api/v1/dead-letters", params={"limit": 1}, headers=ADMIN).json()[0]
    assert newest["original_bytes"] == 100_000 and newest["truncated"] is True
    assert len(newest["payload_text"]) == 4096
