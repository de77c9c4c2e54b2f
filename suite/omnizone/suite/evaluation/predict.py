"""``omnizone eval predict``: backtest the predictions against naive baselines.

A fresh SQLite database is filled with the analytics bench's synthetic
history (``bench/analytics.py``) with its learnable structure switched on:
weekday x hour seasonality, a trend, a public holiday, shoppers who favour a
category. A seeded share of the shoppers consents to personalisation. Then,
through the server's own ``PredictionService`` reading the stored rows:

- products: the model is fitted on events before the cut ``T`` (a local
  midnight) and ranks the catalog for every consented shopper known before
  ``T``; the truth is each one's first purchase in ``[T, T + 7 days)``; the
  baseline ranks the catalog by purchases in the 28 days before ``T``;
- footfall: the 4 weeks before ``T`` forecast each zone and hour of the 7
  days from ``T``, against the same hour a week before.

Nothing at or after ``T`` is read by a model. The simulator's hidden truth
(each shopper's favourite category) is scored too.
"""

import random
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import insert

from omnizone.paths import shipped_config
from omnizone.server import bootstrap
from omnizone.server.adapters.prediction_db import PredictionRepository
from omnizone.server.adapters.shopper_db import ConsentRow
from omnizone.server.domain.analytics import DAY_MS
from omnizone.server.domain.analytics import predict_footfall as pf
from omnizone.server.domain.analytics import predict_products as pp
from omnizone.server.domain.identity import Purpose
from omnizone.server.domain.offers import load_catalog
from omnizone.server.service.predictions import PredictionService
from omnizone.store import load_store
from omnizone.suite.bench.analytics import WeekSpec, simulate_week, spec_start_ms, write_rows

__all__ = ["predict_spec", "run_predict_eval"]

FIRST_DAY = date(2026, 10, 19)  # a Monday; the history ends on 22 November
HOLIDAY = date(2026, 11, 11)  # Armistice Day: in the week before the cut
K = 3


def predict_spec(
    seed: int, days: int = 35, trips_per_day: int = 600, *, holiday: bool = True
) -> WeekSpec:
    """The history the backtest learns from and is judged on."""
    return WeekSpec(
        days=days,
        trips_per_day=trips_per_day,
        first_day=FIRST_DAY,
        seed=seed,
        returning_fraction=0.5,
        sent_fraction=0.0,  # no offers: they play no part here
        seasonal=True,
        trend_per_week=0.04,
        holidays=(HOLIDAY,) if holiday else (),
        preferences=True,
    )


def _lift(model: float | None, base: float | None, *, lower_is_better: bool) -> float | None:
    if model is None or base is None or base == 0:
        return None
    change = (base - model) / base if lower_is_better else (model - base) / base
    return round(change, 4)


def run_predict_eval(
    *,
    seed: int = 1,
    days: int = 35,
    cut_day: int = 28,
    trips_per_day: int = 600,
    consent_fraction: float = 0.8,
    holiday: bool = True,
    database_url: str | None = None,
) -> dict[str, Any]:
    """The backtest's figures as one JSON-able dict."""
    if not 14 <= cut_day <= days - 7:
        raise ValueError(f"cut_day must be 14 .. days - 7 ({days - 7}), got {cut_day}")
    plan = load_store(shipped_config("stores/rivoli.yaml"))
    catalog = load_catalog(shipped_config("catalog/rivoli.yaml"))
    spec = predict_spec(seed, days, trips_per_day, holiday=holiday)
    cpu0 = time.process_time()
    rows = simulate_week(plan, spec)
    with _database(database_url) as url:
        storage = bootstrap.open_storage(url)
        try:
            engine = storage.sql.engine
            written = write_rows(engine, plan, rows)
            rng = random.Random(seed * 7919 + 1)
            consenting = [s for s in rows.shoppers if rng.random() < consent_fraction]
            with engine.begin() as conn:
                conn.execute(
                    insert(ConsentRow),
                    [
                        {
                            "shopper_id": s,
                            "purpose": purpose.value,
                            "granted": True,
                            "changed_ms": rows.shoppers[s],
                        }
                        for s in consenting
                        for purpose in Purpose
                    ],
                )
            fill_cpu_s = time.process_time() - cpu0
            # Roll up the closed hours of stays, as a running server's reads
            # (the predictions' background fit among them) do as each closes.
            cpu1 = time.process_time()
            start_ms = spec_start_ms(plan, spec)
            storage.analytics.days.roll_up(
                plan.id, start_ms - 12 * 3_600_000, start_ms + (days + 1) * DAY_MS
            )
            rollup_cpu_s = time.process_time() - cpu1
            service = PredictionService(
                {plan.id: plan}, storage.analytics, PredictionRepository(engine), catalog
            )
            tz = ZoneInfo(plan.store.timezone)
            cut_date = spec.first_day + timedelta(days=cut_day)
            cut_ms = round(
                datetime(cut_date.year, cut_date.month, cut_date.day, tzinfo=tz)
                .astimezone(UTC)
                .timestamp()
                * 1000
            )
            products = _products(service, plan.id, cut_ms, rows.preference, set(consenting))
            footfall = _footfall(service, plan.id, cut_date)
            answers = _answer_times(service, plan.id, cut_ms)
        finally:
            storage.close()
    return {
        "store": plan.id,
        "seed": seed,
        "history": {
            "first_day": spec.first_day.isoformat(),
            "days": days,
            "cut": cut_date.isoformat(),
            "cut_ms": cut_ms,
            "trips_per_day": trips_per_day,
            "trend_per_week": spec.trend_per_week,
            "holidays": [h.isoformat() for h in spec.holidays],
            "consent_fraction": consent_fraction,
            "rows": written,
        },
        "products": products,
        "footfall": footfall,
        "answers": answers,
        "fill_cpu_s": round(fill_cpu_s, 2),
        "rollup_cpu_s": round(rollup_cpu_s, 2),
        "cpu_s": round(time.process_time() - cpu0, 2),
        "database": "sqlite" if database_url is None else database_url.split(":")[0],
    }


