"""The dashboard's Alerts page (issue 18 points 7, 8), in headless Chromium on
a real server: gateways never heard and an ESPresense node whose room went
offline are listed, with the raise in the recent changes and in the stored
history; the thresholds are shown and a read key may not change them; a tap
shows in the store events as other systems get it."""

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from omnizone.contract import HealthMessage, NfcMessage, NfcTap, dump_message, topic_for
from omnizone.contract.timefmt import wall_clock_ms
from omnizone.server.runtime import ServerRuntime
from tests.e2e.dashboard_page import checked_page, log_in
from tests.e2e.dashboard_stack import READ_KEY, staff_server, store_id

STORE = store_id()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerRuntime]:
    with staff_server(tmp_path / "omnizone.db") as running:
        yield running


def test_the_alerts_page_lists_silent_gateways_and_an_offline_espresense_node(
    server: ServerRuntime,
) -> None:
    now = wall_clock_ms()
    health = HealthMessage(
        store=STORE,
        gateway="gw-entrance",
        seq=0,
        sent_ms=now,
        uptime_s=60,
        outbox_depth=0,
        outbox_dropped=0,
        readers={"ble": "scanning", "espresense": "offline"},
        counters={"espresense.uptime_s": 3605},
        version="test",
    )
    server.ingest.handle(topic_for(STORE, "gw-entrance", "health"), dump_message(health), now)
    tap = NfcMessage(
        store=STORE,
        gateway="gw-outerwear",
        seq=1,
        sent_ms=now,
        items=[NfcTap(tap_point="tap-outerwear-jackets", uid="04a1b2c3d4e5f6", at_ms=now)],
    )
    server.ingest.handle(topic_for(STORE, "gw-outerwear", "nfc"), dump_message(tap), now)
    with checked_page(height=900) as page:
        log_in(page, server.api_url, READ_KEY)
        page.get_by_test_id("nav-alerts").click()
        table = page.get_by_test_id("alerts")
        expect(
            table.locator("tr[data-alert='gateway_reader:gw-entrance:espresense']")
        ).to_contain_text("espresense is offline")
        expect(table.locator("tr[data-alert='gateway_silent:gw-shoes']")).to_contain_text(
            "never heard"
        )
        expect(table.locator("tr[data-alert='gateway_silent:gw-entrance']")).to_have_count(0)
        expect(page.get_by_test_id("alert-changes")).to_contain_text("raised: gateway gw-shoes")
        expect(
            page.get_by_test_id("alert-history").locator(
                "tr[data-episode='gateway_silent:gw-fitting-1']"
            )
        ).to_contain_text("active")
        expect(page.get_by_test_id("alert-rules")).to_have_value(re.compile("gateway_silent_s"))
        page.get_by_test_id("alert-rules-save").click()
        expect(page.get_by_test_id("alert-rules-said")).to_contain_text("needs an admin key")
        expect(page.get_by_test_id("store-events").locator("tr[data-event='tap']")).to_contain_text(
            "tap_point=tap-outerwear-jackets"
        )
