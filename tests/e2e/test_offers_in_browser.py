"""Issue #5 end to end: a shopper joins in the reference app (headless
Chromium), walks into the simulated store with that phone, and the offer the
campaign sends appears on the page; the till redeems its code and the
campaign report counts it."""

from datetime import UTC, datetime

import httpx

from omnizone.contract.eid import EidParams
from omnizone.sim.engine import SimClock, Simulation
from omnizone.sim.fleet import GatewayFleet
from omnizone.sim.shoppers import AppPhone
from tests.e2e.browser import chromium
from tests.e2e.conftest import API_KEY, Backend

CAMPAIGN = {
    "id": "e2e-hello",
    "name": "Hello from the test",
    "priority": 1000,
    "trigger": {"kind": "store_entered"},
    "content": {
        "title": "Hello, shopper",
        "body": "10% off anything today.",
        "coupon_code": "HELLO-{code}",
        "expires_after_s": 3600,
    },
    "limits": {"per_visit": 1},
    "holdout_fraction": 0,
}


def test_a_simulator_triggered_offer_appears_in_the_app_and_is_redeemed(
    backend: Backend,
) -> None:
    b = backend
    base = b.server.api_url
    staff = {"X-API-Key": API_KEY}
    store = b.store.id
    created = httpx.post(f"{base}/api/v1/stores/{store}/campaigns", json=CAMPAIGN, headers=staff)
    assert created.status_code == 201, created.text

    with chromium() as browser:
        page = browser.new_page()
        page.goto(f"{base}/app/")
        page.get_by_test_id("join").click()
        page.get_by_test_id("consent-location_analytics").check()
        page.get_by_test_id("consent-personalized_offers").check()
        page.get_by_test_id("save-consent").click()
        page.get_by_test_id("empty-inbox").wait_for()
        phone = page.evaluate("JSON.parse(localStorage.getItem('omnizone.shopper'))")

        # The store runs on the wall clock, and the first shopper carries this phone.
        clock = SimClock(datetime.now(UTC).timestamp().__floor__() * 1000)
        fleet = GatewayFleet.on_broker(
            b.store, clock, b.run_dir, b.broker, b.accounts, b.scenario.window_ms
        )
        fleet.start()
        try:
            eid = EidParams(
                bytes.fromhex(phone["eid_key"]),
                phone["eid_rotation_exponent"],
                phone["eid_clock_offset_s"],
            )
            app_phone = AppPhone(phone["shopper_id"], eid)
            scenario = b.scenario.model_copy(update={"duration_s": 60.0})
            simulation = Simulation(scenario, b.store, fleet.nodes, clock, app_phones=[app_phone])
            simulation.run()
            simulation.close_windows()
        finally:
            fleet.stop(flush_timeout_s=5)

        offer = page.get_by_test_id("offer").filter(has_text="Hello, shopper")
        offer.wait_for(timeout=30_000)
        offer.click()
        coupon = page.get_by_test_id("coupon").inner_text()
        assert coupon.startswith("HELLO-")
        page.wait_for_function(
            "document.querySelector('[data-testid=qr]') && "
            "document.querySelector('[data-testid=qr]').naturalWidth > 0"
        )

    redeemed = httpx.post(
        f"{base}/api/v1/stores/{store}/redemptions", json={"code": coupon}, headers=staff
    )
    assert redeemed.status_code == 201, redeemed.text
    assert redeemed.json()["campaign_id"] == "e2e-hello"
    again = httpx.post(
        f"{base}/api/v1/stores/{store}/redemptions", json={"code": coupon}, headers=staff
    )
    assert again.status_code == 409

    report = httpx.get(f"{base}/api/v1/stores/{store}/campaigns/report", headers=staff).json()
    hello = next(r for r in report if r["campaign_id"] == "e2e-hello")
    assert hello["sent"] >= 1 and hello["redeemed"] == 1
    assert hello["delivered"] >= 1 and hello["opened"] >= 1
    why = httpx.get(
        f"{base}/api/v1/stores/{store}/decisions",
        params={"shopper": phone["shopper_id"]},
        headers=staff,
    ).json()
    assert any(d["campaign_id"] == "e2e-hello" and d["outcome"] == "sent" for d in why)
