"""``omnizone bench analytics``: every analytics view over a simulated week.

A fresh SQLite database is filled with a week of one store, generated
directly as the rows ingest and the other parts would have stored (running
the radio simulator for 20,000 shopper trips would take hours): per day a
few thousand trips, each entering by the entrance, visiting a few zones
along the floor plan's passages (the zones walked through on the way are
pass-bys), perhaps trying garments on, tapping a tap point, paying at the
checkout, and leaving by the entrance. Then each view is timed over the
whole week through the service (several runs) and once over HTTP.
"""

import random
import statistics
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, func, insert, select

from omnizone.paths import shipped_config
from omnizone.server import bootstrap
from omnizone.server.adapters.campaign_db import DecisionRow
from omnizone.server.adapters.capture_db import PassersByRepository, PassersByRow
from omnizone.server.adapters.db import NfcTapRow, ReceivedMessage, TryOnRow, VisitRow
from omnizone.server.adapters.offer_db import OfferReceiptRow, OfferRow, RedemptionRow
from omnizone.server.adapters.shopper_db import ProfileEventRow, ShopperRow
from omnizone.server.domain.offers import Campaign, load_campaigns, load_catalog
from omnizone.server.service.analytics import VIEWS, to_csv
from omnizone.store import StorePlan, ZoneKind, load_store
from omnizone.suite.bench.heatmap import fill_floor_cells, time_heatmap

if TYPE_CHECKING:
    from omnizone.server.service.insight import InsightService

DAY_OPEN_H, DAY_CLOSE_H = 10, 20
#: Relative arrivals per opening hour (10:00 ... 19:00): lunch and after-work peaks.
HOURLY_WEIGHT = (0.5, 0.8, 1.0, 1.3, 1.0, 0.9, 1.0, 1.4, 1.5, 0.9)
#: With ``WeekSpec.seasonal``: weekends peak in the afternoon, not after work ...
WEEKEND_HOURLY_WEIGHT = (0.6, 0.9, 1.2, 1.4, 1.6, 1.7, 1.6, 1.3, 1.0, 0.6)
#: ... and each weekday (Monday ... Sunday) brings its own share of the week.
WEEKDAY_FACTOR = (0.75, 0.8, 0.9, 0.95, 1.15, 1.6, 0.85)
#: A public holiday's trips, against an ordinary day (shortened, quiet).
HOLIDAY_FACTOR = 0.35


@dataclass(frozen=True, slots=True)
class WeekSpec:
    days: int = 7
    trips_per_day: int = 3000
    first_day: date = date(2026, 11, 16)  # a Monday
    seed: int = 7
    returning_fraction: float = 0.3
    sent_fraction: float = 0.9  # of trips the welcome campaign decides on: the rest held out
    staff: int = 0  # staff phones on the floor all day, every day (issue 18, point 5)
    # Issue 18, point 9 (predictions): structure a model can learn, all off by
    # default so every existing bench and test sees the same rows as before.
    seasonal: bool = False  # weekday x hour seasonality (WEEKDAY_FACTOR, weekend hours)
    trend_per_week: float = 0.0  # trips grow by this fraction of trips_per_day each week
    holidays: tuple[date, ...] = ()  # days with HOLIDAY_FACTOR of the trips
    preferences: bool = False  # each shopper favours a category: try-ons, views, purchases


def trips_on(spec: WeekSpec, day: date) -> int:
    """The trips simulated on ``day`` (``trips_per_day`` unless seasonal, trend or holiday)."""
    if not spec.seasonal and not spec.trend_per_week and not spec.holidays:
        return spec.trips_per_day
    factor = WEEKDAY_FACTOR[day.weekday()] if spec.seasonal else 1.0
    factor *= 1.0 + spec.trend_per_week * (day - spec.first_day).days / 7
    if day in spec.holidays:
        factor *= HOLIDAY_FACTOR
    return max(0, round(spec.trips_per_day * factor))


def hourly_weight(spec: WeekSpec, day: date) -> tuple[float, ...]:
    """Relative arrivals per opening hour on ``day``."""
    return WEEKEND_HOURLY_WEIGHT if spec.seasonal and day.weekday() >= 5 else HOURLY_WEIGHT


