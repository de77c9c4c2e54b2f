"""Campaign routes over the real engine: define, validate, pause and resume
campaigns, read the decision log, the catalog and the app's shelf taps."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from omnizone.server.domain.identity import Purpose
from omnizone.server.entrypoints.api import _authorizer
from omnizone.server.entrypoints.campaign_api import campaign_router
from omnizone.server.service.campaign_report import CampaignFigures
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
        campaign_router(
            store.campaigns,
            store.engine,
            _no_report,
            store.shoppers.authenticate,
            require,
        )
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


# -- revisions, ETag and If-Match --------------------------------------------------------

URL = f"/api/v1/stores/{STORE}/campaigns"


def _create(client: TestClient) -> dict[str, Any]:
    created = client.post(URL, json=TAP_CAMPAIGN, headers=ADMIN)
    assert created.status_code == 201, created.text
    assert created.json()["revision"] == 1 and created.headers["ETag"] == '"1"'
    body: dict[str, Any] = created.json()
    return body


def _titled(loaded: dict[str, Any], title: str) -> dict[str, Any]:
    """What a client sends back: the campaign it loaded (revision included) with an edit."""
    return {**loaded, "content": {**loaded["content"], "title": title}}


def test_one_campaign_is_read_with_its_revision_as_etag(setup: tuple[Store, TestClient]) -> None:
    _store, client = setup
    _create(client)
    one = client.get(f"{URL}/jacket-tap", headers=READER)
    assert one.status_code == 200 and one.headers["ETag"] == '"1"'
    assert one.json()["revision"] == 1 and one.json()["name"] == "Jacket tap"
    assert [c["revision"] for c in client.get(URL, headers=READER).json()] == [1]
    assert client.get(f"{URL}/nope", headers=READER).status_code == 404
    assert client.get(f"{URL}/jacket-tap").status_code == 401
    # The report keeps its route; it is not read as a campaign called "report".
    assert client.get(f"{URL}/report", headers=READER).json() == []


def test_a_put_with_a_stale_if_match_is_refused_and_changes_nothing(
    setup: tuple[Store, TestClient],
) -> None:
    store, client = setup
    loaded = _create(client)
    # Two people opened revision 1; the first saves, with the ETag it loaded.
    first = client.put(
        f"{URL}/jacket-tap", json=_titled(loaded, "First"), headers={**ADMIN, "If-Match": '"1"'}
    )
    assert first.status_code == 200, first.text
    assert first.json()["revision"] == 2 and first.headers["ETag"] == '"2"'
    # The second saves what it loaded: refused, and the first one's edit stays.
    second = client.put(
        f"{URL}/jacket-tap", json=_titled(loaded, "Second"), headers={**ADMIN, "If-Match": '"1"'}
    )
    assert second.status_code == 412
    detail = second.json()["detail"]
    assert "changed since it was loaded" in detail and "revision 2" in detail
    assert "Europe/Paris" in detail  # when, on the store's clock
    assert second.headers["ETag"] == '"2"'
    now = client.get(f"{URL}/jacket-tap", headers=READER)
    assert now.json()["content"]["title"] == "First" and now.headers["ETag"] == '"2"'
    assert store.campaigns.campaign("jacket-tap").content.title == "First"
    # With the current ETag the save goes through, as the next revision.
    again = client.put(
        f"{URL}/jacket-tap", json=_titled(loaded, "Second"), headers={**ADMIN, "If-Match": '"2"'}
    )
    assert again.status_code == 200 and again.json()["revision"] == 3
    assert client.get(f"{URL}/jacket-tap", headers=READER).json()["content"]["title"] == "Second"


def test_pause_and_resume_bump_the_revision(setup: tuple[Store, TestClient]) -> None:
    _store, client = setup
    loaded = _create(client)
    paused = client.post(f"{URL}/jacket-tap/pause", headers=ADMIN)
    assert paused.json()["revision"] == 2 and paused.headers["ETag"] == '"2"'
    # A form opened before the pause would resume the campaign: refused.
    stale = client.put(
        f"{URL}/jacket-tap", json=_titled(loaded, "Edited"), headers={**ADMIN, "If-Match": '"1"'}
    )
    assert stale.status_code == 412
    assert client.get(f"{URL}/jacket-tap", headers=READER).json()["status"] == "paused"
    # Pausing what is paused changes nothing, the revision included.
    assert client.post(f"{URL}/jacket-tap/pause", headers=ADMIN).json()["revision"] == 2
    resumed = client.post(f"{URL}/jacket-tap/resume", headers={**ADMIN, "If-Match": '"2"'})
    assert resumed.json()["status"] == "active" and resumed.json()["revision"] == 3
    refused = client.post(f"{URL}/jacket-tap/pause", headers={**ADMIN, "If-Match": '"2"'})
    assert refused.status_code == 412
    assert client.get(f"{URL}/jacket-tap", headers=READER).json()["status"] == "active"


def test_without_if_match_the_last_save_still_wins(setup: tuple[Store, TestClient]) -> None:
    _store, client = setup
    loaded = _create(client)
    client.post(f"{URL}/jacket-tap/pause", headers=ADMIN)
    # A script that sends no If-Match (and the stale revision it loaded, which
    # the server sets and ignores) replaces the campaign as before.
    saved = client.put(f"{URL}/jacket-tap", json=_titled(loaded, "Script"), headers=ADMIN)
    assert saved.status_code == 200 and saved.json()["revision"] == 3
    assert saved.json()["status"] == "active" and saved.json()["content"]["title"] == "Script"
    body = {**TAP_CAMPAIGN, "id": "new-one", "revision": 7}
    assert client.put(f"{URL}/new-one", json=body, headers=ADMIN).json()["revision"] == 1


def test_if_match_follows_the_http_rules(setup: tuple[Store, TestClient]) -> None:
    _store, client = setup
    loaded = _create(client)

    def put(campaign_id: str, if_match: str) -> int:
        body = {**_titled(loaded, if_match), "id": campaign_id}
        headers = {**ADMIN, "If-Match": if_match}
        return client.put(f"{URL}/{campaign_id}", json=body, headers=headers).status_code

    assert put("jacket-tap", 'W/"1"') == 412  # a weak tag never matches (strong comparison)
    assert put("jacket-tap", "banana") == 412
    assert put("jacket-tap", '"7", "1"') == 200  # one of a list: now at 2
    assert put("jacket-tap", "2") == 200  # a bare number is read as "2": now at 3
    assert put("jacket-tap", "*") == 200  # any current version
    assert put("absent", "*") == 412  # … but there must be one
    absent = client.get(f"{URL}/absent", headers=READER)
    assert absent.status_code == 404
    # A refused body is a 422 whatever If-Match says.
    bad = {**TAP_CAMPAIGN, "trigger": {"kind": "nfc_tap", "tap_points": ["x"]}}
    refused = client.put(f"{URL}/jacket-tap", json=bad, headers={**ADMIN, "If-Match": '"1"'})
    assert refused.status_code == 422


def _no_report(
    store: str, *, from_ms: int | None = None, to_ms: int | None = None
) -> list[CampaignFigures]:
    """The report is tested elsewhere (tests/server/analytics/test_api.py)."""
    return []
