"""The campaign performance view applies the range it shows: in headless
Chromium against a real server, the decisions, offers, receipts,
redemptions and purchases stored on two days are counted for the day the
range picker chooses, and the page's figures are the API's (JSON and CSV)."""

import csv
import io
import itertools
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.sync_api import Page, expect

from omnizone.contract.timefmt import wall_clock_ms
from omnizone.server.domain.identity import Purpose
from omnizone.server.domain.offers import Decision, OfferDraft, Outcome
from omnizone.server.runtime import ServerRuntime
from omnizone.server.service.delivery import NewOffer
from omnizone.server.service.shoppers import ProfileEventIn
from tests.e2e.browser import chromium
from tests.e2e.dashboard_stack import ADMIN_KEY, READ_KEY, staff_server, store_id
from tests.e2e.test_dashboard import DENIM, create_campaign, login

pytestmark = pytest.mark.e2e

STORE = store_id()
TZ = ZoneInfo("Europe/Paris")
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
# Two store days at noon, a day apart: in the default range (the last days of data).
DAY_B = (wall_clock_ms() // DAY_MS - 1) * DAY_MS + 12 * HOUR_MS
DAY_A = DAY_B - 2 * DAY_MS


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerRuntime]:
    with staff_server(tmp_path / "omnizone.db") as running:
        yield running


def _draft(created_ms: int) -> OfferDraft:
    return OfferDraft(
        store=STORE,
        campaign_id=DENIM["id"],
        title="10% off denim today",
        body="Any pair.",
        created_ms=created_ms,
        expires_ms=created_ms + DAY_MS,
        trigger={"kind": "zone_entered", "zone": "denim"},
        image=None,
        product_gtin=None,
        coupon_code="DENIM10",
    )


def _seed(server: ServerRuntime) -> None:
    """Day A: 3 decisions (1 sent, 1 held out, 1 in quiet hours), the offer
    delivered, opened and redeemed, its shopper buying. Day B: 5 decisions
    (2 sent, 1 held out, 2 in quiet hours), one offer delivered, none redeemed,
    the held-out shopper buying."""
    parts = server.parts
    shoppers = []
    for _ in range(6):
        shopper = parts.shoppers.register(STORE).shopper_id
        parts.shoppers.set_consent(
            shopper, {Purpose.PERSONALIZED_OFFERS: True, Purpose.LOCATION_ANALYTICS: True}
        )
        shoppers.append(shopper)
    ann, bob, cy, dan, eve, fay = shoppers
    cid = DENIM["id"]

    def decide(shopper: str, outcome: Outcome, at_ms: int) -> Decision:
        return Decision(cid, shopper, outcome, f"because {outcome}", "v1", at_ms)

    parts.storage.campaigns.log_decisions(
        STORE,
        "zone_entered",
        [
            decide(ann, Outcome.SENT, DAY_A),
            decide(bob, Outcome.HELD_OUT, DAY_A + 1000),
            decide(cy, Outcome.QUIET_HOURS, DAY_A + 2000),
            decide(dan, Outcome.SENT, DAY_B),
            decide(eve, Outcome.SENT, DAY_B + 1000),
            decide(fay, Outcome.HELD_OUT, DAY_B + 2000),
            decide(cy, Outcome.QUIET_HOURS, DAY_B + 3000),
            decide(cy, Outcome.QUIET_HOURS, DAY_B + 4000),
        ],
    )
    offers = parts.storage.offers
    numbers = itertools.count(1)

    def code(draft: OfferDraft) -> str:
        return f"DENIM10-R{next(numbers)}"

    (a_offer,) = offers.add_offers([NewOffer(ann, _draft(DAY_A))], created_ms=DAY_A, new_code=code)
    offers.add_offers(
        [NewOffer(dan, _draft(DAY_B)), NewOffer(eve, _draft(DAY_B))],
        created_ms=DAY_B,
        new_code=code,
    )
    offers.ack_many({ann: 1}, DAY_A + 60_000)
    offers.add_receipt(ann, a_offer.offer_id, "opened", DAY_A + 90_000)
    offers.redeem(STORE, a_offer.coupon_code, DAY_A + 120_000)
    offers.ack_many({dan: 1}, DAY_B + 60_000)
    for shopper, at_ms in ((ann, DAY_A + HOUR_MS), (fay, DAY_B + HOUR_MS)):
        parts.shoppers.add_profile_events(
            shopper,
            [ProfileEventIn(type="purchase", gtin="09506000134376", channel="pos", at_ms=at_ms)],
        )


