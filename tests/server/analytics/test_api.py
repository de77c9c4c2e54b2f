"""The analytics routes of the server's app over a real SQLite database:
JSON and CSV of every view, keys and scopes, bad ranges, unknown stores."""

import csv
import io
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from omnizone.server.adapters.campaign_db import CampaignRepository
from omnizone.server.adapters.db import SqlRepository
from omnizone.server.adapters.follow_up_db import FollowUpRepository
from omnizone.server.adapters.offer_db import OfferRepository
from omnizone.server.adapters.shopper_db import ShopperRepository
from omnizone.server.bootstrap import Storage, stored_campaign_report
from omnizone.server.service.campaign_report import campaign_report
from omnizone.server.service.shoppers import ShopperService

from .conftest import ADMIN_KEY, FIRST_DAY, POS_KEY, READ, STORE, VIEWS, Filled, day_ms


def get(client: TestClient, view: str, filled: Filled, **params: Any) -> Any:
    query = {"from_ms": filled.from_ms, "to_ms": filled.to_ms, **params}
    response = client.get(f"/api/v1/stores/{STORE}/analytics/{view}", params=query, headers=READ)
    assert response.status_code == 200, response.text
    return response


def table(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


@pytest.mark.parametrize("view", VIEWS)
def test_every_view_answers_json_for_the_range_asked(
    client: TestClient, filled: Filled, view: str
) -> None:
    body = get(client, view, filled).json()
    assert body["view"] == view and body["store"] == STORE
    assert (body["from_ms"], body["to_ms"]) == (filled.from_ms, filled.to_ms)
    assert body["timezone"] == "Europe/Paris"


@pytest.mark.parametrize("view", VIEWS)
def test_every_view_exports_one_csv_table(client: TestClient, filled: Filled, view: str) -> None:
    response = get(client, view, filled, format="csv")
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"] == (f'attachment; filename="{STORE}-{view}.csv"')
    rows = list(csv.reader(io.StringIO(response.text)))
    assert len(rows) >= 2 and len({len(r) for r in rows}) == 1  # a header, a rectangle


def test_zone_views_list_every_zone_in_plan_order(client: TestClient, filled: Filled) -> None:
    order = [z.id for z in filled.plan.zones]
    for view in ("presence", "dwell", "footfall", "visits"):
        assert [z["zone"] for z in get(client, view, filled).json()["zones"]] == order
    transitions = get(client, "transitions", filled).json()
    assert transitions["zones"] == ["street", *order]


def test_visits_agree_with_the_zone_summary_and_footfall(
    client: TestClient, filled: Filled
) -> None:
    """Over both days the range holds every stay: the analytics must count what
    the API's all-time zone summary (another query path) counts."""
    start, end = day_ms(FIRST_DAY, days=2)
    visits = get(client, "visits", filled, from_ms=start, to_ms=end).json()["zones"]
    summary = client.get(f"/api/v1/stores/{STORE}/zones/summary", headers=READ).json()
    assert [(v["zone"], v["visits"], v["pass_bys"]) for v in visits] == [
        (s["zone"], s["visits"], s["pass_bys"]) for s in summary
    ]
    for v, s in zip(visits, summary, strict=True):
        assert v["mean_dwell_s"] == pytest.approx(s["mean_dwell_s"], abs=1e-3)
    footfall = get(client, "footfall", filled, from_ms=start, to_ms=end).json()["zones"]
    assert [f["total"] for f in footfall] == [
        v["visits"] + v["pass_bys"] + v["open_visits"] for v in visits
    ]
    assert sum(v["visits"] + v["pass_bys"] for v in visits) == filled.rows["visits"]


def test_csv_carries_the_same_figures_as_json(client: TestClient, filled: Filled) -> None:
    presence = get(client, "presence", filled).json()
    rows = table(get(client, "presence", filled, format="csv").text)
    assert len(rows) == len(presence["zones"]) * len(presence["buckets_ms"])
    cells = {(r["zone"], int(r["bucket_start_ms"])): float(r["presence_s"]) for r in rows}
    for zone, line in zip(presence["zones"], presence["matrix"], strict=True):
        for start, value in zip(presence["buckets_ms"], line, strict=True):
            assert cells[(zone["zone"], start)] == value

    dwell = get(client, "dwell", filled).json()
    for zone, row in zip(
        dwell["zones"], table(get(client, "dwell", filled, format="csv").text), strict=True
    ):
        assert [int(row[label]) for label in dwell["labels"]] == zone["counts"]
        assert row["mean_s"] == ("" if zone["mean_s"] is None else str(zone["mean_s"]))

    transitions = get(client, "transitions", filled).json()
    moves = {
        (r["from_zone"], r["to_zone"]): int(r["moves"])
        for r in table(get(client, "transitions", filled, format="csv").text)
    }
    assert sum(moves.values()) == transitions["moves"]
    assert moves[("street", "entrance")] == transitions["matrix"][0][1]

    funnel = get(client, "funnel", filled).json()
    rows = table(get(client, "funnel", filled, format="csv").text)
    assert [(r["step"], int(r["trips"])) for r in rows[:4]] == [
        (s["step"], s["trips"]) for s in funnel["steps"]
    ]
    assert int(rows[5]["trips"]) == funnel["try_on_to_purchase"]["purchased"]

    routes = get(client, "routes", filled).json()
    rows = table(get(client, "routes", filled, format="csv").text)
    assert [(r["route"], int(r["trips"])) for r in rows] == [
        (" > ".join(r["zones"]), r["trips"]) for r in routes["routes"]
    ]


def test_the_first_day_holds_its_share_of_the_trips(client: TestClient, filled: Filled) -> None:
    funnel = get(client, "funnel", filled).json()
    trips = [s["trips"] for s in funnel["steps"]]
    assert trips[0] == 150  # the generator's trips of the first day
    assert trips == sorted(trips, reverse=True) and trips[-1] > 0
    assert get(client, "transitions", filled).json()["trips"] == 150
    routes = get(client, "routes", filled, limit=3).json()
    assert routes["trips"] == 150 and len(routes["routes"]) == 3
    assert routes["routes"][0]["trips"] >= routes["routes"][-1]["trips"]
    try_on = funnel["try_on_to_purchase"]
    assert 0 < try_on["purchased"] <= try_on["try_ons"]


def test_campaigns_view_counts_the_logged_decisions(client: TestClient, filled: Filled) -> None:
    """Over both days the range holds every stored decision, offer and redemption;
    the first day alone holds fewer (the range is applied)."""
    start, end = day_ms(FIRST_DAY, days=2)
    body = get(client, "campaigns", filled, from_ms=start, to_ms=end).json()
    welcome = {c["campaign_id"]: c for c in body["campaigns"]}["welcome"]
    (first_day,) = [
        c
        for c in get(client, "campaigns", filled).json()["campaigns"]
        if c["campaign_id"] == "welcome"
    ]
    assert 0 < first_day["triggered"] < welcome["triggered"]
    assert 0 < first_day["sent"] < welcome["sent"]
    assert welcome["triggered"] == filled.rows["offer_decisions"]
    assert welcome["sent"] == filled.rows["offers"]
    assert welcome["redeemed"] == filled.rows["offer_redemptions"]
    # In words (issue 16): the simulated week logs only sent and held out.
    assert welcome["not_sent"] == ""
    assert welcome["lift_words"].startswith(("likely", "not enough data yet to tell"))
    csv_head = get(client, "campaigns", filled, format="csv").text.splitlines()[0]
    assert "lift_words" in csv_head and "held_back_now" not in csv_head


def test_defaults_are_the_last_24_hours_of_data(client: TestClient, filled: Filled) -> None:
    index = client.get(f"/api/v1/stores/{STORE}/analytics", headers=READ).json()
    assert index["last_event_ms"] is not None and index["first_event_ms"] < index["last_event_ms"]
    assert index["default_to_ms"] == index["last_event_ms"] + 1
    assert index["default_to_ms"] - index["default_from_ms"] == 24 * 3_600_000
    assert "funnel" in index["views"]
    body = client.get(f"/api/v1/stores/{STORE}/analytics/visits", headers=READ).json()
    assert (body["from_ms"], body["to_ms"]) == (index["default_from_ms"], index["default_to_ms"])
    only_from = client.get(
        f"/api/v1/stores/{STORE}/analytics/visits", params={"from_ms": 1000}, headers=READ
    ).json()
    assert only_from["to_ms"] == 1000 + 24 * 3_600_000


@pytest.mark.parametrize("path", ["/analytics", "/analytics/presence"])
def test_keys_and_scopes(client: TestClient, path: str) -> None:
    url = f"/api/v1/stores/{STORE}{path}"
    assert client.get(url).status_code == 401
    assert client.get(url, headers={"X-API-Key": "not-a-key-at-all"}).status_code == 401
    forbidden = client.get(url, headers={"X-API-Key": POS_KEY})
    assert forbidden.status_code == 403 and "'read'" in forbidden.json()["detail"]
    assert client.get(url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}).status_code == 200


