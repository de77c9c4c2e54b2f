"""Alerts evaluated by the server's own loop (issue 18 point 7), against the
ground truth of who the test makes the gateways hear: a crowd over a zone's
capacity raises the alert and it clears when they leave; a gateway that stops
raises gateway_silent. Rules and the log are in the database: a restarted
server keeps the rules, lists the history (JSON, CSV) and does not raise again.
The webhook gets each change once, signed, from the log."""

import csv
import io
import json
import time
from pathlib import Path

import httpx

from omnizone.contract import HealthMessage, dump_message, topic_for
from omnizone.contract.eid import eid_device_key
from omnizone.server.domain.identity import check_webhook_signature
from omnizone.server.runtime import ServerRuntime
from omnizone.store import StorePlan

from .conftest import STORE, ble
from .test_alerts_api import SECRET, _Receiver, hook_url  # noqa: F401  (the fixture)
from .test_bootstrap import ADMIN, WAIT_S, Phone, Server, settings_for

ALERTS = f"/api/v1/stores/{STORE}/alerts"


SEQ: dict[str, int] = {}


def _seq(gateway: str) -> int:
    SEQ[gateway] = SEQ.get(gateway, 0) + 1
    return SEQ[gateway]


def hear(server: Server, gateway: str, phones: list[Phone], at_ms: int) -> None:
    heard = {eid_device_key(p.eid, at_ms): -55.0 for p in phones}
    server.parts.ingest.handle(*ble(gateway, _seq(gateway), at_ms, heard), at_ms)


def alive(server: Server, gateway: str, at_ms: int) -> None:
    """A health report: the gateway is up (and heard)."""
    health = HealthMessage(
        store=STORE,
        gateway=gateway,
        seq=_seq(gateway),
        sent_ms=at_ms,
        uptime_s=60,
        outbox_depth=0,
        outbox_dropped=0,
        readers={"ble": "scanning"},
        counters={},
        version="test",
    )
    server.parts.ingest.handle(topic_for(STORE, gateway, "health"), dump_message(health), at_ms)


def walk(server: Server, start_ms: int, seconds: int, crowd: list[Phone], shoes: bool) -> int:
    """``crowd`` heard by gw-womenswear once a second (gw-shoes hears nobody
    new but sends while ``shoes``); returns the time after the walk."""
    at = start_ms
    for _ in range(seconds):
        at += 1000
        hear(server, "gw-womenswear", crowd, at)
        if shoes:
            alive(server, "gw-shoes", at)
    return at