def _products(
    service: PredictionService,
    store: str,
    cut_ms: int,
    preference: dict[str, str],
    consenting: set[str],
) -> dict[str, Any]:
    t0 = time.process_time()
    fitted = service.fitted(store, cut_ms)
    fit_cpu_s = time.process_time() - t0
    categories = service.categories(store)
    gtins = sorted(categories)
    after = service.interactions(store, sorted(consenting), cut_ms, cut_ms + 7 * DAY_MS)
    truth_all = pp.next_purchases(after, cut_ms, cut_ms + 7 * DAY_MS, gtins)
    truth = {s: g for s, g in truth_all.items() if s in fitted.events}  # known before the cut
    history = [e for events in fitted.events.values() for e in events]
    baseline_order = pp.popular_ranking(history, gtins, cut_ms)
    t0 = time.process_time()
    ranked = pp.rank_many(fitted.model, fitted.events, sorted(fitted.events))
    model_rank = {s: [g for g, _ in ranked[s]] for s in truth}
    rank_cpu_s = time.process_time() - t0
    base_rank = {s: baseline_order for s in truth}
    model = pp.ranking_scores(model_rank, truth, K)
    base = pp.ranking_scores(base_rank, truth, K)
    # The simulator's hidden truth: does the top category match the favourite?
    known = [s for s in fitted.events if s in preference]
    top_category = {s: pp.category_ranking(ranked[s], categories)[0][0] for s in known}
    base_category = pp.category_ranking(
        [(g, 1.0 / (k + 1)) for k, g in enumerate(baseline_order)], categories
    )[0][0]
    hit = f"hit_rate_at_{K}"
    return {
        "catalog_products": len(gtins),
        "trained_on": fitted.model.trained_on,
        "weights": {
            n: round(float(w), 4)
            for n, w in zip(fitted.model.feature_names(), fitted.model.weights, strict=True)
        },
        "shoppers_scored": model["shoppers"],
        "buyers_unknown_before_cut": len(truth_all) - len(truth),
        "model": model,
        "baseline_most_popular": base,
        "improvement": {
            hit: _lift(model[hit], base[hit], lower_is_better=False),
            "mrr": _lift(model["mrr"], base["mrr"], lower_is_better=False),
            f"{hit}_points": round(float(model[hit] or 0) - float(base[hit] or 0), 4),
        },
        "favourite_category": {
            "shoppers": len(known),
            "model_top_category_is_favourite": round(
                sum(top_category[s] == preference[s] for s in known) / len(known), 4
            )
            if known
            else None,
            "baseline_top_category_is_favourite": round(
                sum(base_category == preference[s] for s in known) / len(known), 4
            )
            if known
            else None,
        },
        "fit_cpu_s": round(fit_cpu_s, 3),
        "rank_cpu_ms_per_shopper": round(1000 * rank_cpu_s / max(1, len(fitted.events)), 4),
    }


def _footfall(service: PredictionService, store: str, cut: date) -> dict[str, Any]:
    weeks = 4
    first = cut - timedelta(days=7 * weeks)
    t0 = time.process_time()
    history = service.footfall_history(store, first.isoformat(), 7 * weeks)
    forecast = pf.seasonal_forecast(history, first.weekday(), 7, weeks=weeks)
    cpu_s = time.process_time() - t0
    baseline = pf.last_week_forecast(history, 7)
    actual = service.footfall_history(store, cut.isoformat(), 7)
    cells = (forecast.expected > 0) | (baseline > 0) | (actual > 0)  # the same for both
    model = pf.footfall_errors(forecast.expected, actual, cells)
    base = pf.footfall_errors(baseline, actual, cells)
    return {
        "history_days": 7 * weeks,
        "horizon_days": 7,
        "actual_total": int(actual.sum()),
        "forecast_total": round(float(forecast.expected.sum()), 1),
        "trend_per_week": forecast.trend_per_week,
        "dropped_days": [(first + timedelta(days=d)).isoformat() for d in forecast.dropped_days],
        "model": model,
        "baseline_same_hour_last_week": base,
        "improvement": {
            "mae": _lift(model["mae"], base["mae"], lower_is_better=True),
            "wape": _lift(model["wape"], base["wape"], lower_is_better=True),
        },
        "cpu_s": round(cpu_s, 3),
    }


def _answer_times(service: PredictionService, store: str, at_ms: int) -> dict[str, Any]:
    """What the API's answers cost, as of the cut: CPU and wall ms, the
    products once with a cold model (a new hour) and once warm."""
    out: dict[str, Any] = {}
    calls: dict[str, Callable[[], object]] = {
        "footfall": lambda: service.footfall(store, at_ms),
        "products_cold": lambda: service.products(store, at_ms + 3_600_000, limit=100),
        "products_warm": lambda: service.products(store, at_ms + 3_600_000, limit=100),
    }
    for name, call in calls.items():
        cpu, wall = time.process_time(), time.perf_counter()
        call()
        out[name] = {
            "cpu_ms": round(1000 * (time.process_time() - cpu), 1),
            "wall_ms": round(1000 * (time.perf_counter() - wall), 1),
        }
    return out


@contextmanager
def _database(url: str | None) -> Iterator[str]:
    if url is not None:
        yield url
        return
    with tempfile.TemporaryDirectory(prefix="omnizone-eval-predict-") as tmp:
        yield f"sqlite:///{Path(tmp) / 'history.db'}"
