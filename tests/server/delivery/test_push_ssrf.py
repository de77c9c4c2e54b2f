"""Web Push endpoints only on public hosts unless allowed (blind SSRF): refused
when subscribing, and again at every connection (DNS rebinding, redirects)."""

from collections.abc import Callable

import httpx
import pytest

from omnizone.server.adapters.webpush import VapidKeys, WebPushChannel
from omnizone.server.service.delivery import (
    InvalidPushSubscription,
    OfferDelivery,
    PushSubscription,
    check_push_subscription,
)
from omnizone.server.service.endpoints import EndpointGuard, EndpointRefused
from tests.server.delivery.conftest import (
    SUBJECT,
    PushService,
    RecordingServer,
    Responder,
    StackFactory,
    draft,
    new_subscriber,
)

ALICE = {"Authorization": "Bearer tok-alice"}
PUBLIC = "93.184.216.34"


@pytest.mark.parametrize(
    ("endpoint", "what"),
    [
        ("https://127.0.0.1:8443/internal-admin", "loopback"),
        ("https://localhost/push", "loopback"),
        ("https://[::1]/push", "loopback"),
        ("https://10.1.2.3/push", "private"),
        ("https://192.168.1.1/push", "private"),
        ("https://169.254.169.254/latest/meta-data", "169.254.169.254"),
        ("https://224.0.0.1/push", "multicast"),
        ("https://[::ffff:127.0.0.1]/push", "loopback"),
        ("https://0.0.0.0/push", "0.0.0.0"),
    ],
)
def test_a_subscription_to_a_non_public_host_is_refused_over_http(
    make_stack: StackFactory, endpoint: str, what: str
) -> None:
    stack = make_stack(push_hosts=())  # the server's default: no allow-list
    body = new_subscriber(endpoint).subscription_json()
    answer = httpx.post(f"{stack.base}/me/push-subscription", json=body, headers=ALICE)
    assert answer.status_code == 422, answer.text
    assert what in answer.text and "public" in answer.text
    assert stack.repo.push_subscriptions("alice") == []


def _subscription(endpoint: str) -> PushSubscription:
    body = new_subscriber(endpoint).subscription_json()
    return check_push_subscription(
        endpoint, body["keys"]["p256dh"], body["keys"]["auth"], allow_http=True
    )


def _internal_service(recording_server: Callable[[Responder], RecordingServer]) -> RecordingServer:
    return recording_server(lambda _request: (200, {}, b"secret admin page"))


def test_a_stored_endpoint_on_loopback_is_never_connected_to(
    make_stack: StackFactory,
    recording_server: Callable[[Responder], RecordingServer],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    internal = _internal_service(recording_server)
    stack = make_stack()
    offer = stack.delivery.publish("alice", draft(1))
    keys = VapidKeys(tmp_path_factory.mktemp("vapid") / "vapid.pem")
    channel = WebPushChannel(stack.repo, keys, SUBJECT)  # default guard: public only
    receipt = channel.send_to([_subscription(f"{internal.url}/internal-admin")], offer, "alice")
    assert (receipt.sent, receipt.failed) == (0, 1)
    assert internal.requests == []


class Rebinding:
    """A resolver whose answer the test changes between subscribing and sending."""

    def __init__(self, answer: str) -> None:
        self.answer = answer

    def __call__(self, host: str, port: int) -> list[str]:
        assert host == "push.rebind.test"
        return [self.answer]


def test_a_name_that_resolves_to_loopback_at_send_time_is_refused(
    make_stack: StackFactory,
    recording_server: Callable[[Responder], RecordingServer],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    internal = _internal_service(recording_server)
    port = internal.url.rsplit(":", 1)[1]
    endpoint = f"http://push.rebind.test:{port}/push/alice"
    resolver = Rebinding(PUBLIC)
    guard = EndpointGuard(resolve=resolver)
    stack = make_stack()
    delivery = OfferDelivery(stack.repo, allow_http_push_endpoints=True, endpoint_guard=guard)
    body = new_subscriber(endpoint).subscription_json()
    delivery.subscribe_push("alice", endpoint, body["keys"]["p256dh"], body["keys"]["auth"])
    delivery.close()
    [stored] = stack.repo.push_subscriptions("alice")
    resolver.answer = "127.0.0.1"  # the attacker's DNS changes its answer
    keys = VapidKeys(tmp_path_factory.mktemp("vapid") / "vapid.pem")
    channel = WebPushChannel(stack.repo, keys, SUBJECT, guard=guard)
    receipt = channel.send_to([stored], stack.delivery.publish("alice", draft(2)), "alice")
    assert (receipt.sent, receipt.failed) == (0, 1)
    assert internal.requests == []
    with pytest.raises(InvalidPushSubscription, match="loopback"):
        OfferDelivery(
            stack.repo, allow_http_push_endpoints=True, endpoint_guard=guard
        ).subscribe_push("alice", endpoint, body["keys"]["p256dh"], body["keys"]["auth"])


def test_an_allowed_network_is_reached_at_the_address_that_was_checked(
    make_stack: StackFactory, push_service: PushService, tmp_path_factory: pytest.TempPathFactory
) -> None:
    port = push_service.server.url.rsplit(":", 1)[1]
    guard = EndpointGuard(["127.0.0.0/8"], resolve=Rebinding("127.0.0.1"))
    stack = make_stack()
    keys = VapidKeys(tmp_path_factory.mktemp("vapid") / "vapid.pem")
    channel = WebPushChannel(stack.repo, keys, SUBJECT, guard=guard)
    subscription = _subscription(f"http://push.rebind.test:{port}/push/alice")
    receipt = channel.send_to([subscription], stack.delivery.publish("alice", draft(3)), "alice")
    assert (receipt.sent, receipt.failed) == (1, 0)
    [request] = push_service.server.wait_for(1)
    assert request.path == "/push/alice" and request.headers["host"].startswith("push.rebind.test")


def test_a_mix_of_public_and_private_answers_is_refused() -> None:
    guard = EndpointGuard(resolve=lambda _host, _port: [PUBLIC, "10.0.0.5"])
    with pytest.raises(EndpointRefused, match="private"):
        guard.addresses("push.example.org", 443)
    assert EndpointGuard(resolve=lambda _h, _p: [PUBLIC]).addresses("push.example.org", 443) == [
        PUBLIC
    ]
