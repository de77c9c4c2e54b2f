"""Ground truth for follow-ups after the visit: the real server (HTTP, its
engine and follow-up service), simulated shoppers who try jeans on and
leave, and the simulated apps, web shop and till after the visit
(``omnizone.sim.after_visit``) buying later online or in the store. The
campaign report's follow-up figures must equal what the simulation did."""

from collections.abc import Iterator
from csv import DictReader
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from omnizone.server import bootstrap
from omnizone.server.domain.offers import campaign_lift, holdout_draw
from omnizone.server.runtime import ServerRuntime
from omnizone.server.service.locators import ZonePlacement
from omnizone.sim.after_visit import AfterVisit
from omnizone.store import StorePlan
from omnizone.suite.report import write_report
from tests.server.test_bootstrap import settings_for

STORE = "paris-rivoli"
ADMIN = {"X-API-Key": "follow-up-admin-0001"}
POS = "follow-up-till-00001"
SECRET = "follow-up-profile-hook-secret"
JEANS, PRICE = "09506000134369", 89.0
# A Wednesday noon in Paris, after the wall clock: the server's own runner
# (wall-clock time) never finds these due; the test runs them at store time.
T0 = int(datetime(2027, 1, 13, 12, tzinfo=ZoneInfo("Europe/Paris")).timestamp() * 1000)
CAMPAIGN = {
    "id": "tried-back",
    "name": "Tried it on, still thinking?",
    "trigger": {"kind": "tried_on_not_bought", "after": "2h", "attribution": "7d"},
    "content": {"title": "Still thinking?", "coupon_code": "BACK-{code}"},
    "holdout_fraction": 0.3,
}


@pytest.fixture
def runtime(plan: StorePlan, tmp_path: Path) -> Iterator[ServerRuntime]:
    settings = settings_for(
        tmp_path,
        api_keys={ADMIN["X-API-Key"]: ["admin"], POS: ["pos"]},
        webhook_secret=SECRET,
        follow_up_interval_s=3600,
    )
    with ServerRuntime(settings, stores={plan.id: plan}) as running:
        yield running


def _register(client: httpx.Client) -> tuple[str, str]:
    made = client.post("/api/v1/shoppers", json={"store": STORE})
    assert made.status_code == 201, made.text
    body = made.json()
    consent = {"personalized_offers": True, "location_analytics": True}
    auth = {"Authorization": f"Bearer {body['token']}"}
    assert client.put("/api/v1/me/consent", json=consent, headers=auth).status_code == 200
    return body["shopper_id"], body["token"]


def test_the_report_counts_what_the_simulated_shoppers_did(
    runtime: ServerRuntime, plan: StorePlan, tmp_path: Path
) -> None:
    parts = runtime.parts
    assert parts.follow_ups is not None
    with httpx.Client(base_url=runtime.api_url, timeout=15) as client:
        made = client.post(f"/api/v1/stores/{STORE}/campaigns", json=CAMPAIGN, headers=ADMIN)
        assert made.status_code == 201, made.text
        shoppers = [_register(client) for _ in range(20)]
        left_ms = 0
        for i, (shopper, _token) in enumerate(shoppers):  # one after the other through the room
            start = T0 + i * 600_000
            for zone, at in (("entrance", start), ("fitting-room-1", start + 60_000)):
                parts.engine.on_placement(STORE, ZonePlacement(shopper, zone, at, at))
            assert parts.engine.drain(15)
            parts.engine.on_try_on(STORE, "rfid-fitting-1", JEANS, start + 120_000)
            left_ms = start + 300_000
            parts.engine.on_placement(STORE, ZonePlacement(shopper, None, left_ms, left_ms))
        assert parts.engine.drain(15)

        due_ms = left_ms + 2 * 3_600_000
        run = parts.follow_ups.run_due(due_ms)
        assert run.sent + run.held_out == len(shoppers)
        after = AfterVisit(
            client, STORE, pos_key=POS, webhook_secret=SECRET, seed=18, buy_otherwise=0.3
        )
        for i, (shopper, token) in enumerate(shoppers):
            after.live_on(shopper, token, JEANS, PRICE, due_ms, key=f"shopper-{i}")

        answer = client.get(f"/api/v1/stores/{STORE}/campaigns/report", headers=ADMIN)
        assert answer.status_code == 200, answer.text
        (figures,) = [f for f in answer.json() if f["campaign_id"] == "tried-back"]
        csv = client.get(
            f"/api/v1/stores/{STORE}/analytics/campaigns", params={"format": "csv"}, headers=ADMIN
        )
    follow_up: dict[str, Any] = figures["follow_up"]

    # What the simulation did, counted on its side.
    treated = set(after.follow_ups_seen)
    control = {s for s, _t in shoppers} - treated
    assert treated == {s for s, _t in shoppers if holdout_draw("tried-back", s) >= 0.3}
    won = [p for p in after.truth if p.follow_up is not None]
    lost = [p for p in after.truth if p.follow_up is None]
    assert won and control  # both groups (P(no control) = 0.7^20 < 0.1 %)
    assert (follow_up["scheduled"], follow_up["pending"]) == (20, 0)
    assert (follow_up["sent"], follow_up["held_out"]) == (len(treated), len(control))
    assert (figures["sent"], figures["held_out"]) == (len(treated), len(control))
    assert figures["opened"] == len(treated)
    assert figures["treated_converted"] == len(won)
    assert figures["control_converted"] == len(lost)
    assert follow_up["converted_online"] == sum(p.channel == "online" for p in won)
    assert follow_up["converted_in_store"] == sum(p.channel == "pos" for p in won)
    assert figures["redeemed"] == sum(p.redeemed for p in won)
    assert follow_up["revenue"] == pytest.approx(PRICE * len(won))
    lift = campaign_lift(len(treated), len(won), len(control), len(lost))
    assert figures["lift"]["absolute"] == pytest.approx(lift.absolute)
    header = csv.text.splitlines()[0].split(",")
    assert "follow_up_converted_online" in header and "follow_up_sent" in header

    # `omnizone report` writes the same figures into its campaigns CSV.
    storage = bootstrap.open_storage(runtime.parts.settings.database_url)
    try:
        reports = bootstrap.build_reports(storage, {plan.id: plan})
        out = tmp_path / "report"
        write_report(reports.stores, reports.analytics, STORE, "2027-01-13", "2027-01-20", out)
    finally:
        storage.close()
    with (out / f"{STORE}-campaigns.csv").open(encoding="utf-8") as file:
        (row,) = [r for r in DictReader(file) if r["campaign_id"] == "tried-back"]
    assert int(row["follow_up_sent"]) == len(treated)
    assert int(row["follow_up_held_out"]) == len(control)
    assert int(row["follow_up_converted_online"]) == follow_up["converted_online"]
    assert int(row["follow_up_converted_in_store"]) == follow_up["converted_in_store"]
    assert int(row["treated_converted"]) == len(won)
