"""Follow-ups after the visit through the real stack, on SQLite and on
PostgreSQL: a visit ends -> a durable follow-up -> due later -> Web Push
offer or signed webhook -> a later purchase (online or at the till) credited
to it -> lift against the holdout. A restart between scheduling and sending,
or a SIGKILL in the middle of a delivery, neither loses nor duplicates one."""

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from omnizone.server.domain.offers import Campaign, campaign_lift, holdout_draw
from omnizone.server.service.follow_ups import LEASE_MS
from omnizone.server.service.shoppers import ProfileEventIn
from omnizone.store import StorePlan
from tests.server.offers.follow_up_stack import STORE, Stack, stack

T0 = 1_781_085_600_000  # 2026-06-10 10:00 UTC, a Wednesday: 12:00 in Paris
HOUR = 3_600_000
DAY = 24 * HOUR
JEANS = "09506000134369"
PATHS = (".", "gateway", "server", "firmware-sim", "suite")  # pyproject's pythonpath
BOOTS = "09506000134383"


def _tried_on(**changes: object) -> Campaign:
    body: dict[str, object] = {
        "id": "tried-back",
        "name": "Still thinking about the jeans?",
        "store": STORE,
        "trigger": {"kind": "tried_on_not_bought", "after": "2h", "attribution": "3d"},
        "content": {"title": "Still thinking?", "coupon_code": "BACK-{code}"},
        "holdout_fraction": 0.5,
    }
    body.update(changes)
    return Campaign.model_validate(body)


def _left(**changes: object) -> Campaign:
    body: dict[str, object] = {
        "id": "thanks-crm",
        "name": "Thanks for visiting (email)",
        "store": STORE,
        "trigger": {"kind": "left_store", "after": "1h", "via": "webhook"},
        "content": {"title": "Thanks for visiting"},
        "conditions": {"quiet_hours": [{"start": "21:00", "end": "09:00"}]},
    }
    body.update(changes)
    return Campaign.model_validate(body)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'omnizone.db'}"
    else:
        yield request.getfixturevalue("postgres_schema_url")


def _visit(s: Stack, shopper: str, start: int, gtin: str | None = JEANS) -> int:
    """Entrance, fitting room (a try-on there), then out of the store; when it left."""
    s.place(shopper, "entrance", start)
    s.place(shopper, "fitting-room-1", start + 60_000)
    if gtin is not None:
        s.try_on(gtin, start + 90_000)
    s.place(shopper, None, start + 300_000)
    return start + 300_000


def test_schedule_restart_deliver_attribute_and_lift(plan: StorePlan, url: str) -> None:
    clock = [T0]
    shoppers: list[str] = []
    with stack(plan, url, clock) as (s, _receiver):
        s.campaigns.save_campaign(_tried_on())
        shoppers = [s.shopper() for _ in range(24)]
        nobody = s.shopper(offers=False)
        for i, shopper in enumerate([*shoppers, nobody]):
            _visit(s, shopper, T0 + i * 1000)
        _visit(s, s.shopper(), T0, gtin=None)  # tried nothing on: no follow-up
        assert s.storage.counts() == {"pending": 24}  # no row for the shopper without consent
        assert s.follow_ups.run_due(T0 + HOUR).claimed == 0  # not due yet
    left = {shopper: T0 + i * 1000 + 300_000 for i, shopper in enumerate(shoppers)}

    # The server restarts: a new process over the same database sends them when due.
    clock[0] = T0 + 2 * HOUR + 30 * 60_000
    with stack(plan, url, clock) as (s, _receiver):
        run = s.follow_ups.run_due()
        treated = [p for p in shoppers if holdout_draw("tried-back", p) >= 0.5]
        control = [p for p in shoppers if p not in treated]
        assert (run.sent, run.held_out) == (len(treated), len(control))
        assert treated and control
        assert s.follow_ups.run_due().claimed == 0  # sent once
        for shopper in treated:
            (offer,) = s.delivery.offers_after(shopper, 0, 10)
            assert offer.campaign_id == "tried-back" and offer.coupon_code.startswith("BACK-")
            assert offer.product_gtin == JEANS
            assert offer.trigger["kind"] == "tried_on_not_bought"
            assert offer.trigger["due_ms"] == left[shopper] + 2 * HOUR
        for shopper in control:
            assert s.delivery.offers_after(shopper, 0, 10) == []

        # Later purchases: online or at the till, within the 3-day window or not.
        bought_online = treated[:3]
        bought_at_till = treated[3:5]
        for shopper in bought_online:
            s.buy(shopper, JEANS, clock[0] + DAY, "online")
        for shopper in bought_at_till:
            (offer,) = s.delivery.offers_after(shopper, 0, 10)
            s.delivery.redeem(STORE, offer.coupon_code)
            s.buy(shopper, JEANS, clock[0] + 2 * DAY, "pos")
        s.buy(treated[5], JEANS, clock[0] + 4 * DAY, "online")  # after the window
        s.buy(treated[6], BOOTS, clock[0] + DAY, "pos")  # not the item tried on
        s.buy(control[0], JEANS, clock[0] + DAY, "pos")

        figures = s.report()["tried-back"]
        follow_up = figures.follow_up
        assert follow_up is not None
        assert follow_up["scheduled"] == 24 and follow_up["pending"] == 0
        assert (follow_up["sent"], follow_up["held_out"]) == (len(treated), len(control))
        assert follow_up["converted_online"] == 3 and follow_up["converted_in_store"] == 2
        assert (figures.treated_converted, figures.control_converted) == (5, 1)
        assert figures.sent == len(treated) and figures.held_out == len(control)
        assert figures.redeemed == 2
        expected = campaign_lift(len(treated), 5, len(control), 1)
        assert figures.lift["absolute"] == pytest.approx(expected.absolute)
        assert figures.lift["absolute_low"] == pytest.approx(expected.absolute_low)


