"""Web Push end to end against a local push service: the body decrypts with the
browser's keys (RFC 8291 aes128gcm) and the VAPID header is a valid ES256 JWT."""

import json
import time
from pathlib import Path
from urllib.parse import urlsplit

import http_ece  # type: ignore[import-untyped]
import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from omnizone.server.adapters.webpush import VapidKeyError, VapidKeys, WebPushChannel
from tests.server.delivery.conftest import (
    SUBJECT,
    WAIT_S,
    PushService,
    Recorded,
    StackFactory,
    Subscriber,
    draft,
    new_subscriber,
    recv_json,
    unb64url,
    verify_es256,
    wait_for_sessions,
)

ALICE = {"Authorization": "Bearer tok-alice"}


def subscribe(stack_base: str, subscriber: Subscriber) -> None:
    answer = httpx.post(
        f"{stack_base}/me/push-subscription", json=subscriber.subscription_json(), headers=ALICE
    )
    assert answer.status_code == 201, answer.text


def decrypt(request: Recorded, subscriber: Subscriber) -> dict:  # type: ignore[type-arg]
    assert request.headers["content-encoding"] == "aes128gcm"
    plain = http_ece.decrypt(
        request.body,
        private_key=subscriber.private_key,
        auth_secret=subscriber.auth,
        version="aes128gcm",
    )
    data: dict = json.loads(plain)  # type: ignore[type-arg]
    return data


def test_an_offer_for_a_shopper_without_a_live_socket_goes_out_by_web_push(
    make_stack: StackFactory, push_service: PushService
) -> None:
    stack = make_stack(webpush=True)
    browser = new_subscriber(push_service.endpoint("alice-laptop"))
    subscribe(stack.base, browser)

    offer = stack.delivery.publish("alice", draft(7, campaign="jackets-20", coupon="JACKET20"))
    (request,) = push_service.server.wait_for(1)

    assert request.method == "POST" and request.path == "/push/alice-laptop"
    message = decrypt(request, browser)
    assert message == {"type": "offer", "seq": 1, "offer": offer.wire()}
    assert message["offer"]["coupon_code"].startswith("JACKET20-")
    assert 0 < int(request.headers["ttl"]) <= 3600
    assert request.headers["urgency"] == "high"

    scheme, _, rest = request.headers["authorization"].partition(" ")
    assert scheme == "vapid"
    fields = dict(part.split("=", 1) for part in rest.split(","))
    public_key = httpx.get(f"{stack.base}/push/vapid-public-key").json()["public_key"]
    assert fields["k"] == public_key
    point = unb64url(public_key)
    header, claims = verify_es256(
        fields["t"], ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    )
    assert header["alg"] == "ES256"
    endpoint = urlsplit(browser.endpoint)
    assert claims["aud"] == f"{endpoint.scheme}://{endpoint.netloc}"
    assert claims["sub"] == SUBJECT
    assert claims["exp"] > time.time()
    assert stack.delivery.settle(WAIT_S)


def test_a_gone_subscription_is_removed_and_the_others_still_get_the_offer(
    make_stack: StackFactory, push_service: PushService
) -> None:
    stack = make_stack(webpush=True)
    gone = new_subscriber(push_service.endpoint("old-phone"))
    kept = new_subscriber(push_service.endpoint("new-phone"))
    subscribe(stack.base, gone)
    subscribe(stack.base, kept)
    push_service.status_by_path["/push/old-phone"] = 410

    stack.delivery.publish("alice", draft(1))
    requests = push_service.server.wait_for(2)
    assert stack.delivery.settle(WAIT_S)
    assert {r.path for r in requests} == {"/push/old-phone", "/push/new-phone"}
    assert [s.endpoint for s in stack.repo.push_subscriptions("alice")] == [kept.endpoint]
    (ok,) = [r for r in requests if r.path == "/push/new-phone"]
    assert decrypt(ok, kept)["seq"] == 1


def test_an_offer_not_acked_on_the_live_socket_falls_back_to_web_push(
    make_stack: StackFactory, push_service: PushService
) -> None:
    stack = make_stack(webpush=True, ack_timeout_s=0.2)
    browser = new_subscriber(push_service.endpoint("alice"))
    subscribe(stack.base, browser)
    with stack.ws("tok-alice", after=0) as ws:
        wait_for_sessions(stack, "alice", 1)
        offer = stack.delivery.publish("alice", draft(1))
        assert recv_json(ws)["seq"] == 1  # the app is in the background: it never acks
        (request,) = push_service.server.wait_for(1)
    assert decrypt(request, browser)["offer"]["offer_id"] == offer.offer_id


