"""The inbox, receipts, push registration and redemption routes over real HTTP."""

import io

import httpx
import pytest
import segno

from tests.server.delivery.conftest import StackFactory, b64url, draft, new_subscriber

ALICE = {"Authorization": "Bearer tok-alice"}
BOB = {"Authorization": "Bearer tok-bob"}
POS = {"X-API-Key": "key-pos"}


def test_the_inbox_lists_offers_after_a_seq_with_their_state(make_stack: StackFactory) -> None:
    stack = make_stack()
    offers = [stack.delivery.publish("alice", draft(n)) for n in range(1, 4)]
    stack.delivery.receipt("alice", offers[0].offer_id, "opened")
    inbox = httpx.get(f"{stack.base}/me/offers", headers=ALICE).json()
    assert [o["seq"] for o in inbox] == [1, 2, 3]
    assert set(inbox[0]["receipts"]) == {"delivered", "opened"}
    assert inbox[0]["redeemed_ms"] is None
    later = httpx.get(f"{stack.base}/me/offers", params={"after": 2}, headers=ALICE).json()
    assert [o["offer_id"] for o in later] == [offers[2].offer_id]
    assert httpx.get(f"{stack.base}/me/offers", headers=BOB).json() == []
    assert httpx.get(f"{stack.base}/me/offers").status_code == 401
    bad = httpx.get(f"{stack.base}/me/offers", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401 and "shopper token" in bad.json()["detail"]
    assert httpx.get(f"{stack.base}/me/offers?after=-1", headers=ALICE).status_code == 422


def test_the_till_code_is_a_qr_code_for_its_shopper_only(make_stack: StackFactory) -> None:
    stack = make_stack()
    offer = stack.delivery.publish("alice", draft(campaign="jackets-20", coupon="JACKET20"))
    url = f"{stack.base}/me/offers/{offer.offer_id}/qr.svg"
    got = httpx.get(url, headers=ALICE)
    assert got.status_code == 200, got.text
    assert got.headers["content-type"] == "image/svg+xml"
    assert got.headers["cache-control"] == "no-store"
    encoded = io.BytesIO()
    segno.make(offer.coupon_code, error="m").save(encoded, kind="svg", scale=6, border=2)
    assert got.content == encoded.getvalue()  # that offer's till code, nothing else
    assert httpx.get(url, headers=BOB).status_code == 404
    assert httpx.get(url).status_code == 401


def test_receipts_are_idempotent_over_http(make_stack: StackFactory) -> None:
    stack = make_stack()
    offer = stack.delivery.publish("alice", draft())
    url = f"{stack.base}/me/offers/{offer.offer_id}/receipts"
    first = httpx.post(url, json={"status": "delivered"}, headers=ALICE)
    stack.clock.offset_ms = 60_000
    again = httpx.post(url, json={"status": "delivered"}, headers=ALICE)
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    assert (
        httpx.post(url, json={"status": "dismissed"}, headers=ALICE).json()["at_ms"]
        > (first.json()["at_ms"])
    )
    assert httpx.post(url, json={"status": "seen"}, headers=ALICE).status_code == 422
    assert httpx.post(url, json={"status": "opened"}, headers=BOB).status_code == 404
    (item,) = stack.delivery.inbox("alice")
    assert set(item.receipts) == {"delivered", "dismissed"}


def test_redemption_at_the_till_is_attributed_and_refusals_are_explained(
    make_stack: StackFactory,
) -> None:
    stack = make_stack()
    offer = stack.delivery.publish("alice", draft(campaign="jackets-20", coupon="JACKET20"))
    url = f"{stack.base}/stores/paris-rivoli/redemptions"
    done = httpx.post(url, json={"code": offer.coupon_code}, headers=POS)
    assert done.status_code == 201
    body = done.json()
    assert (body["offer_id"], body["campaign_id"], body["store"]) == (
        offer.offer_id,
        "jackets-20",
        "paris-rivoli",
    )
    assert isinstance(body["redeemed_ms"], int)

    again = httpx.post(url, json={"code": offer.coupon_code}, headers=POS)
    assert again.status_code == 409 and "already redeemed" in again.json()["detail"]
    unknown = httpx.post(url, json={"code": "JACKET20-XXXX"}, headers=POS)
    assert unknown.status_code == 404 and "no offer has this code" in unknown.json()["detail"]
    short = stack.delivery.publish("alice", draft(expires_in_ms=1_000))
    stack.clock.offset_ms = 10_000
    expired = httpx.post(url, json={"code": short.coupon_code}, headers=POS)
    assert expired.status_code == 410 and "expired" in expired.json()["detail"]
    assert httpx.post(url, json={}, headers=POS).status_code == 422


@pytest.mark.parametrize(("headers", "status"), [({}, 401), ({"X-API-Key": "key-read"}, 403)])
def test_redemption_needs_the_pos_scope(
    make_stack: StackFactory, headers: dict[str, str], status: int
) -> None:
    stack = make_stack()
    offer = stack.delivery.publish("alice", draft())
    answer = httpx.post(
        f"{stack.base}/stores/paris-rivoli/redemptions",
        json={"code": offer.coupon_code},
        headers=headers,
    )
    assert answer.status_code == status
    assert httpx.get(f"{stack.base}/me/offers", headers=ALICE).json()[0]["redeemed_ms"] is None


def test_push_registration_routes(make_stack: StackFactory) -> None:
    stack = make_stack()
    key = httpx.get(f"{stack.base}/push/vapid-public-key").json()["public_key"]
    assert key == stack.vapid.public_key_b64url() and len(key) == 87  # 65 bytes, base64url
    sub = new_subscriber("https://push.example.com/send/abc")
    created = httpx.post(
        f"{stack.base}/me/push-subscription", json=sub.subscription_json(), headers=ALICE
    )
    assert created.status_code == 201
    assert [s.endpoint for s in stack.repo.push_subscriptions("alice")] == [sub.endpoint]

    bad = sub.subscription_json() | {"keys": {"p256dh": b64url(b"short"), "auth": "AAAA"}}
    refused = httpx.post(f"{stack.base}/me/push-subscription", json=bad, headers=ALICE)
    assert refused.status_code == 422 and "keys.p256dh" in refused.json()["detail"]
    assert (
        httpx.post(f"{stack.base}/me/push-subscription", json=sub.subscription_json()).status_code
        == 401
    )

    gone = httpx.request(
        "DELETE",
        f"{stack.base}/me/push-subscription",
        json={"endpoint": sub.endpoint},
        headers=ALICE,
    )
    assert gone.status_code == 204 and stack.repo.push_subscriptions("alice") == []

    token = httpx.post(
        f"{stack.base}/me/push-token", json={"platform": "apns", "token": "ab" * 32}, headers=ALICE
    )
    assert token.status_code == 204
    assert stack.repo.push_tokens("alice", "apns") == ["ab" * 32]
    wrong = httpx.post(
        f"{stack.base}/me/push-token", json={"platform": "sms", "token": "x"}, headers=ALICE
    )
    assert wrong.status_code == 422
