"""Issue 18, point 4 through the analytics API of the server's app over the
bench's simulated store (a real SQLite database): the capture view per
store-local hour is exactly the generator's truth (its trips that began in
the hour, its passer-by count), as JSON and as one CSV table, behind the
``read`` scope."""

import csv
import io

from fastapi.testclient import TestClient

from omnizone.suite.bench.analytics import WeekSpec, simulate_week

from .conftest import FIRST_DAY, POS_KEY, READ, STORE, Filled

H = 3_600_000


def test_capture_is_the_generators_truth_per_hour_in_json_and_csv(
    client: TestClient, filled: Filled
) -> None:
    # The fixture's own generator run: the same spec, so the same rows.
    truth = simulate_week(
        filled.plan, WeekSpec(days=2, trips_per_day=150, first_day=FIRST_DAY, seed=5)
    )
    url = f"/api/v1/stores/{STORE}/analytics/capture"
    params = {"from_ms": filled.from_ms, "to_ms": filled.to_ms}
    body = client.get(url, params=params, headers=READ).json()
    assert body["view"] == "capture" and body["street_gateways"] == ["gw-entrance"]
    hours = body["hours"]
    assert [h["hour_ms"] for h in hours] == [filled.from_ms + k * H for k in range(24)]
    for h in hours:
        start = h["hour_ms"]
        entered = sum(1 for _s, begin, _e, _b in truth.trips if start <= begin < start + H)
        assert h["entrants"] == entered, start
        assert h["passers_by"] == truth.passers_by.get(start), start
        if h["passers_by"] is not None and entered + h["passers_by"]:
            assert h["capture_rate"] == round(entered / (entered + h["passers_by"]), 4)
    counted = [h for h in hours if h["passers_by"] is not None]
    assert len(counted) == body["hours_counted"] == 10  # the store's opening hours
    entrants = sum(h["entrants"] for h in counted)
    passers = sum(h["passers_by"] for h in counted)
    assert (body["entrants"], body["passers_by"]) == (entrants, passers)
    assert body["capture_rate"] == round(entrants / (entrants + passers), 4)

    text = client.get(url, params={**params, "format": "csv"}, headers=READ).text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == [
        "hour_start_ms",
        "entrants",
        "passers_by",
        "street",
        "capture_rate",
        "entrants_per_passer_by",
    ]
    assert [int(r["hour_start_ms"]) for r in rows] == [h["hour_ms"] for h in hours]
    assert [r["passers_by"] for r in rows] == [
        "" if h["passers_by"] is None else str(h["passers_by"]) for h in hours
    ]


def test_capture_needs_the_read_scope(client: TestClient, filled: Filled) -> None:
    url = f"/api/v1/stores/{STORE}/analytics/capture"
    assert client.get(url).status_code == 401
    assert client.get(url, headers={"X-API-Key": POS_KEY}).status_code == 403
    bad = client.get(url, params={"from_ms": 10, "to_ms": 5}, headers=READ)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "to_ms"]
    assert client.get("/api/v1/stores/nowhere/analytics/capture", headers=READ).status_code == 404


def test_capture_is_compared_between_two_periods(client: TestClient, filled: Filled) -> None:
    day = filled.to_ms - filled.from_ms
    found = client.get(
        f"/api/v1/stores/{STORE}/insight/compare",
        params={
            "view": "capture",
            "a_from_ms": filled.from_ms,
            "a_to_ms": filled.to_ms,
            "b_from_ms": filled.to_ms,
            "b_to_ms": filled.to_ms + day,
        },
        headers=READ,
    ).json()
    rows = {r["metric"]: r for r in found["rows"]}
    assert set(rows) == {"entrants", "passers_by", "capture_rate"}
    a, b = found["a_view"], found["b_view"]
    assert (rows["passers_by"]["a"], rows["passers_by"]["b"]) == (a["passers_by"], b["passers_by"])
    assert rows["capture_rate"]["b"] == b["capture_rate"] and rows["capture_rate"]["z"] is not None
