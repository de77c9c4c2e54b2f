"""Screenshots of every dashboard view from a realistic run, for docs/dashboard.md.

    .venv/bin/python -m tests.e2e.dashboard_screenshots [--out docs/screenshots]

What it runs (about six minutes): Mosquitto, the server on SQLite, the ten
simulated gateways with the fitting rooms' UHF readers and the NFC tap
points, and 90 simulated minutes of the ``saturday-3db`` scenario at 20×
speed; every shopper carries a registered app phone. Before the run it draws
a floor-plan image (rendered by Chromium from an SVG of walls and fixtures),
uploads it in the layout editor's API, saves it as layout version 1 and
restarts the server, which then runs that layout. During the run it shoots
the live floor and the gateway fleet; after it, each shopper's app opens some
of its offers, the till redeems some, and shoppers who tried a garment on
buy it with some probability (``POST /api/v1/me/profile-events``), so the
funnel and the campaign figures have something to show. Then it shoots the
analytics views, the campaigns (one campaign open in the editor) and the
layout editor.

    .venv/bin/python -m tests.e2e.dashboard_screenshots --only campaigns

shoots just the campaigns view (a few seconds, no broker, no simulation): it
shows the shipped example campaigns, which do not depend on the run.
"""

import argparse
import random
import secrets
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from playwright.sync_api import Page, ViewportSize
from sqlalchemy import text

from omnizone.broker import BrokerAccounts, start_broker
from omnizone.paths import shipped_config
from omnizone.server.domain.offers import load_catalog
from omnizone.server.runtime import ServerRuntime
from omnizone.server.settings import ServerSettings
from omnizone.sim.app_client import expected_shoppers, register_app_phones
from omnizone.sim.engine import SimClock, Simulation
from omnizone.sim.fitting_rooms import FittingRooms
from omnizone.sim.fleet import GatewayFleet
from omnizone.sim.runner import run_paced
from omnizone.sim.scenario import load_scenario
from omnizone.sim.shoppers import AppPhone
from omnizone.sim.tap_points import TapPoints
from omnizone.store import StorePlan, load_store
from tests.e2e.browser import chromium
from tests.e2e.dashboard_stack import staff_settings

SPEED = 20.0
SIMULATED_S = 5400
VIEWPORT: ViewportSize = {"width": 1440, "height": 900}
PX_PER_M = 50


def floor_image_svg(plan: StorePlan) -> str:
    """An architect-style drawing of the example store: walls, a door to the
    street, rails, shelves, tills, fitting-room curtains."""
    w, d = plan.store.floor.width_m, plan.store.floor.depth_m
    s = PX_PER_M

    def rect(x: float, y: float, rw: float, rh: float, fill: str, stroke: str = "#6b6257") -> str:
        return (
            f'<rect x="{x * s}" y="{y * s}" width="{rw * s}" height="{rh * s}" '
            f'fill="{fill}" stroke="{stroke}" stroke-width="2"/>'
        )

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w * s}" height="{d * s}">',
        f'<rect width="{w * s}" height="{d * s}" fill="#f3ede2"/>',
        # floor boards
        *(
            f'<line x1="0" y1="{y * s}" x2="{w * s}" y2="{y * s}" stroke="#e6dccb"/>'
            for y in range(1, int(d))
        ),
        # outer walls, with the street door between x = 13 and 17
        f'<path d="M {13 * s} 0 H 0 V {d * s} H {w * s} V 0 H {17 * s}" fill="none" '
        'stroke="#3d3a35" stroke-width="14"/>',
        # fitting rooms and the back wall partitions
        f'<path d="M {20 * s} {14 * s} H {w * s} M {23 * s} {14 * s} V {d * s} M {26 * s} {14 * s}'
        f' V {d * s} M {20 * s} {14 * s} V {d * s}" stroke="#3d3a35" stroke-width="8"/>',
    ]
    # clothing rails (womenswear, menswear, outerwear), shoe shelves, denim tables
    for x0, y0, x1 in (
        (1.5, 3, 10),
        (1.5, 6, 10),
        (19.5, 3, 28.5),
        (19.5, 6, 28.5),
        (1.5, 13, 8.5),
        (1.5, 17, 8.5),
    ):
        parts.append(
            f'<line x1="{x0 * s}" y1="{y0 * s}" x2="{x1 * s}" y2="{y0 * s}" stroke="#8a7f70" '
            'stroke-width="6" stroke-linecap="round"/>'
        )
    for x in (11, 13.5, 16, 18.5):
        parts.append(rect(x, 11, 0.8, 7.5, "#d9cbb4"))
    for x in (21.5, 25.5):
        parts.append(rect(x, 11, 3, 1.6, "#c9d6e3"))
    parts += [
        rect(13.2, 5.5, 3.6, 2.5, "#e8d9c0"),  # accessories island
        rect(27, 16.5, 2.5, 1.2, "#b9a58b"),  # till counter
        rect(0.2, 13.4, 0.6, 1.2, "#9c8a72"),  # jacket wall with the NFC tag
        *(
            f'<line x1="{x * s}" y1="{14.4 * s}" x2="{(x + 2.4) * s}" y2="{14.4 * s}" '
            'stroke="#b5485d" stroke-width="5" stroke-dasharray="8 5"/>'
            for x in (20.3, 23.3)
        ),
        f'<text x="{0.6 * s}" y="{(d - 0.5) * s}" font-family="sans-serif" font-size="22" '
        f'fill="#6b6257">{plan.store.name}: ground floor, 1:100</text>',
        "</svg>",
    ]
    return "".join(parts)


