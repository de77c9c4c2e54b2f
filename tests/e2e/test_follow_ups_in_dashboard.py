"""Follow-ups after the visit in the staff dashboard, headless Chromium
against a real server: a follow-up campaign is made in the campaign editor
(its delay, channel and attribution window; a bad delay refused with the
field named), and once a shopper's visit has produced a follow-up that was
sent, the campaigns list shows its figures from the report."""

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.sync_api import Page

from omnizone.server.domain.identity import Purpose
from omnizone.server.runtime import ServerRuntime
from omnizone.server.service.locators import ZonePlacement
from tests.e2e.dashboard_page import checked_page, log_in
from tests.e2e.dashboard_stack import ADMIN_KEY, READ_KEY, staff_server, store_id

STORE = store_id()
JEANS = "09506000134369"
T0 = int(datetime(2027, 1, 13, 12, tzinfo=ZoneInfo("Europe/Paris")).timestamp() * 1000)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerRuntime]:
    with staff_server(tmp_path / "omnizone.db", follow_up_interval_s=3600) as running:
        yield running


@pytest.fixture
def page(server: ServerRuntime) -> Iterator[Page]:
    with checked_page() as page:
        yield page


def _visit_and_follow_up(server: ServerRuntime) -> None:
    """A consenting shopper tries the jeans on and leaves; 3 h later it is due."""
    parts = server.parts
    assert parts.follow_ups is not None
    shopper = parts.shoppers.register(STORE).shopper_id
    parts.shoppers.set_consent(
        shopper, {Purpose.PERSONALIZED_OFFERS: True, Purpose.LOCATION_ANALYTICS: True}
    )
    parts.engine.on_placement(STORE, ZonePlacement(shopper, "fitting-room-1", T0, T0))
    assert parts.engine.drain(15)
    parts.engine.on_try_on(STORE, "rfid-fitting-1", JEANS, T0 + 30_000)
    parts.engine.on_placement(STORE, ZonePlacement(shopper, None, T0 + 60_000, T0 + 60_000))
    assert parts.engine.drain(15)
    assert parts.follow_ups.run_due(T0 + 60_000 + 3 * 3_600_000).sent == 1


def test_a_follow_up_campaign_is_made_in_the_editor_and_reported(
    server: ServerRuntime, page: Page
) -> None:
    base = server.api_url
    log_in(page, base, ADMIN_KEY)
    page.get_by_test_id("nav-campaigns").click()
    page.get_by_test_id("new-campaign").wait_for()
    assert not page.get_by_test_id("campaign-follow-up").is_visible()  # store_entered

    page.get_by_test_id("campaign-id").fill("tried-back")
    page.get_by_test_id("campaign-name").fill("Tried it on, still thinking?")
    page.get_by_test_id("campaign-trigger").select_option("tried_on_not_bought")
    assert page.get_by_test_id("campaign-follow-up").is_visible()
    page.locator("[data-testid=campaign-zones] input[data-zone=fitting-room-1]").check()
    page.get_by_test_id("campaign-title").fill("Still thinking?")
    page.get_by_test_id("campaign-holdout").fill("0")
    page.get_by_test_id("campaign-after").fill("soon")
    page.get_by_test_id("create-campaign").click()
    problem = page.get_by_test_id("campaign-problems").locator("li").first
    problem.wait_for()
    assert ".after: " in problem.inner_text() and "expected a duration" in problem.inner_text()

    page.get_by_test_id("campaign-after").fill("3h")
    page.get_by_test_id("campaign-via").select_option("web_push")
    page.get_by_test_id("campaign-attribution").fill("3d")
    page.get_by_test_id("create-campaign").click()
    row = page.locator("[data-testid=campaigns] tr[data-campaign=tried-back]")
    row.wait_for()
    assert "3h later by Web Push" in row.inner_text()

    api = httpx.Client(base_url=base, headers={"X-API-Key": READ_KEY})
    stored = {c["id"]: c for c in api.get(f"/api/v1/stores/{STORE}/campaigns").json()}
    trigger = stored["tried-back"]["trigger"]
    assert (trigger["kind"], trigger["after"], trigger["via"]) == (
        "tried_on_not_bought",
        "3h",
        "web_push",
    )
    assert trigger["attribution"] == "3d" and trigger["zones"] == ["fitting-room-1"]

    _visit_and_follow_up(server)
    page.get_by_test_id("nav-live").click()
    page.get_by_test_id("nav-campaigns").click()
    figures = page.locator(
        "[data-testid=campaigns] tr[data-campaign=tried-back] [data-testid=follow-up-figures]"
    )
    figures.wait_for()
    text = figures.inner_text()
    assert "scheduled 1" in text and "sent 1" in text and "held out 0" in text
    assert "within 3 d" in text

    # Edited again: the follow-up fields come back as saved and are kept.
    row.get_by_test_id("edit").click()
    page.locator("[data-testid=new-campaign][data-mode=edit]").wait_for()
    assert page.get_by_test_id("campaign-after").input_value() == "3h"
    page.get_by_test_id("campaign-via").select_option("webhook")
    page.get_by_test_id("save-campaign").click()
    page.locator(
        "[data-testid=campaigns] tr[data-campaign=tried-back]", has_text="email/CRM"
    ).wait_for()
    saved = {c["id"]: c for c in api.get(f"/api/v1/stores/{STORE}/campaigns").json()}
    assert saved["tried-back"]["trigger"]["via"] == "webhook"
    assert saved["tried-back"]["trigger"]["after"] == "3h"