def test_bought_before_due_is_not_sent(plan: StorePlan, url: str) -> None:
    clock = [T0]
    with stack(plan, url, clock) as (s, _receiver):
        s.campaigns.save_campaign(_tried_on(holdout_fraction=0))
        shopper = s.shopper()
        left = _visit(s, shopper, T0)
        s.buy(shopper, JEANS, left + HOUR, "online")
        run = s.follow_ups.run_due(left + 2 * HOUR)
        assert run.not_sent == 1 and s.delivery.offers_after(shopper, 0, 10) == []
        (decision,) = s.decisions.decisions(campaign_id="tried-back")
        assert decision.outcome == "bought_since" and "online" in decision.reason
        follow_up = s.report()["tried-back"].follow_up
        assert follow_up is not None and follow_up["not_sent_reasons"] == {"bought_since": 1}


_KILLED_RUNNER = """
import os, signal, sys
from omnizone.paths import shipped_config
from omnizone.store import load_store
from tests.server.offers.follow_up_stack import stack

url, now = sys.argv[1], int(sys.argv[2])
with stack(load_store(shipped_config("stores/rivoli.yaml")), url, [now]) as (s, _receiver):
    publish = s.delivery.publish

    def publish_then_die(shopper_id, draft):
        publish(shopper_id, draft)  # the offer is stored...
        os.kill(os.getpid(), signal.SIGKILL)  # ...and the process dies before marking it sent

    s.follow_ups._publish = publish_then_die
    s.follow_ups.run_due(now)
"""


def test_a_runner_killed_mid_delivery_sends_it_once(plan: StorePlan, url: str) -> None:
    clock = [T0]
    with stack(plan, url, clock) as (s, _receiver):
        s.campaigns.save_campaign(_tried_on(holdout_fraction=0))
        shopper = s.shopper()
        due = _visit(s, shopper, T0) + 2 * HOUR
    root = Path(__file__).resolve().parents[3]
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_RUNNER, url, str(due)],
        cwd=root,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(str(root / p) for p in PATHS)},
        capture_output=True,
        timeout=120,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]
    clock[0] = due + LEASE_MS + 1
    with stack(plan, url, clock) as (s, _receiver):
        assert s.storage.counts() == {"sending": 1}  # decided and logged, not marked sent
        assert s.follow_ups.run_due(due + 1000).claimed == 0  # the dead runner's lease holds
        run = s.follow_ups.run_due()
        assert run.sent == 1
        assert len(s.delivery.offers_after(shopper, 0, 10)) == 1  # not stored a second time
        assert [d.outcome for d in s.decisions.decisions(campaign_id="tried-back")] == ["sent"]
        assert s.storage.counts() == {"sent": 1}


