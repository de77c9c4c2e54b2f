"""The staff dashboard in headless Chromium against a real server: login
(a wrong key is refused, a read-only key sees no admin action), the layout
editor (draw a zone, save it, see a refusal named, see it on a live floor
already open in another tab; place and drag RFID readers), the campaign
editor (create, pause; edit segments, schedule and quiet hours, keeping what
the form does not show; a refused edit; an edit that would overwrite someone
else's change is refused and reloads). The live map and the analytics views
with simulator data are in test_dashboard_live.py."""

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


# A campaign with fields the dashboard's form does not show (expected value,
# image, per-campaign cap, cool-down, budget): editing must keep them.
DENIM: dict[str, Any] = {
    "id": "denim-10",
    "name": "Denim wall, 10% off",
    "priority": 30,
    "expected_value": 6.5,
    "trigger": {"kind": "zone_entered", "zones": ["denim"]},
    "conditions": {
        "segments": [{"rule": "loyalty_member"}],
        "quiet_hours": [{"start": "21:00", "end": "09:00"}],
    },
    "content": {
        "title": "10% off denim today",
        "body": "Any pair from the denim wall, today only.",
        "image": "/app/img/straight-jeans.svg",
        "coupon_code": "DENIM10-{code}",
        "expires_after_s": 7200,
    },
    "limits": {"per_visit": 1, "per_day": 1, "per_campaign": 2, "cooldown_s": 600, "budget": 500},
    "holdout_fraction": 0.2,
}