@dataclass
class _Rows:
    visits: list[dict[str, Any]] = field(default_factory=list)
    taps: list[dict[str, Any]] = field(default_factory=list)
    try_ons: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    offers: list[dict[str, Any]] = field(default_factory=list)
    receipts: list[dict[str, Any]] = field(default_factory=list)
    redemptions: list[dict[str, Any]] = field(default_factory=list)
    shoppers: dict[str, int] = field(default_factory=dict)
    #: With ``WeekSpec.preferences``: each shopper's favourite category (a zone).
    preference: dict[str, str] = field(default_factory=dict)
    #: The truth of each trip: (shopper, start_ms, out_ms, bought in the store or online).
    trips: list[tuple[str, int, int, list[int]]] = field(default_factory=list)
    staff: list[str] = field(default_factory=list)
    #: Passers-by counted at the street front per store-local hour (issue 18, point 4).
    passers_by: dict[int, int] = field(default_factory=dict)


class _Store:
    """What the generator needs of the plan: routes, kinds, readers."""

    def __init__(self, plan: StorePlan, gtins: Sequence[str]) -> None:
        self.plan = plan
        self.entrance = plan.entrances[0] if plan.entrances else plan.zones[0].id
        self.browsable = [
            z.id for z in plan.zones if z.kind in (ZoneKind.SALES, ZoneKind.FITTING_ROOM)
        ]
        self.fitting = {z.id for z in plan.zones if z.kind is ZoneKind.FITTING_ROOM}
        self.checkouts = [z.id for z in plan.zones if z.kind is ZoneKind.CHECKOUT]
        self.taps = {t.zone: t for t in plan.nfc_tap_points}
        self.readers = {r.zone: r for r in plan.rfid_readers}
        self.gtins = list(gtins)
        #: Per category (the first zone a product is displayed in here), its GTINs.
        self.categories: dict[str, list[str]] = {}
        self._paths: dict[tuple[str, str], list[str]] = {}

    def path(self, a: str, b: str) -> list[str]:
        """Zones walked through from a to b (both excluded), by the passages."""
        key = (a, b)
        if key not in self._paths:
            previous: dict[str, str | None] = {a: None}
            todo = deque([a])
            while todo:
                here = todo.popleft()
                for nxt in self.plan.adjacency[here]:
                    if nxt not in previous:
                        previous[nxt] = here
                        todo.append(nxt)
            walk: list[str] = []
            at = previous.get(b)
            while at is not None and at != a:
                walk.append(at)
                at = previous[at]
            self._paths[key] = walk[::-1]
        return self._paths[key]


def fill_week(engine: Engine, plan: StorePlan, spec: WeekSpec) -> dict[str, int]:
    """Write the simulated week; returns the rows written per table. The
    floor heatmap's hourly cells (issue 18 point 6) come from its stays,
    staff phones left out as the server leaves them out when it writes them."""
    week = simulate_week(plan, spec)
    written = _write(engine, plan, week)
    written["floor_cells"] = fill_floor_cells(
        engine, plan, week.visits, spec.seed, exclude=set(week.staff)
    )
    return written


def write_rows(engine: Engine, plan: StorePlan, rows: _Rows) -> dict[str, int]:
    """Write rows ``simulate_week`` made (their truth at hand); returns the rows per table."""
    return _write(engine, plan, rows)


