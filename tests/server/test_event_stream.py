"""The event stream (issue 18 point 8, zone events): Server-Sent Events from
the whole server, resumed from a cursor with Last-Event-ID; no device key in it."""

import json
from pathlib import Path
from typing import Any

import httpx

from omnizone.server.domain.analytics.event_stream import zone_events
from omnizone.server.domain.analytics.stays import Stays
from omnizone.server.runtime import ServerRuntime
from omnizone.store import StorePlan

from .conftest import STORE
from .test_bootstrap import ADMIN, WAIT_S, Server, settings_for

URL = f"/api/v1/stores/{STORE}/events/stream"


def parse_sse(text: str) -> list[dict[str, Any]]:
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.splitlines() if not line.startswith(":")
        )
        if fields:
            events.append(
                {"id": fields["id"], "event": fields["event"], **json.loads(fields["data"])}
            )
    return events


def test_zone_events_stream_and_resume_from_a_cursor(plan: StorePlan, tmp_path: Path) -> None:
    with (
        ServerRuntime(settings_for(tmp_path), stores={plan.id: plan}) as runtime,
        httpx.Client(base_url=runtime.api_url, timeout=WAIT_S) as client,
    ):
        server = Server(runtime, client)
        phones = [server.phone() for _ in range(3)]
        server.walk(phones, windows=15)
        answer = client.get(URL, params={"once": "true"}, headers=ADMIN)
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith("text/event-stream")
        events = parse_sse(answer.text)
        womenswear = [e for e in events if e["properties"]["zone"] == "womenswear"]
        # The visits are still open (no device timeout has passed): entered only.
        assert [e["event"] for e in womenswear] == ["zone_entered"] * 3
        assert len({e["anonymousId"] for e in womenswear}) == 3
        assert [e["id"] for e in events] == sorted(e["id"] for e in events)
        assert "eid:" not in answer.text
        resumed = client.get(
            URL, params={"once": "true"}, headers={**ADMIN, "Last-Event-ID": events[1]["id"]}
        )
        assert [e["id"] for e in parse_sse(resumed.text)] == [e["id"] for e in events[2:]]
        last = client.get(URL, params={"once": "true", "cursor": events[-1]["id"]}, headers=ADMIN)
        assert parse_sse(last.text) == []
        bad = client.get(URL, params={"once": "true", "cursor": "yesterday"}, headers=ADMIN)
        assert bad.status_code == 422 and "cursor" in bad.text
        assert client.get(URL, params={"once": "true"}).status_code == 401


def test_closed_stays_give_entered_then_left_and_pass_bys_nothing() -> None:
    zones = ["entrance", "shoes"]
    rows = [
        ("eid:00000000000000aa", "shoes", 1_000_000, 1_060_000, "visit"),
        ("eid:00000000000000bb", "entrance", 1_010_000, 1_012_000, "pass_by"),
        ("eid:00000000000000cc", "entrance", 1_020_000, 1_030_000, "open"),
    ]
    events = zone_events(Stays.from_rows(rows, zones), zones, STORE)
    assert [(e.type, e.zone, e.at_ms) for e in events] == [
        ("zone_entered", "shoes", 1_000_000),
        ("zone_entered", "entrance", 1_020_000),
        ("zone_left", "shoes", 1_060_000),
    ]
    assert (
        zone_events(Stays.from_rows(rows, zones), zones, STORE, after=events[0].cursor)
        == events[1:]
    )
    assert events == zone_events(Stays.from_rows(rows, zones), zones, STORE)  # stable cursors
