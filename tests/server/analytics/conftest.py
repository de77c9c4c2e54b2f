"""A real SQLite database holding two simulated days of the example store
(the bench's generator), and the server's app over it."""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from omnizone.server.adapters.analytics_db import AnalyticsRepository
from omnizone.server.adapters.campaign_db import CampaignRepository
from omnizone.server.adapters.db import SqlRepository
from omnizone.server.adapters.offer_db import OfferRepository
from omnizone.server.adapters.shopper_db import ShopperRepository
from omnizone.server.bootstrap import Storage, build_reports, reports_app
from omnizone.store import StorePlan, load_store
from omnizone.suite.bench.analytics import WeekSpec, fill_week, shipped_campaigns

ROOT = Path(__file__).resolve().parents[3]
STORE_FILE = ROOT / "config" / "stores" / "rivoli.yaml"
STORE = "paris-rivoli"
READ_KEY = "analytics-read-123"
ADMIN_KEY = "analytics-admin-123"
POS_KEY = "analytics-pos-1234"
READ = {"X-API-Key": READ_KEY}
FIRST_DAY = date(2026, 11, 16)
#: Every analytics view, written out here (not read from the service) so a
#: view dropped from the service fails the API and report tests.
VIEWS = [
    "presence",
    "dwell",
    "footfall",
    "visits",
    "transitions",
    "routes",
    "funnel",
    "campaigns",
    "capture",
]


@dataclass(frozen=True)
class Filled:
    url: str
    plan: StorePlan
    rows: dict[str, int]
    from_ms: int  # the first simulated day, store-local midnight to midnight
    to_ms: int


def day_ms(day: date, days: int = 1) -> tuple[int, int]:
    start = datetime.combine(day, datetime.min.time(), ZoneInfo("Europe/Paris"))
    return round(start.timestamp() * 1000), round((start + timedelta(days=days)).timestamp() * 1000)


@pytest.fixture(scope="package")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Filled]:
    plan = load_store(STORE_FILE)
    url = f"sqlite:///{tmp_path_factory.mktemp('analytics') / 'store.db'}"
    repository = SqlRepository.from_url(url)
    engine = repository.engine
    AnalyticsRepository(engine)
    ShopperRepository(engine)
    OfferRepository(engine)
    campaigns = CampaignRepository(engine)
    for campaign in shipped_campaigns(plan):
        campaigns.save_campaign(campaign, 0)
    spec = WeekSpec(days=2, trips_per_day=150, first_day=FIRST_DAY, seed=5)
    rows = fill_week(engine, plan, spec)
    repository.close()
    yield Filled(url, plan, rows, *day_ms(FIRST_DAY))


@pytest.fixture(scope="package")
def client(filled: Filled) -> Iterator[TestClient]:
    repository = SqlRepository.from_url(filled.url)
    storage = Storage.over(repository)  # the server's wiring: analytics with the campaign report
    reports = build_reports(storage, {filled.plan.id: filled.plan})
    app = reports_app(
        storage, reports, {READ_KEY: ["read"], ADMIN_KEY: ["admin"], POS_KEY: ["pos"]}
    )
    with TestClient(app) as test_client:
        yield test_client
    repository.close()