def simulate_week(plan: StorePlan, spec: WeekSpec) -> _Rows:
    """The rows of the simulated week, with its truth (``trips``, ``staff``)."""
    catalog = load_catalog(shipped_config("catalog/rivoli.yaml"))
    store = _Store(plan, [p.gtin for p in catalog.products])
    for product in catalog.products:
        shown = product.zones.get(plan.id)
        if shown:
            store.categories.setdefault(shown[0], []).append(product.gtin)
    rng = random.Random(spec.seed)
    rows = _Rows()
    zone_tz = ZoneInfo(plan.store.timezone)
    regulars: list[str] = []
    busy_until: dict[str, int] = {}  # a returning shopper is not in the store twice at once
    for d in range(spec.days):
        day = spec.first_day + timedelta(days=d)
        opening = datetime(day.year, day.month, day.day, DAY_OPEN_H, tzinfo=zone_tz)
        open_ms = round(opening.astimezone(UTC).timestamp() * 1000)
        weights = hourly_weight(spec, day)
        hours = rng.choices(range(len(weights)), weights, k=trips_on(spec, day))
        for hour in sorted(hours):
            start_ms = open_ms + hour * 3_600_000 + rng.randrange(3_600_000)
            shopper = rng.choice(regulars) if regulars else ""
            # The first trip may draw no regular ("") and keep it; a preferences
            # history makes it a new shopper (the older outputs stay as they were).
            fresh = spec.preferences and not shopper
            if (
                fresh
                or rng.random() >= spec.returning_fraction
                or busy_until.get(shopper, 0) > start_ms
            ):
                shopper = f"{rng.getrandbits(128):032x}"
                regulars.append(shopper)
                if spec.preferences and store.categories:
                    rows.preference[shopper] = _favourite(store, rng)
            rows.shoppers.setdefault(shopper, start_ms)
            busy_until[shopper] = _trip(store, rng, rows, shopper, start_ms, spec)
        for k in range(spec.staff):
            _staff_day(store, rng, rows, f"staff{k:02d}{spec.seed:04d}", open_ms)
        # A stream of its own: the street leaves the shoppers' draws unchanged.
        street = random.Random(f"{spec.seed}:street:{d}")
        for hour in range(len(HOURLY_WEIGHT)):
            came_in = hours.count(hour)
            rows.passers_by[open_ms + hour * 3_600_000] = round(
                came_in * street.uniform(3.0, 6.0) + street.randrange(10)
            )
    rows.staff = [f"staff{k:02d}{spec.seed:04d}" for k in range(spec.staff)]
    return rows


#: How often a shopper with a favourite category acts on it (else: any product).
PREFERENCE_STRENGTH = 0.7
#: Relative popularity of each category as a favourite (others: 1.0).
CATEGORY_WEIGHT = {"denim": 2.0, "womenswear": 1.6, "shoes": 1.3, "accessories": 0.8}


def _favourite(store: _Store, rng: random.Random) -> str:
    names = sorted(store.categories)
    return rng.choices(names, [CATEGORY_WEIGHT.get(n, 1.0) for n in names])[0]


def _product(store: _Store, rng: random.Random, rows: _Rows, shopper: str) -> str:
    """A product the shopper picks: from their favourite category, mostly."""
    favourite = rows.preference.get(shopper)
    if favourite is not None and rng.random() < PREFERENCE_STRENGTH:
        return rng.choice(store.categories[favourite])
    return rng.choice(store.gtins)


def _staff_day(store: _Store, rng: random.Random, rows: _Rows, device: str, open_ms: int) -> None:
    """A colleague's phone from half an hour before opening to half an hour
    after closing, moving between the checkout and the sales floor."""
    plan = store.plan
    t = open_ms - 1_800_000
    end = open_ms + (DAY_CLOSE_H - DAY_OPEN_H) * 3_600_000 + 1_800_000
    posts = [*store.checkouts, *store.browsable, store.entrance]
    while t < end:
        dwell = rng.randrange(10 * 60_000, 45 * 60_000)
        rows.visits.append(
            {
                "store": plan.id,
                "device": device,
                "zone": rng.choice(posts),
                "entered_ms": t,
                "left_ms": t + dwell,
                "dwell_s": dwell / 1000,
                "status": "visit",
            }
        )
        t += dwell + rng.randrange(0, 2500)


