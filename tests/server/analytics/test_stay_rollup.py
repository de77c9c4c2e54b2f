"""The roll-up of closed hours (``adapters/stay_rollup_db.py``) and the other
speed-ups of issue 18 give what the from-scratch computation gives.

Generated data (the bench's generator, a few seeds, plus open stays, a zone
the plan no longer has and stays added late) in a real SQLite database and a
real PostgreSQL one. "From scratch" is every view computed from
``Stays.from_rows`` of the visits query, the loyalty lookback from SQL, and
the campaign report reading each group's purchases shopper by shopper: the
code paths before the roll-up. Every view, over random ranges, must be equal,
field for field, and so must the stays' columns themselves.
"""

import random
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import func, insert, select

from omnizone.server import bootstrap
from omnizone.server.adapters.analytics_db import AnalyticsRepository
from omnizone.server.adapters.capture_db import PassersByRepository
from omnizone.server.adapters.db import VisitRow
from omnizone.server.adapters.insight_db import InsightRepository
from omnizone.server.adapters.stay_rollup_db import HOUR_MS, StayRollupRow
from omnizone.server.domain import analytics as core
from omnizone.server.domain.analytics import Stays
from omnizone.server.service.analytics import VIEWS, AnalyticsService
from omnizone.server.service.campaign_report import (
    CampaignFigures,
    CampaignReport,
    campaign_report,
)
from omnizone.server.service.insight import InsightService
from omnizone.server.service.running_stores import RunningStores
from omnizone.server.service.shoppers import ShopperService
from omnizone.store import StorePlan, load_store
from omnizone.suite.bench.analytics import WeekSpec, fill_week, shipped_campaigns, vacuum_analyze

ROOT = Path(__file__).resolve().parents[3]
FIRST_DAY = date(2026, 11, 16)
DAY_MS = 86_400_000


class FromScratch(AnalyticsRepository):
    """The analytics' reads without the roll-up: columns built row by row."""

    def stay_columns(
        self,
        store: str,
        from_ms: int,
        to_ms: int,
        zones: Sequence[str],
        exclude: Sequence[str] = (),
    ) -> Stays:
        return Stays.from_rows(self.stays(store, from_ms, to_ms, exclude), zones)


@dataclass
class Pair:
    plan: StorePlan
    storage: bootstrap.Storage
    rolled: bootstrap.StoreReports
    scratch_analytics: AnalyticsService
    scratch_insight: InsightService
    scratch_report: CampaignReport
    from_ms: int
    to_ms: int


def _scratch(
    storage: bootstrap.Storage, plan: StorePlan
) -> tuple[AnalyticsService, InsightService, CampaignReport]:
    reads = FromScratch(storage.sql.engine)
    running = RunningStores({plan.id: plan})
    shoppers = ShopperService(list(running), storage.shoppers)

    def report(
        store: str, *, from_ms: int | None = None, to_ms: int | None = None
    ) -> list[CampaignFigures]:
        mine = [c for c in storage.campaigns.campaigns() if c.store == store]
        return campaign_report(
            mine,
            storage.campaigns,
            storage.offers.campaign_counts,
            shoppers,
            from_ms=from_ms,
            to_ms=to_ms,
            purchases=reads.purchases_of,  # each group's purchases, shopper by shopper
            timezones={plan.id: plan.store.timezone},
            follow_ups=storage.follow_ups.of_campaign,
        )

    analytics = AnalyticsService(running, reads, report)
    analytics.count_passers_by(PassersByRepository(storage.sql.engine))  # the capture view
    insight = InsightService(analytics, reads, InsightRepository(storage.sql.engine))
    return analytics, insight, report


def _fill(url: str, seed: int) -> Pair:
    plan = load_store(ROOT / "config" / "stores" / "rivoli.yaml")
    storage = bootstrap.open_storage(url)
    for campaign in shipped_campaigns(plan):
        storage.campaigns.save_campaign(campaign, 0)
    spec = WeekSpec(days=4, trips_per_day=120, first_day=FIRST_DAY, seed=seed, staff=1)
    fill_week(storage.sql.engine, plan, spec)
    rng = random.Random(seed)
    start = _midnight(plan, FIRST_DAY)
    extra = []
    for k in range(6):  # open stays (one with an hour still open), and a zone gone from the plan
        at = start + rng.randrange(4) * DAY_MS + rng.randrange(10 * HOUR_MS, 19 * HOUR_MS)
        extra.append(
            {"store": plan.id, "device": f"late{k:02d}{seed}", "zone": plan.zones[k].id,
             "entered_ms": at, "left_ms": None, "dwell_s": None, "status": "open"}
        )  # fmt: skip
        extra.append(
            {"store": plan.id, "device": f"gone{k:02d}{seed}", "zone": "removed-zone",
             "entered_ms": at + 5, "left_ms": at + 90_000, "dwell_s": 90.0, "status": "visit"}
        )  # fmt: skip
    with storage.sql.engine.begin() as conn:
        conn.execute(insert(VisitRow), extra)
    rolled = bootstrap.build_reports(storage, {plan.id: plan})
    scratch = _scratch(storage, plan)
    return Pair(plan, storage, rolled, *scratch, start, start + 4 * DAY_MS)