def test_a_crowd_over_capacity_raises_then_clears_and_a_stopped_gateway_is_silent(
    plan: StorePlan,
    tmp_path: Path,
    hook_url: str,  # noqa: F811
) -> None:
    settings = settings_for(
        tmp_path,
        alert_webhook_url=hook_url,
        alert_webhook_secret=SECRET,
        push_endpoint_allow=["127.0.0.1"],
        alert_check_interval_s=0,  # the test turns the loop itself: no sleeps
    )
    rules = {"zone_capacity": {"womenswear": 2}, "gateway_silent_s": 20}
    with (
        ServerRuntime(settings, stores={plan.id: plan}) as runtime,
        httpx.Client(base_url=runtime.api_url, timeout=WAIT_S) as client,
    ):
        server = Server(runtime, client)
        SEQ.clear()
        loop = runtime.parts.alert_loop
        assert loop is not None
        put = client.put(f"{ALERTS}/rules", json=rules, headers=ADMIN)
        assert put.status_code == 200, put.text
        bad = client.put(f"{ALERTS}/rules", json={"zone_capacity": {"attic": 3}}, headers=ADMIN)
        assert bad.status_code == 422 and "attic" in bad.text, bad.text
        assert client.get(f"{ALERTS}/rules", headers=ADMIN).json()["rules"]["zone_capacity"] == {
            "womenswear": 2
        }
        keeper, *crowd = [server.phone() for _ in range(4)]
        start = time.time_ns() // 1_000_000 // 1000 * 1000
        # Ground truth: four shoppers in womenswear, capacity 2, both gateways sending.
        at = walk(server, start, 15, [keeper, *crowd], shoes=True)
        loop.run_once()
        keys = {a["key"]: a for a in client.get(ALERTS, headers=ADMIN).json()["active"]}
        assert keys["occupancy:womenswear"]["value"] == 4
        assert "gateway_silent:gw-shoes" not in keys
        # The crowd leaves, the keeper stays; gw-shoes stops sending.
        at = walk(server, at, 60, [keeper], shoes=False)
        loop.run_once()
        keys = {a["key"]: a for a in client.get(ALERTS, headers=ADMIN).json()["active"]}
        assert "occupancy:womenswear" not in keys
        assert keys["gateway_silent:gw-shoes"]["kind"] == "gateway_silent"
        loop.run_once()  # nothing changed: nothing sent again
    # Each change once to the webhook, signed, in order.
    sent = []
    for body, signature in _Receiver.bodies:
        check_webhook_signature(SECRET.encode(), body, signature)
        sent.append(json.loads(body))
    ours = [(s["type"], s["alert"]["key"]) for s in sent if "womenswear" in s["alert"]["key"]]
    assert ours == [
        ("alert.raised", "occupancy:womenswear"),
        ("alert.cleared", "occupancy:womenswear"),
    ]
    assert [s["alert"]["key"] for s in sent].count("gateway_silent:gw-shoes") == 1
    assert len({s["id"] for s in sent}) == len(sent)

    # Restarted on the same database: the rules, the history, no raise again.
    with (
        ServerRuntime(settings, stores={plan.id: plan}) as runtime,
        httpx.Client(base_url=runtime.api_url, timeout=WAIT_S) as client,
    ):
        got = client.get(f"{ALERTS}/rules", headers=ADMIN).json()["rules"]
        assert got["zone_capacity"] == {"womenswear": 2} and got["gateway_silent_s"] == 20
        history = client.get(f"{ALERTS}/history", headers=ADMIN).json()
        crowd_alert = [e for e in history["episodes"] if e["key"] == "occupancy:womenswear"]
        assert len(crowd_alert) == 1
        episode = crowd_alert[0]
        assert episode["peak"] == 4 and episode["cleared_ms"] is not None
        assert 0 < episode["duration_s"] <= 75
        assert history["summary"]["occupancy"]["fired"] == 1
        table = client.get(f"{ALERTS}/history", params={"format": "csv"}, headers=ADMIN)
        assert table.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(table.text)))
        assert [r["key"] for r in rows if r["kind"] == "occupancy"] == ["occupancy:womenswear"]
        assert client.get(f"{ALERTS}/history").status_code == 401
        before = len(_Receiver.bodies)
        runtime.parts.alert_loop.run_once()  # type: ignore[union-attr]
        # gw-shoes is still silent: resumed from the log, not raised again
        after = [json.loads(b) for b, _ in _Receiver.bodies[before:]]
        assert not [a for a in after if a["alert"]["key"] == "gateway_silent:gw-shoes"]


def test_the_loop_runs_by_itself(plan: StorePlan, tmp_path: Path, hook_url: str) -> None:  # noqa: F811
    """The runtime's loop thread checks without anyone asking the API."""
    import threading

    settings = settings_for(
        tmp_path,
        alert_webhook_url=hook_url,
        alert_webhook_secret=SECRET,
        push_endpoint_allow=["127.0.0.1"],
        alert_check_interval_s=0.2,
    )
    with ServerRuntime(settings, stores={plan.id: plan}) as runtime:
        loop = runtime.parts.alert_loop
        assert loop is not None
        # never-heard gateways are silent: the loop raises and sends them by itself
        stop = threading.Event()
        deadline = time.monotonic() + WAIT_S
        while not (_Receiver.bodies and loop.rounds >= 1) and time.monotonic() < deadline:
            stop.wait(0.05)
        assert _Receiver.bodies, "the loop sent nothing"
        assert loop.rounds >= 1
