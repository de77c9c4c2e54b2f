"""Issue 18, points 1, 3 and 5 against the simulated store's truth: the bench's
generator (``simulate_week``) knows every trip (shopper, start, end, when it
bought) and which phones are staff. Its rows go into a real SQLite database;
the insight API of the server's app answers over them; the test recomputes
each figure from the generator's truth and compares.

The stored rows are exactly the generator's (no radio), so the figures must
match exactly: any difference is a fault of the analytics, not noise.
"""

import csv
import io
import statistics
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from omnizone.server.adapters.db import SqlRepository
from omnizone.server.bootstrap import Storage, build_reports, reports_app
from omnizone.store import StorePlan, load_store
from omnizone.suite.bench.analytics import WeekSpec, _write, simulate_week

ROOT = Path(__file__).resolve().parents[3]
TZ = ZoneInfo("Europe/Paris")
FIRST_DAY = date(2026, 11, 2)  # a Monday
DAYS = 22
READ = {"X-API-Key": "insight-read-123"}
ADMIN = {"X-API-Key": "insight-admin-123"}
WEEK_MS = 7 * 86_400_000

Trip = tuple[str, int, int, list[int]]


@dataclass(frozen=True)
class World:
    plan: StorePlan
    trips: list[Trip]
    staff: list[str]
    client: TestClient
    #: Every purchase time of each shopper: profile purchases (any channel)
    #: and redemptions at the till of an offer they were sent.
    bought: dict[str, list[int]]


def midnight(day: date) -> int:
    return round(datetime.combine(day, datetime.min.time(), TZ).timestamp() * 1000)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    plan = load_store(ROOT / "config" / "stores" / "rivoli.yaml")
    spec = WeekSpec(days=DAYS, trips_per_day=120, first_day=FIRST_DAY, seed=18, staff=2)
    rows = simulate_week(plan, spec)
    repository = SqlRepository.from_url(f"sqlite:///{tmp_path_factory.mktemp('i') / 's.db'}")
    storage = Storage.over(repository)
    _write(repository.engine, plan, rows)
    reports = build_reports(storage, {plan.id: plan})
    keys = {READ["X-API-Key"]: ["read"], ADMIN["X-API-Key"]: ["read", "admin"]}
    with TestClient(reports_app(storage, reports, keys)) as client:
        bought: dict[str, list[int]] = {}
        for e in rows.events:
            if e["type"] == "purchase":
                bought.setdefault(e["shopper_id"], []).append(e["at_ms"])
        owner = {o["offer_id"]: o["shopper_id"] for o in rows.offers}
        for r in rows.redemptions:
            bought.setdefault(owner[r["offer_id"]], []).append(r["redeemed_ms"])
        yield World(plan, rows.trips, rows.staff, client, bought)
    repository.close()


