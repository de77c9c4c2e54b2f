"""Issue 18 in headless Chromium: the headline figures on the first screen,
the period comparison, new and repeat visitors and the staff devices, each
drawn from the insight API over a database holding two simulated weeks
(the bench's generator, two staff phones)."""

from collections.abc import Iterator
from datetime import date

import httpx
import pytest
from playwright.sync_api import Page

from omnizone.server.runtime import ServerRuntime
from omnizone.store import load_store
from omnizone.suite.bench.analytics import WeekSpec
from tests.e2e.dashboard_page import checked_page, log_in
from tests.e2e.dashboard_stack import ADMIN_KEY, READ_KEY, STORE_FILE, filled_staff_server

pytestmark = pytest.mark.e2e
STORE = load_store(STORE_FILE).id
SPEC = WeekSpec(days=15, trips_per_day=60, first_day=date(2026, 11, 16), seed=4, staff=2)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerRuntime]:
    database = tmp_path_factory.mktemp("insight") / "omnizone.db"
    with filled_staff_server(database, SPEC) as running:
        yield running


@pytest.fixture
def page(server: ServerRuntime) -> Iterator[Page]:
    with checked_page() as page:
        yield page


def _login(page: Page, base: str, key: str) -> None:
    log_in(page, base, key)


def test_insight_pages_show_the_api_figures(server: ServerRuntime, page: Page) -> None:
    base = server.api_url
    api = httpx.Client(base_url=f"{base}/api/v1/stores/{STORE}", headers={"X-API-Key": READ_KEY})
    log_in(page, base, READ_KEY)
    # The first screen: shoppers now against the usual, today against last week.
    page.get_by_test_id("headline-conversion-note").wait_for()
    headline = api.get("/insight/headline").json()
    visitors = next(c for c in headline["comparisons"] if c["figure"] == "visitors")
    assert page.get_by_test_id("headline-visitors-value").inner_text() == f"{visitors['b']:g}"
    assert page.get_by_test_id("headline-visitors-note").inner_text() == visitors["note"]

    page.get_by_test_id("nav-compare").click()
    page.get_by_test_id("compare-table").wait_for()
    expected = api.get("/insight/compare", params={"view": "visits", "preset": "week"}).json()
    assert page.get_by_test_id("compare-summary").inner_text() == expected["summary"]
    assert page.locator("[data-testid=compare-table] tbody tr").count() == len(expected["rows"])
    page.get_by_test_id("compare-view").select_option("loyalty")
    page.get_by_test_id("compare-run").click()
    page.locator("[data-testid=compare-table] tr[data-metric=repeat]").wait_for()

    page.get_by_test_id("nav-loyalty").click()
    page.get_by_test_id("loyalty-frequency").wait_for()
    index = api.get("/analytics").json()
    to = index["default_to_ms"]
    loyalty = api.get(
        "/insight/loyalty",
        params={"from_ms": max(index["first_event_ms"], to - 7 * 86_400_000), "to_ms": to},
    ).json()
    assert page.get_by_test_id("loyalty-new").inner_text() == f"{loyalty['new']:,}"
    assert page.get_by_test_id("loyalty-repeat").inner_text() == f"{loyalty['repeat']:,}"

    page.get_by_test_id("nav-staff").click()
    page.get_by_test_id("staff-table").wait_for()
    staff = api.get("/insight/staff").json()["devices"]
    assert len(staff) == 2
    for device in staff:
        page.locator(f"[data-testid=staff-table] tr[data-device='{device['device']}']").wait_for()
    assert page.get_by_test_id("staff-register").count() == 0  # a read-only key registers nothing


def test_an_admin_registers_a_staff_phone(server: ServerRuntime, page: Page) -> None:
    log_in(page, server.api_url, ADMIN_KEY)
    page.get_by_test_id("nav-staff").click()
    page.get_by_test_id("staff-device").fill("till-phone-1")
    page.get_by_test_id("staff-label").fill("Till 1")
    page.get_by_test_id("staff-register").click()
    page.locator("[data-testid=staff-table] tr[data-device='till-phone-1']").wait_for()
    assert "Till 1" in page.locator("tr[data-device='till-phone-1']").inner_text()
