"""The fleet view shows each gateway's self-calibration (headless Chromium,
a real server): gateway beacons go through ingest, the job fits them, the
page shows the fit and a drift badge per gateway, and a blocked gateway's
alert."""

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import expect

from omnizone.contract import BleMessage, BleSighting, dump_message, topic_for
from omnizone.server.runtime import ServerRuntime
from tests.e2e.dashboard_stack import gateways_view, staff_server, store_id

STORE = store_id()
T0 = 1_767_225_600_000


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerRuntime]:
    with staff_server(tmp_path / "omnizone.db") as running:
        yield running


def _hear(server: ServerRuntime, rounds: int, start: int, quieter: str | None) -> None:
    """Every gateway hears every other once a second; ``quieter`` 12 dB down."""
    plan = server.ingest.stores[STORE]
    rng = np.random.default_rng(5)
    for k in range(rounds):
        at = T0 + (start + k) * 1000
        for receiver in plan.gateways:
            items = []
            for sender in plan.gateways:
                if sender.id == receiver.id:
                    continue
                d = math.dist(sender.position, receiver.position)
                rssi = -55 - 18 * math.log10(d) + rng.normal(0, 2)
                if quieter in (sender.id, receiver.id):
                    rssi -= 12
                items.append(
                    BleSighting(
                        device=plan.gateway_beacon(sender),
                        window_start_ms=at - 1000,
                        window_ms=1000,
                        count=1,
                        rssi_mean=round(rssi, 1),
                        rssi_max=round(rssi, 1),
                    )
                )
            message = BleMessage(
                store=STORE, gateway=receiver.id, seq=start + k, sent_ms=at, items=items
            )
            server.ingest.handle(topic_for(STORE, receiver.id, "ble"), dump_message(message), at)


def test_the_fleet_view_shows_each_gateways_fit_and_a_blocked_gateways_alert(
    server: ServerRuntime,
) -> None:
    job = server.parts.self_calibration
    assert job is not None
    _hear(server, 200, 0, None)  # the long run
    # then something stands in front of gw-shoes, for longer than the recent window (5 min)
    _hear(server, 320, 200, "gw-shoes")
    job.run_once()
    with gateways_view(server.api_url) as (page, errors):
        shoes = page.locator("[data-testid=fleet] tr[data-gateway=gw-shoes]")
        expect(shoes.get_by_test_id("drift")).to_have_text("blocked")
        denim = page.locator("[data-testid=fleet] tr[data-gateway=gw-denim]")
        expect(denim.get_by_test_id("drift")).to_have_text("steady")
        expect(denim.get_by_test_id("radio-fit")).to_contain_text("dBm")
        expect(page.get_by_test_id("radio-summary")).to_contain_text("the localizer uses it")
        expect(page.get_by_test_id("drift-alerts")).to_contain_text("gw-shoes")
        assert errors == [], errors
