"""Issue 18 point 9 in headless Chromium: the footfall forecast and the
likely next products pages show the predictions API's figures, over a real
server and a database holding three simulated weeks (the backtest's history:
seasonal, with shoppers who favour a category; half of them consenting)."""

import random
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import insert

from omnizone.server import bootstrap
from omnizone.server.adapters.shopper_db import ConsentRow
from omnizone.server.domain.identity import Purpose
from omnizone.server.runtime import ServerRuntime
from omnizone.store import load_store
from omnizone.suite.bench.analytics import simulate_week, write_rows
from omnizone.suite.evaluation.predict import predict_spec
from tests.e2e.dashboard_page import checked_page, log_in
from tests.e2e.dashboard_stack import ADMIN_KEY, READ_KEY, STORE_FILE, staff_server

pytestmark = pytest.mark.e2e
STORE = load_store(STORE_FILE).id


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerRuntime]:
    database = tmp_path_factory.mktemp("predict") / "omnizone.db"
    storage = bootstrap.open_storage(f"sqlite:///{database}")
    plan = load_store(STORE_FILE)
    rows = simulate_week(plan, predict_spec(seed=6, days=21, trips_per_day=60))
    write_rows(storage.sql.engine, plan, rows)
    rng = random.Random(6)
    with storage.sql.engine.begin() as conn:
        conn.execute(
            insert(ConsentRow),
            [
                {"shopper_id": s, "purpose": p.value, "granted": True, "changed_ms": 0}
                for s in sorted(rows.shoppers)
                if rng.random() < 0.5
                for p in Purpose
            ],
        )
    storage.close()
    with staff_server(database) as running:
        yield running


def test_prediction_pages_show_the_api_figures(server: ServerRuntime) -> None:
    base = server.api_url
    api = httpx.Client(base_url=f"{base}/api/v1/stores/{STORE}", headers={"X-API-Key": READ_KEY})
    with checked_page() as page:
        log_in(page, base, READ_KEY)

        page.get_by_test_id("nav-forecast").click()
        page.get_by_test_id("forecast-table").wait_for()
        forecast = api.get("/predictions/footfall").json()
        for zone in forecast["zones"]:
            shown = page.get_by_test_id(f"forecast-total-{zone['zone']}").inner_text()
            assert shown == f"{round(zone['total']):,}", zone["zone"]
        page.get_by_test_id("forecast-zone").select_option("entrance")
        entrance = next(z for z in forecast["zones"] if z["zone"] == "entrance")
        noon = page.locator("[data-testid=forecast-hour-table] tr[data-hour='12'] td").nth(1)
        assert noon.inner_text() == f"{round(entrance['expected'][0][12]):,}"
        assert "trend" in page.get_by_test_id("forecast-model").inner_text()

        page.get_by_test_id("nav-next-products").click()
        page.get_by_test_id("products-table").wait_for()
        products = api.get("/predictions/products", params={"limit": 50}).json()
        assert products["shoppers"], "no consented shopper predicted"
        listed = page.locator("[data-testid=products-table] tbody tr")
        assert listed.count() == len(products["shoppers"])
        first = products["shoppers"][0]
        assert listed.first.get_attribute("data-shopper") == first["shopper_id"]
        assert first["products"][0]["name"] in listed.first.inner_text()


def test_a_likely_to_buy_campaign_is_described_and_edited_in_the_browser(
    server: ServerRuntime,
) -> None:
    base = server.api_url
    admin = {"X-API-Key": ADMIN_KEY}
    campaigns = f"{base}/api/v1/stores/{STORE}/campaigns"
    body = {
        "id": "denim-likely",
        "name": "Denim, predicted",
        "store": STORE,
        "trigger": {"kind": "store_entered"},
        "conditions": {"segments": [{"rule": "likely_to_buy", "categories": ["denim"]}]},
        "content": {"title": "Denim for you"},
    }
    assert httpx.post(campaigns, json=body, headers=admin).status_code == 201
    with checked_page() as page:
        log_in(page, base, ADMIN_KEY)
        page.get_by_test_id("nav-campaigns").click()
        row = page.locator("[data-testid=campaigns] tr[data-campaign=denim-likely]")
        row.wait_for()
        conditions = row.get_by_test_id("campaign-conditions").inner_text()
        assert "likely to buy denim (top 3)" in conditions
        row.get_by_test_id("edit").click()
        page.locator("[data-testid=new-campaign][data-mode=edit]").wait_for()
        assert page.get_by_test_id("segment-rule").input_value() == "likely_to_buy"
        assert page.get_by_test_id("segment-categories").input_value() == "denim"
        page.get_by_test_id("segment-categories").fill("denim, shoes")
        page.get_by_test_id("segment-top").fill("2")
        page.get_by_test_id("save-campaign").click()
        page.locator("[data-testid=new-campaign][data-mode=new]").wait_for()
    stored = next(
        c for c in httpx.get(campaigns, headers=admin).json() if c["id"] == "denim-likely"
    )
    assert stored["conditions"]["segments"] == [
        {
            "rule": "likely_to_buy",
            "gtins": [],
            "categories": ["denim", "shoes"],
            "top": 2,
            "negate": False,
        }
    ]
