"""The event stream (issue 18 point 8) against what the test makes happen:
shoppers walk in and out, an offer is sent, opened and redeemed, an NFC tap
and a try-on are heard. Every kind comes through Server-Sent Events in one
order, resumable from any cursor (a stay that closes later comes after the
cursor); no device key or radio address in it; ``userId`` only for shoppers
who consent to personalized offers; an erased shopper's events are gone;
the schema in docs/event-stream.md is the real output's."""

import json
import re
import time
from pathlib import Path
from typing import Any

import httpx

from omnizone.contract import NfcMessage, NfcTap, RfidMessage, TryOn, dump_message, topic_for
from omnizone.server.domain.analytics.event_stream import (
    VISIT_ENDED,
    VISIT_STARTED,
    ZONE_ENTERED,
    ZONE_LEFT,
    visit_events,
)
from omnizone.server.domain.identity import Purpose, check_webhook_signature
from omnizone.server.domain.visits import VisitClosed, VisitEvent, VisitOpened
from omnizone.server.runtime import ServerRuntime
from omnizone.store import StorePlan

from .conftest import STORE
from .test_alert_loop import hear
from .test_alerts_api import _Receiver, hook_url  # noqa: F401  (the fixture)
from .test_bootstrap import (  # noqa: F401  (server: the fixture)
    ADMIN,
    WAIT_S,
    Phone,
    Server,
    server,
    settings_for,
)

URL = f"/api/v1/stores/{STORE}/events/stream"
DOC = Path(__file__).resolve().parents[2] / "docs" / "event-stream.md"


def parse_sse(text: str) -> list[dict[str, Any]]:
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.splitlines() if not line.startswith(":")
        )
        if fields:
            events.append(
                {"id": fields["id"], "name": fields["event"], **json.loads(fields["data"])}
            )
    return events


