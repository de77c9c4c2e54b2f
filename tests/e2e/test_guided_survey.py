"""The guided survey end to end (issue 14, point 4): staff start a survey on
the dashboard's Survey page, the shopper app in survey mode pairs with its
code, a simulated phone advertising that app's registration walks the zones
staff pick (simulator → real gateway code → Mosquitto → server), the page
shows each zone turning "enough", and finishing writes the survey and the
calibration and shows the report."""

import threading
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from omnizone.contract.eid import EidParams
from omnizone.server.domain.localize.survey import load_survey
from omnizone.sim.engine import Simulation
from omnizone.sim.shoppers import AppPhone
from omnizone.sim.survey_walk import attach_walker, survey_scenario, walk_survey
from omnizone.store.calibration import load_calibration
from tests.e2e.browser import chromium
from tests.e2e.conftest import API_KEY, StoreStack

pytestmark = pytest.mark.e2e

ZONES = ("shoes", "menswear")
WAIT_MS = 120_000  # only bounds a hang


def _login(page: Page, base: str) -> None:
    page.goto(f"{base}/dashboard/")
    page.get_by_test_id("api-key").fill(API_KEY)
    page.get_by_test_id("login").click()
    page.get_by_test_id("live-floor").wait_for()


def test_staff_walk_a_guided_survey_and_get_a_calibration(store_stack: StoreStack) -> None:
    stack = store_stack
    base = stack.server.api_url
    stop = threading.Event()
    with chromium() as browser:
        staff = browser.new_page(viewport={"width": 1400, "height": 900})
        _login(staff, base)
        staff.get_by_test_id("nav-survey").click()
        staff.get_by_test_id("start-survey").click()
        code = staff.get_by_test_id("pairing-code").inner_text().strip()
        assert len(code) == 6

        # The staff phone's guide screen: the app in survey mode, opened from the link.
        app = browser.new_page()
        app.goto(f"{base}/app/#survey={code}")
        app.get_by_test_id("survey-waiting").wait_for()
        shopper = app.evaluate("JSON.parse(localStorage.getItem('omnizone.shopper'))")
        survey = app.evaluate("JSON.parse(localStorage.getItem('omnizone.survey'))")
        expect(staff.get_by_test_id("survey-state")).to_have_text("paired", timeout=WAIT_MS)

        # Its radio: a simulated phone advertising the app's registration.
        phone = AppPhone(
            shopper_id=shopper["shopper_id"],
            eid=EidParams(
                key=bytes.fromhex(shopper["eid_key"]),
                exponent=int(shopper["eid_rotation_exponent"]),
                clock_offset_s=int(shopper["eid_clock_offset_s"]),
            ),
            token=shopper["token"],
        )
        scenario = survey_scenario(stack.scenario)
        simulation = Simulation(scenario, stack.store, stack.fleet.nodes, stack.clock)
        with httpx.Client(base_url=base, timeout=10.0) as client:
            walker = attach_walker(simulation, client, phone, survey["token"], seed=7)
            walking = threading.Thread(
                target=walk_survey,
                args=(simulation, walker),
                kwargs={"speed": 5.0, "stop": stop, "wall_limit_s": 300},
            )
            walking.start()
            try:
                for zone in ZONES:
                    staff.get_by_test_id(f"walk-{zone}").click()
                    name = stack.store.zone(zone).name
                    expect(staff.get_by_test_id("active-zone")).to_have_text(name, timeout=WAIT_MS)
                    row = staff.get_by_test_id(f"survey-zone-{zone}")
                    expect(row).to_have_attribute("data-enough", "false")
                    # the app tells the walker where to go, and how far it is
                    expect(app.get_by_test_id("survey-zone")).to_have_text(name, timeout=WAIT_MS)
                    expect(row).to_have_attribute("data-enough", "true", timeout=WAIT_MS)
                    assert int(staff.get_by_test_id(f"windows-{zone}").inner_text()) >= 30
                staff.get_by_test_id("finish-survey").click()
                report = staff.get_by_test_id("survey-report")
                report.wait_for(timeout=WAIT_MS)
                expect(app.get_by_test_id("survey-over")).to_be_visible(timeout=WAIT_MS)
            finally:
                stop.set()
                walking.join(timeout=30)
        assert walker.walked == list(ZONES)
        expect(staff.get_by_test_id("survey-state")).to_have_text("finished")
        assert "Expected zone accuracy" in staff.get_by_test_id("expected-accuracy").inner_text()
        written = staff.get_by_test_id("written").locator("code").all_inner_texts()
        survey_file, calibration_file = (Path(p) for p in written[:2])
        assert survey_file.parent == stack.run_dir / "surveys"
        walked = load_survey(survey_file, stack.store)
        assert set(walked.zones) == set(ZONES) and len(walked) >= 60
        calibration = load_calibration(calibration_file, stack.store)
        assert calibration.store == stack.store.id
        # every anchor the report lists has its row, flagged or not
        rows = staff.locator("[data-testid^=anchor-]")
        assert rows.count() == len(walked.anchors)
