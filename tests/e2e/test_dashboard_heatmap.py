"""Issue 18 point 6 in headless Chromium: the floor heatmap draws the API's
cells over the floor plan, with its legend, the busiest cell marked, a
coarser grid on request and a second map for the period before."""

from collections.abc import Iterator
from datetime import date

import httpx
import pytest
from playwright.sync_api import Page

from omnizone.server.runtime import ServerRuntime
from omnizone.store import load_store
from omnizone.suite.bench.analytics import WeekSpec
from tests.e2e.dashboard_page import checked_page, log_in
from tests.e2e.dashboard_stack import READ_KEY, STORE_FILE, filled_staff_server

pytestmark = pytest.mark.e2e
STORE = load_store(STORE_FILE).id
SPEC = WeekSpec(days=3, trips_per_day=60, first_day=date(2026, 11, 16), seed=6)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerRuntime]:
    database = tmp_path_factory.mktemp("heatmap") / "omnizone.db"
    with filled_staff_server(database, SPEC) as running:  # with its hourly floor cells
        yield running


@pytest.fixture
def page(server: ServerRuntime) -> Iterator[Page]:
    with checked_page() as page:
        yield page


def test_the_floor_heatmap_draws_the_api_cells(server: ServerRuntime, page: Page) -> None:
    base = server.api_url
    api = httpx.Client(base_url=f"{base}/api/v1/stores/{STORE}", headers={"X-API-Key": READ_KEY})
    log_in(page, base, READ_KEY)
    page.get_by_test_id("nav-floor-heatmap").click()
    page.get_by_test_id("heatmap-floor-cells").wait_for()

    index = api.get("/analytics").json()
    end = index["last_event_ms"] + 1
    body = api.get(
        "/heatmap", params={"from_ms": end - 86_400_000, "to_ms": end, "cell_m": 1}
    ).json()
    assert len(body["cells"]) > 50  # a day of the fill: most of the floor
    cells = page.locator("[data-testid=heatmap-floor-cells] [data-testid=heat-cell]")
    assert cells.count() == len(body["cells"])
    drawn = sorted(float(s) for s in cells.evaluate_all("els => els.map(e => e.dataset.seconds)"))
    assert drawn == sorted(c[2] for c in body["cells"])
    # The colour scale runs with the seconds: the busiest cell is the darkest.
    fills = cells.evaluate_all(
        "els => els.map(e => [Number(e.dataset.seconds), e.getAttribute('fill')])"
    )
    assert max(fills)[1] == "rgb(128,0,38)"
    assert page.get_by_test_id("heatmap-floor-hottest").count() == 1
    assert page.locator(".legend svg").count() == 1
    hot_zone = next(z["name"] for z in body["zones"] if z["zone"] == body["hottest"]["zone"])
    assert hot_zone in page.get_by_test_id("heatmap-summary").inner_text()
    assert page.locator("[data-testid=heatmap-table] tbody tr").count() == len(body["zones"])

    page.get_by_test_id("heatmap-cell").select_option("2")
    page.locator("[data-testid=heatmap-label]:has-text('2 m cells')").wait_for()
    coarse = api.get(
        "/heatmap", params={"from_ms": end - 86_400_000, "to_ms": end, "cell_m": 2}
    ).json()
    assert cells.count() == len(coarse["cells"]) < len(body["cells"])

    page.get_by_test_id("heatmap-compare").check()
    page.get_by_test_id("heatmap-before-cells").wait_for()
    before = page.locator("[data-testid=heatmap-before-cells] [data-testid=heat-cell]")
    assert before.count() > 0
    assert page.locator("[data-testid=heatmap-table] thead th").count() == 5