def _trip(
    store: _Store, rng: random.Random, rows: _Rows, shopper: str, t: int, spec: WeekSpec
) -> int:
    """One store trip from ``t``; returns when the shopper is out (plus a
    few minutes, so a next trip of theirs is a separate one)."""
    plan = store.plan
    start_ms = t
    min_ms = plan.store.visits.min_presence_s * 1000
    wanted = rng.randint(1, 5)
    weights = [0.35 if z in store.fitting else 1.0 for z in store.browsable]
    chosen: list[str] = []
    favourite = rows.preference.get(shopper)
    if favourite in store.browsable and rng.random() < PREFERENCE_STRENGTH:
        chosen.append(favourite)
        if rng.random() < 0.5:  # and tries its things on
            chosen.append(rng.choice(sorted(store.fitting)))
    while len(chosen) < min(wanted, len(store.browsable)):
        pick = rng.choices(store.browsable, weights)[0]
        if pick not in chosen:
            chosen.append(pick)
    if store.checkouts and rng.random() < 0.55:
        chosen.append(rng.choice(store.checkouts))
    tried: list[str] = []
    bought: list[tuple[str, int]] = []

    def stay(zone: str, dwell_ms: int) -> tuple[int, int]:
        nonlocal t
        entered = t
        left = t + dwell_ms
        status = "visit" if dwell_ms >= min_ms else "pass_by"
        rows.visits.append(
            {
                "store": plan.id,
                "device": shopper,
                "zone": zone,
                "entered_ms": entered,
                "left_ms": left,
                "dwell_s": dwell_ms / 1000,
                "status": status,
            }
        )
        t = left + rng.randrange(0, 2500)  # the localizer's hand-off between zones
        return entered, left

    def walk_through(a: str, b: str) -> None:
        for zone in store.path(a, b):
            stay(zone, rng.randrange(2500, 9000))

    if spec.sent_fraction and rng.random() < 0.8:  # the welcome campaign decides on entry
        _decide(rows, rng, plan.id, shopper, t, spec)
    here = store.entrance
    stay(here, rng.randrange(3000, 14_000))
    for zone in chosen:
        walk_through(here, zone)
        mean_s = 150.0 if zone in store.fitting else 60.0
        dwell_ms = round(rng.gammavariate(2.0, mean_s / 2.0) * 1000)
        entered, left = stay(zone, max(dwell_ms, 1000))
        here = zone
        if zone in store.readers and left - entered > 20_000:
            reader = store.readers[zone]
            for _ in range(rng.randint(1, 3)):
                gtin = _product(store, rng, rows, shopper)
                tried.append(gtin)
                for event, at in (
                    ("arrived", entered + rng.randrange(3000, 15_000)),
                    ("departed", left - rng.randrange(1000, 8000)),
                ):
                    rows.try_ons.append(
                        {
                            "store": plan.id,
                            "gateway": reader.gateway,
                            "reader": reader.id,
                            "event": event,
                            "epc": f"3034{rng.getrandbits(80):020X}",
                            "gtin": gtin,
                            "serial": str(rng.randrange(10**9)),
                            "at_ms": at,
                        }
                    )
        if zone in store.taps and rng.random() < 0.3:
            point = store.taps[zone]
            rows.taps.append(
                {
                    "store": plan.id,
                    "gateway": point.gateway,
                    "tap_point": point.id,
                    "uid": f"{rng.getrandbits(56):014X}",
                    "at_ms": rng.randrange(entered, max(entered + 1, left)),
                }
            )
        if zone in store.checkouts:
            for gtin in tried:
                if rng.random() < 0.4:
                    bought.append((gtin, left - 2000))
            if not bought and rng.random() < 0.7:
                bought.append((_product(store, rng, rows, shopper), left - 2000))
    walk_through(here, store.entrance)
    _, out_ms = stay(store.entrance, rng.randrange(3000, 12_000))
    if tried and not bought and rng.random() < 0.15:  # thought it over, bought online tonight
        bought.append((rng.choice(tried), out_ms + rng.randrange(3_600_000, 4 * 3_600_000)))
    rows.trips.append((shopper, start_ms, out_ms, [at for _, at in bought]))
    for gtin, at in bought:
        channel = "pos" if at < out_ms else "online"
        rows.events.append(
            {
                "shopper_id": shopper,
                "type": "purchase",
                "gtin": gtin,
                "channel": channel,
                "amount": 49.0,
                "at_ms": at,
            }
        )
    if rng.random() < 0.5:  # browsing the app on the way: not purchases
        rows.events.append(
            {
                "shopper_id": shopper,
                "type": "product_view",
                "gtin": _product(store, rng, rows, shopper),
                "channel": "app",
                "amount": None,
                "at_ms": t,
            }
        )
    if favourite is not None and rng.random() < 0.3:  # saved for later, on the app
        rows.events.append(
            {
                "shopper_id": shopper,
                "type": "wishlist_add",
                "gtin": _product(store, rng, rows, shopper),
                "channel": "app",
                "amount": None,
                "at_ms": t + 1,
            }
        )
    return out_ms + 10 * 60_000