def _midnight(plan: StorePlan, day: date) -> int:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(plan.store.timezone)
    return round(datetime.combine(day, datetime.min.time(), tz).timestamp() * 1000)


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return str(request.getfixturevalue("postgres_schema_url"))


@pytest.fixture
def pair(url: str) -> Iterator[Pair]:
    filled = _fill(url, seed=11)
    yield filled
    filled.storage.close()


def _same_columns(a: Stays, b: Stays) -> None:
    assert a.devices == b.devices
    for name in ("device", "zone", "entered_ms", "end_ms", "status"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name


def _without_clock(body: Any) -> Any:
    """``held_back_now`` is the state at the moment of asking, not of the data."""
    if isinstance(body, dict):
        return {k: _without_clock(v) for k, v in body.items() if k != "held_back_now"}
    if isinstance(body, list):
        return [_without_clock(v) for v in body]
    return body


def _ranges(pair: Pair, rng: random.Random, n: int) -> list[tuple[int, int]]:
    out = [(pair.from_ms, pair.to_ms), (pair.from_ms + DAY_MS, pair.from_ms + 2 * DAY_MS)]
    for _ in range(n):
        a = rng.randrange(pair.from_ms - 6 * HOUR_MS, pair.to_ms)
        out.append((a, a + rng.randrange(1, 3 * DAY_MS)))
    return out


def test_the_columns_equal_the_rows_of_the_visits_query(pair: Pair) -> None:
    """Random ranges and exclusions, part of a zone list missing: row for row."""
    rng = random.Random(5)
    engine = pair.storage.sql.engine
    scratch = FromScratch(engine)
    rolled = pair.storage.analytics
    zones = [z.id for z in pair.plan.zones]
    with engine.connect() as conn:
        devices = [d for (d,) in conn.execute(select(VisitRow.device).distinct())]
    for lo, hi in _ranges(pair, rng, 12):
        exclude = rng.sample(devices, rng.randrange(0, 4))
        chosen = rng.sample(zones, len(zones) - rng.randrange(0, 2))
        _same_columns(
            rolled.stay_columns(pair.plan.id, lo, hi, chosen, exclude),
            scratch.stay_columns(pair.plan.id, lo, hi, chosen, exclude),
        )
        assert rolled.days.last_entries(pair.plan.id, lo, hi) == InsightRepository(
            engine
        ).last_entries(pair.plan.id, lo, hi)
    assert rolled.days.built > 0  # the closed hours did come from the roll-up
    with engine.connect() as conn:
        assert conn.scalar(select(StayRollupRow.hour_ms).limit(1)) is not None


def test_every_view_equals_the_from_scratch_computation(pair: Pair) -> None:
    rng = random.Random(7)
    store = pair.plan.id
    rolled, insight = pair.rolled.analytics, pair.rolled.insight
    for lo, hi in _ranges(pair, rng, 3):
        for view in VIEWS:
            assert _without_clock(rolled.view(store, view, lo, hi)) == _without_clock(
                pair.scratch_analytics.view(store, view, lo, hi)
            ), (view, lo, hi)
        assert insight.loyalty(store, lo, hi) == pair.scratch_insight.loyalty(store, lo, hi)
        at = rng.randrange(pair.from_ms, pair.to_ms)
        assert insight.headline(store, at) == pair.scratch_insight.headline(store, at)
        assert insight.staff_view(store, at) == pair.scratch_insight.staff_view(store, at)
    week = (pair.from_ms, pair.from_ms + 2 * DAY_MS), (pair.from_ms + 2 * DAY_MS, pair.to_ms)
    for view in (*VIEWS, "loyalty"):
        assert _without_clock(insight.compare(store, view, None, *week)) == _without_clock(
            pair.scratch_insight.compare(store, view, None, *week)
        ), view


def test_a_late_stay_an_erasure_and_a_fresh_process_are_seen(pair: Pair) -> None:
    store, zones = pair.plan.id, [z.id for z in pair.plan.zones]
    engine = pair.storage.sql.engine
    rolled, scratch = pair.storage.analytics, FromScratch(engine)
    span = (pair.from_ms - HOUR_MS, pair.to_ms)
    rolled.stay_columns(store, *span, zones)  # the closed hours rolled up and held
    # A stay written late into a closed hour (a gateway's backlog).
    noon = pair.from_ms + 12 * HOUR_MS
    with engine.begin() as conn:
        conn.execute(
            insert(VisitRow).values(
                store=store, device="backlog01", zone=zones[1], entered_ms=noon + 17,
                left_ms=noon + 60_017, dwell_s=60.0, status="visit",
            )
        )  # fmt: skip
    late = rolled.stay_columns(store, *span, zones)
    assert "backlog01" in late.devices
    _same_columns(late, scratch.stay_columns(store, *span, zones))
    # An erasure: the shopper's rows go, and no rolled-up hour names them.
    victim = Counter(late.devices[d] for d in late.device.tolist()).most_common(5)[-1][0]
    pair.storage.sql.erase_device(victim)
    assert rolled.erase_device(victim) > 0
    with engine.connect() as conn:
        names = [d for (d,) in conn.execute(select(StayRollupRow.devices))]
    assert names and not any(f'"{victim}"' in n for n in names)
    after = rolled.stay_columns(store, *span, zones)
    assert victim not in after.devices
    _same_columns(after, scratch.stay_columns(store, *span, zones))
    # Another process: the stored hours, nothing in memory.
    fresh = AnalyticsRepository(engine)
    _same_columns(fresh.stay_columns(store, *span, zones), after)
    assert fresh.days.built == 0


def _routes_by_tuples(
    stays: Stays, trips: core.Trips, chosen: np.ndarray[Any, Any], limit: int
) -> core.Routes:
    """The routes as computed before (a tuple per trip): the reference."""
    wanted = np.zeros(len(trips), dtype=bool)
    wanted[chosen] = True
    keep = wanted[trips.trip] & (stays.status[trips.order] != core.PASS_BY)
    zone, trip = stays.zone[trips.order][keep], trips.trip[keep]
    if zone.size:
        same = np.zeros(zone.size, dtype=bool)
        same[1:] = (zone[1:] == zone[:-1]) & (trip[1:] == trip[:-1])
        zone, trip = zone[~same], trip[~same]
    counter: Counter[tuple[int, ...]] = Counter()
    if zone.size:
        for part in np.split(zone, np.flatnonzero(trip[1:] != trip[:-1]) + 1):
            counter[tuple(part.tolist())] += 1
    stopless = int(chosen.size) - len(np.unique(trip))
    if stopless:
        counter[()] += stopless
    ranked = sorted(counter.items(), key=lambda item: (-item[1], item[0]))[:limit]
    return core.Routes(trips=int(chosen.size), ranked=ranked, distinct=len(counter))


@pytest.mark.parametrize("seed", range(6))
def test_routes_rank_as_tuples_of_zones_would(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 400
    zones = int(rng.choice([3, 12, 300]))  # more than 256 zones: two bytes a zone
    entered = np.sort(rng.integers(0, 5_000_000, n))
    stays = Stays(
        device=rng.integers(0, 40, n).astype(np.int64),
        zone=rng.integers(0, zones, n).astype(np.int64),
        entered_ms=entered.astype(np.int64),
        end_ms=(entered + rng.integers(0, 200_000, n)).astype(np.int64),
        status=rng.integers(0, 3, n).astype(np.int64),
        devices=tuple(f"d{k}" for k in range(40)),
    )
    trips = core.split_trips(stays, 60_000)
    chosen = np.flatnonzero(rng.random(len(trips)) < 0.7).astype(np.int64)
    for limit in (3, 10_000):
        assert core.routes(stays, trips, chosen, limit) == _routes_by_tuples(
            stays, trips, chosen, limit
        )


def test_the_campaign_report_of_a_range_equals_reading_shopper_by_shopper(pair: Pair) -> None:
    store = pair.plan.id
    a = pair.rolled.campaign_report(store, from_ms=pair.from_ms + DAY_MS, to_ms=pair.to_ms)
    expected = pair.scratch_report(store, from_ms=pair.from_ms + DAY_MS, to_ms=pair.to_ms)
    assert [replace(f, held_back_now=None) for f in a] == [
        replace(f, held_back_now=None) for f in expected
    ]
    assert sum(f.treated_converted for f in a) > 0  # conversions were counted at all


def test_the_bench_analyzes_a_filled_postgresql_database_before_timing(pair: Pair) -> None:
    """`bench analytics` times the views on a database in a month-old state:
    on PostgreSQL, vacuumed and analyzed (the planner's row estimate of the
    visits is their count); SQLite is left as the server leaves it."""
    engine = pair.storage.sql.engine
    seconds = vacuum_analyze(engine)
    if engine.dialect.name != "postgresql":
        assert seconds is None
        return
    assert seconds is not None and seconds >= 0
    with engine.connect() as conn:
        stored = conn.scalar(select(func.count()).select_from(VisitRow))
        estimate = conn.exec_driver_sql(
            "SELECT c.reltuples FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relname = 'visits' AND n.nspname = current_schema()"
        ).scalar()
    assert stored and estimate == stored
