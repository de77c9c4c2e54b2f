"""The staff dashboard in headless Chromium against a real server: login
(a wrong key is refused, a read-only key sees no admin action), the layout
editor (draw a zone, save it, see a refusal named; place and drag RFID
readers), the campaign editor
(create, pause). The live map and the analytics views with simulator data
are in test_dashboard_live.py."""

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page

from omnizone.server.runtime import ServerRuntime
from tests.e2e.browser import chromium
from tests.e2e.dashboard_stack import ADMIN_KEY, READ_KEY, staff_server, store_id

STORE = store_id()
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerRuntime]:
    with staff_server(tmp_path / "omnizone.db") as running:
        yield running


@pytest.fixture
def page(server: ServerRuntime) -> Iterator[Page]:
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        yield page
        assert errors == [], errors


def login(page: Page, base: str, key: str) -> None:
    page.goto(f"{base}/dashboard/")
    page.get_by_test_id("api-key").fill(key)
    page.get_by_test_id("login").click()
    page.get_by_test_id("live-floor").wait_for()


def set_field(page: Page, testid: str, value: str) -> None:
    """Fill an editor field and commit it (the editor applies on change)."""
    field = page.get_by_test_id(testid)
    field.fill(value)
    field.dispatch_event("change")


def floor_point(page: Page, x: float, y: float) -> tuple[float, float]:
    """Where (x, y) metres on the editor's floor are on the screen."""
    screen = page.evaluate(
        """([x, y]) => {
            const root = document.querySelector('[data-testid=editor-floor]');
            const point = root.createSVGPoint();
            point.x = x; point.y = y;
            const at = point.matrixTransform(root.getScreenCTM());
            return [at.x, at.y];
        }""",
        [x, y],
    )
    return screen[0], screen[1]


def click_floor(page: Page, x: float, y: float) -> None:
    """Click the editor's floor at (x, y) metres."""
    page.mouse.click(*floor_point(page, x, y))


def drag_on_floor(page: Page, start: tuple[float, float], end: tuple[float, float]) -> None:
    """Press at `start` metres on the editor's floor, move to `end`, release."""
    page.mouse.move(*floor_point(page, *start))
    page.mouse.down()
    page.mouse.move(*floor_point(page, *end), steps=8)
    page.mouse.up()


def draw_zone(page: Page, corners: list[tuple[float, float]]) -> None:
    page.get_by_test_id("tool-zone").click()
    for x, y in corners:
        click_floor(page, x, y)
    page.get_by_test_id("finish-zone").click()
    page.get_by_test_id("selected-zone").wait_for()


def test_a_wrong_key_is_refused_and_a_read_only_key_sees_no_admin_action(
    server: ServerRuntime, page: Page
) -> None:
    base = server.api_url
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(f"{base}/dashboard/")
    page.get_by_test_id("api-key").fill("not-a-key-at-all")
    page.get_by_test_id("login").click()
    page.get_by_test_id("login-error").filter(has_text="not known").wait_for()
    assert page.evaluate("sessionStorage.getItem('omnizone.staff.key')") is None

    login(page, base, READ_KEY)
    assert page.get_by_test_id("scopes").inner_text() == "read-only"
    assert page.evaluate("sessionStorage.getItem('omnizone.staff.key')") == READ_KEY
    assert page.evaluate("localStorage.length") == 0  # the key does not outlive the tab
    page.get_by_test_id("nav-campaigns").click()
    page.get_by_test_id("campaigns").wait_for()
    assert page.get_by_test_id("read-only").is_visible()
    assert page.get_by_test_id("new-campaign").count() == 0
    page.get_by_test_id("nav-layout").click()
    page.get_by_test_id("editor-floor").wait_for()
    assert page.get_by_test_id("read-only").is_visible()
    assert page.get_by_test_id("save-layout").count() == 0
    assert page.get_by_test_id("tool-zone").is_disabled()

    page.get_by_test_id("logout").click()
    page.get_by_test_id("api-key").wait_for()
    assert page.evaluate("sessionStorage.getItem('omnizone.staff.key')") is None
    # everything came from this server: no CDN
    assert requests and all(url.startswith(base) for url in requests)