def _decide(
    rows: _Rows, rng: random.Random, store: str, shopper: str, at: int, spec: WeekSpec
) -> None:
    sent = rng.random() < spec.sent_fraction
    rows.decisions.append(
        {
            "store": store,
            "campaign_id": "welcome",
            "shopper_id": shopper,
            "outcome": "sent" if sent else "held_out",
            "reason": "bench",
            "trigger": "store_entered",
            "visit_id": None,
            "at_ms": at,
        }
    )
    if not sent:
        return
    offer_id = f"{rng.getrandbits(128):032x}"
    code = f"WELCOME-{rng.getrandbits(48):012X}"
    rows.offers.append(
        {
            "offer_id": offer_id,
            "shopper_id": shopper,
            "seq": 0,  # renumbered per shopper when written
            "store": store,
            "campaign_id": "welcome",
            "code": code,
            "content": {"title": "Welcome", "body": "10% off today", "product_gtin": None},
            "expires_ms": at + 4 * 3_600_000,
            "created_ms": at,
            "trigger_published_ms": at,
        }
    )
    rows.receipts.append({"offer_id": offer_id, "status": "delivered", "at_ms": at + 300})
    if rng.random() < 0.4:
        rows.receipts.append({"offer_id": offer_id, "status": "opened", "at_ms": at + 20_000})
    if rng.random() < 0.08:
        rows.redemptions.append(
            {"offer_id": offer_id, "code": code, "store": store, "redeemed_ms": at + 600_000}
        )


def _write(engine: Engine, plan: StorePlan, rows: _Rows) -> dict[str, int]:
    PassersByRepository(engine)  # its table, where the database has none yet
    seqs: dict[str, int] = {}
    for offer in rows.offers:
        seqs[offer["shopper_id"]] = seqs.get(offer["shopper_id"], 0) + 1
        offer["seq"] = seqs[offer["shopper_id"]]
    with engine.begin() as conn:
        message_id: dict[str, int] = {}
        for seq, gateway in enumerate(g.id for g in plan.gateways):
            result = conn.execute(
                insert(ReceivedMessage).values(
                    store=plan.id,
                    gateway=gateway,
                    seq=10**9 + seq,
                    kind="nfc",
                    sent_ms=0,
                    received_ms=0,
                    items=0,
                    duplicates=0,
                )
            )
            message_id[gateway] = int(result.inserted_primary_key[0])  # type: ignore[index]
        for row in (*rows.taps, *rows.try_ons):
            row["message_id"] = message_id[row["gateway"]]
        conn.execute(
            insert(ShopperRow),
            [
                {
                    "id": shopper,
                    "store": plan.id,
                    "token_hash": "0" * 64,
                    "eid_key": bytes(16),
                    "created_ms": first,
                    "loyalty_id": None,
                }
                for shopper, first in rows.shoppers.items()
            ],
        )
        for model, batch in (
            (VisitRow, rows.visits),
            (NfcTapRow, rows.taps),
            (TryOnRow, rows.try_ons),
            (ProfileEventRow, rows.events),
            (DecisionRow, rows.decisions),
            (OfferRow, rows.offers),
            (OfferReceiptRow, rows.receipts),
            (RedemptionRow, rows.redemptions),
        ):
            if batch:
                conn.execute(insert(model), batch)
        if rows.passers_by:
            conn.execute(
                insert(PassersByRow),
                [
                    {"store": plan.id, "hour_ms": h, "passers_by": n, "updated_ms": h}
                    for h, n in rows.passers_by.items()
                ],
            )
    return {
        "shoppers": len(rows.shoppers),
        "visits": len(rows.visits),
        "nfc_taps": len(rows.taps),
        "try_ons": len(rows.try_ons),
        "profile_events": len(rows.events),
        "purchases": sum(1 for e in rows.events if e["type"] == "purchase"),
        "offer_decisions": len(rows.decisions),
        "offers": len(rows.offers),
        "offer_redemptions": len(rows.redemptions),
        "passers_by_hours": len(rows.passers_by),
    }


# -- the bench -----------------------------------------------------------------------


