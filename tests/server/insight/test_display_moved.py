"""Issue 18, point 2: the simulator moves a display (``display-moved``: after
10 minutes denim pulls four times as many shoppers as any other sales zone),
and the period comparison of the stored events finds it.

The run is the localization evaluation's own path (``replay_scenario``): the
simulated shoppers through the real gateway pipeline and the server's ingest
(grid localizer, visit state machine, SQLite). The comparison is asked over
the two halves, as a store manager would ask "before and after I moved it".

What is checked, against the simulator's ground truth:

- denim's visits in the second half against the first are beyond noise, in
  the direction and close to the size of the true change (the true visits
  per half are counted from the ground truth with the store's pass-by rule;
  a recorded count may be off by about one per flap, so within 30 % + 3);
- the comparison says in words that denim's change is beyond noise.
"""

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from omnizone.paths import shipped_config
from omnizone.server.adapters.analytics_db import AnalyticsRepository
from omnizone.server.adapters.db import SqlRepository
from omnizone.server.adapters.insight_db import InsightRepository
from omnizone.server.entrypoints.api import create_app
from omnizone.server.entrypoints.insight_api import insight_router
from omnizone.server.service.analytics import AnalyticsService
from omnizone.server.service.ingest import IngestService
from omnizone.server.service.insight import InsightService
from omnizone.server.service.locators import make_locators
from omnizone.server.service.queries import StoreQueries
from omnizone.sim.scenario import load_scenario
from omnizone.store import StorePlan, load_store
from omnizone.suite.evaluation.localize import Replay, replay_scenario
from omnizone.suite.evaluation.metrics import TruthRow, stays

KEY = "display-moved-123"
MOVED_AT_S = 600


@dataclass(frozen=True)
class Run:
    plan: StorePlan
    replay: Replay
    client: TestClient


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    scenario = load_scenario(shipped_config("scenarios/display-moved.yaml"))
    assert [c.at_s for c in scenario.shoppers.attraction] == [MOVED_AT_S]
    plan = load_store(scenario.store_file)
    stores = {plan.id: plan}
    repository = SqlRepository.from_url(f"sqlite:///{tmp_path_factory.mktemp('moved') / 's.db'}")
    ingest = IngestService(stores, repository, locators=make_locators(stores, "grid"))
    replay = replay_scenario(scenario, plan, [ingest])
    reads = AnalyticsRepository(repository.engine)
    insight = InsightService(
        AnalyticsService(stores, reads), reads, InsightRepository(repository.engine)
    )
    app = create_app(
        StoreQueries(stores, repository, ingest.event_time),
        {KEY: ["read"]},
        routers=[lambda require: insight_router(insight, require)],
    )
    with TestClient(app) as client:
        yield Run(plan, replay, client)
    repository.close()


def true_visits(run: Run, zone: str, lo: int, hi: int) -> int:
    by_shopper: dict[str, list[TruthRow]] = defaultdict(list)
    for row in run.replay.truth:
        by_shopper[row.shopper].append(row)
    min_s = run.plan.store.visits.min_presence_s
    return sum(
        1
        for rows in by_shopper.values()
        for s in stays(sorted(rows, key=lambda r: r.t_ms))
        if s.zone == zone and s.seconds >= min_s and lo <= s.start_ms < hi
    )


def test_the_comparison_finds_the_moved_display(run: Run) -> None:
    start = run.replay.start_ms
    moved = start + MOVED_AT_S * 1000
    end = run.replay.end_ms - 60_000  # the last stays may still be open
    response = run.client.get(
        f"/api/v1/stores/{run.plan.id}/insight/compare",
        params={
            "view": "visits",
            "a_from_ms": start,
            "a_to_ms": moved,
            "b_from_ms": moved,
            "b_to_ms": end,
        },
        headers={"X-API-Key": KEY},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    rows = {(r["zone"], r["metric"]): r for r in body["rows"]}
    denim = rows[("denim", "visits")]
    before, after = true_visits(run, "denim", start, moved), true_visits(run, "denim", moved, end)
    assert after > 2 * before  # the scenario did move the display
    assert denim["within_noise"] is False and denim["difference"] > 0, denim
    assert denim["note"].startswith("up, beyond noise")
    assert abs(denim["b"] - after) <= 0.3 * after + 3, (denim, after)
    assert abs(denim["a"] - before) <= 0.3 * before + 3, (denim, before)
    assert "denim visits up" in body["summary"]
    csv_text = run.client.get(
        f"/api/v1/stores/{run.plan.id}/insight/compare",
        params={
            "view": "visits",
            "a_from_ms": start,
            "a_to_ms": moved,
            "b_from_ms": moved,
            "b_to_ms": end,
            "format": "csv",
        },
        headers={"X-API-Key": KEY},
    ).text
    assert csv_text.splitlines()[0] == "zone,metric,a,b,difference,relative,z,within_noise,note"
    assert any(
        line.startswith("denim,visits,") and ",False," in line for line in csv_text.splitlines()
    )
