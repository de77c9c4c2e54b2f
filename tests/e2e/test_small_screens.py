"""Issue 16, point 4 (and the live view's stale state of point 3): the
dashboard and the shopper app in headless Chromium at phone (390 x 844) and
tablet (820 x 1180) sizes, against a real server.

At each size: no horizontal page overflow, the floor fits, the sidebar is a
menu that opens and closes, the layout editor shows reader names whole.
Missing static files are 404 (not the app's page), product images ship, the
unknown-product page says so once. The server here has data from a "last
run" (open stays written by ingest) and no broker: the live floor must say
stale, not live, and ``/health`` must not be ok.

Screenshots go to a temporary folder, or to ``OMNIZONE_SCREENSHOT_DIR``
(``OMNIZONE_SCREENSHOT_DIR=docs/screenshots`` refreshes the docs' pictures).
"""

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page

from omnizone.server.adapters.db import SqlRepository
from omnizone.server.runtime import ServerRuntime
from omnizone.server.service.ingest import IngestService
from omnizone.store import load_store
from tests.e2e.browser import chromium
from tests.e2e.dashboard_stack import ADMIN_KEY, STORE_FILE, staff_server
from tests.server.conftest import T0, ble

SIZES = {"phone": (390, 844), "tablet": (820, 1180)}
JACKET = "09506000134352"
LAST_RUN = {"eid:00000000000000a1": "gw-shoes", "eid:00000000000000a2": "gw-denim"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerRuntime]:
    """A server restarted over a database a previous run left shoppers in."""
    database = tmp_path_factory.mktemp("small") / "omnizone.db"
    plan = load_store(STORE_FILE)
    repository = SqlRepository.from_url(f"sqlite:///{database}")
    ingest = IngestService({plan.id: plan}, repository)
    for seq in range(1, 16):
        at = T0 + seq * 1000
        for device, gateway in LAST_RUN.items():
            ingest.handle(*ble(gateway, seq, at, {device: -50.0}), at)
    repository.close()
    with staff_server(database) as running:
        yield running


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chosen = os.environ.get("OMNIZONE_SCREENSHOT_DIR")
    folder = Path(chosen) if chosen else tmp_path_factory.mktemp("shots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(params=list(SIZES))
def page(request: pytest.FixtureRequest) -> Iterator[Page]:
    width, height = SIZES[request.param]
    with chromium() as browser:
        context = browser.new_context(viewport={"width": width, "height": height})
        page = context.new_page()
        page.size_name = request.param  # type: ignore[attr-defined]
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        yield page
        assert errors == [], errors


def size(page: Page) -> str:
    return str(page.size_name)  # type: ignore[attr-defined]


def assert_fits(page: Page, where: str) -> None:
    """No horizontal scrolling of the page itself."""
    widths = page.evaluate(
        "() => [document.documentElement.scrollWidth, document.body.scrollWidth, window.innerWidth]"
    )
    assert max(widths[:2]) <= widths[2], f"{where} at {size(page)}: {widths}"


def assert_inside(page: Page, testid: str, where: str) -> None:
    """Visible and wholly inside the viewport's width."""
    found = page.get_by_test_id(testid).first
    assert found.is_visible(), f"{testid} hidden on {where} at {size(page)}"
    box = found.bounding_box()
    assert box is not None
    width = page.viewport_size["width"]  # type: ignore[index]
    assert box["x"] >= 0 and box["x"] + box["width"] <= width + 0.5, (testid, where, box, width)


def login(page: Page, base: str) -> None:
    page.goto(f"{base}/dashboard/")
    page.get_by_test_id("api-key").fill(ADMIN_KEY)
    page.get_by_test_id("login").click()
    page.get_by_test_id("live-floor").wait_for()


def go(page: Page, testid: str, ready: str) -> None:
    """Open a view through the menu, which closes again after the choice."""
    menu = page.get_by_test_id("menu")
    assert menu.is_visible()
    menu.click()
    page.wait_for_function("() => document.body.classList.contains('menu-open')")
    page.wait_for_timeout(250)  # the slide-in
    assert_inside(page, testid, "the open menu")
    page.get_by_test_id(testid).click()
    page.locator(ready).first.wait_for()
    page.wait_for_function("() => !document.body.classList.contains('menu-open')")


def test_the_dashboard_works_at_phone_and_tablet_width(
    server: ServerRuntime, page: Page, shots: Path
) -> None:
    base = server.api_url
    login(page, base)
    name = size(page)
    # The sidebar is folded away: the floor has the whole width.
    nav = page.locator("#nav").bounding_box()
    assert nav is not None and nav["x"] + nav["width"] <= 0, nav
    assert_inside(page, "live-floor", "the live floor")
    assert_fits(page, "the live floor")
    # A restarted server with the last run's shoppers and no data since: stale, not live.
    page.wait_for_function(
        "() => document.querySelector('[data-testid=connection]').textContent === 'stale'"
    )
    assert page.get_by_test_id("present").inner_text() == str(len(LAST_RUN))
    freshness = page.get_by_test_id("freshness").inner_text()
    assert "no gateway data since the server started" in freshness
    assert "ok" not in (page.get_by_test_id("connection").get_attribute("class") or "").split()
    reconcile = page.get_by_test_id("reconcile").inner_text()
    assert f"{len(LAST_RUN)} dots" in reconcile and f"same {len(LAST_RUN)}" in reconcile
    page.screenshot(path=str(shots / f"{name}-live.png"))

    page.get_by_test_id("menu").click()
    page.wait_for_timeout(250)
    page.screenshot(path=str(shots / f"{name}-menu.png"))
    page.get_by_test_id("menu").click()
    page.wait_for_function("() => !document.body.classList.contains('menu-open')")

    go(page, "nav-gateways", "[data-testid=fleet]")
    assert_fits(page, "the gateways")
    summary = page.get_by_test_id("fleet-summary").inner_text()
    assert "store time (Europe/Paris)" in summary  # one clock: the store's
    page.screenshot(path=str(shots / f"{name}-gateways.png"))

    go(page, "nav-presence", "[data-testid=view-presence]")
    assert_fits(page, "the presence heatmap")
    assert_inside(page, "range", "the presence heatmap")

    go(page, "nav-campaign-performance", "[data-testid=view-campaigns]")
    assert_fits(page, "campaign performance")
    # The campaign figures are counted within the range, so it is offered here too.
    assert_inside(page, "range", "campaign performance")

    go(page, "nav-campaigns", "[data-testid=campaigns]")
    assert_fits(page, "the campaigns")
    page.screenshot(path=str(shots / f"{name}-campaigns.png"), full_page=True)

    go(page, "nav-layout", "[data-testid=rfid-readers]")
    assert_fits(page, "the layout editor")
    rows = page.locator("[data-reader-row]")
    assert rows.count() == 2
    for k in range(rows.count()):
        field = rows.nth(k).locator("input").first
        value = field.input_value()
        cut = field.evaluate("(e) => e.scrollWidth > e.clientWidth")
        assert not cut, f"reader name {value!r} is cut at {name}"
        box = field.bounding_box()
        assert box is not None and box["x"] + box["width"] <= page.viewport_size["width"]  # type: ignore[index]
    page.get_by_test_id("rfid-readers").scroll_into_view_if_needed()
    page.screenshot(path=str(shots / f"{name}-layout-editor.png"))

    go(page, "nav-survey", "#view h1")
    assert_fits(page, "the survey")


def test_the_shopper_app_works_at_phone_and_tablet_width(
    server: ServerRuntime, page: Page, shots: Path
) -> None:
    base = server.api_url
    name = size(page)
    page.goto(f"{base}/app/")
    page.locator("main h1").wait_for()
    assert_fits(page, "the app's welcome")
    page.screenshot(path=str(shots / f"app-{name}-welcome.png"))

    page.goto(f"{base}/app/p/{JACKET}")
    page.get_by_test_id("product-name").wait_for()
    image = page.locator("img.product")
    image.wait_for()
    page.wait_for_function("() => document.querySelector('img.product').complete")
    assert image.evaluate("(e) => e.naturalWidth") > 0  # a real image, not the app's HTML
    assert_inside(page, "product-name", "a product")
    assert_fits(page, "a product")
    page.screenshot(path=str(shots / f"app-{name}-product.png"))

    page.goto(f"{base}/app/p/09506000999999")
    page.get_by_test_id("product-missing").wait_for()
    text = page.locator("main").inner_text()
    assert "Loading" not in text
    assert text.count("not found") + text.count("no product") == 2  # heading and one sentence
    assert page.locator("#status").inner_text() == ""
    assert_fits(page, "an unknown product")


def test_missing_static_files_are_404_and_product_images_ship(server: ServerRuntime) -> None:
    base = server.api_url
    with httpx.Client(base_url=base) as http:
        image = http.get("/app/img/field-jacket.svg")
        assert image.status_code == 200 and image.headers["content-type"].startswith("image/svg")
        for missing in [
            "/app/img/no-such-product.png",
            "/app/no-such-file.js",
            "/app/p/missing.png",
            "/app/static/nothing.css",
            "/dashboard/static/js/nothing.js",
        ]:
            response = http.get(missing)
            assert response.status_code == 404, missing
            assert not response.headers["content-type"].startswith("text/html"), missing
        page = http.get(f"/app/p/{JACKET}")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert http.get("/app/settings").status_code == 200
        # No broker behind this server: /health is not ok.
        health = http.get("/health")
        assert health.status_code == 503 and health.json()["status"] == "degraded"


def test_every_catalog_image_ships(server: ServerRuntime) -> None:
    """Each product's ``image`` in the shipped catalog answers with a picture."""
    from omnizone.paths import shipped_config
    from omnizone.server.domain.offers import load_catalog

    catalog = load_catalog(shipped_config("catalog/rivoli.yaml"))
    images = {p.image for p in catalog.products if p.image}
    assert len(images) >= 8
    with httpx.Client(base_url=server.api_url) as http:
        for path in sorted(images):
            response = http.get(path)
            assert response.status_code == 200, path
            assert response.headers["content-type"].startswith("image/"), path