def test_a_zone_drawn_in_the_editor_is_saved_as_a_new_layout_version(
    server: ServerRuntime, page: Page, tmp_path: Path
) -> None:
    base = server.api_url
    login(page, base, ADMIN_KEY)
    page.get_by_test_id("nav-layout").click()
    page.get_by_test_id("editor-floor").wait_for()

    # A zone across womenswear is refused, and the page names the problem.
    draw_zone(page, [(2, 2), (6, 2), (6, 6)])
    page.get_by_test_id("save-layout").click()
    problem = page.get_by_test_id("layout-problems").locator("li").first
    problem.wait_for()
    assert "zones[10] (zone-1).polygon overlaps zones[1] (womenswear)" in problem.inner_text()
    page.get_by_test_id("delete-zone").click()

    # A terrace behind the store: deepen the floor, draw it, name it.
    set_field(page, "floor-depth", "24")
    draw_zone(page, [(0, 20), (10, 20), (10, 24), (0, 24)])
    set_field(page, "zone-name", "Terrace")
    set_field(page, "zone-id", "terrace")
    image = tmp_path / "floor.png"
    image.write_bytes(PNG)
    page.get_by_test_id("floor-image").set_input_files(str(image))
    page.get_by_test_id("status").filter(has_text="Image uploaded").wait_for()
    page.get_by_test_id("layout-note").fill("terrace opens")
    page.get_by_test_id("save-layout").click()
    saved = page.get_by_test_id("layout-saved")
    saved.filter(has_text="version 1").wait_for()  # written last, after the status
    assert "next start" in saved.inner_text()
    assert "applies at the next start" in page.get_by_test_id("layout-status").inner_text()
    page.locator("[data-testid=layout-versions] tr[data-version='1']").wait_for()

    api = httpx.Client(base_url=base, headers={"X-API-Key": READ_KEY})
    layout = api.get(f"/api/v1/stores/{STORE}/layouts/1").json()
    terrace = next(z for z in layout["plan"]["zones"] if z["id"] == "terrace")
    assert terrace["name"] == "Terrace"
    assert terrace["polygon"] == [[0, 20], [10, 20], [10, 24], [0, 24]]
    assert layout["plan"]["store"]["floor"]["depth_m"] == 24
    assert layout["note"] == "terrace opens" and layout["image_id"] is not None
    assert api.get(f"/api/v1/stores/{STORE}/floor-images/{layout['image_id']}").content == PNG
    running = api.get(f"/api/v1/stores/{STORE}/plan").json()
    assert "terrace" not in {z["id"] for z in running["plan"]["zones"]}