def render_png(page: Page, svg_text: str, width: int, height: int) -> bytes:
    page.set_viewport_size({"width": width, "height": height})
    page.set_content(f'<body style="margin:0">{svg_text}</body>')
    png: bytes = page.screenshot(clip={"x": 0, "y": 0, "width": width, "height": height})
    page.set_viewport_size(VIEWPORT)
    return png


def shoot(page: Page, out: Path, name: str, *, full_page: bool = False) -> None:
    page.wait_for_timeout(700)  # transitions and the last fetches settle
    page.screenshot(path=str(out / f"{name}.png"), full_page=full_page)
    print(f"  {out / f'{name}.png'}")


def open_view(page: Page, base: str, route: str, ready: str) -> None:
    target = f"{base}/dashboard/#/{route}"
    if page.url == target:
        page.reload()  # the same hash again would not render the view again
    else:
        page.goto(target)
    page.get_by_test_id(ready).wait_for(timeout=30_000)


def shop(
    server: ServerRuntime,
    plan: StorePlan,
    phones: list[AppPhone],
    api: httpx.Client,
    rng: random.Random,
) -> dict[str, int]:
    """The shoppers' phones and the tills after the run: offers opened and
    redeemed (a redeemed offer is a sale), garments tried on bought, and some
    purchases at checkout."""
    catalog = load_catalog(shipped_config("catalog/rivoli.yaml"), [plan])
    gtins = [p.gtin for p in catalog.products]
    done = {"opened": 0, "redeemed": 0, "purchases": 0}
    tokens = {p.shopper_id: p.token for p in phones if p.token}
    bought: set[tuple[str, str]] = set()

    def buy(shopper: str, gtin: str, at_ms: int) -> None:
        token = tokens.get(shopper)
        if token is None or (shopper, gtin) in bought:
            return
        bought.add((shopper, gtin))
        event = {"type": "purchase", "gtin": gtin, "channel": "pos", "at_ms": at_ms, "amount": 59.0}
        made = api.post(
            "/api/v1/me/profile-events", json=event, headers={"Authorization": f"Bearer {token}"}
        )
        done["purchases"] += made.status_code == 201

    for shopper, token in tokens.items():
        auth = {"Authorization": f"Bearer {token}"}
        for offer in api.get("/api/v1/me/offers", headers=auth).json():
            api.post(
                f"/api/v1/me/offers/{offer['offer_id']}/receipts",
                json={"status": "delivered"},
                headers=auth,
            )
            if rng.random() < 0.6:
                api.post(
                    f"/api/v1/me/offers/{offer['offer_id']}/receipts",
                    json={"status": "opened"},
                    headers=auth,
                )
                done["opened"] += 1
                if rng.random() < 0.35:
                    redeemed = api.post(
                        f"/api/v1/stores/{plan.id}/redemptions", json={"code": offer["coupon_code"]}
                    )
                    if redeemed.status_code == 201:  # the till sells what the offer was for
                        done["redeemed"] += 1
                        gtin = offer.get("product_gtin") or rng.choice(gtins)
                        buy(shopper, gtin, offer["created_ms"] + 600_000)
    rooms = {r.id: r.zone for r in plan.rfid_readers}
    with server.repository.engine.connect() as db:
        try_ons = db.execute(
            text(
                "SELECT reader, gtin, at_ms FROM try_ons"
                " WHERE event = 'arrived' AND gtin IS NOT NULL"
            )
        ).all()
        stays = db.execute(
            text("SELECT device, zone, entered_ms, left_ms FROM visits WHERE store = :s"),
            {"s": plan.id},
        ).all()

    for reader, gtin, at_ms in try_ons:
        zone = rooms.get(reader)
        inside = [
            device
            for device, stay_zone, entered, left in stays
            if stay_zone == zone and entered - 8000 <= at_ms <= (left or at_ms) + 8000
        ]
        for device in inside:
            if rng.random() < 0.4:
                buy(device, gtin, at_ms + 300_000)
    for device, zone, _entered, left in stays:
        if zone == "checkout" and left and rng.random() < 0.5:
            buy(device, rng.choice(gtins), left)
    return done


