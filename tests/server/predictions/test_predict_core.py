"""The prediction cores on data whose structure the test sets itself."""

import numpy as np

from omnizone.server.domain.analytics import DAY_MS
from omnizone.server.domain.analytics import predict_footfall as pf
from omnizone.server.domain.analytics import predict_products as pp

WEEKDAY = np.array([0.8, 0.8, 0.9, 1.0, 1.2, 1.6, 0.7])
HOURS = np.zeros(24)
HOURS[10:20] = [0.5, 0.8, 1.0, 1.3, 1.0, 0.9, 1.0, 1.4, 1.5, 0.9]


def _cube(days: int, growth_per_week: float, holiday: int | None, seed: int) -> np.ndarray:
    """(2 zones, days, 24) Poisson counts: weekday x hour x trend; a quiet holiday."""
    rng = np.random.default_rng(seed)
    d = np.arange(days)
    level = 40.0 * WEEKDAY[d % 7] * (1 + growth_per_week) ** (d / 7)
    if holiday is not None:
        level[holiday] *= 0.3
    rate = np.stack([level[:, None] * HOURS[None, :] * share for share in (1.0, 0.4)])
    return rng.poisson(rate).astype(np.float64)


def test_footfall_model_finds_the_trend_drops_the_holiday_and_beats_last_week() -> None:
    full = _cube(35, 0.05, holiday=24, seed=3)
    history, actual = full[:, :28], full[:, 28:]
    forecast = pf.seasonal_forecast(history, first_weekday=0, horizon_days=7)
    assert abs(forecast.trend_per_week - 0.05) < 0.02
    assert forecast.dropped_days == (24,)
    assert np.argmax(forecast.weekday_factor) == 5  # Saturday
    model = pf.footfall_errors(forecast.expected, actual)
    base = pf.footfall_errors(pf.last_week_forecast(history), actual, (forecast.expected > 0))
    assert model["mae"] is not None and base["mae"] is not None
    assert model["mae"] < base["mae"]


def test_footfall_needs_a_week() -> None:
    cube = _cube(6, 0.0, None, seed=1)
    for call in (lambda: pf.seasonal_forecast(cube, 0), lambda: pf.last_week_forecast(cube)):
        try:
            call()
        except ValueError as error:
            assert "7 days" in str(error)
        else:
            raise AssertionError("a forecast from 6 days")


GTINS = ["a1", "a2", "b1", "b2", "c1"]
CATS = ["a", "a", "b", "b", "c"]


def _history(seed: int, shoppers: int = 300, weeks: int = 5) -> list[pp.Interaction]:
    """Shoppers favour a category: they view it, then buy from it; 'c1' is popular."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(shoppers):
        s = f"s{k}"
        fav = ["a", "b"][k % 2]
        mine = [g for g, c in zip(GTINS, CATS, strict=True) if c == fav]
        for week in range(weeks):
            t = week * 7 * DAY_MS + int(rng.integers(0, 6 * DAY_MS))
            out.append(pp.Interaction(s, "view", str(rng.choice(mine)), t))
            bought = "c1" if rng.random() < 0.35 else str(rng.choice(mine))
            out.append(pp.Interaction(s, "purchase", bought, t + DAY_MS // 2))
    return out


def test_product_model_beats_popularity_and_ignores_what_follows_the_cut() -> None:
    events = _history(1)
    cut = 4 * 7 * DAY_MS
    model = pp.fit_product_model(events, GTINS, CATS, cut)
    # Events at or after the cut change nothing of the model.
    later = [pp.Interaction("s0", "purchase", "b2", cut + k) for k in range(50)]
    again = pp.fit_product_model(events + later, GTINS, CATS, cut)
    assert np.array_equal(model.weights, again.weights)
    assert model.trained_on > 0
    past = [e for e in events if e.at_ms < cut]
    truth = pp.next_purchases(events, cut, cut + 7 * DAY_MS, GTINS)
    by: dict[str, list[pp.Interaction]] = {}
    for e in past:
        by.setdefault(e.shopper, []).append(e)
    ranked = {s: [g for g, _ in pp.rank_products(model, by[s])] for s in truth}
    popular = pp.popular_ranking(past, GTINS, cut)
    assert popular[0] == "c1"
    scores = pp.ranking_scores(ranked, truth, 2)
    base = pp.ranking_scores({s: popular for s in truth}, truth, 2)
    assert scores["hit_rate_at_2"] > base["hit_rate_at_2"]  # type: ignore[operator]
    assert scores["mrr"] > base["mrr"]  # type: ignore[operator]
    # The favourite category comes first for most shoppers.
    top = [
        pp.category_ranking(pp.rank_products(model, by[s]), dict(zip(GTINS, CATS, strict=True)))[0][
            0
        ]
        for s in truth
    ]
    favourites = [["a", "b"][int(s[1:]) % 2] for s in truth]
    assert np.mean([t == f for t, f in zip(top, favourites, strict=True)]) > 0.9


def test_without_training_cases_the_model_is_the_popularity_baseline() -> None:
    events = [
        pp.Interaction("x", "purchase", "c1", 1000),
        pp.Interaction("y", "purchase", "c1", 2000),
    ]
    model = pp.fit_product_model(events, GTINS, CATS, 3000)
    assert model.trained_on == 0
    ranked = [g for g, _ in pp.rank_products(model, [])]
    assert ranked == pp.popular_ranking(events, GTINS, 3000)
