"""The fleet view lists the store's fixed beacons (headless Chromium, a real
server): gateways' sightings with Eddystone-TLM go through ingest, and the
page shows each beacon's last heard, battery, temperature and advertising
count, with a silent beacon's and a weak battery's alerts."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from omnizone.contract import BeaconTelemetry, BleMessage, BleSighting, dump_message, topic_for
from omnizone.server.runtime import ServerRuntime
from tests.e2e.dashboard_stack import gateways_view, staff_server, store_id

STORE = store_id()
T0 = 1_767_225_600_000


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerRuntime]:
    with staff_server(tmp_path / "omnizone.db") as running:
        yield running


def _hear(server: ServerRuntime, seconds: int) -> None:
    """gw-outerwear hears the wall beacon all along (TLM every 10 s, a low
    cell); gw-checkout hears the checkout beacon for the first minute only."""
    plan = server.ingest.stores[STORE]
    wall, checkout = plan.beacons[0].device, plan.beacons[1].device
    for s in range(1, seconds + 1):
        at = T0 + s * 1000
        telemetry = (
            BeaconTelemetry(
                battery_mv=2380, temperature_c=23.25, adv_count=40_000 + s, uptime_s=s, heard_ms=at
            )
            if s % 10 == 0
            else None
        )
        heard = {"gw-outerwear": [(wall, -61.0, telemetry)]}
        heard["gw-checkout"] = [(checkout, -57.0, None)] if s <= 60 else []
        heard["gw-entrance"] = [(wall, -80.0, None)]
        for gateway, items in heard.items():
            if not items:
                continue
            message = BleMessage(
                store=STORE,
                gateway=gateway,
                seq=s,
                sent_ms=at,
                items=[
                    BleSighting(
                        device=device,
                        window_start_ms=at - 1000,
                        window_ms=1000,
                        count=1,
                        rssi_mean=rssi,
                        rssi_max=rssi,
                        telemetry=tlm,
                    )
                    for device, rssi, tlm in items
                ],
            )
            server.ingest.handle(topic_for(STORE, gateway, "ble"), dump_message(message), at)


def test_the_fleet_view_lists_beacons_with_battery_and_a_silent_beacons_alert(
    server: ServerRuntime,
) -> None:
    _hear(server, 12 * 60)  # the checkout beacon is silent for 11 minutes
    with gateways_view(server.api_url) as (page, errors):
        wall = page.locator("[data-testid=beacons] tr[data-beacon=bcn-outerwear-wall]")
        expect(wall.get_by_test_id("beacon-battery")).to_have_text("2,380 mV")
        expect(wall.get_by_test_id("beacon-adverts")).to_have_text("40,720")
        expect(wall.get_by_test_id("beacon-last-heard")).to_have_text("0 s ago")
        expect(wall).to_contain_text("23.3 °C")
        expect(wall.get_by_test_id("beacon-alert")).to_have_text("low battery")
        checkout = page.locator("[data-testid=beacons] tr[data-beacon=bcn-checkout]")
        expect(checkout.get_by_test_id("beacon-alert")).to_have_text("silent")
        expect(checkout.get_by_test_id("beacon-last-heard")).to_have_text("11.0 min ago")
        expect(checkout.get_by_test_id("beacon-battery")).to_have_text("–")
        beacons = len(server.ingest.stores[STORE].beacons)  # the store file's, heard or not
        expect(page.get_by_test_id("beacon-summary")).to_have_text(f"0 of {beacons} beacons ok")
        alerts = page.get_by_test_id("beacon-alerts")
        expect(
            alerts.locator("li[data-kind=silent]").filter(has_text="bcn-checkout")
        ).to_contain_text("bcn-checkout: silent for 11 min")
        expect(alerts.locator("li[data-kind=low-battery]")).to_contain_text("2380 mV")
        expect(page.get_by_test_id("beacon-rules")).to_contain_text("10.0 min")
        assert errors == [], errors