def stream(client: httpx.Client, after: str | None = None) -> list[dict[str, Any]]:
    headers = {**ADMIN, **({"Last-Event-ID": after} if after else {})}
    answer = client.get(URL, params={"once": "true"}, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/event-stream")
    assert "eid:" not in answer.text and "ibeacon:" not in answer.text
    return parse_sse(answer.text)


def location_only(server: Server, purpose: Purpose = Purpose.LOCATION_ANALYTICS) -> Phone:  # noqa: F811
    """A phone that consents to one purpose only."""
    registered = server.client.post("/api/v1/shoppers", json={"store": STORE})
    phone = Phone.registered(registered.json())
    consent = {purpose.value: True}
    assert server.client.put("/api/v1/me/consent", json=consent, headers=phone.auth).is_success
    return phone


def test_every_kind_in_one_resumable_order(server: Server) -> None:  # noqa: F811
    client = server.client
    offers_ok = [server.phone() for _ in range(2)]
    anonymous = location_only(server)
    untracked = location_only(server, Purpose.PERSONALIZED_OFFERS)  # no location consent
    walker = server.phone()
    start = time.time_ns() // 1_000_000 // 1000 * 1000
    at = start
    for _ in range(15):
        at += 1000
        hear(server, "gw-womenswear", [*offers_ok, anonymous, untracked], at)
    assert server.parts.engine.drain(5)
    first = stream(client)
    names = [e["event"] for e in first]
    # three, not four: the phone without location consent makes no location event
    assert names.count(VISIT_STARTED) == 3 and names.count(ZONE_ENTERED) == 3
    assert untracked.shopper_id not in json.dumps(first)
    assert "offer_sent" in names
    assert [int(e["id"]) for e in first] == sorted({int(e["id"]) for e in first})
    by_user = {e.get("userId") for e in first if e["event"] == ZONE_ENTERED}
    assert by_user == {offers_ok[0].shopper_id, offers_ok[1].shopper_id, None}
    assert len({e["anonymousId"] for e in first if e["event"] == ZONE_ENTERED}) == 3
    # resume after the second event: exactly the rest
    assert [e["id"] for e in stream(client, first[1]["id"])] == [e["id"] for e in first[2:]]
    # they leave (another shopper walks on alone): the stays close after the cursor
    for _ in range(45):
        at += 1000
        hear(server, "gw-womenswear", [walker], at)
    later = stream(client, first[-1]["id"])
    left = [e for e in later if e["event"] in (ZONE_LEFT, VISIT_ENDED)]
    assert sorted(e["event"] for e in left) == [VISIT_ENDED] * 3 + [ZONE_LEFT] * 3
    assert all(e["properties"]["zone"] == "womenswear" for e in left)
    assert all(e["properties"]["dwell_s"] > 10 for e in left if e["event"] == ZONE_LEFT)
    # offers: opened by the phone, redeemed at the till
    offer = server.inbox(offers_ok[0])[0]
    opened = client.post(
        f"/api/v1/me/offers/{offer['offer_id']}/receipts",
        json={"status": "opened"},
        headers=offers_ok[0].auth,
    )
    assert opened.status_code == 200, opened.text
    redeemed = client.post(
        f"/api/v1/stores/{STORE}/redemptions", json={"code": offer["coupon_code"]}, headers=ADMIN
    )
    assert redeemed.status_code == 201, redeemed.text
    # a tap and a try-on
    tap = NfcMessage(
        store=STORE,
        gateway="gw-shoes",
        seq=1,
        sent_ms=at,
        items=[NfcTap(tap_point="tap-shoes-kiosk", uid="04a1b2c3d4e5f6", at_ms=at)],
    )
    server.parts.ingest.handle(topic_for(STORE, "gw-shoes", "nfc"), dump_message(tap), at)
    try_on = RfidMessage(
        store=STORE,
        gateway="gw-fitting-1",
        seq=1,
        sent_ms=at,
        items=[
            TryOn(
                reader="rfid-fitting-1",
                event="arrived",
                epc="30340123456789abcdef0123",
                gtin="09506000134352",
                at_ms=at,
            )
        ],
    )
    server.parts.ingest.handle(topic_for(STORE, "gw-fitting-1", "rfid"), dump_message(try_on), at)
    last = stream(client, later[-1]["id"])
    kinds = {e["event"]: e for e in last}
    assert kinds["offer_opened"]["properties"]["offer_id"] == offer["offer_id"]
    assert kinds["offer_opened"]["userId"] == offers_ok[0].shopper_id
    assert kinds["offer_redeemed"]["properties"]["campaign_id"] == offer["campaign_id"]
    assert kinds["tap"]["properties"]["tap_point"] == "tap-shoes-kiosk"
    assert kinds["try_on"]["properties"]["gtin"] == "09506000134352"
    everything = stream(client)
    text = json.dumps(everything)
    assert "04a1b2c3d4e5f6" not in text and "30340123456789abcdef0123" not in text
    assert len({e["messageId"] for e in everything}) == len(everything)
    check_documented_schema(everything)
    # the JSON page is the same events
    page = client.get(f"/api/v1/stores/{STORE}/events", params={"limit": 3}, headers=ADMIN)
    assert [e["messageId"] for e in page.json()["events"]] == [
        e["messageId"] for e in everything[:3]
    ]
    assert page.json()["next_cursor"] == everything[2]["id"]
    # bad input, no key
    bad = client.get(URL, params={"once": "true", "cursor": "yesterday"}, headers=ADMIN)
    assert bad.status_code == 422 and "cursor" in bad.text
    assert client.get(URL, params={"once": "true"}).status_code == 401
    assert client.get("/api/v1/stores/nowhere/events", headers=ADMIN).status_code == 404
    # erasure: the shopper's events go with them
    gone = offers_ok[1].shopper_id
    assert client.delete("/api/v1/me", headers=offers_ok[1].auth).status_code == 204
    assert gone not in json.dumps(stream(client))


def check_documented_schema(real: list[dict[str, Any]]) -> None:
    """Every example in the docs has the real output's fields and types, and
    each real event kind has an example."""
    examples = [
        json.loads(block) for block in re.findall(r"```json\n(.*?)\n```", DOC.read_text(), re.S)
    ]
    examples = [e for e in examples if e.get("type") == "track"]
    documented = {e["event"]: e for e in examples}
    for event in real:
        example = documented.get(event["event"])
        assert example is not None, f"docs/event-stream.md has no {event['event']} example"
        message = {k: v for k, v in event.items() if k not in ("id", "name")}
        optional = {"userId"}
        assert set(message) - optional == set(example) - optional, event["event"]
        for key, value in message.items():
            if key in example:
                assert type(value) is type(example[key]), (event["event"], key)
        # a property the fact lacks (an offer not triggered in a zone) is left out, never renamed
        assert "store" in message["properties"]
        assert set(message["properties"]) <= set(example["properties"]), event["event"]
        assert set(message["context"]["omnizone"]) == set(example["context"]["omnizone"])
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", message["timestamp"])


def test_visit_started_and_ended_per_device_not_per_zone() -> None:
    moved: list[VisitEvent] = [
        VisitClosed("entrance", 1_000, 20_000, False),
        VisitOpened("shoes", 15_000),
    ]
    # already in the store: a move is no new visit
    events = visit_events(STORE, "shopper-1", moved, was_present=True, is_present=True)
    assert [e.event for e in events] == [ZONE_LEFT, ZONE_ENTERED]
    arrived = visit_events(
        STORE, "shopper-1", [VisitOpened("entrance", 1_000)], was_present=False, is_present=True
    )
    assert [(e.event, e.at_ms) for e in arrived] == [(VISIT_STARTED, 1_000), (ZONE_ENTERED, 1_000)]
    gone = visit_events(
        STORE,
        "shopper-1",
        [VisitClosed("shoes", 15_000, 60_000, False)],
        was_present=True,
        is_present=False,
    )
    assert [(e.event, e.at_ms) for e in gone] == [(ZONE_LEFT, 60_000), (VISIT_ENDED, 60_000)]
    again = visit_events(STORE, "shopper-1", moved, was_present=True, is_present=True)
    assert [e.message_id for e in again] == [e.message_id for e in events]  # stable ids


def test_bench_stream_prints_alert_and_stream_figures() -> None:
    from typer.testing import CliRunner

    from omnizone.suite.cli import app

    args = ["bench", "stream", "--shoppers", "20", "--events", "300", "--runs", "2", "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert figures["stream"]["read_all"] is True and figures["stream"]["events"] == 300
    assert figures["alerts"]["stays"] == 80 and figures["alerts"]["active"] > 0
    bad = CliRunner().invoke(app, ["bench", "stream", "--events", "0"])
    assert bad.exit_code == 2


def test_a_webhook_subscription_gets_signed_segment_batches(
    plan: StorePlan,
    tmp_path: Path,
    hook_url: str,  # noqa: F811
) -> None:
    secret = "event-webhook-secret-0001"
    read_key = {"X-API-Key": "events-read-0001"}
    settings = settings_for(
        tmp_path,
        event_webhook_secret=secret,
        push_endpoint_allow=["127.0.0.1"],
        alert_check_interval_s=0,
        api_keys={ADMIN["X-API-Key"]: ["admin"], read_key["X-API-Key"]: ["read"]},
    )
    subs = f"/api/v1/stores/{STORE}/events/subscriptions"
    with (
        ServerRuntime(settings, stores={plan.id: plan}) as runtime,
        httpx.Client(base_url=runtime.api_url, timeout=WAIT_S) as client,
    ):
        server = Server(runtime, client)
        wanted = {"url": hook_url, "events": ["visit_started", "zone_entered"]}
        assert client.post(subs, json=wanted, headers=read_key).status_code == 403
        bad = client.post(subs, json={**wanted, "events": ["zone_exploded"]}, headers=ADMIN)
        assert bad.status_code == 422 and "zone_exploded" in bad.text
        made = client.post(subs, json=wanted, headers=ADMIN)
        assert made.status_code == 201, made.text
        phones = [server.phone() for _ in range(2)]
        at = time.time_ns() // 1_000_000 // 1000 * 1000
        for n in range(12):
            hear(server, "gw-womenswear", phones, at + n * 1000)
        assert runtime.parts.alert_loop is not None
        runtime.parts.alert_loop.run_once()
        runtime.parts.alert_loop.run_once()  # nothing new: nothing sent again
        (listed,) = client.get(subs, headers=ADMIN).json()["subscriptions"]
        assert listed["id"] == made.json()["id"] and listed["delivered"] == 4
    # kept across a restart: still listed, cursor where it was
    with (
        ServerRuntime(settings, stores={plan.id: plan}) as runtime,
        httpx.Client(base_url=runtime.api_url, timeout=WAIT_S) as client,
    ):
        (again,) = client.get(subs, headers=ADMIN).json()["subscriptions"]
        assert again["cursor"] == listed["cursor"]
        gone = client.delete(f"{subs}/{again['id']}", headers=ADMIN)
        assert gone.status_code == 204
    ((body, signature),) = _Receiver.bodies
    check_webhook_signature(secret.encode(), body, signature)
    batch = json.loads(body)["batch"]
    assert sorted(m["event"] for m in batch) == ["visit_started"] * 2 + ["zone_entered"] * 2
    assert {m["userId"] for m in batch} == {p.shopper_id for p in phones}