def test_webhook_follow_ups_reach_the_crm_once_after_quiet_hours(plan: StorePlan, url: str) -> None:
    clock = [T0]
    with stack(plan, url, clock) as (s, receiver):
        s.campaigns.save_campaign(_left())
        shopper = s.shopper()
        evening = T0 + 8 * HOUR + 30 * 60_000  # 20:30 in Paris: due 21:35, in quiet hours
        left = _visit(s, shopper, evening, gtin=None)
        (record,) = s.storage.of_campaign("thanks-crm")
        next_morning = T0 + DAY - 3 * HOUR  # 09:00 in Paris
        assert record.plan.due_ms == next_morning and left + HOUR < next_morning
        receiver.refuse = 1  # the CRM is down at first
        assert s.follow_ups.run_due(next_morning).retrying == 1
        assert receiver.bodies == []
        assert s.follow_ups.run_due(next_morning + 60_000).sent == 1
        (body,) = receiver.bodies
        assert body["type"] == "follow_up" and body["follow_up_id"] == record.plan.follow_up_id
        assert body["shopper_id"] == shopper and body["offer"]["title"] == "Thanks for visiting"
        assert body["offer"]["coupon_code"].startswith("OZ-")
        (offer,) = s.delivery.offers_after(shopper, 0, 10)  # the code works at the till
        assert offer.coupon_code == body["offer"]["coupon_code"]
        assert s.follow_ups.run_due(next_morning + 120_000).claimed == 0


def test_erasure_and_export_cover_follow_ups(plan: StorePlan, url: str) -> None:
    clock = [T0]
    with stack(plan, url, clock) as (s, _receiver):
        s.campaigns.save_campaign(_tried_on())
        shopper = s.shopper()
        _visit(s, shopper, T0)
        (exported,) = s.follow_ups.export_shopper(shopper)
        assert exported["campaign_id"] == "tried-back" and exported["products"] == [JEANS]
        assert s.follow_ups.erase_shopper(shopper) == 1
        assert s.follow_ups.export_shopper(shopper) == []
        assert s.follow_ups.run_due(T0 + DAY).claimed == 0


def test_taps_and_wishlist_lingering_through_the_engine(plan: StorePlan, url: str) -> None:
    clock = [T0]
    jacket = "09506000134352"
    with stack(plan, url, clock) as (s, _receiver):
        for body in (
            {
                "id": "tapped-later",
                "name": "Tapped, not bought",
                "store": STORE,
                "trigger": {"kind": "tapped_not_bought", "after": "3h"},
                "content": {"title": "The jacket you tapped"},
            },
            {
                "id": "wishlist-later",
                "name": "Lingered by a wishlist item",
                "store": STORE,
                "trigger": {"kind": "wishlist_lingered", "min_dwell_s": 30, "after": "1h"},
                "content": {"title": "Seen in store"},
            },
        ):
            s.campaigns.save_campaign(Campaign.model_validate(body))
        tapper, lingerer = s.shopper(), s.shopper()
        s.shoppers.add_profile_events(
            lingerer,
            [
                ProfileEventIn.model_validate(
                    {"type": "wishlist_add", "gtin": JEANS, "channel": "online"}
                )
            ],
        )
        s.place(tapper, "outerwear", T0)
        s.engine.on_tap(STORE, tapper, "tap-outerwear-jackets", jacket, T0 + 5000)
        s.place(tapper, None, T0 + 60_000)
        s.place(lingerer, "denim", T0)
        s.place(lingerer, "shoes", T0 + 40_000)  # 40 s by the wishlisted jeans
        s.place(lingerer, None, T0 + 50_000)
        assert s.follow_ups.run_due(T0 + 2 * HOUR).sent == 1  # the wishlist one, 1 h after
        assert s.follow_ups.run_due(T0 + 4 * HOUR).sent == 1  # the tap one, 3 h after
        (tapped,) = s.delivery.offers_after(tapper, 0, 10)
        (seen,) = s.delivery.offers_after(lingerer, 0, 10)
        assert (tapped.campaign_id, tapped.product_gtin) == ("tapped-later", jacket)
        assert (seen.campaign_id, seen.product_gtin) == ("wishlist-later", JEANS)
        assert seen.trigger["zone"] == "denim"
