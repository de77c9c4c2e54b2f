"""The shopper routes through FastAPI's TestClient, over a real SQLite file."""

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from omnizone.server.adapters.shopper_db import ShopperRepository
from omnizone.server.domain.identity import webhook_signature
from omnizone.server.service.shoppers import ShopperService

from .conftest import (
    ASSOCIATE_KEY,
    GTIN,
    OTHER_GTIN,
    READ_KEY,
    STORE,
    T0,
    WEBHOOK_SECRET,
    Clock,
    make_client,
)

API = "/api/v1"


def register(client: TestClient) -> tuple[str, dict[str, str]]:
    response = client.post(f"{API}/shoppers", json={"store": STORE})
    assert response.status_code == 201, response.text
    body = response.json()
    return body["shopper_id"], {"Authorization": f"Bearer {body['token']}"}


def post_webhook(client: TestClient, payload: object, *, signature: str | None = "sign") -> Any:
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json"}
    if signature == "sign":
        signature = webhook_signature(WEBHOOK_SECRET, body)
    if signature is not None:
        headers["X-Omnizone-Signature"] = signature
    return client.post(f"{API}/webhooks/profile", content=body, headers=headers)


def test_registration_answers_token_and_eid_key(client: TestClient) -> None:
    response = client.post(f"{API}/shoppers", json={"store": STORE})
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {
        "shopper_id",
        "token",
        "eid_key",
        "eid_rotation_s",
        "eid_rotation_exponent",
        "eid_clock_offset_s",
    }
    assert len(bytes.fromhex(body["eid_key"])) == 16 and body["eid_rotation_s"] == 1024
    assert body["eid_rotation_exponent"] == 10 and 0 <= body["eid_clock_offset_s"] < 2**32
    me = {"Authorization": f"Bearer {body['token']}"}
    assert client.get(f"{API}/me/consent", headers=me).status_code == 200


@pytest.mark.parametrize(
    ("body", "loc", "message"),
    [
        ({"store": "nowhere"}, ["body", "store"], "store 'nowhere' is not served here"),
        ({}, ["body", "store"], "Field required"),
        ({"store": STORE, "extra": 1}, ["body", "extra"], "Extra inputs are not permitted"),
    ],
)
def test_a_bad_registration_names_the_field(
    client: TestClient, body: dict[str, Any], loc: list[str], message: str
) -> None:
    response = client.post(f"{API}/shoppers", json=body)
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == loc and message in error["msg"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/me/consent"),
        ("PUT", "/me/consent"),
        ("GET", "/me/export"),
        ("DELETE", "/me"),
        ("POST", "/me/profile-events"),
        ("POST", "/me/loyalty"),
        ("GET", "/me/qr"),
    ],
)
def test_shopper_routes_need_a_valid_token(client: TestClient, method: str, path: str) -> None:
    missing = client.request(method, f"{API}{path}")
    assert missing.status_code == 401
    assert "missing shopper token: send Authorization: Bearer" in missing.json()["detail"]
    for header in ("Bearer nope", "Bearer " + "0" * 32 + ".secret", "Basic dXNlcjpwdw=="):
        bad = client.request(method, f"{API}{path}", headers={"Authorization": header})
        assert bad.status_code == 401