def test_an_offer_acked_on_the_live_socket_is_not_pushed(
    make_stack: StackFactory, push_service: PushService
) -> None:
    stack = make_stack(webpush=True, ack_timeout_s=120.0)
    subscribe(stack.base, new_subscriber(push_service.endpoint("alice")))
    with stack.ws("tok-alice", after=0) as ws:
        wait_for_sessions(stack, "alice", 1)
        stack.delivery.publish("alice", draft(1))
        assert recv_json(ws)["seq"] == 1
        ws.send(json.dumps({"type": "ack", "seq": 1}))
        assert stack.delivery.settle(WAIT_S)  # the ack, not the timeout, ended the wait
    assert push_service.server.requests == []


def test_an_expired_offer_is_not_pushed(
    make_stack: StackFactory, push_service: PushService
) -> None:
    stack = make_stack(webpush=True)
    subscribe(stack.base, new_subscriber(push_service.endpoint("alice")))
    stack.clock.offset_ms = 2 * 3_600_000  # the delivery clock is past the expiry
    stack.delivery.publish("alice", draft(1, expires_in_ms=3_600_000))
    assert stack.delivery.settle(WAIT_S)
    assert push_service.server.requests == []


def test_the_vapid_key_is_made_once_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "vapid.pem"
    first = VapidKeys(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert VapidKeys(path).public_key_b64url() == first.public_key_b64url()
    path.write_text("not a key")
    with pytest.raises(VapidKeyError, match="not a readable unencrypted PEM"):
        VapidKeys(path)


def test_the_vapid_subject_must_be_a_contact(tmp_path: Path) -> None:
    keys = VapidKeys(tmp_path / "vapid.pem")
    with pytest.raises(VapidKeyError, match="mailto"):
        WebPushChannel(_NoSubscriptions(), keys, "ops@example.com")


class _NoSubscriptions:
    def push_subscriptions(self, shopper_id: str) -> list:  # type: ignore[type-arg]
        return []

    def remove_push_subscription(self, endpoint: str, shopper_id: str | None = None) -> bool:
        return False


def test_a_chain_worker_pushes_an_offer_no_node_saw_acknowledged(
    make_stack: StackFactory, push_service: PushService
) -> None:
    """The worker stores the offer and an API node holds the phone's socket
    (docs/scaling.md): the phone took it but never acknowledged (the app went
    to the background), so the worker pushes it after the timeout."""
    api = make_stack()
    worker = make_stack(webpush=True, ack_timeout_s=0.3, sessions_elsewhere=True)
    browser = new_subscriber(push_service.endpoint("alice"))
    subscribe(api.base, browser)
    with api.ws("tok-alice", after=0) as ws:
        wait_for_sessions(api, "alice", 1)
        offer = worker.delivery.publish("alice", draft(1))
        assert api.delivery.hand_to_live(offer) == 1  # the relay through NATS
        assert recv_json(ws)["seq"] == 1
        (request,) = push_service.server.wait_for(1)
    assert decrypt(request, browser)["offer"]["offer_id"] == offer.offer_id


def test_a_chain_worker_does_not_push_what_the_phone_acknowledged_on_an_api_node(
    make_stack: StackFactory, push_service: PushService
) -> None:
    """No socket is open on the worker, yet it must not push at once: it
    waits the timeout and finds the API node's acknowledgement in the
    database."""
    api = make_stack()
    worker = make_stack(webpush=True, ack_timeout_s=3.0, sessions_elsewhere=True)
    subscribe(api.base, new_subscriber(push_service.endpoint("alice")))
    with api.ws("tok-alice", after=0) as ws:
        wait_for_sessions(api, "alice", 1)
        offer = worker.delivery.publish("alice", draft(1))
        api.delivery.hand_to_live(offer)
        assert recv_json(ws)["seq"] == 1
        ws.send(json.dumps({"type": "ack", "seq": 1}))
        deadline = time.monotonic() + WAIT_S
        while api.repo.cursor("alice")[1] < 1:
            assert time.monotonic() < deadline, "the API node did not store the ack"
            time.sleep(0.05)
    assert worker.delivery.settle(WAIT_S)
    assert push_service.server.requests == []