@pytest.mark.parametrize(
    ("view", "params", "field"),
    [
        ("visits", {"from_ms": 2000, "to_ms": 1000}, "to_ms"),
        ("visits", {"from_ms": 1000, "to_ms": 1000}, "to_ms"),
        ("visits", {"from_ms": 0, "to_ms": 93 * 86_400_000}, "to_ms"),
        ("visits", {"from_ms": -5}, "from_ms"),
        ("visits", {"from_ms": "yesterday"}, "from_ms"),
        ("visits", {"format": "xml"}, "format"),
        ("routes", {"limit": 0}, "limit"),
        ("heatmap", {}, "view"),
    ],
)
def test_bad_input_is_a_422_naming_the_field(
    client: TestClient, view: str, params: dict[str, Any], field: str
) -> None:
    response = client.get(f"/api/v1/stores/{STORE}/analytics/{view}", params=params, headers=READ)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert any(error["loc"][-1] == field for error in detail), detail
    assert all(error["msg"] for error in detail)


@pytest.mark.parametrize("path", ["/analytics", "/analytics/visits"])
def test_an_unknown_store_is_a_404(client: TestClient, path: str) -> None:
    response = client.get(f"/api/v1/stores/nowhere{path}", headers=READ)
    assert response.status_code == 404
    assert "nowhere" in response.json()["detail"] and STORE in response.json()["detail"]