def create_campaign(base: str, body: dict[str, Any]) -> dict[str, Any]:
    """Create a campaign through the API, as an admin."""
    response = httpx.post(
        f"{base}/api/v1/stores/{STORE}/campaigns", json=body, headers={"X-API-Key": ADMIN_KEY}
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def stored_campaign(base: str, campaign_id: str) -> dict[str, Any]:
    """The campaign as the API has it now."""
    response = httpx.get(f"{base}/api/v1/stores/{STORE}/campaigns", headers={"X-API-Key": READ_KEY})
    response.raise_for_status()
    found: dict[str, Any] = next(c for c in response.json() if c["id"] == campaign_id)
    return found


def edit_campaign(page: Page, campaign_id: str) -> None:
    """Press the campaign's Edit button and wait for the form to hold it."""
    page.locator(
        f"[data-testid=campaigns] tr[data-campaign={campaign_id}] [data-testid=edit]"
    ).click()
    page.locator("[data-testid=new-campaign][data-mode=edit]").wait_for()


def open_in_editor(page: Page, base: str, campaign_id: str) -> None:
    """Log in as admin, open the campaigns view and load one campaign into the form."""
    login(page, base, ADMIN_KEY)
    page.get_by_test_id("nav-campaigns").click()
    page.locator(f"[data-testid=campaigns] tr[data-campaign={campaign_id}]").wait_for()
    edit_campaign(page, campaign_id)


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
    create_campaign(base, DENIM)
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
    row = page.locator("[data-testid=campaigns] tr[data-campaign=denim-10]")
    row.wait_for()
    assert page.get_by_test_id("read-only").is_visible()
    assert page.get_by_test_id("new-campaign").count() == 0
    assert row.get_by_test_id("edit").count() == 0  # an admin has it (test below)
    assert row.get_by_test_id("pause").count() == 0
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


def test_a_zone_drawn_in_the_editor_is_saved_and_runs_on_the_live_floor_at_once(
    server: ServerRuntime, page: Page, tmp_path: Path
) -> None:
    base = server.api_url
    # A second tab watches the live floor while the layout is edited in the first.
    watching = page.context.new_page()
    login(watching, base, READ_KEY)
    assert watching.locator("[data-testid=live-floor] [data-zone=terrace]").count() == 0
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
    assert "applies now" in saved.inner_text()
    status = page.get_by_test_id("layout-status").inner_text()
    assert "Running: saved layout version 1" in status and "next start" not in status
    page.locator("[data-testid=layout-versions] tr[data-version='1']").wait_for()
    # the open live floor draws the terrace, with no reload and no restart
    watching.locator("[data-testid=live-floor] [data-zone=terrace]").wait_for()
    watching.locator("[data-zone-count=terrace]").wait_for()
    page.get_by_test_id("nav-live").click()
    page.locator("[data-testid=live-floor] [data-zone=terrace]").wait_for()

    api = httpx.Client(base_url=base, headers={"X-API-Key": READ_KEY})
    layout = api.get(f"/api/v1/stores/{STORE}/layouts/1").json()
    terrace = next(z for z in layout["plan"]["zones"] if z["id"] == "terrace")
    assert terrace["name"] == "Terrace"
    assert terrace["polygon"] == [[0, 20], [10, 20], [10, 24], [0, 24]]
    assert layout["plan"]["store"]["floor"]["depth_m"] == 24
    assert layout["note"] == "terrace opens" and layout["image_id"] is not None
    assert api.get(f"/api/v1/stores/{STORE}/floor-images/{layout['image_id']}").content == PNG
    running = api.get(f"/api/v1/stores/{STORE}/plan").json()
    assert "terrace" in {z["id"] for z in running["plan"]["zones"]}
    assert running["running_version"] == 1 and running["pending_restart"] is False


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
    assert [r["position"] for r in running] == [[22, 15], [24, 18.5], [25, 16]]  # at once


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
    # The form is back to a new campaign with its defaults, not emptied.
    assert page.get_by_test_id("campaign-id").input_value() == ""
    assert page.get_by_test_id("campaign-expires").input_value() == "3600"
    assert page.get_by_test_id("campaign-holdout").input_value() == "10"
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


def test_a_campaign_is_edited_in_the_browser_and_what_the_form_does_not_show_is_kept(
    server: ServerRuntime, page: Page
) -> None:
    base = server.api_url
    before = create_campaign(base, DENIM)
    open_in_editor(page, base, "denim-10")

    # The form holds the campaign as stored; its id cannot change.
    assert page.get_by_test_id("campaign-form-title").inner_text() == "Edit campaign denim-10"
    campaign_id = page.get_by_test_id("campaign-id")
    assert campaign_id.input_value() == "denim-10" and not campaign_id.is_editable()
    assert page.get_by_test_id("campaign-title").input_value() == "10% off denim today"
    assert page.locator("[data-testid=campaign-zones] input[data-zone=denim]").is_checked()
    assert page.get_by_test_id("segment-rule").input_value() == "loyalty_member"
    assert page.get_by_test_id("quiet-start").input_value() == "21:00"
    assert page.get_by_test_id("campaign-holdout").input_value() == "20"
    assert page.get_by_test_id("campaign-per-day").input_value() == "1"
    kept = page.get_by_test_id("campaign-kept").inner_text()
    assert "limits.budget: 500" in kept and "content.image: /app/img/straight-jeans.svg" in kept
    assert "Europe/Paris" in page.get_by_test_id("campaign-quiet").inner_text()

    page.get_by_test_id("campaign-title").fill("15% off denim today")
    # Segments: loyalty member becomes "spent at least 150 in 90 days", and
    # shoppers who already bought the field jacket are left out.
    first = page.get_by_test_id("segment").first
    first.get_by_test_id("segment-rule").select_option("min_spend")
    first.get_by_test_id("segment-amount").fill("150")
    first.get_by_test_id("segment-days").fill("90")
    page.get_by_test_id("add-segment").click()
    second = page.get_by_test_id("segment").nth(1)
    second.get_by_test_id("segment-rule").select_option("has_purchased_gtin")
    second.get_by_test_id("segment-gtins").fill("09506000134352")
    second.get_by_test_id("segment-negate").check()
    # Quiet hours: the night window moves and a lunch window is added.
    page.get_by_test_id("quiet-start").fill("20:00")
    page.get_by_test_id("quiet-end").fill("10:00")
    page.get_by_test_id("add-quiet").click()
    page.get_by_test_id("quiet-start").nth(1).fill("13:00")
    page.get_by_test_id("quiet-end").nth(1).fill("14:00")
    # Schedule: weekdays, 10:00 to 20:00, until the end of 2026.
    for day in ("sat", "sun"):
        page.locator(f"[data-testid=schedule-days] input[data-day={day}]").uncheck()
    page.get_by_test_id("add-schedule").click()
    page.get_by_test_id("schedule-start").fill("10:00")
    page.get_by_test_id("schedule-end").fill("20:00")
    page.get_by_test_id("schedule-end-date").fill("2026-12-31")
    # Paused from the list while it is in the form: saving does not resume it.
    page.locator("[data-testid=campaigns] tr[data-campaign=denim-10] [data-testid=pause]").click()
    page.locator(
        "[data-testid=campaigns] tr[data-campaign=denim-10] [data-testid=campaign-status]",
        has_text="paused",
    ).wait_for()
    assert page.get_by_test_id("campaign-paused").is_checked()

    page.get_by_test_id("save-campaign").click()
    page.locator("[data-testid=new-campaign][data-mode=new]").wait_for()
    page.locator(
        "[data-testid=campaigns] tr[data-campaign=denim-10]", has_text="15% off denim today"
    ).wait_for()
    assert page.get_by_test_id("campaign-problems").locator("li").count() == 0
    assert (
        "quiet 20:00–10:00, 13:00–14:00"
        in page.locator(
            "[data-testid=campaigns] tr[data-campaign=denim-10] [data-testid=campaign-conditions]"
        ).inner_text()
    )

    after = stored_campaign(base, "denim-10")
    assert after["content"]["title"] == "15% off denim today"
    assert after["conditions"]["segments"] == [
        {"rule": "min_spend", "amount": 150, "within_days": 90, "negate": False},
        {
            "rule": "has_purchased_gtin",
            "gtins": ["09506000134352"],
            "within_days": None,
            "negate": True,
        },
    ]
    assert after["conditions"]["quiet_hours"] == [
        {"start": "20:00", "end": "10:00"},
        {"start": "13:00", "end": "14:00"},
    ]
    assert after["conditions"]["schedule"] == {
        "days": ["mon", "tue", "wed", "thu", "fri"],
        "windows": [{"start": "10:00", "end": "20:00"}],
        "start_date": None,
        "end_date": "2026-12-31",
    }
    assert after["status"] == "paused"
    # Everything the form did not change is as it was, caps and budget included.
    for key in ("store", "trigger", "limits", "expected_value", "holdout_fraction", "priority"):
        assert after[key] == before[key], key
    assert after["content"] == {**before["content"], "title": "15% off denim today"}
    assert after["conditions"]["require_in_stock"] is False

    # Opened again, the form shows what was saved; Cancel goes back to a new campaign.
    edit_campaign(page, "denim-10")
    assert page.get_by_test_id("segment").count() == 2
    assert page.get_by_test_id("segment-negate").nth(1).is_checked()
    assert page.get_by_test_id("segment-amount").first.input_value() == "150"
    assert not page.locator("[data-testid=schedule-days] input[data-day=sat]").is_checked()
    assert page.get_by_test_id("schedule-end-date").input_value() == "2026-12-31"
    assert page.get_by_test_id("quiet-window").count() == 2
    page.get_by_test_id("cancel-edit").click()
    page.locator("[data-testid=new-campaign][data-mode=new]").wait_for()
    assert page.get_by_test_id("campaign-form-title").inner_text() == "New campaign"
    assert page.get_by_test_id("campaign-id").input_value() == ""
    assert page.get_by_test_id("campaign-id").is_editable()
    assert page.get_by_test_id("segment").count() == 0
    assert page.get_by_test_id("create-campaign").is_visible()
    assert stored_campaign(base, "denim-10") == after  # Cancel sends nothing


def test_a_refused_campaign_edit_shows_the_servers_problem_and_keeps_the_form(
    server: ServerRuntime, page: Page
) -> None:
    base = server.api_url
    before = create_campaign(base, DENIM)
    open_in_editor(page, base, "denim-10")
    page.get_by_test_id("campaign-title").fill("Denim, all week")
    page.get_by_test_id("quiet-start").fill("25:00")
    page.get_by_test_id("save-campaign").click()

    problem = page.get_by_test_id("campaign-problems").locator("li").first
    problem.wait_for()
    assert "conditions.quiet_hours.0.start" in problem.inner_text()
    assert "25:00" in problem.inner_text()
    # Nothing is lost from the form, and nothing changed on the server.
    assert page.locator("[data-testid=new-campaign][data-mode=edit]").count() == 1
    assert page.get_by_test_id("campaign-title").input_value() == "Denim, all week"
    assert page.get_by_test_id("quiet-start").input_value() == "25:00"
    assert page.get_by_test_id("quiet-end").input_value() == "09:00"
    assert page.get_by_test_id("segment-rule").input_value() == "loyalty_member"
    assert stored_campaign(base, "denim-10") == before

    # Corrected in the same form, it saves.
    page.get_by_test_id("quiet-start").fill("23:00")
    page.get_by_test_id("save-campaign").click()
    page.locator("[data-testid=new-campaign][data-mode=new]").wait_for()
    assert page.get_by_test_id("campaign-problems").locator("li").count() == 0
    after = stored_campaign(base, "denim-10")
    assert after["content"]["title"] == "Denim, all week"
    assert after["conditions"]["quiet_hours"] == [{"start": "23:00", "end": "09:00"}]
    assert after["limits"] == before["limits"]


def test_a_campaign_changed_by_someone_else_while_in_the_form_is_not_overwritten(
    server: ServerRuntime, page: Page
) -> None:
    base = server.api_url
    create_campaign(base, DENIM)
    open_in_editor(page, base, "denim-10")
    page.get_by_test_id("campaign-title").fill("Mine: 15% off denim")
    page.get_by_test_id("campaign-priority").fill("40")

    # Meanwhile a colleague changes the campaign (a field the form does not
    # show included), with the ETag they loaded.
    loaded = httpx.get(
        f"{base}/api/v1/stores/{STORE}/campaigns/denim-10", headers={"X-API-Key": READ_KEY}
    )
    theirs = {
        **loaded.json(),
        "content": {**loaded.json()["content"], "title": "Theirs: 20% off denim"},
        "limits": {**loaded.json()["limits"], "budget": 800},
    }
    saved = httpx.put(
        f"{base}/api/v1/stores/{STORE}/campaigns/denim-10",
        json=theirs,
        headers={"X-API-Key": ADMIN_KEY, "If-Match": loaded.headers["ETag"]},
    )
    assert saved.status_code == 200, saved.text
    after_theirs = stored_campaign(base, "denim-10")
    assert after_theirs["revision"] == 2

    # Saving the form is refused: nothing overwritten, the form keeps its values.
    page.get_by_test_id("save-campaign").click()
    conflict = page.get_by_test_id("campaign-conflict")
    conflict.wait_for()
    text = conflict.inner_text()
    assert "changed by someone else since you opened it" in text
    assert "reload to see their version; your edits are still in the form" in text
    assert page.locator("[data-testid=new-campaign][data-mode=edit]").count() == 1
    assert page.get_by_test_id("campaign-title").input_value() == "Mine: 15% off denim"
    assert page.get_by_test_id("campaign-priority").input_value() == "40"
    assert stored_campaign(base, "denim-10") == after_theirs

    # "Reload campaign" shows their version; saved from there, both edits are in.
    page.get_by_test_id("reload-campaign").click()
    conflict.wait_for(state="detached")
    assert page.get_by_test_id("campaign-title").input_value() == "Theirs: 20% off denim"
    assert "limits.budget: 800" in page.get_by_test_id("campaign-kept").inner_text()
    page.get_by_test_id("campaign-priority").fill("40")
    page.get_by_test_id("save-campaign").click()
    page.locator("[data-testid=new-campaign][data-mode=new]").wait_for()
    assert page.get_by_test_id("campaign-problems").locator("li").count() == 0
    final = stored_campaign(base, "denim-10")
    assert final["revision"] == 3 and final["priority"] == 40
    assert final["content"]["title"] == "Theirs: 20% off denim"
    assert final["limits"]["budget"] == 800