def test_consent_is_given_and_withdrawn_with_history(client: TestClient, clock: Clock) -> None:
    _, me = register(client)
    assert client.get(f"{API}/me/consent", headers=me).json() == {
        "location_analytics": False,
        "personalized_offers": False,
    }
    clock.now_ms = T0 + 1
    both = {"location_analytics": True, "personalized_offers": True}
    assert client.put(f"{API}/me/consent", headers=me, json=both).json() == both
    clock.now_ms = T0 + 2
    withdrawn = client.put(f"{API}/me/consent", headers=me, json={"personalized_offers": False})
    assert withdrawn.json() == {"location_analytics": True, "personalized_offers": False}
    assert client.get(f"{API}/me/consent", headers=me).json() == withdrawn.json()
    history = client.get(f"{API}/me/export", headers=me).json()["consent_history"]
    assert history == [
        {"purpose": "location_analytics", "granted": True, "changed_ms": T0 + 1},
        {"purpose": "personalized_offers", "granted": True, "changed_ms": T0 + 1},
        {"purpose": "personalized_offers", "granted": False, "changed_ms": T0 + 2},
    ]
    bad = client.put(f"{API}/me/consent", headers=me, json={"personalized_offers": "maybe"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == [
        "body",
        "personalized_offers",
    ]


def test_profile_events_and_loyalty(client: TestClient, clock: Clock) -> None:
    _, me = register(client)
    event = {"type": "product_view", "gtin": GTIN, "channel": "app"}
    stored = client.post(f"{API}/me/profile-events", headers=me, json=event)
    assert stored.status_code == 201
    assert stored.json() == {**event, "at_ms": T0, "amount": None}
    bad = client.post(f"{API}/me/profile-events", headers=me, json={**event, "gtin": "12"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "gtin"]
    bad = client.post(f"{API}/me/profile-events", headers=me, json={**event, "amount": -1})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "amount"]
    linked = client.post(f"{API}/me/loyalty", headers=me, json={"loyalty_id": "FR-0042-7781"})
    assert linked.json() == {"loyalty_id": "FR-0042-7781"}
    bad = client.post(f"{API}/me/loyalty", headers=me, json={"loyalty_id": "has space"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "loyalty_id"]
    exported = client.get(f"{API}/me/export", headers=me).json()
    assert exported["shopper"]["loyalty_id"] == "FR-0042-7781"
    assert exported["profile_events"] == [{**event, "at_ms": T0, "amount": None}]


def test_webhook_signature_good_bad_and_missing(client: TestClient) -> None:
    _, me = register(client)
    client.post(f"{API}/me/loyalty", headers=me, json={"loyalty_id": "FR-0042-7781"})
    payload = {
        "loyalty_id": "FR-0042-7781",
        "events": [{"type": "cart_add", "gtin": GTIN, "channel": "online"}],
    }
    missing = post_webhook(client, payload, signature=None)
    assert missing.status_code == 401
    assert "missing X-Omnizone-Signature" in missing.json()["detail"]
    wrong = post_webhook(client, payload, signature="sha256=" + "0" * 64)
    assert wrong.status_code == 401 and "does not match" in wrong.json()["detail"]
    malformed = post_webhook(client, payload, signature="deadbeef")
    assert malformed.status_code == 401 and "sha256=<64 hex digits>" in malformed.json()["detail"]
    assert client.get(f"{API}/me/export", headers=me).json()["profile_events"] == []
    good = post_webhook(client, payload)
    assert good.status_code == 200 and good.json() == {"events": 1, "shoppers": 1}
    events = client.get(f"{API}/me/export", headers=me).json()["profile_events"]
    assert [e["type"] for e in events] == ["cart_add"]


def test_webhook_errors_name_the_event_and_the_loyalty_id(client: TestClient) -> None:
    unknown = post_webhook(
        client,
        {"loyalty_id": "FR-0", "events": [{"type": "cart_add", "gtin": GTIN, "channel": "pos"}]},
    )
    assert unknown.status_code == 404
    assert unknown.json()["detail"] == "no shopper has linked loyalty id 'FR-0'"
    invalid = post_webhook(
        client,
        {
            "loyalty_id": "FR-0",
            "events": [
                {"type": "cart_add", "gtin": GTIN, "channel": "pos"},
                {"type": "cart_add", "gtin": GTIN, "channel": "fax"},
            ],
        },
    )
    assert invalid.status_code == 422
    (error,) = invalid.json()["detail"]
    assert error["loc"] == ["body", "events", 1, "channel"]
    assert error["msg"].startswith("events[1].channel: Input should be 'online', 'pos' or 'app'")


def test_the_webhook_is_off_without_a_secret(shopper_repo: ShopperRepository, clock: Clock) -> None:
    with make_client(ShopperService([STORE], shopper_repo, clock=clock)) as client:
        response = post_webhook(client, {"loyalty_id": "FR-0", "events": []}, signature=None)
    assert response.status_code == 503 and "OMNIZONE_WEBHOOK_SECRET" in response.json()["detail"]


def test_qr_context_with_and_without_consent(client: TestClient, clock: Clock) -> None:
    _, me = register(client)
    for event in (
        {"type": "cart_add", "gtin": GTIN, "channel": "online"},
        {"type": "wishlist_add", "gtin": OTHER_GTIN, "channel": "app"},
        {"type": "product_view", "gtin": GTIN, "channel": "online"},
        {"type": "purchase", "gtin": OTHER_GTIN, "channel": "pos", "amount": 30},
    ):
        client.post(f"{API}/me/profile-events", headers=me, json=event)
    qr = client.get(f"{API}/me/qr", headers=me).json()
    assert qr["expires_ms"] == T0 + 300_000
    associate = {"X-API-Key": ASSOCIATE_KEY}
    url = f"{API}/associate/context"
    refused = client.get(url, params={"qr_token": qr["qr_token"]}, headers=associate)
    assert refused.status_code == 403
    assert "not consented to personalized_offers" in refused.json()["detail"]
    client.put(f"{API}/me/consent", headers=me, json={"personalized_offers": True})
    context = client.get(url, params={"qr_token": qr["qr_token"]}, headers=associate).json()
    assert context["cart"] == [GTIN]
    assert context["wishlist"] == []  # bought since
    assert context["recent_views"] == [{"gtin": GTIN, "at_ms": T0, "channel": "online"}]
    assert context["purchases"] == [
        {"gtin": OTHER_GTIN, "at_ms": T0, "channel": "pos", "amount": 30.0}
    ]


def test_associate_context_needs_the_scope_and_a_live_token(
    client: TestClient, clock: Clock
) -> None:
    _, me = register(client)
    client.put(f"{API}/me/consent", headers=me, json={"personalized_offers": True})
    token = client.get(f"{API}/me/qr", headers=me).json()["qr_token"]
    url = f"{API}/associate/context"
    assert client.get(url, params={"qr_token": token}).status_code == 401
    assert client.get(url, params={"qr_token": token}, headers=me).status_code == 401
    lacking = client.get(url, params={"qr_token": token}, headers={"X-API-Key": READ_KEY})
    assert lacking.status_code == 403 and "'associate' scope" in lacking.json()["detail"]
    associate = {"Authorization": f"Bearer {ASSOCIATE_KEY}"}
    forged = client.get(url, params={"qr_token": token[:-3] + "AAA"}, headers=associate)
    assert forged.status_code == 422 and forged.json()["detail"][0]["loc"] == ["query", "qr_token"]
    missing = client.get(url, headers=associate)
    assert missing.status_code == 422 and missing.json()["detail"][0]["loc"] == [
        "query",
        "qr_token",
    ]
    clock.now_ms = T0 + 300_000
    expired = client.get(url, params={"qr_token": token}, headers=associate)
    assert expired.status_code == 410 and "refresh the QR code" in expired.json()["detail"]


def test_delete_me_erases_everything_and_the_token_dies(
    client: TestClient, shoppers: ShopperService, engine: Engine
) -> None:
    shopper, me = register(client)
    other, _ = register(client)
    client.put(f"{API}/me/consent", headers=me, json={"location_analytics": True})
    client.post(
        f"{API}/me/profile-events",
        headers=me,
        json={"type": "cart_add", "gtin": GTIN, "channel": "app"},
    )
    erased: list[str] = []
    shoppers.subscribe_to_erasure(erased.append)
    response = client.delete(f"{API}/me", headers=me)
    assert response.status_code == 204 and response.content == b""
    assert erased == [shopper]
    assert client.get(f"{API}/me/export", headers=me).status_code == 401
    with engine.connect() as connection:
        for table, column in (
            ("shoppers", "id"),
            ("shopper_consents", "shopper_id"),
            ("profile_events", "shopper_id"),
        ):
            left = connection.execute(
                text(f"SELECT count(*) FROM {table} WHERE {column} = :s"), {"s": shopper}
            ).scalar_one()
            assert left == 0, table
        assert connection.execute(text("SELECT id FROM shoppers")).scalars().all() == [other]


def test_the_routes_are_documented_with_examples(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    expected = {
        "/api/v1/shoppers": {"post"},
        "/api/v1/me/consent": {"get", "put"},
        "/api/v1/me/export": {"get"},
        "/api/v1/me": {"delete"},
        "/api/v1/me/profile-events": {"post"},
        "/api/v1/me/loyalty": {"post"},
        "/api/v1/webhooks/profile": {"post"},
        "/api/v1/me/qr": {"get"},
        "/api/v1/associate/context": {"get"},
    }
    assert {path: set(methods) for path, methods in paths.items()} == expected
    webhook_body = paths["/api/v1/webhooks/profile"]["post"]["requestBody"]
    schema = webhook_body["content"]["application/json"]["schema"]
    assert schema["properties"]["events"]["items"] == {
        "$ref": "#/components/schemas/ProfileEventIn"
    }
    assert "examples" in spec["components"]["schemas"]["ProfileEventIn"]
