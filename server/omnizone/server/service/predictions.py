"""Predictions (issue 18, point 9): read the stored events before a moment,
run the pure cores (``domain/analytics/predict_products.py``,
``predict_footfall.py``), answer plain dicts for the API, CSV and report.

Nothing is stored: each answer is computed on demand from the stored events
before ``as_of`` and the product model is kept in memory for the hour it was
fitted in. Only shoppers whose current consent grants personalized_offers
are predicted for or learnt from; taps and try-ons come from their stays,
which exist only with location_analytics (docs/analytics.md, "Predictions").
"""

import csv
import io
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from omnizone.contract.timefmt import wall_clock_ms
from omnizone.server.domain import analytics as core
from omnizone.server.domain.analytics import predict_footfall as pf
from omnizone.server.domain.analytics import predict_products as pp
from omnizone.server.domain.offers import Catalog
from omnizone.server.service.ports.analytics import AnalyticsReads
from omnizone.server.service.ports.predictions import PredictionReads
from omnizone.server.service.queries import plan_of
from omnizone.store import StorePlan

__all__ = [
    "FOOTFALL_WEEKS",
    "PRODUCT_HISTORY_DAYS",
    "Fitted",
    "NoPrediction",
    "PredictionService",
    "predictions_csv",
]

#: How much history each model reads before ``as_of``.
PRODUCT_HISTORY_DAYS = 56
FOOTFALL_WEEKS = 4
#: Stays are counted per bin this long by the database, then put into local
#: hours: 15 minutes divides every UTC offset in use.
_BIN_MS = 15 * 60_000
_PROFILE_KINDS = {
    "purchase": "purchase",
    "wishlist_add": "wishlist",
    "cart_add": "cart",
    "product_view": "view",
}


log = logging.getLogger(__name__)


class NoPrediction(LookupError):
    """The shopper is unknown here or has not consented to personalized_offers."""


@dataclass(frozen=True, slots=True)
class Fitted:
    model: pp.ProductModel
    events: Mapping[str, list[pp.Interaction]]  # per consented shopper
    #: Each shopper's ranking once asked for (the model and events do not change).
    rankings: dict[str, list[tuple[str, float]]] = field(default_factory=dict)

    def ranking(self, shopper: str) -> list[tuple[str, float]]:
        found = self.rankings.get(shopper)
        if found is None:
            found = pp.rank_products(self.model, self.events.get(shopper, ()))
            self.rankings[shopper] = found
        return found

    def rank_all(self, shoppers: Sequence[str]) -> None:
        """Rank the shoppers not ranked yet, all at once."""
        todo = [s for s in shoppers if s not in self.rankings]
        if todo:
            self.rankings.update(pp.rank_many(self.model, self.events, todo))


