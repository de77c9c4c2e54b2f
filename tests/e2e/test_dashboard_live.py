"""The dashboard with the simulated store behind it (simulator → real gateway
code → Mosquitto → server): the live map changes while shoppers walk, and
shows no shopper id; every analytics view opens on the stored events and
exports its CSV."""

import csv
import io
import json
import threading
import time
from typing import Any

import pytest
from playwright.sync_api import Page

from omnizone.sim.runner import run_paced
from tests.e2e.browser import chromium
from tests.e2e.conftest import API_KEY, StoreStack

pytestmark = pytest.mark.e2e

ANALYTICS = {
    "presence": "presence-table",
    "dwell": "dwell-charts",
    "footfall": "footfall-grid",
    "visits": "visits-table",
    "paths": "routes-table",
    "funnel": "funnel-table",
    "campaigns": "campaign-performance",
}


def _login(page: Page, base: str) -> None:
    page.goto(f"{base}/dashboard/")
    page.get_by_test_id("api-key").fill(API_KEY)
    page.get_by_test_id("login").click()
    page.get_by_test_id("live-floor").wait_for()


def _live(page: Page) -> dict[str, Any]:
    """What the page has drawn: its counters and every dot's position."""
    found: dict[str, Any] = page.evaluate(
        """() => ({
            stats: window.__liveStats,
            dots: Object.fromEntries([...document.querySelectorAll('[data-dot]')].map(
                (d) => [d.dataset.dot, [d.getAttribute('cx'), d.getAttribute('cy')]])),
            zoneCounts: [...document.querySelectorAll('[data-zone-count]')].map(
                (c) => Number(c.textContent)),
        })"""
    )
    return found


def _wait(page: Page, predicate: str, timeout_s: float = 60) -> None:
    page.wait_for_function(predicate, timeout=timeout_s * 1000)


def test_the_live_map_changes_while_the_simulator_runs(store_stack: StoreStack) -> None:
    stack = store_stack
    base = stack.server.api_url
    simulation = stack.simulation()
    # every registered phone: those the first shoppers carry, and those still unused
    carried = {s.app.shopper_id for s in simulation.shoppers if s.app is not None}
    shopper_ids = carried | {phone.shopper_id for phone in simulation._app_phones}
    assert carried and len(shopper_ids) > len(carried)
    frames: list[str] = []
    stop = threading.Event()
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.on(
            "websocket",
            lambda ws: ws.on("framereceived", lambda payload: frames.append(str(payload))),
        )
        _login(page, base)
        _wait(
            page, "window.__liveStats && window.__liveStats.hello && window.__liveStats.painted > 0"
        )
        assert _live(page)["stats"]["present"] == 0  # nobody in the store yet
        walker = threading.Thread(
            target=run_paced, args=(simulation,), kwargs={"speed": 6.0, "stop": stop}
        )
        walker.start()
        try:
            _wait(page, "window.__liveStats.present >= 2")
            first = _live(page)
            # keep looking until what is drawn differs: dots move, come or go
            changed = False
            for _ in range(40):
                time.sleep(0.5)
                later = _live(page)
                if later["dots"] != first["dots"]:
                    changed = True
                    break
            assert changed, "the map did not change while shoppers walked"
            assert later["stats"]["atMs"] > first["stats"]["atMs"]  # newer store time
            assert later["stats"]["painted"] > first["stats"]["painted"]
            assert sum(later["zoneCounts"]) == later["stats"]["present"] == len(later["dots"])
            assert page.get_by_test_id("present").inner_text() == str(later["stats"]["present"])
            # Data flows: the badge says live, the data is seconds old (issue 16).
            _wait(page, "window.__liveStats.stale === false")
            assert page.get_by_test_id("connection").inner_text().startswith("live")
            assert page.get_by_test_id("data-age").inner_text().endswith(" s")
            assert "add up to the same" in page.get_by_test_id("reconcile").inner_text()
        finally:
            stop.set()
            walker.join()
    snapshots = [json.loads(f) for f in frames if '"snapshot"' in f]
    assert snapshots and any(s["dots"] for s in snapshots)
    # anonymous: no shopper id in anything the page received
    for text in frames:
        for shopper in shopper_ids:
            assert shopper not in text
    estimated = sum(1 for s in snapshots for d in s["dots"] if d[4] == 1)
    assert estimated > 0  # positions come from the grid filter, not only stand-ins


def test_every_analytics_view_opens_on_simulated_data_and_exports_csv(
    store_stack: StoreStack,
) -> None:
    stack = store_stack
    base = stack.server.api_url
    simulation = stack.simulation()
    stack.run_delivered(simulation)
    zones = len(stack.store.zones)
    with chromium() as browser:
        context = browser.new_context(
            viewport={"width": 1400, "height": 900}, accept_downloads=True
        )
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        _login(page, base)
        for view, testid in ANALYTICS.items():
            page.goto(f"{base}/dashboard/#/analytics/{view}")
            page.get_by_test_id(f"view-{view}").wait_for()
            page.get_by_test_id(testid).wait_for()
            assert page.get_by_test_id("view-error").count() == 0
        # presence: every zone listed, the shoppers' time is there
        page.goto(f"{base}/dashboard/#/analytics/presence")
        table = page.get_by_test_id("presence-table")
        table.wait_for()
        assert table.locator("tbody tr").count() == zones
        page.goto(f"{base}/dashboard/#/analytics/funnel")
        page.get_by_test_id("funnel-table").wait_for()
        assert page.get_by_test_id("funnel-table").locator("tbody tr").count() == 4
        first_step = page.locator(
            "[data-testid=funnel-table] tr[data-step=store_visit] td.num"
        ).first
        assert int(first_step.inner_text().replace(",", "")) > 0
        page.goto(f"{base}/dashboard/#/analytics/paths")
        page.get_by_test_id("routes-table").wait_for()
        assert page.get_by_test_id("routes-table").locator("tbody tr").count() >= 1
        page.goto(f"{base}/dashboard/#/analytics/dwell")
        page.get_by_test_id("dwell-charts").wait_for()
        assert page.get_by_test_id("dwell-charts").locator(".card").count() == zones

        page.goto(f"{base}/dashboard/#/analytics/footfall")
        page.get_by_test_id("footfall-grid").wait_for()
        with page.expect_download() as waiting:
            page.get_by_test_id("csv-footfall").click()
        download = waiting.value
        assert download.suggested_filename == f"{stack.store.id}-footfall.csv"
        rows = list(csv.DictReader(io.StringIO(download.path().read_text(encoding="utf-8"))))
        assert rows and set(rows[0]) == {"zone", "name", "hour_start_ms", "entries"}
        assert sum(int(r["entries"]) for r in rows) > 0

        page.goto(f"{base}/dashboard/#/gateways")
        fleet = page.get_by_test_id("fleet")
        fleet.locator("tbody tr").first.wait_for()
        assert fleet.locator("tbody tr").count() == len(stack.store.gateways)
        states = fleet.get_by_test_id("gateway-state").all_inner_texts()
        assert "online" in states
        # Healthy readers (scanning, polling for a card, taking inventory) are green.
        readers = fleet.locator("[data-reader]")
        assert readers.count() > 0
        assert fleet.locator("[data-reader]:not(.ok)").all_inner_texts() == []
        # Campaign performance says why offers were not sent and the lift in words.
        page.goto(f"{base}/dashboard/#/analytics/campaigns")
        page.get_by_test_id("campaign-performance").wait_for()
        for words in page.get_by_test_id("lift-words").all_inner_texts():
            assert "pt" not in words and ("not enough data" in words or "likely" in words)
        assert errors == [], errors
