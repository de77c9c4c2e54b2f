"""Campaign routes over the real engine: define, validate, pause and resume
campaigns, read the decision log, the catalog and the app's shelf taps."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from omnizone.server.domain.identity import Purpose
from omnizone.server.entrypoints.api import _authorizer
from omnizone.server.entrypoints.campaign_api import campaign_router
from omnizone.store import StorePlan
from tests.server.offers.test_engine import STORE, Store

ADMIN = {"X-API-Key": "admin-key-0001"}
READER = {"X-API-Key": "read-key-0001"}
JACKET = "09506000134352"
TAP_CAMPAIGN = {
    "id": "jacket-tap",
    "name": "Jacket tap",
    "priority": 50,
    "trigger": {"kind": "nfc_tap", "tap_points": ["tap-outerwear-jackets"]},
    "content": {"title": "The jacket, 20% off", "body": "Today only", "product_gtin": JACKET},
    "limits": {"per_visit": 1},
    "holdout_fraction": 0,
}


@pytest.fixture
def setup(plan: StorePlan, tmp_path: Path) -> Iterator[tuple[Store, TestClient]]:
    store = Store(plan, tmp_path)
    require = _authorizer(
        {"admin-key-0001": frozenset({"admin"}), "read-key-0001": frozenset({"read"})}
    )
    app = FastAPI()
    app.include_router(
        campaign_router(store.engine, lambda _store: [], store.shoppers.authenticate, require)
    )
    with TestClient(app) as client:
        yield store, client
    store.delivery.close()


def test_campaigns_are_created_validated_paused_and_resumed(
    setup: tuple[Store, TestClient],
) -> None:
    _store, client = setup
    url = f"/api/v1/stores/{STORE}/campaigns"
    assert client.post(url, json=TAP_CAMPAIGN, headers=READER).status_code == 403
    created = client.post(url, json=TAP_CAMPAIGN, headers=ADMIN)
    assert created.status_code == 201 and created.json()["status"] == "active"
    assert client.post(url, json=TAP_CAMPAIGN, headers=ADMIN).status_code == 409
    bad = {**TAP_CAMPAIGN, "id": "bad", "trigger": {"kind": "dwell", "zones": ["denim"]}}
    refused = client.post(url, json=bad, headers=ADMIN)
    assert refused.status_code == 422
    assert any("min_dwell_s" in problem for problem in refused.json()["detail"])
    unknown_tap = {**TAP_CAMPAIGN, "id": "t2", "trigger": {"kind": "nfc_tap", "tap_points": ["x"]}}
    assert client.post(url, json=unknown_tap, headers=ADMIN).status_code == 422
    paused = client.post(f"{url}/jacket-tap/pause", headers=ADMIN)
    assert paused.json()["status"] == "paused"
    listed = client.get(url, headers=READER).json()
    assert [(c["id"], c["status"]) for c in listed] == [("jacket-tap", "paused")]
    assert client.post(f"{url}/jacket-tap/resume", headers=ADMIN).json()["status"] == "active"
    assert client.post(f"{url}/nope/pause", headers=ADMIN).status_code == 404
    assert client.get("/api/v1/stores/elsewhere/campaigns", headers=READER).status_code == 404


def test_a_shelf_tap_from_the_app_sends_the_offer_and_the_log_explains(
    setup: tuple[Store, TestClient],
) -> None:
    store, client = setup
    client.post(f"/api/v1/stores/{STORE}/campaigns", json=TAP_CAMPAIGN, headers=ADMIN)
    registered = store.shoppers.register(STORE)
    store.shoppers.set_consent(registered.shopper_id, {Purpose.PERSONALIZED_OFFERS: True})
    phone = {"Authorization": f"Bearer {registered.token}"}
    tap = {"store": STORE, "gtin": JACKET, "tap_point": "tap-outerwear-jackets"}
    assert client.post("/api/v1/me/taps", json=tap).status_code == 401
    first = client.post("/api/v1/me/taps", json=tap, headers=phone).json()
    assert first["offer_sent"] is True
    again = client.post("/api/v1/me/taps", json=tap, headers=phone).json()
    assert again["offer_sent"] is False
    assert [d["outcome"] for d in again["decisions"]] == ["capped_visit"]
    offers = store.delivery.offers_after(registered.shopper_id, 0, 10)
    assert [o.product_gtin for o in offers] == [JACKET]
    log = client.get(
        f"/api/v1/stores/{STORE}/decisions",
        params={"shopper": registered.shopper_id},
        headers=READER,
    ).json()
    assert [d["outcome"] for d in log] == ["capped_visit", "sent"]  # newest first


def test_the_catalog_is_public_and_checks_gtins(setup: tuple[Store, TestClient]) -> None:
    _store, client = setup
    product = client.get(f"/api/v1/products/{JACKET}")
    assert product.status_code == 200 and product.json()["gtin"] == JACKET
    assert client.get("/api/v1/products/12345").status_code == 422
    assert client.get("/api/v1/products/00000000000000").status_code == 404