def get(world: World, path: str, **params: object) -> dict:  # type: ignore[type-arg]
    response = world.client.get(
        f"/api/v1/stores/{world.plan.id}/{path}", params=params, headers=READ
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_staff_phones_are_found_by_their_presence_pattern_and_no_shopper_is(world: World) -> None:
    end = midnight(FIRST_DAY + timedelta(days=DAYS))
    found = get(world, "insight/staff", at_ms=end)
    assert sorted(d["device"] for d in found["devices"]) == sorted(world.staff)
    assert {d["reason"] for d in found["devices"]} == {"long daily presence"}
    assert all(d["long_days"] >= 5 for d in found["devices"])


def test_staff_are_left_out_of_the_analytics_views(world: World) -> None:
    day = FIRST_DAY + timedelta(days=DAYS - 1)
    lo, hi = midnight(day), midnight(day + timedelta(days=1))
    routes = get(world, "analytics/routes", from_ms=lo, to_ms=hi)
    true_trips = sum(1 for _s, start, _e, _b in world.trips if lo <= start < hi)
    assert routes["trips"] == true_trips  # without the staff, who would add 2


def test_registered_staff_are_left_out_and_listed(world: World) -> None:
    day = FIRST_DAY + timedelta(days=DAYS - 1)
    lo, hi = midnight(day), midnight(day + timedelta(days=1))
    shopper = next(s for s, start, _e, _b in world.trips if lo <= start < hi)
    url = f"/api/v1/stores/{world.plan.id}/staff/{shopper}"
    assert world.client.put(url, json={"label": "Ana"}, headers=READ).status_code == 403
    assert world.client.put(url, json={"label": "Ana"}, headers=ADMIN).status_code == 204
    try:
        listed = get(world, "insight/staff", at_ms=hi)["devices"]
        assert listed[0] == {**listed[0], "device": shopper, "label": "Ana", "reason": "registered"}
        routes = get(world, "analytics/routes", from_ms=lo, to_ms=hi)
        mine = sum(1 for s, start, _e, _b in world.trips if s == shopper and lo <= start < hi)
        true_trips = sum(1 for _s, start, _e, _b in world.trips if lo <= start < hi)
        assert routes["trips"] == true_trips - mine
    finally:
        assert world.client.delete(url, headers=ADMIN).status_code == 204
    assert world.client.delete(url, headers=ADMIN).status_code == 404


def test_new_and_repeat_visitors_frequency_and_recency_match_the_truth(world: World) -> None:
    start_day = FIRST_DAY + timedelta(days=DAYS - 7)
    lo, hi = midnight(start_day), midnight(FIRST_DAY + timedelta(days=DAYS))
    found = get(world, "insight/loyalty", from_ms=lo, to_ms=hi)
    inside: dict[str, list[int]] = {}
    before: dict[str, tuple[int, int]] = {}  # the latest trip before: (start, end)
    for shopper, start, end, _bought in world.trips:
        if lo <= start < hi:
            inside.setdefault(shopper, []).append(start)
        elif lo - 28 * 86_400_000 <= start < lo:
            before[shopper] = max(before.get(shopper, (0, 0)), (start, end))
    repeat = [s for s in inside if s in before]
    assert found["shoppers"] == len(inside)
    assert found["repeat"] == len(repeat) > 0
    assert found["new"] == len(inside) - len(repeat)
    assert found["trips"] == sum(len(v) for v in inside.values())
    counts = [len(v) for v in inside.values()]
    assert [f["shoppers"] for f in found["frequency"]] == [
        sum(1 for c in counts if c == 1),
        sum(1 for c in counts if c == 2),
        sum(1 for c in counts if c == 3),
        sum(1 for c in counts if 4 <= c <= 5),
        sum(1 for c in counts if c >= 6),
    ]
    # Recency runs from the shopper's last stay entry before the range, which
    # is within their previous trip: each gap lies between the gaps from that
    # trip's end and from its start, and so does the median.
    day = 86_400_000
    shortest = statistics.median((min(inside[s]) - before[s][1]) / day for s in repeat)
    longest = statistics.median((min(inside[s]) - before[s][0]) / day for s in repeat)
    assert shortest - 1e-3 <= found["median_days_since_previous"] <= longest + 1e-3
    assert sum(r["shoppers"] for r in found["recency"]) == len(repeat)
    text = world.client.get(
        f"/api/v1/stores/{world.plan.id}/insight/loyalty",
        params={"from_ms": lo, "to_ms": hi, "format": "csv"},
        headers=READ,
    ).text
    table = list(csv.DictReader(io.StringIO(text)))
    assert {"section": "visitors", "bin": "repeat", "shoppers": str(len(repeat))} in table


def _present(trips: list[Trip], at: int) -> int:
    return len({s for s, start, end, _b in trips if start <= at <= end})


def _next_start(trips: list[Trip], trip: Trip) -> int:
    later = [t[1] for t in trips if t[0] == trip[0] and t[1] > trip[1]]
    return min(later, default=2**62)


def test_headline_figures_match_the_truth(world: World) -> None:
    day = FIRST_DAY + timedelta(days=DAYS - 1)  # a Monday: three earlier Mondays
    at = midnight(day) + 17 * 3_600_000 + 123_456  # 17:02 store time
    found = get(world, "insight/headline", at_ms=at)
    assert found["shoppers_now"] == _present(world.trips, at)
    usual = [_present(world.trips, at - k * WEEK_MS) for k in (3, 2, 1)]
    assert found["usual_samples"] == usual
    assert found["usual_now"] == pytest.approx(statistics.mean(usual), abs=0.01)
    for key, lo, hi in (
        ("today", midnight(day), at + 1),
        ("same_day_last_week", midnight(day) - WEEK_MS, at + 1 - WEEK_MS),
    ):
        trips = [t for t in world.trips if lo <= t[1] < hi]
        # A purchase known by then, before the shopper's next trip (which it
        # would belong to); the store-local midnight is after ``hi`` anyway.
        bought = sum(
            1
            for t in trips
            if any(
                t[1] <= b < min(hi, _next_start(world.trips, t)) for b in world.bought.get(t[0], [])
            )
        )
        figures = found[key]
        assert figures["visitors"] == len({t[0] for t in trips}), key
        assert figures["trips"] == len(trips), key
        assert figures["purchased_trips"] == bought, key
        assert figures["median_visit_s"] == pytest.approx(
            statistics.median((t[2] - t[1]) / 1000 for t in trips), abs=0.05
        ), key
    names = [c["figure"] for c in found["comparisons"]]
    assert names == ["shoppers_now", "visitors", "median_visit_s", "conversion"]
    assert all(isinstance(c["note"], str) and c["note"] for c in found["comparisons"])
