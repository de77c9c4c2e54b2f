"""Alerts (issue 18 point 7): the pure rules over stays, the monitor's
raise/clear once, and delivery to a real HTTP receiver as a signed webhook
with retries (signature checked with the server's own checker)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from omnizone.server.adapters.signed_webhook import DELIVERY_HEADER, SignedWebhook
from omnizone.server.domain.analytics.alerts import AlertRules, GatewayState, evaluate, occupancy
from omnizone.server.domain.analytics.stays import Stays
from omnizone.server.domain.identity import SIGNATURE_HEADER, check_webhook_signature
from omnizone.server.service.alerts import AlertMonitor
from omnizone.server.service.endpoints import EndpointGuard, EndpointRefused

ZONES = ["entrance", "shoes", "fitting-room-1", "checkout"]
NOW = 1_767_000_000_000
SECRET = b"webhook-secret-for-tests"


def stays(rows: list[tuple[str, str, int, int, str]]) -> Stays:
    return Stays.from_rows(rows, ZONES)


def crowd(zone: str, n: int, entered_ago_s: int = 60, status: str = "open") -> list[Any]:
    return [
        (f"eid:{i:016x}", zone, NOW - entered_ago_s * 1000, NOW - 1000, status) for i in range(n)
    ]


def test_occupancy_counts_live_open_stays_only() -> None:
    rows = [
        *crowd("shoes", 4),
        ("eid:00000000000000aa", "shoes", NOW - 600_000, NOW - 500_000, "visit"),  # closed
        ("eid:00000000000000bb", "shoes", NOW - 600_000, NOW - 300_000, "open"),  # stale
    ]
    assert occupancy(stays(rows), ZONES, NOW, stale_ms=60_000)["shoes"] == 4


def test_rules_fire_on_their_threshold_and_not_below() -> None:
    rules = AlertRules(
        zone_capacity={"shoes": 5},
        checkout_queue=3,
        dwell_s={"fitting-room-1": 900},
        gateway_silent_s=120,
    )
    gateways = [
        GatewayState("gw-shoes", NOW - 10_000),
        GatewayState("gw-checkout", NOW - 300_000),
        GatewayState("gw-entrance", NOW - 1000, {"espresense": "offline"}),
    ]
    rows = crowd("shoes", 6) + crowd("checkout", 3) + crowd("fitting-room-1", 1, entered_ago_s=1200)
    keys = {a.key: a for a in evaluate(stays(rows), ZONES, ["checkout"], gateways, rules, NOW)}
    assert set(keys) == {
        "occupancy:shoes",
        "dwell:fitting-room-1",
        "gateway_silent:gw-checkout",
        "gateway_reader:gw-entrance:espresense",
    }  # 3 at the checkout is the limit, not over it
    assert keys["occupancy:shoes"].value == 6
    rows = crowd("shoes", 5) + crowd("checkout", 4)
    second = {a.key for a in evaluate(stays(rows), ZONES, ["checkout"], [], rules, NOW)}
    assert second == {"checkout_queue:checkout"}


def test_hysteresis_keeps_an_alert_until_clearly_below() -> None:
    rules = AlertRules(zone_capacity={"shoes": 5}, hysteresis=2, gateway_silent_s=None)
    at_limit = stays(crowd("shoes", 5))
    assert evaluate(at_limit, ZONES, [], [], rules, NOW) == []
    assert [a.key for a in evaluate(at_limit, ZONES, [], [], rules, NOW, ["occupancy:shoes"])] == [
        "occupancy:shoes"
    ]
    assert evaluate(stays(crowd("shoes", 3)), ZONES, [], [], rules, NOW, ["occupancy:shoes"]) == []


class _Receiver(BaseHTTPRequestHandler):
    bodies: ClassVar[list[tuple[bytes, dict[str, str]]]] = []
    fail_first = 0
    fail_status = 503

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).bodies.append((body, dict(self.headers)))
        if type(self).fail_first > 0:
            type(self).fail_first -= 1
            self.send_response(type(self).fail_status)
        else:
            self.send_response(204)
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    _Receiver.bodies = []
    _Receiver.fail_first = 0
    _Receiver.fail_status = 503
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks/alerts"
    server.shutdown()
    server.server_close()


def test_webhook_refuses_a_private_host_unless_allowed(receiver: str) -> None:
    with pytest.raises(EndpointRefused):
        SignedWebhook(receiver, SECRET)


def test_monitor_sends_each_change_once_as_a_signed_webhook_with_retries(receiver: str) -> None:
    _Receiver.fail_first = 2  # the receiver is down for two attempts
    hook = SignedWebhook(
        receiver, SECRET, guard=EndpointGuard(["127.0.0.1"]), attempts=4, sleep=lambda _s: None
    )
    results: list[Any] = []
    monitor = AlertMonitor(
        "paris-rivoli",
        ZONES,
        ["checkout"],
        AlertRules(zone_capacity={"shoes": 5}, gateway_silent_s=None),
        sinks=[lambda payload: results.append(hook.send(payload))],
    )
    try:
        busy = stays(crowd("shoes", 7))
        assert [c.state for c in monitor.update(busy, [], NOW)] == ["raised"]
        assert monitor.update(busy, [], NOW + 5000) == []  # still active: not sent again
        assert [c.state for c in monitor.update(stays(crowd("shoes", 2)), [], NOW + 10_000)] == [
            "cleared"
        ]
    finally:
        hook.close()
    assert [r.delivered for r in results] == [True, True]
    assert results[0].attempts == 3
    # 2 failed + 1 delivered for the raise, 1 for the clear; the same delivery id on retries
    assert len(_Receiver.bodies) == 4
    assert len({h[DELIVERY_HEADER] for _b, h in _Receiver.bodies[:3]}) == 1
    for body, headers in _Receiver.bodies:
        check_webhook_signature(SECRET, body, headers[SIGNATURE_HEADER])
    raised = json.loads(_Receiver.bodies[0][0])
    assert raised["type"] == "alert.raised"
    assert raised["alert"]["key"] == "occupancy:shoes" and raised["alert"]["value"] == 7
    assert json.loads(_Receiver.bodies[3][0])["type"] == "alert.cleared"
    assert [row["type"] for row in monitor.recent()] == ["alert.cleared", "alert.raised"]
    with pytest.raises(Exception, match="does not match"):
        check_webhook_signature(
            b"another secret", _Receiver.bodies[0][0], _Receiver.bodies[0][1][SIGNATURE_HEADER]
        )


def test_a_refusing_receiver_is_not_retried(receiver: str) -> None:
    _Receiver.fail_first, _Receiver.fail_status = 5, 400  # "bad request": retrying cannot help
    hook = SignedWebhook(
        receiver, SECRET, guard=EndpointGuard(["127.0.0.1"]), attempts=4, sleep=lambda _s: None
    )
    try:
        result = hook.send({"type": "alert.raised"})
    finally:
        hook.close()
    assert not result.delivered and result.attempts == 1 and result.status == 400
    assert len(_Receiver.bodies) == 1