def _local(ms: int) -> str:
    """A ``datetime-local`` value in the store's time."""
    return datetime.fromtimestamp(ms / 1000, TZ).strftime("%Y-%m-%dT%H:%M")


def _api(base: str, path: str, **params: Any) -> httpx.Response:
    response = httpx.get(
        f"{base}/api/v1/stores/{STORE}/{path}", params=params, headers={"X-API-Key": READ_KEY}
    )
    assert response.status_code == 200, response.text
    return response


# triggered, sent, held out, delivered, opened, redeemed; then the lift's groups.
FIGURES = ("triggered", "sent", "held_out", "delivered", "opened", "redeemed")
GROUPS = ("treated_shoppers", "treated_converted", "control_shoppers", "control_converted")
DAY_A_FIGURES = (3, 1, 1, 1, 1, 1)
DAY_B_FIGURES = (5, 2, 1, 1, 0, 0)


RANGES = {
    "day A": (DAY_A - 6 * HOUR_MS, DAY_A + 6 * HOUR_MS, DAY_A_FIGURES, (1, 1, 1, 0)),
    "day B": (DAY_B - 6 * HOUR_MS, DAY_B + 6 * HOUR_MS, DAY_B_FIGURES, (2, 0, 1, 1)),
    "both days": (DAY_A - 6 * HOUR_MS, DAY_B + 6 * HOUR_MS, (8, 3, 2, 2, 1, 1), (3, 1, 2, 1)),
    # Day A's first hour: the decisions, the receipts and the redemption, not
    # the purchase an hour after the offer (the range cuts the window).
    "day A's first hour": (DAY_A - 6 * HOUR_MS, DAY_A + HOUR_MS, DAY_A_FIGURES, (1, 0, 1, 0)),
}


def test_the_campaign_view_counts_within_the_range_chosen_in_the_picker(
    server: ServerRuntime,
) -> None:
    base = server.api_url
    create_campaign(base, DENIM)
    _seed(server)
    # The stored events, read without a range: every day at once.
    (whole,) = _api(base, "campaigns/report").json()
    assert tuple(whole[k] for k in FIGURES) == (8, 3, 2, 2, 1, 1)
    # The API, JSON and CSV, counts within each range.
    for name, (start, end, figures, groups) in RANGES.items():
        (answered,) = _api(base, "analytics/campaigns", from_ms=start, to_ms=end).json()[
            "campaigns"
        ]
        assert tuple(answered[k] for k in FIGURES + GROUPS) == figures + groups, name
        (report,) = _api(base, "campaigns/report", from_ms=start, to_ms=end).json()
        assert tuple(report[k] for k in FIGURES + GROUPS) == figures + groups, name
        text = _api(base, "analytics/campaigns", from_ms=start, to_ms=end, format="csv").text
        (row,) = list(csv.DictReader(io.StringIO(text)))
        assert tuple(int(row[k]) for k in FIGURES) == figures, name

    with chromium() as browser:
        page: Page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        login(page, base, ADMIN_KEY)
        page.goto(f"{base}/dashboard/#/analytics/campaigns")
        page.get_by_test_id("campaign-performance").wait_for()
        cells = page.locator(
            f"[data-testid=campaign-performance] tr[data-campaign={DENIM['id']}] td.num"
        )
        label = page.get_by_test_id("range-label")
        # The picker is back, and each range it chooses changes the figures.
        for name, (start, end, figures, _groups) in RANGES.items():
            before = label.inner_text()
            page.get_by_test_id("range-from").fill(_local(start))
            page.get_by_test_id("range-to").fill(_local(end))
            page.get_by_test_id("range-apply").click()
            expect(label, name).not_to_have_text(before)  # the view drawn for the range
            expect(cells, name).to_have_text([str(n) for n in figures])
            assert "whole life" not in label.inner_text()
        assert errors == [], errors