def shop_opening() -> datetime:
    """The next 09:00 UTC on a Monday to Saturday: the shipped campaigns run
    then (10:00-20:00 in Paris), and the offers, stamped in simulated time,
    have not expired when the till redeems them on the wall clock."""
    now = datetime.now(UTC)
    day = now.replace(hour=9, minute=0, second=0, microsecond=0)
    if day <= now:
        day += timedelta(days=1)
    while day.weekday() == 6:  # Sunday
        day += timedelta(days=1)
    return day


def shoot_campaigns(page: Page, base: str, out: Path) -> None:
    """The campaign list, with one campaign (segments, quiet hours) in the editor."""
    open_view(page, base, "campaigns", "new-campaign")
    page.locator(
        "[data-testid=campaigns] tr[data-campaign=returning-loyal] [data-testid=edit]"
    ).click()
    page.locator("[data-testid=new-campaign][data-mode=edit]").wait_for()
    page.mouse.move(0, 0)  # no hover effects
    page.evaluate("document.activeElement.blur()")  # no focus ring
    shoot(page, out, "campaigns", full_page=True)


def campaigns_only(out: Path) -> None:
    """Just the campaigns view, on a server with the shipped campaigns and no broker."""
    key = secrets.token_urlsafe(18)
    with tempfile.TemporaryDirectory() as tmp:
        settings = staff_settings(
            Path(tmp) / "omnizone.db", api_keys={key: ["read", "admin"]}, campaign_files=None
        )
        with ServerRuntime(settings) as server, chromium() as browser:
            page = browser.new_page(viewport=VIEWPORT)
            page.add_init_script(f"sessionStorage.setItem('omnizone.staff.key', {key!r})")
            shoot_campaigns(page, server.api_url, out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    parser.add_argument("--seconds", type=float, default=SIMULATED_S, help="simulated seconds")
    parser.add_argument(
        "--only", choices=["campaigns"], help="shoot only this view (no simulated run)"
    )
    args = parser.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    if args.only == "campaigns":
        campaigns_only(out)
        return
    scenario = load_scenario(shipped_config("scenarios/saturday-3db.yaml"), duration_s=args.seconds)
    plan = load_store(scenario.store_file)
    key = secrets.token_urlsafe(18)
    rng = random.Random(11)
    run_dir = Path(tempfile.mkdtemp(prefix="omnizone-screenshots-"))
    accounts = BrokerAccounts.for_store(plan)
    with (
        start_broker(accounts, run_dir=run_dir / "broker", prefer="mosquitto") as broker,
        chromium() as browser,
    ):
        settings = ServerSettings.on_broker(
            broker,
            accounts,
            database_url=f"sqlite:///{run_dir / 'omnizone.db'}",
            api_keys={key: ["read", "admin"]},
            api_port=0,
        )
        page = browser.new_page(viewport=VIEWPORT)
        # 1. a floor-plan image, uploaded and saved as layout version 1; restart to run it
        w, d = plan.store.floor.width_m, plan.store.floor.depth_m
        png = render_png(page, floor_image_svg(plan), int(w * PX_PER_M), int(d * PX_PER_M))
        with ServerRuntime(settings, stores={plan.id: plan}) as server:
            staff = httpx.Client(base_url=server.api_url, headers={"X-API-Key": key}, timeout=30)
            image = (
                staff.post(
                    f"/api/v1/stores/{plan.id}/floor-images",
                    content=png,
                    headers={"Content-Type": "image/png"},
                )
                .raise_for_status()
                .json()
            )
            running = staff.get(f"/api/v1/stores/{plan.id}/plan").json()["plan"]
            staff.post(
                f"/api/v1/stores/{plan.id}/layouts",
                json={"plan": running, "image_id": image["image_id"], "note": "floor-plan image"},
            ).raise_for_status()
        with ServerRuntime(settings, stores={plan.id: plan}) as server:
            base = server.api_url
            staff = httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=30)
            assert staff.get(f"/api/v1/stores/{plan.id}/plan").json()["running_version"] == 1
            clock = SimClock.starting_at(shop_opening())
            fleet = GatewayFleet.on_broker(
                plan, clock, run_dir, broker, accounts, scenario.window_ms
            )
            fleet.start()
            hardware: list[FittingRooms | TapPoints] = [
                FittingRooms(plan, fleet.nodes, seed=scenario.seed),
                TapPoints(plan, fleet.nodes, seed=scenario.seed),
            ]
            for device in hardware:
                device.start()
            phones = register_app_phones(base, plan.id, expected_shoppers(scenario))
            simulation = Simulation(
                scenario,
                plan,
                fleet.nodes,
                clock,
                None,
                [h.observe for h in hardware],
                app_phones=phones,
            )
            page.add_init_script(f"sessionStorage.setItem('omnizone.staff.key', {key!r})")
            print(f"simulating {args.seconds:.0f} s at {SPEED}x ...")
            walker = threading.Thread(target=run_paced, args=(simulation,), kwargs={"speed": SPEED})
            walker.start()
            wall_s = args.seconds / SPEED
            time.sleep(wall_s * 0.8)
            open_view(page, base, "live", "live-floor")
            page.wait_for_function(
                "window.__liveStats && window.__liveStats.present > 5", timeout=60_000
            )
            page.wait_for_timeout(2500)
            shoot(page, out, "live")
            open_view(page, base, "gateways", "fleet")
            page.locator("[data-testid=fleet] tbody tr").first.wait_for()
            shoot(page, out, "gateways")
            walker.join()
            simulation.close_windows()
            for device in hardware:
                device.stop()
            fleet.flush(timeout_s=20)
            published = fleet.acknowledged_keys()
            end = time.monotonic() + 60
            while time.monotonic() < end:
                received = {(k.gateway, k.seq) for k in server.repository.received_keys(plan.id)}
                if published <= received:
                    break
                time.sleep(0.2)
            done = shop(
                server,
                plan,
                phones,
                httpx.Client(base_url=base, timeout=30, headers={"X-API-Key": key}),
                rng,
            )
            print(f"after the run: {done}")
            views: list[tuple[str, str, str, bool]] = [
                ("presence", "analytics/presence", "presence-grid", True),
                ("dwell", "analytics/dwell", "dwell-charts", True),
                ("footfall", "analytics/footfall", "footfall-grid", False),
                ("visits", "analytics/visits", "visits-table", False),
                ("paths", "analytics/paths", "routes-table", True),
                ("funnel", "analytics/funnel", "funnel-table", False),
                ("campaign-performance", "analytics/campaigns", "campaign-performance", False),
            ]
            open_view(page, base, "analytics/presence", "presence-grid")
            page.get_by_role("button", name="All data").click()  # the run, not 24 h around it
            page.wait_for_timeout(1500)
            for name, route, ready, full in views:
                open_view(page, base, route, ready)
                shoot(page, out, name, full_page=full)
            shoot_campaigns(page, base, out)
            open_view(page, base, "layout", "editor-floor")
            page.locator("[data-testid=editor-floor] [data-zone=denim]").click(
                position={"x": 30, "y": 15}
            )
            page.get_by_test_id("selected-zone").wait_for()
            shoot(page, out, "layout-editor", full_page=True)
            fleet.stop(flush_timeout_s=5)
    print(f"screenshots in {out}; run directory {run_dir}")


if __name__ == "__main__":
    main()