def test_batched_purchases_give_the_campaign_report_its_figures(filled: Filled) -> None:
    """The analytics read purchases for many shoppers at once; the campaign
    report's own path reads one profile each. Same figures."""
    repository = SqlRepository.from_url(filled.url)
    try:
        engine = repository.engine
        shoppers = ShopperService([STORE], ShopperRepository(engine))
        decisions = CampaignRepository(engine)
        mine = [c for c in decisions.campaigns() if c.store == STORE]
        one_by_one = campaign_report(
            mine,
            decisions,
            OfferRepository(engine).campaign_counts,
            shoppers,
            follow_ups=FollowUpRepository(engine).of_campaign,  # issue 18: follow-ups
        )
        batched = stored_campaign_report(Storage.over(repository), shoppers)(STORE)
        assert batched == one_by_one
        assert any(f.treated_converted for f in batched)
    finally:
        repository.close()


RANGED = ["presence", "dwell", "footfall", "visits", "transitions", "routes", "funnel"]


@pytest.mark.parametrize("view", RANGED)
def test_every_view_applies_the_range_it_is_asked_for(
    client: TestClient, filled: Filled, view: str
) -> None:
    """Issue 16: a range shown is a range applied. Each day alone reads other
    figures than both days together, and a day before the data reads none
    of them (the campaigns' range is tested in tests/e2e/test_dashboard_ranges.py)."""

    def figures(start: int, end: int) -> dict[str, Any]:
        body: dict[str, Any] = get(client, view, filled, from_ms=start, to_ms=end).json()
        return {k: v for k, v in body.items() if k not in ("from_ms", "to_ms")}

    first, second = day_ms(FIRST_DAY), day_ms(FIRST_DAY + timedelta(days=1))
    both = day_ms(FIRST_DAY, days=2)
    before = figures(first[0] - 86_400_000, first[0])
    day_one, day_two, together = figures(*first), figures(*second), figures(*both)
    assert day_one != together and day_two != together and day_one != day_two
    assert before not in (day_one, day_two, together)


def test_visits_of_two_days_are_the_sum_of_each_days(client: TestClient, filled: Filled) -> None:
    def counts(start: int, end: int) -> list[int]:
        zones = get(client, "visits", filled, from_ms=start, to_ms=end).json()["zones"]
        return [z["visits"] + z["pass_bys"] for z in zones]

    one, two = counts(*day_ms(FIRST_DAY)), counts(*day_ms(FIRST_DAY + timedelta(days=1)))
    assert [a + b for a, b in zip(one, two, strict=True)] == counts(*day_ms(FIRST_DAY, days=2))