class PredictionService:
    def __init__(
        self,
        stores: Mapping[str, StorePlan],
        reads: AnalyticsReads,
        shoppers: PredictionReads,
        catalog: Catalog,
        *,
        clock_ms: Callable[[], int] = wall_clock_ms,
    ) -> None:
        self._stores = stores
        self._reads = reads
        self._shoppers = shoppers
        self._catalog = catalog
        self._clock_ms = clock_ms
        self._lock = threading.Lock()
        self._fitted: dict[tuple[str, int], Fitted] = {}

    def forget_shopper(self, shopper_id: str) -> None:
        """Erasure: drop every fitted model that holds the shopper's events."""
        with self._lock:
            for key in [k for k, f in self._fitted.items() if shopper_id in f.events]:
                del self._fitted[key]

    # -- the moment -----------------------------------------------------------------

    def as_of(self, store: str, at_ms: int | None) -> int:
        """``at_ms``, else just after the latest stored event (now when none)."""
        if at_ms is not None:
            return at_ms
        last = self._reads.extent(store).last_ms
        return (last if last is not None else self._clock_ms()) + 1

    def categories(self, store: str) -> dict[str, str]:
        """Each catalog product's category here: the first zone it is displayed in."""
        return {p.gtin: p.zones[store][0] for p in self._catalog.products if p.zones.get(store)}

    # -- the inputs -----------------------------------------------------------------

    def interactions(
        self, store: str, shoppers: Sequence[str], from_ms: int, to_ms: int
    ) -> list[pp.Interaction]:
        """Profile events of ``shoppers`` and the taps and try-ons attributed to
        their stays, in [from_ms, to_ms)."""
        plan = plan_of(self._stores, store)
        wanted = set(shoppers)
        found = [
            pp.Interaction(s, _PROFILE_KINDS[t], g, at)
            for s, t, g, at in self._shoppers.profile_rows(list(shoppers), from_ms, to_ms)
            if t in _PROFILE_KINDS
        ]
        # Only the zones where taps and try-ons happen: attribution is within a zone.
        zones = sorted({t.zone for t in plan.nfc_tap_points} | {r.zone for r in plan.rfid_readers})
        beacons = [b.device for b in plan.beacons]
        # The analytics' columns (closed hours rolled up and held decoded):
        # reading two months of stays row by row cost most of a fit.
        stays = self._reads.stay_columns(store, from_ms, to_ms, zones, beacons)
        index = {z: i for i, z in enumerate(zones)}
        slack = round(plan.store.visits.exit_grace_s * 1000)
        tap_points = {t.id: t for t in plan.nfc_tap_points}
        taps = [
            (index[tap_points[p].zone], at, tap_points[p].product)
            for p, at in self._reads.nfc_taps(store, from_ms, to_ms)
            if p in tap_points and tap_points[p].product
        ]
        readers = {r.id: index[r.zone] for r in plan.rfid_readers}
        try_ons = [
            (readers[r], at, g)
            for r, g, at in self._reads.try_ons(store, from_ms, to_ms)
            if r in readers and g
        ]
        for kind, rows in (("tap", taps), ("try_on", try_ons)):
            if not rows:
                continue
            events = core.ZoneEvents(
                np.array([r[0] for r in rows], dtype=np.int64),
                np.array([r[1] for r in rows], dtype=np.int64),
            )
            stay = core.attribute(stays, events, slack)
            for (_, at, gtin), s in zip(rows, stay.tolist(), strict=True):
                if s < 0 or gtin is None:
                    continue
                device = stays.devices[int(stays.device[s])]
                if device in wanted:
                    found.append(pp.Interaction(device, kind, gtin, at))
        return found

    def fitted(self, store: str, as_of_ms: int) -> "Fitted":
        """The product model of ``as_of_ms``'s hour: fitted on the consented
        shoppers' events before the hour began, with those events per shopper.
        One model per store and hour, whoever asks first and whenever, so an
        answer does not depend on the order of the questions, and the
        background step (``warm``) can fit it before anyone asks."""
        hour = as_of_ms // core.HOUR_MS
        with self._lock:
            cached = self._fitted.get((store, hour))
        if cached is not None:
            return cached
        as_of_ms = hour * core.HOUR_MS
        categories = self.categories(store)
        gtins = sorted(categories)
        if not gtins:
            raise NoPrediction(f"the catalog displays no product in store {store!r}")
        consented = self._shoppers.consented_shoppers(store)
        history = self.interactions(
            store, consented, as_of_ms - PRODUCT_HISTORY_DAYS * core.DAY_MS, as_of_ms
        )
        model = pp.fit_product_model(history, gtins, [categories[g] for g in gtins], as_of_ms)
        per: dict[str, list[pp.Interaction]] = {}
        for e in history:
            per.setdefault(e.shopper, []).append(e)
        fitted = Fitted(model, per)
        with self._lock:
            if len(self._fitted) >= 8:
                self._fitted.clear()
            self._fitted[(store, hour)] = fitted
        return fitted

    def warm(self) -> None:
        """Fit each store's model of the current hour (the store's data clock:
        just after its latest event) if nobody has yet, so that the dashboard,
        the API and ``likely_to_buy`` campaigns in the moment find it ready.
        A step of the server's background loop; cheap once the hour is fitted."""
        for store in self._stores:
            try:
                self.fitted(store, self.as_of(store, None))
            except NoPrediction:
                continue
            except Exception:
                log.exception("fitting the product model of store %s failed", store)

    # -- products -------------------------------------------------------------------

    def _ranked(self, store: str, fitted: Fitted, shopper: str, top: int) -> dict[str, Any]:
        ranking = fitted.ranking(shopper)
        category_of = self.categories(store)
        return {
            "shopper_id": shopper,
            "known_events": len(fitted.events.get(shopper, ())),
            "products": [
                {
                    "rank": k,
                    "gtin": g,
                    "name": p.name if (p := self._catalog.product(g)) else g,
                    "category": category_of.get(g),
                    "probability": prob,
                }
                for k, (g, prob) in enumerate(ranking[:top], start=1)
            ],
            "categories": [
                {"category": c, "probability": prob}
                for c, prob in pp.category_ranking(ranking, category_of)[:top]
            ],
        }

    def _model_out(self, store: str, fitted: Fitted, as_of_ms: int) -> dict[str, Any]:
        model = fitted.model
        return {
            "store": store,
            "timezone": plan_of(self._stores, store).store.timezone,
            "as_of_ms": as_of_ms,
            "history_days": PRODUCT_HISTORY_DAYS,
            "model": {
                "trained_on": model.trained_on,
                "weights": {
                    n: round(float(w), 4)
                    for n, w in zip(model.feature_names(), model.weights, strict=True)
                },
            },
        }

    def shopper_products(
        self, store: str, shopper: str, at_ms: int | None = None, top: int = 3
    ) -> dict[str, Any]:
        """One consented shopper's likely next products (``NoPrediction`` else)."""
        plan_of(self._stores, store)
        if shopper not in set(self._shoppers.consented_shoppers(store)):
            raise NoPrediction(
                f"no prediction for shopper {shopper!r} in store {store!r}: unknown here, "
                "or no consent to personalized_offers"
            )
        as_of_ms = self.as_of(store, at_ms)
        fitted = self.fitted(store, as_of_ms)
        return {
            **self._model_out(store, fitted, as_of_ms),
            **self._ranked(store, fitted, shopper, top),
        }

    def export_shopper(self, store: str, shopper: str) -> dict[str, Any] | None:
        """The shopper's export section: their prediction now, or None without one."""
        try:
            return self.shopper_products(store, shopper)
        except NoPrediction:
            return None

    def products(
        self, store: str, at_ms: int | None = None, top: int = 3, limit: int = 100
    ) -> dict[str, Any]:
        """The consented shoppers with events, most confident first, at most ``limit``."""
        as_of_ms = self.as_of(store, at_ms)
        try:
            fitted = self.fitted(store, as_of_ms)
        except NoPrediction:
            return {
                "store": store,
                "timezone": plan_of(self._stores, store).store.timezone,
                "as_of_ms": as_of_ms,
                "history_days": PRODUCT_HISTORY_DAYS,
                "model": None,
                "shoppers_total": 0,
                "shoppers": [],
            }
        consented = set(self._shoppers.consented_shoppers(store))  # as of now, not the fit
        shoppers = [s for s in fitted.events if s in consented]
        fitted.rank_all(shoppers)
        # Most confident first: the top product's probability, then the id.
        shoppers.sort(key=lambda s: (-fitted.rankings[s][0][1], s))
        return {
            **self._model_out(store, fitted, as_of_ms),
            "shoppers_total": len(shoppers),
            "shoppers": [self._ranked(store, fitted, s, top) for s in shoppers[:limit]],
        }

    def likely(
        self, store: str, shoppers: Sequence[str], at_ms: int, top: int = 3
    ) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
        """For campaigns: each consented shopper's top products and categories."""
        consented = set(self._shoppers.consented_shoppers(store))
        wanted = [s for s in shoppers if s in consented]
        if not wanted or not self.categories(store):
            return {}
        fitted = self.fitted(store, at_ms)
        out = {}
        for s in wanted:
            ranked = self._ranked(store, fitted, s, top)
            out[s] = (
                tuple(p["gtin"] for p in ranked["products"]),
                tuple(c["category"] for c in ranked["categories"]),
            )
        return out

    # -- footfall -------------------------------------------------------------------

    def footfall_history(
        self, store: str, first_day: str, days: int
    ) -> np.ndarray[Any, np.dtype[np.float64]]:
        """(Z, days, 24) stays begun per local hour, from ``first_day``."""
        plan = plan_of(self._stores, store)
        tz = ZoneInfo(plan.store.timezone)
        start = datetime.fromisoformat(first_day).replace(tzinfo=tz)
        end = start + timedelta(days=days)
        lo = round(start.timestamp() * 1000)
        hi = round(end.timestamp() * 1000)
        index = {z.id: i for i, z in enumerate(plan.zones)}
        bins = [
            (index[z], lo + b * _BIN_MS, n)
            for z, b, n in self._shoppers.entry_bins(
                store, lo, hi, _BIN_MS, [b.device for b in plan.beacons]
            )
            if z in index
        ]
        return pf.binned_daily_hours(
            np.array([b[0] for b in bins], dtype=np.int64),
            np.array([b[1] for b in bins], dtype=np.int64),
            np.array([b[2] for b in bins], dtype=np.float64),
            len(plan.zones),
            first_day,
            days,
            plan.store.timezone,
        )

    def footfall(
        self, store: str, at_ms: int | None = None, days: int = 7, weeks: int = FOOTFALL_WEEKS
    ) -> dict[str, Any]:
        """Expected stays begun per zone and hour, for ``days`` from the local
        midnight at or before ``as_of``; the same-hour-last-week baseline beside."""
        plan = plan_of(self._stores, store)
        tz = ZoneInfo(plan.store.timezone)
        as_of_ms = self.as_of(store, at_ms)
        today = datetime.fromtimestamp(as_of_ms / 1000, tz).date()
        first = today - timedelta(days=7 * weeks)
        history = self.footfall_history(store, first.isoformat(), 7 * weeks)
        forecast = pf.seasonal_forecast(history, first.weekday(), days, weeks=weeks)
        baseline = pf.last_week_forecast(history, days)
        dates = [(today + timedelta(days=k)).isoformat() for k in range(days)]
        return {
            "store": store,
            "timezone": plan.store.timezone,
            "as_of_ms": as_of_ms,
            "from_ms": round(
                datetime(today.year, today.month, today.day, tzinfo=tz).timestamp() * 1000
            ),
            "history_days": 7 * weeks,
            "days": dates,
            "model": {
                "trend_per_week": forecast.trend_per_week,
                "weekday_factor": list(forecast.weekday_factor),
                "dropped_days": [
                    (first + timedelta(days=d)).isoformat() for d in forecast.dropped_days
                ],
            },
            "zones": [
                {
                    "zone": z.id,
                    "name": z.name,
                    "expected": [[round(float(v), 2) for v in day] for day in forecast.expected[i]],
                    "baseline": [[int(v) for v in day] for day in baseline[i]],
                    "total": round(float(forecast.expected[i].sum()), 1),
                }
                for i, z in enumerate(plan.zones)
            ],
        }


def predictions_csv(kind: str, body: Mapping[str, Any]) -> str:
    """One prediction answer as one CSV table with a header row."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if kind == "footfall":
        writer.writerow(["zone", "name", "date", "hour", "expected", "same_hour_last_week"])
        for zone in body["zones"]:
            for date, expected, base in zip(
                body["days"], zone["expected"], zone["baseline"], strict=True
            ):
                for hour in range(24):
                    writer.writerow(
                        [zone["zone"], zone["name"], date, hour, expected[hour], base[hour]]
                    )
    elif kind == "products":
        writer.writerow(["shopper_id", "rank", "gtin", "name", "category", "probability"])
        for shopper in body.get("shoppers", [body]):
            for p in shopper["products"]:
                writer.writerow(
                    [
                        shopper["shopper_id"],
                        p["rank"],
                        p["gtin"],
                        p["name"],
                        p["category"] or "",
                        p["probability"],
                    ]
                )
    else:
        raise ValueError(f"unknown prediction {kind!r}")
    return out.getvalue()