def run_analytics_bench(
    *,
    days: int = 7,
    trips_per_day: int = 3000,
    runs: int = 5,
    database_url: str | None = None,
    store_file: Path | None = None,
    seed: int = 7,
    staff: int = 0,
) -> dict[str, Any]:
    """Fill a fresh database, then time every view over the whole range."""
    plan = load_store(store_file or shipped_config("stores/rivoli.yaml"))
    spec = WeekSpec(days=days, trips_per_day=trips_per_day, seed=seed, staff=staff)
    with _database(database_url) as url:
        storage = bootstrap.open_storage(url)  # the server's schema, its repositories
        engine = storage.sql.engine
        try:
            _check_empty(engine)
            for campaign in shipped_campaigns(plan):  # as the server seeds them
                storage.campaigns.save_campaign(campaign, 0)
            started = time.perf_counter()
            written = fill_week(engine, plan, spec)
            fill_s = time.perf_counter() - started
            vacuum_s = vacuum_analyze(engine)
            # The roll-up of the closed hours (adapters/stay_rollup_db.py), as the
            # first reads after each hour closes build it in a running store.
            started, cpu = time.perf_counter(), time.process_time()
            start = spec_start_ms(plan, spec)
            rolled = storage.analytics.days.roll_up(
                plan.id, start - 12 * 3_600_000, start + (days + 1) * 86_400_000
            )
            rollup = {
                "hours": rolled,
                "s": round(time.perf_counter() - started, 1),
                "cpu_s": round(time.process_time() - cpu, 1),
            }
            reports = bootstrap.build_reports(storage, {plan.id: plan})
            service = reports.analytics
            tz = ZoneInfo(plan.store.timezone)
            first = datetime.combine(spec.first_day, datetime.min.time(), tz)
            from_ms = round(first.timestamp() * 1000)
            to_ms = round((first + timedelta(days=days)).timestamp() * 1000)
            views: dict[str, Any] = {}
            for view in VIEWS:
                seconds, cpus = [], []
                body: dict[str, Any] = {}
                for _ in range(runs):
                    reports.insight.forget_staff()  # each run as an hour's first request
                    t0, c0 = time.perf_counter(), time.process_time()
                    body = service.view(plan.id, view, from_ms, to_ms)
                    seconds.append(time.perf_counter() - t0)
                    cpus.append(time.process_time() - c0)
                views[view] = {
                    "median_ms": round(statistics.median(seconds) * 1000, 1),
                    "cpu_median_ms": round(statistics.median(cpus) * 1000, 1),
                    "max_ms": round(max(seconds) * 1000, 1),
                    "cpu_ms": round(statistics.median(cpus) * 1000, 1),
                    "csv_rows": to_csv(view, body).count("\n") - 1,
                }
            http = _time_http(storage, reports, plan, from_ms, to_ms)
            alerts = _time_alerts(storage, plan, to_ms, runs)  # issue 18 point 7
            for view, ms in http.items():
                views[view]["http_ms"] = ms
            insight = _time_insight(storage, reports, plan, from_ms, to_ms, runs)
            heatmap = _time_floor_heatmap(storage, reports, plan, from_ms, to_ms, runs)
        finally:
            storage.close()
    timed = (*views.values(), *insight.values(), *heatmap.values())
    slowest = max(max(v["max_ms"], v["http_ms"]) for v in timed)
    slowest_cpu = max(v.get("cpu_ms", v.get("cpu_median_ms", 0.0)) for v in timed)
    return {
        "store": plan.id,
        "days": days,
        "trips_per_day": trips_per_day,
        "range": {"from_ms": from_ms, "to_ms": to_ms},
        "rows": written,
        "fill_s": round(fill_s, 1),
        "vacuum_s": vacuum_s,
        "rollup": rollup,
        "runs": runs,
        "views": views,
        "insight": insight,
        "staff": staff,
        "alerts": alerts,
        "heatmap": heatmap,
        "slowest_ms": slowest,
        "all_under_1s": slowest < 1000,
        "slowest_cpu_ms": slowest_cpu,
        "all_under_1s_cpu": slowest_cpu < 1000,
        "database": "sqlite" if database_url is None else database_url.split(":")[0],
    }


