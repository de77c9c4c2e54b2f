"""The prediction routes over a real SQLite database of a simulated fortnight:
the staff's read scope, CSV, and the shopper's own prediction only with consent."""

import csv
import io
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert

from omnizone.server.adapters.db import SqlRepository
from omnizone.server.adapters.shopper_db import ConsentRow
from omnizone.server.bootstrap import Storage, build_reports, reports_app
from omnizone.server.domain.identity import Purpose
from omnizone.store import load_store
from omnizone.suite.bench.analytics import simulate_week, write_rows
from omnizone.suite.evaluation.predict import predict_spec

ROOT = Path(__file__).resolve().parents[3]
STORE = "paris-rivoli"
READ = {"X-API-Key": "predict-read-1234"}
POS = {"X-API-Key": "predict-pos-12345"}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Any, set[str]]]:
    plan = load_store(ROOT / "config" / "stores" / "rivoli.yaml")
    url = f"sqlite:///{tmp_path_factory.mktemp('predict') / 'store.db'}"
    storage = Storage.over(SqlRepository.from_url(url))
    spec = predict_spec(seed=4, days=21, trips_per_day=80)
    rows = simulate_week(plan, spec)
    write_rows(storage.sql.engine, plan, rows)
    rng = random.Random(2)
    consenting = {s for s in rows.shoppers if rng.random() < 0.5}
    with storage.sql.engine.begin() as conn:
        conn.execute(
            insert(ConsentRow),
            [
                {"shopper_id": s, "purpose": p.value, "granted": True, "changed_ms": 0}
                for s in sorted(consenting)
                for p in Purpose
            ],
        )
    reports = build_reports(storage, {plan.id: plan})
    app = reports_app(storage, reports, {READ["X-API-Key"]: ["read"], POS["X-API-Key"]: ["pos"]})
    with TestClient(app) as client:
        yield client, reports, consenting
    storage.close()


def test_footfall_forecast_json_and_csv(api: tuple[TestClient, Any, set[str]]) -> None:
    client, _, _ = api
    base = f"/api/v1/stores/{STORE}/predictions/footfall"
    assert client.get(base).status_code == 401
    assert client.get(base, headers=POS).status_code == 403
    body = client.get(base, headers=READ).json()
    assert len(body["days"]) == 7 and body["history_days"] == 28
    entrance = next(z for z in body["zones"] if z["zone"] == "entrance")
    assert entrance["total"] > 0 and len(entrance["expected"]) == 7
    assert all(len(day) == 24 for day in entrance["expected"])
    assert sum(entrance["expected"][0][:9]) == 0  # the store is shut before 10:00
    text = client.get(base, headers=READ, params={"format": "csv", "days": 2}).text
    table = list(csv.DictReader(io.StringIO(text)))
    assert len(table) == len(body["zones"]) * 2 * 24
    assert set(table[0]) == {"zone", "name", "date", "hour", "expected", "same_hour_last_week"}
    assert (
        client.get("/api/v1/stores/nowhere/predictions/footfall", headers=READ).status_code == 404
    )
    bad = client.get(base, headers=READ, params={"days": 99})
    assert bad.status_code == 422


def test_products_only_for_consented_shoppers(api: tuple[TestClient, Any, set[str]]) -> None:
    client, _, consenting = api
    base = f"/api/v1/stores/{STORE}/predictions/products"
    assert client.get(base, headers=POS).status_code == 403
    body = client.get(base, headers=READ, params={"limit": 1000}).json()
    listed = {s["shopper_id"] for s in body["shoppers"]}
    assert listed and listed <= consenting
    first = body["shoppers"][0]
    assert [p["rank"] for p in first["products"]] == [1, 2, 3]
    probabilities = [p["probability"] for p in first["products"]]
    assert probabilities == sorted(probabilities, reverse=True)
    one = client.get(f"{base}/{first['shopper_id']}", headers=READ).json()
    assert one["products"] == first["products"]
    outsider = next(iter(set(s for s in [*listed, "x" * 32]) - consenting), "x" * 32)
    assert client.get(f"{base}/{outsider}", headers=READ).status_code == 404
    text = client.get(base, headers=READ, params={"format": "csv", "limit": 5}).text
    assert text.splitlines()[0] == "shopper_id,rank,gtin,name,category,probability"
    assert len(text.splitlines()) == 1 + 5 * 3


def test_a_shopper_sees_their_own_prediction_only_with_consent(
    api: tuple[TestClient, Any, set[str]],
) -> None:
    client, reports, _ = api
    shoppers = reports.shoppers

    def export(shopper: str) -> Any:
        return reports.predictions.export_shopper(STORE, shopper)

    me = shoppers.register(STORE)
    mine = {"Authorization": f"Bearer {me.token}"}
    route = "/api/v1/me/predictions/products"
    assert client.get(route).status_code == 401
    assert client.get(route, headers=mine).status_code == 403  # nothing granted yet
    shoppers.set_consent(me.shopper_id, {Purpose.PERSONALIZED_OFFERS: True})
    body = client.get(route, headers=mine).json()
    assert body["shopper_id"] == me.shopper_id and len(body["products"]) == 3
    # Staff see it too, under the read scope; withdrawing consent hides it from both.
    staff = f"/api/v1/stores/{STORE}/predictions/products/{me.shopper_id}"
    assert client.get(staff, headers=READ).status_code == 200
    assert export(me.shopper_id)["shopper_id"] == me.shopper_id  # in the shopper's export too
    shoppers.set_consent(me.shopper_id, {Purpose.PERSONALIZED_OFFERS: False})
    assert export(me.shopper_id) is None
    assert client.get(route, headers=mine).status_code == 403
    assert client.get(staff, headers=READ).status_code == 404


def test_one_model_per_hour_whoever_asks_first_and_warm_fits_it_ahead(
    api: tuple[TestClient, Any, set[str]],
) -> None:
    """The model of an hour is fitted on what came before the hour began, so
    two questions inside one hour get the same model in either order, and the
    background step fits the current hour before anyone asks."""
    _, reports, _ = api
    service = reports.predictions
    hour_ms = 3_600_000
    now = service.as_of(STORE, None)
    early = (now // hour_ms - 1) * hour_ms  # the start of the hour before now's
    first = service.fitted(STORE, early + hour_ms - 1)  # the end of that hour, asked first
    second = service.fitted(STORE, early)  # the start of that same hour
    assert first is second and first.model.as_of_ms == early
    service.forget_shopper(next(iter(first.events)))  # empties the models holding them
    service._fitted.clear()
    service.warm()
    this_hour = now - now % hour_ms
    assert service._fitted[(STORE, now // hour_ms)].model.as_of_ms == this_hour
    assert service.fitted(STORE, now) is service._fitted[(STORE, now // hour_ms)]