def test_rfid_readers_are_placed_and_dragged_on_the_plan_and_saved(
    server: ServerRuntime, page: Page
) -> None:
    base = server.api_url
    login(page, base, ADMIN_KEY)
    # The store file places both fitting-room readers: the live floor shows them.
    for reader in ("rfid-fitting-1", "rfid-fitting-2"):
        assert page.locator(f"[data-testid=live-floor] [data-reader={reader}]").count() == 1
    page.get_by_test_id("nav-layout").click()
    page.get_by_test_id("editor-floor").wait_for()
    marker = page.locator("[data-testid=editor-floor] [data-reader=rfid-fitting-1]")
    assert marker.count() == 1

    # Drag rfid-fitting-1 from the back wall of its cubicle to the front.
    drag_on_floor(page, (21.5, 19.5), (22, 15))
    page.get_by_test_id("selected-reader").filter(has_text="rfid-fitting-1").wait_for()
    assert page.get_by_test_id("reader-x").input_value() == "22"
    assert page.get_by_test_id("reader-y").input_value() == "15"
    # Re-place rfid-fitting-2 from the list: "Move", then click where it goes.
    page.locator("[data-reader-row=rfid-fitting-2] [data-testid=place-reader]").click()
    assert "rfid-fitting-2" in page.get_by_test_id("tool-hint").inner_text()
    click_floor(page, 24, 18.5)
    page.get_by_test_id("selected-reader").filter(has_text="rfid-fitting-2").wait_for()
    # A new reader: it takes the zone it stands in and that zone's gateway.
    page.get_by_test_id("tool-reader").click()
    click_floor(page, 25, 16)
    page.get_by_test_id("selected-reader").filter(has_text="rfid-1").wait_for()

    page.get_by_test_id("save-layout").click()
    page.get_by_test_id("layout-saved").filter(has_text="version 1").wait_for()
    assert page.get_by_test_id("layout-problems").locator("li").count() == 0

    api = httpx.Client(base_url=base, headers={"X-API-Key": READ_KEY})
    readers = {
        r["id"]: r
        for r in api.get(f"/api/v1/stores/{STORE}/layouts/1").json()["plan"]["rfid_readers"]
    }
    assert set(readers) == {"rfid-fitting-1", "rfid-fitting-2", "rfid-1"}
    assert readers["rfid-fitting-1"]["position"] == [22, 15]
    assert readers["rfid-fitting-1"]["zone"] == "fitting-room-1"
    assert readers["rfid-fitting-2"]["position"] == [24, 18.5]
    new = readers["rfid-1"]
    assert (new["position"], new["zone"], new["gateway"]) == (
        [25, 16],
        "fitting-room-2",
        "gw-fitting-2",
    )
    running = api.get(f"/api/v1/stores/{STORE}/plan").json()["plan"]["rfid_readers"]
    assert [r["position"] for r in running] == [[21.5, 19.5], [24.5, 19.5]]  # until a restart


def test_a_campaign_is_created_and_paused_in_the_browser(server: ServerRuntime, page: Page) -> None:
    base = server.api_url
    login(page, base, ADMIN_KEY)
    page.get_by_test_id("nav-campaigns").click()
    form = page.get_by_test_id("new-campaign")
    form.wait_for()
    page.get_by_test_id("campaign-id").fill("denim-weekend")
    page.get_by_test_id("campaign-name").fill("Denim weekend")
    page.get_by_test_id("campaign-trigger").select_option("zone_entered")
    page.locator("[data-testid=campaign-zones] input[data-zone=denim]").check()
    page.get_by_test_id("campaign-title").fill("15% off denim")
    page.get_by_test_id("campaign-body").fill("This weekend only.")
    page.get_by_test_id("campaign-coupon").fill("bad code")
    page.get_by_test_id("create-campaign").click()
    problem = page.get_by_test_id("campaign-problems").locator("li").first
    problem.wait_for()
    assert "coupon_code" in problem.inner_text()

    page.get_by_test_id("campaign-coupon").fill("DENIM15-{code}")
    page.get_by_test_id("create-campaign").click()
    row = page.locator("[data-testid=campaigns] tr[data-campaign=denim-weekend]")
    row.wait_for()
    assert row.get_by_test_id("campaign-status").inner_text() == "active"
    row.get_by_test_id("pause").click()
    page.locator(
        "[data-testid=campaigns] tr[data-campaign=denim-weekend] [data-testid=campaign-status]",
        has_text="paused",
    ).wait_for()

    api = httpx.Client(base_url=base, headers={"X-API-Key": READ_KEY})
    stored = {c["id"]: c for c in api.get(f"/api/v1/stores/{STORE}/campaigns").json()}
    campaign = stored["denim-weekend"]
    assert campaign["status"] == "paused"
    assert campaign["trigger"] == {"kind": "zone_entered", "zones": ["denim"]}
    assert campaign["content"]["coupon_code"] == "DENIM15-{code}"
    assert campaign["holdout_fraction"] == pytest.approx(0.1)
    page.locator(
        "[data-testid=campaigns] tr[data-campaign=denim-weekend] [data-testid=resume]"
    ).click()
    page.locator(
        "[data-testid=campaigns] tr[data-campaign=denim-weekend] [data-testid=campaign-status]",
        has_text="active",
    ).wait_for()
    assert json.loads(api.get(f"/api/v1/stores/{STORE}/campaigns").text)[0]["status"] == "active"