def _time_insight(
    storage: bootstrap.Storage,
    reports: bootstrap.StoreReports,
    plan: StorePlan,
    from_ms: int,
    to_ms: int,
    runs: int,
) -> dict[str, dict[str, Any]]:
    """Issue 18's views: the headline at the last day's 17:00, new and repeat
    visitors over the whole range, the staff list, and every view's
    comparison of the last 7 days with the 7 before (a shorter range: its
    halves), each with a cold staff cache, as the first request of an hour
    has; then each once over HTTP."""
    from omnizone.server.service.insight import insight_csv

    calls = insight_calls(reports.insight, plan, from_ms, to_ms)
    out: dict[str, dict[str, Any]] = {}
    for name, (kind, call, _params) in calls.items():
        seconds, cpus = [], []
        body: dict[str, Any] = {}
        for _ in range(runs):
            reports.insight.forget_staff()  # the cold path, as an hour's first request
            t0, c0 = time.perf_counter(), time.process_time()
            body = call()
            seconds.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
        out[name] = {
            "median_ms": round(statistics.median(seconds) * 1000, 1),
            "max_ms": round(max(seconds) * 1000, 1),
            "cpu_ms": round(statistics.median(cpus) * 1000, 1),
            "csv_rows": insight_csv(kind, body).count("\n") - 1,
        }
        if kind == "staff":
            out[name]["staff_found"] = len(body["devices"])
    http = _time_http(
        storage,
        reports,
        plan,
        from_ms,
        to_ms,
        paths={name: (f"insight/{kind}", params) for name, (kind, _c, params) in calls.items()},
    )
    for name, ms in http.items():
        out[name]["http_ms"] = ms
    return out


def _time_floor_heatmap(
    storage: bootstrap.Storage,
    reports: bootstrap.StoreReports,
    plan: StorePlan,
    from_ms: int,
    to_ms: int,
    runs: int,
) -> dict[str, dict[str, Any]]:
    """Issue 18 point 6: the floor heatmap over the whole range, then once over HTTP."""
    assert reports.heatmap is not None
    out = time_heatmap(reports.heatmap.heatmap, plan.id, from_ms, to_ms, runs)
    params = {"from_ms": from_ms, "to_ms": to_ms}
    http = _time_http(
        storage,
        reports,
        plan,
        from_ms,
        to_ms,
        paths={
            "heatmap_1m": ("heatmap", {**params, "cell_m": 1.0}),
            "heatmap_0.5m": ("heatmap", {**params, "cell_m": 0.5}),
            "heatmap_compare_halves": (
                "heatmap",
                {
                    "from_ms": (from_ms + to_ms) // 2,
                    "to_ms": to_ms,
                    "compare_from_ms": from_ms,
                    "compare_to_ms": (from_ms + to_ms) // 2,
                },
            ),
        },
    )
    for name, ms in http.items():
        out[name]["http_ms"] = ms
    return out


#: An insight call to time: (API path under ``insight/``, the call, its query).
InsightCall = tuple[str, Callable[[], dict[str, Any]], dict[str, Any]]


def insight_calls(
    service: "InsightService", plan: StorePlan, from_ms: int, to_ms: int
) -> dict[str, InsightCall]:
    """Issue 18's timed calls beyond ``VIEWS``, by name: one entry each (a new
    view is one more line here)."""
    at = to_ms - 7 * 3_600_000
    week = min(7 * 86_400_000, (to_ms - from_ms) // 2)  # a short range: its two halves
    a, b = (to_ms - 2 * week, to_ms - week), (to_ms - week, to_ms)
    store = plan.id
    calls: dict[str, InsightCall] = {
        "headline": ("headline", lambda: service.headline(store, at), {"at_ms": at}),
        "loyalty": (
            "loyalty",
            lambda: service.loyalty(store, from_ms, to_ms),
            {"from_ms": from_ms, "to_ms": to_ms},
        ),
        "staff": ("staff", lambda: service.staff_view(store, to_ms), {"at_ms": to_ms}),
    }
    for view in (*VIEWS, "loyalty"):
        calls[f"compare_{view}"] = (
            "compare",
            lambda view=view: service.compare(store, view, None, a, b),  # type: ignore[misc]
            {"view": view, "a_from_ms": a[0], "a_to_ms": a[1], "b_from_ms": b[0], "b_to_ms": b[1]},
        )
    return calls


def spec_start_ms(plan: StorePlan, spec: WeekSpec) -> int:
    """The first simulated day's local midnight."""
    tz = ZoneInfo(plan.store.timezone)
    return round(datetime.combine(spec.first_day, datetime.min.time(), tz).timestamp() * 1000)


def shipped_campaigns(plan: StorePlan) -> list[Campaign]:
    catalog = load_catalog(shipped_config("catalog/rivoli.yaml"))
    path = shipped_config("campaigns/rivoli.yaml")
    return [c for c in load_campaigns(path, catalog=catalog) if c.store == plan.id]


@contextmanager
def _database(url: str | None) -> Iterator[str]:
    if url is not None:
        yield url
        return
    with tempfile.TemporaryDirectory(prefix="omnizone-bench-analytics-") as tmp:
        yield f"sqlite:///{Path(tmp) / 'week.db'}"


def vacuum_analyze(engine: Engine) -> float | None:
    """Bring a just-filled PostgreSQL database to the state a month-old one
    is in: ``VACUUM ANALYZE`` (planner statistics, the visibility map for
    index-only scans), which autovacuum does within a minute or two of a bulk
    load. Without it the views were timed on tables with no statistics while
    autovacuum worked through them on the same cores. Seconds taken; None on
    SQLite, which the server never analyzes either."""
    if engine.dialect.name != "postgresql":
        return None
    started = time.perf_counter()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE")
    return round(time.perf_counter() - started, 1)


def _check_empty(engine: Engine) -> None:
    with engine.connect() as conn:
        if conn.scalar(select(func.count()).select_from(VisitRow)):
            raise ValueError("the database already holds visits: give an empty one")


def _time_http(
    storage: bootstrap.Storage,
    reports: bootstrap.StoreReports,
    plan: StorePlan,
    from_ms: int,
    to_ms: int,
    paths: dict[str, tuple[str, dict[str, Any]]] | None = None,
) -> dict[str, float]:
    """Each view once over HTTP: the server's app on a real uvicorn, a free port
    (``paths``: name -> (path under the store, query) instead of the views)."""
    import socket

    import httpx
    import uvicorn

    key = "bench-key-123456"
    app = bootstrap.reports_app(storage, reports, {key: ["read"]})
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.02)
        out = {}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            todo = paths or {
                v: (f"analytics/{v}", {"from_ms": from_ms, "to_ms": to_ms}) for v in VIEWS
            }
            for name, (path, params) in todo.items():
                t0 = time.perf_counter()
                response = client.get(
                    f"/api/v1/stores/{plan.id}/{path}", params=params, headers={"X-API-Key": key}
                )
                response.raise_for_status()
                out[name] = round((time.perf_counter() - t0) * 1000, 1)
        return out
    finally:
        server.should_exit = True
        thread.join()
        sock.close()


def _time_alerts(
    storage: bootstrap.Storage, plan: StorePlan, now_ms: int, runs: int
) -> dict[str, Any]:
    """One alert check at the end of the range, as GET /alerts does it: the
    stays of the last hours read from the database, then every rule (a
    capacity and a dwell limit on every zone, the checkout queue)."""
    from omnizone.server.domain.analytics.alerts import AlertRules
    from omnizone.server.domain.analytics.stays import Stays
    from omnizone.server.service.alerts import AlertsService

    zones = [z.id for z in plan.zones]

    def stays_of(store: str, from_ms: int, to_ms: int) -> Stays:
        return Stays.from_rows(storage.analytics.stays(store, from_ms, to_ms), zones)

    rules = AlertRules(
        zone_capacity={z: 5 for z in zones},
        checkout_queue=3,
        dwell_s={z: 600.0 for z in zones},
        gateway_silent_s=None,
    )
    service = AlertsService(
        lambda _s: plan, stays_of, lambda _s: [], lambda _s: now_ms, default_rules=rules
    )
    seconds = []
    for _ in range(runs):
        t0 = time.perf_counter()
        monitor = service.check(plan.id)
        seconds.append(time.perf_counter() - t0)
    return {
        "median_ms": round(statistics.median(seconds) * 1000, 1),
        "max_ms": round(max(seconds) * 1000, 1),
        "active": len(monitor.active()),
    }
