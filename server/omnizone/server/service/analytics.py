"""Analytics use cases: check the store and range, read the rows, run the pure
core, answer plain dicts shaped like the API's models (docs/analytics.md).

The same dicts feed the JSON answers, the CSV tables (``to_csv``) and
``omnizone report``, so the three never disagree.
"""

import csv
import io
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from omnizone.contract.timefmt import wall_clock_ms
from omnizone.server.domain import analytics as core
from omnizone.server.domain.analytics import Stays
from omnizone.server.service.campaign_report import CampaignFigures, CampaignReport
from omnizone.server.service.capture import capture_body, capture_csv_rows
from omnizone.server.service.ports.analytics import AnalyticsReads
from omnizone.server.service.ports.passers_by import PassersByCounts
from omnizone.server.service.queries import NotFound, plan_of
from omnizone.store import StorePlan, ZoneKind
from omnizone.store.geometry import centroid

VIEWS = (
    "presence",
    "dwell",
    "footfall",
    "visits",
    "transitions",
    "routes",
    "funnel",
    "campaigns",
    "capture",
)
DEFAULT_SPAN_MS = 24 * core.HOUR_MS
MAX_RANGE_DAYS = 92
#: How far outside the range stays and events are read: a trip that began
#: before the range must be recognised as such, one that began inside it is
#: followed past its end, and a stay that began before the range counts for
#: presence. Nothing a shopper does in a store lasts longer.
MARGIN_MS = 6 * core.HOUR_MS
STREET = "street"


#: The store is not one this server serves; the text lists those it does.
UnknownStore = NotFound


class BadRange(ValueError):
    """The requested range is unusable; ``field`` is the query parameter to fix."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class AnalyticsService:
    def __init__(
        self,
        stores: Mapping[str, StorePlan],
        reads: AnalyticsReads,
        campaigns: CampaignReport | None = None,
        *,
        clock_ms: Callable[[], int] = wall_clock_ms,
    ) -> None:
        """`clock_ms` ends a default range when nothing is stored yet."""
        self._stores = stores  # the running plans (RunningStores in the server), not a copy
        self._reads = reads
        self._campaign_report = campaigns
        self._clock_ms = clock_ms
        self._exclude: Callable[[str, int, int], list[str]] | None = None
        self._passers_by: PassersByCounts | None = None

    def exclude_devices(self, devices: Callable[[str, int, int], list[str]]) -> None:
        """Devices to leave out of every view, asked per (store, from_ms, to_ms):
        staff phones (``service/insight.py``, issue 18)."""
        self._exclude = devices

    def count_passers_by(self, counts: PassersByCounts) -> None:
        """Where the capture view reads the anonymous passer-by counts (issue 18)."""
        self._passers_by = counts

    @property
    def stores(self) -> Mapping[str, StorePlan]:
        return self._stores

    def plan(self, store: str) -> StorePlan:
        return plan_of(self._stores, store)

    # -- ranges -------------------------------------------------------------------------

    def index(self, store: str) -> dict[str, Any]:
        plan = self.plan(store)
        extent = self._reads.extent(store)
        from_ms, to_ms = self.resolve_range(store, None, None)
        return {
            "store": store,
            "timezone": plan.store.timezone,
            "first_event_ms": extent.first_ms,
            "last_event_ms": extent.last_ms,
            "default_from_ms": from_ms,
            "default_to_ms": to_ms,
            "max_range_days": MAX_RANGE_DAYS,
        }

    def resolve_range(self, store: str, from_ms: int | None, to_ms: int | None) -> tuple[int, int]:
        """Missing ends default to 24 h around the other, or to the 24 h up to
        just after the latest stored event (now, when nothing is stored)."""
        if to_ms is None:
            if from_ms is not None:
                to_ms = from_ms + DEFAULT_SPAN_MS
            else:
                last = self._reads.extent(store).last_ms
                to_ms = (last if last is not None else self._clock_ms()) + 1
        if from_ms is None:
            from_ms = max(0, to_ms - DEFAULT_SPAN_MS)
        if from_ms >= to_ms:
            raise BadRange("to_ms", f"to_ms ({to_ms}) must be after from_ms ({from_ms})")
        if to_ms - from_ms > MAX_RANGE_DAYS * core.DAY_MS:
            raise BadRange(
                "to_ms", f"the range is longer than {MAX_RANGE_DAYS} days: ask for less at once"
            )
        return from_ms, to_ms

    # -- views --------------------------------------------------------------------------

    def view(
        self,
        store: str,
        view: str,
        from_ms: int | None = None,
        to_ms: int | None = None,
        *,
        limit: int = 10,
    ) -> dict[str, Any]:
        """One view as a dict of the API model's fields (all but ``view``)."""
        plan = self.plan(store)
        if view not in VIEWS:
            raise BadRange("view", f"unknown view {view!r}; views: {', '.join(VIEWS)}")
        start, end = self.resolve_range(store, from_ms, to_ms)
        head = {
            "store": store,
            "timezone": plan.store.timezone,
            "from_ms": start,
            "to_ms": end,
        }
        body: dict[str, Any] = getattr(self, f"_{view}")(plan, start, end, limit)
        return {**head, **body}

    def _stays(self, plan: StorePlan, from_ms: int, to_ms: int) -> Stays:
        beacons = [b.device for b in plan.beacons]
        if self._exclude is not None:
            beacons += self._exclude(plan.id, from_ms, to_ms)
        return self._reads.stay_columns(
            plan.id, from_ms, to_ms, [z.id for z in plan.zones], beacons
        )

    def _presence(self, plan: StorePlan, from_ms: int, to_ms: int, _limit: int) -> dict[str, Any]:
        stays = self._stays(plan, from_ms - MARGIN_MS, to_ms)
        buckets = core.hour_buckets(from_ms, to_ms, plan.store.timezone)
        found = core.presence(stays, len(plan.zones), from_ms, to_ms, buckets, core.HOUR_MS)
        return {
            "bucket_ms": core.HOUR_MS,
            "buckets_ms": buckets.tolist(),
            "zones": [
                {"zone": z.id, "name": z.name, "presence_s": _num(found.total_s[i])}
                for i, z in enumerate(plan.zones)
            ],
            "matrix": [[_num(v) for v in row] for row in found.matrix_s],
        }

    def _dwell(self, plan: StorePlan, from_ms: int, to_ms: int, _limit: int) -> dict[str, Any]:
        stays = self._stays(plan, from_ms, to_ms)
        found = core.dwell(stays, len(plan.zones), from_ms, to_ms)
        return {
            "bins_s": list(found.bins_s),
            "labels": dwell_labels(found.bins_s),
            "zones": [
                {
                    "zone": z.id,
                    "name": z.name,
                    "visits": int(found.visits[i]),
                    "counts": found.counts[i].tolist(),
                    "mean_s": _opt(found.mean_s[i]),
                    "median_s": _opt(found.median_s[i]),
                    "p90_s": _opt(found.p90_s[i]),
                }
                for i, z in enumerate(plan.zones)
            ],
        }

    def _footfall(self, plan: StorePlan, from_ms: int, to_ms: int, _limit: int) -> dict[str, Any]:
        stays = self._stays(plan, from_ms, to_ms)
        buckets = core.hour_buckets(from_ms, to_ms, plan.store.timezone)
        counts = core.footfall(stays, len(plan.zones), from_ms, to_ms, buckets, core.HOUR_MS)
        return {
            "bucket_ms": core.HOUR_MS,
            "hours_ms": buckets.tolist(),
            "zones": [
                {
                    "zone": z.id,
                    "name": z.name,
                    "counts": counts[i].tolist(),
                    "total": int(counts[i].sum()),
                }
                for i, z in enumerate(plan.zones)
            ],
        }

    def _visits(self, plan: StorePlan, from_ms: int, to_ms: int, _limit: int) -> dict[str, Any]:
        stays = self._stays(plan, from_ms, to_ms)
        found = core.visit_counts(stays, len(plan.zones), from_ms, to_ms)
        zones = []
        for i, z in enumerate(plan.zones):
            visits, pass_bys = int(found.visits[i]), int(found.pass_bys[i])
            zones.append(
                {
                    "zone": z.id,
                    "name": z.name,
                    "visits": visits,
                    "pass_bys": pass_bys,
                    "open_visits": int(found.open[i]),
                    "visit_rate": _ratio(visits, visits + pass_bys),
                    "mean_dwell_s": _opt(found.mean_dwell_s[i]),
                }
            )
        return {"min_presence_s": plan.store.visits.min_presence_s, "zones": zones}

    def _trips(
        self, plan: StorePlan, from_ms: int, to_ms: int
    ) -> tuple[Stays, core.Trips, np.ndarray[Any, np.dtype[np.int64]]]:
        stays = self._stays(plan, from_ms - MARGIN_MS, to_ms + MARGIN_MS)
        gap_ms = round(plan.store.visits.device_timeout_s * 1000)
        trips = core.split_trips(stays, gap_ms)
        chosen = np.flatnonzero(trips.starting_within(from_ms, to_ms)).astype(np.int64)
        return stays, trips, chosen

    def _transitions(
        self, plan: StorePlan, from_ms: int, to_ms: int, _limit: int
    ) -> dict[str, Any]:
        stays, trips, chosen = self._trips(plan, from_ms, to_ms)
        found = core.transitions(stays, trips, len(plan.zones), chosen, _exit_via(plan))
        matrix = found.matrix
        return {
            "zones": [STREET, *(z.id for z in plan.zones)],
            "names": ["Street", *(z.name for z in plan.zones)],
            "matrix": matrix.tolist(),
            "trips": int(chosen.size),
            "moves": int(matrix.sum()),
            "inferred_exits": found.inferred_exits,
        }

    def _routes(self, plan: StorePlan, from_ms: int, to_ms: int, limit: int) -> dict[str, Any]:
        stays, trips, chosen = self._trips(plan, from_ms, to_ms)
        found = core.routes(stays, trips, chosen, limit)
        ids = [z.id for z in plan.zones]
        return {
            "trips": found.trips,
            "distinct_routes": found.distinct,
            "routes": [
                {
                    "zones": [ids[i] for i in route],
                    "trips": n,
                    "share": _ratio(n, found.trips) or 0.0,
                }
                for route, n in found.ranked
            ],
        }

    def _funnel(self, plan: StorePlan, from_ms: int, to_ms: int, _limit: int) -> dict[str, Any]:
        stays, trips, chosen = self._trips(plan, from_ms, to_ms)
        zone_index = {z.id: i for i, z in enumerate(plan.zones)}
        device_index = {d: i for i, d in enumerate(stays.devices)}
        lo, hi = from_ms - MARGIN_MS, to_ms + MARGIN_MS
        tap_zone = {t.id: zone_index[t.zone] for t in plan.nfc_tap_points}
        reader_zone = {r.id: zone_index[r.zone] for r in plan.rfid_readers}
        taps = [
            (tap_zone[p], at) for p, at in self._reads.nfc_taps(plan.id, lo, hi) if p in tap_zone
        ]
        try_ons = [
            (reader_zone[r], g, at)
            for r, g, at in self._reads.try_ons(plan.id, lo, hi)
            if r in reader_zone
        ]
        app_taps = [
            (device_index[s], at)
            for s, at in self._reads.app_taps(plan.id, lo, hi)
            if s in device_index
        ]
        purchases = [
            (device_index[s], g, at)
            for s, g, at in self._reads.purchases(plan.id, lo, hi + core.DAY_MS + core.HOUR_MS)
            if s in device_index
        ]
        midnights = core.local_midnights(lo, hi + core.DAY_MS, plan.store.timezone)
        browse = [i for i, z in enumerate(plan.zones) if z.kind is not ZoneKind.ENTRANCE]
        found = core.funnel(
            stays,
            trips,
            chosen,
            browse,
            taps=core.ZoneEvents(*_columns(taps, 2)[:2]),
            app_taps=core.ShopperEvents(*_columns(app_taps, 2)[:2]),
            try_ons=core.ZoneEvents(*_columns(try_ons, 3, text=1)),
            purchases=core.ShopperEvents(*_columns(purchases, 3, text=1)),
            slack_ms=round(plan.store.visits.exit_grace_s * 1000),
            midnights=midnights,
            from_ms=from_ms,
            to_ms=to_ms,
        )
        first = found.steps[0][1]
        return {
            "steps": [
                {
                    "step": step,
                    "label": STEP_LABELS[step],
                    "trips": n,
                    "shoppers": shoppers,
                    "rate": _ratio(n, first),
                }
                for step, n, shoppers in found.steps
            ],
            "purchased_trips": found.purchased_trips,
            "try_on_to_purchase": {
                "events": found.try_on_events,
                "unattributed": found.try_on_unattributed,
                "try_ons": found.try_on_pairs,
                "purchased": found.try_on_purchased,
                "shoppers": found.try_on_shoppers,
                "rate": _ratio(found.try_on_purchased, found.try_on_pairs),
            },
        }

    def _campaigns(self, plan: StorePlan, from_ms: int, to_ms: int, _limit: int) -> dict[str, Any]:
        report = self._campaign_report
        figures = report(plan.id, from_ms=from_ms, to_ms=to_ms) if report is not None else []
        return {
            "note": "decisions, receipts, redemptions and purchases counted within the range",
            "campaigns": [f.as_dict() for f in figures],
        }

    def _capture(self, plan: StorePlan, from_ms: int, to_ms: int, _limit: int) -> dict[str, Any]:
        """Whole store-local hours: entrants against passers-by (``service/capture.py``)."""
        buckets = core.hour_buckets(from_ms, to_ms, plan.store.timezone)
        lo, hi = int(buckets[0]), int(buckets[-1]) + core.HOUR_MS
        _stays, trips, chosen = self._trips(plan, lo, hi)
        counts = self._passers_by.counts(plan.id, lo, hi) if self._passers_by is not None else {}
        return capture_body(plan, buckets, trips.start_ms[chosen], counts)


STEP_LABELS = {
    "store_visit": "Store visit",
    "zone_visit": "Zone visit",
    "engaged": "NFC tap or try-on",
    "purchase": "Purchase",
}


def dwell_labels(bins_s: tuple[float, ...] | list[float]) -> list[str]:
    """'0-15 s', '1-2 min', '20 min+'."""

    def text(seconds: float) -> str:
        return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s"

    labels = []
    for k, low in enumerate(bins_s):
        if k + 1 == len(bins_s):
            labels.append(f"{text(low)}+")
            continue
        high = bins_s[k + 1]
        a, b = text(low), text(high)
        same_unit = a.split()[1] == b.split()[1]
        labels.append(f"{a.split()[0]}-{b}" if same_unit else f"{a}-{b}")
    return labels


# -- CSV ------------------------------------------------------------------------------


def to_csv(view: str, body: Mapping[str, Any]) -> str:
    """One view's answer as one CSV table with a header row (docs/analytics.md)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for row in _csv_rows(view, body):
        writer.writerow(["" if v is None else v for v in row])
    return out.getvalue()


def _csv_rows(view: str, body: Mapping[str, Any]) -> list[list[Any]]:
    rows: list[list[Any]] = []
    if view == "presence":
        rows.append(["zone", "name", "bucket_start_ms", "presence_s"])
        for zone, line in zip(body["zones"], body["matrix"], strict=True):
            rows += [
                [zone["zone"], zone["name"], start, value]
                for start, value in zip(body["buckets_ms"], line, strict=True)
            ]
    elif view == "dwell":
        rows.append(["zone", "name", "visits", "mean_s", "median_s", "p90_s", *body["labels"]])
        rows += [
            [
                z["zone"],
                z["name"],
                z["visits"],
                z["mean_s"],
                z["median_s"],
                z["p90_s"],
                *z["counts"],
            ]
            for z in body["zones"]
        ]
    elif view == "footfall":
        rows.append(["zone", "name", "hour_start_ms", "entries"])
        for zone in body["zones"]:
            rows += [
                [zone["zone"], zone["name"], start, n]
                for start, n in zip(body["hours_ms"], zone["counts"], strict=True)
            ]
    elif view == "visits":
        fields = ["zone", "name", "visits", "pass_bys", "open_visits", "visit_rate", "mean_dwell_s"]
        rows.append(fields)
        rows += [[z[f] for f in fields] for z in body["zones"]]
    elif view == "transitions":
        rows.append(["from_zone", "to_zone", "moves"])
        for source, line in zip(body["zones"], body["matrix"], strict=True):
            rows += [[source, target, n] for target, n in zip(body["zones"], line, strict=True)]
    elif view == "routes":
        rows.append(["rank", "route", "stops", "trips", "share"])
        rows += [
            [k, " > ".join(r["zones"]), len(r["zones"]), r["trips"], r["share"]]
            for k, r in enumerate(body["routes"], start=1)
        ]
    elif view == "funnel":
        rows.append(["step", "label", "trips", "shoppers", "rate"])
        rows += [
            [s["step"], s["label"], s["trips"], s["shoppers"], s["rate"]] for s in body["steps"]
        ]
        t = body["try_on_to_purchase"]
        rows.append(["try_on", "Fitting-room try-on", t["try_ons"], t["shoppers"], None])
        rows.append(["try_on_purchase", "Tried on, then bought", t["purchased"], None, t["rate"]])
    elif view == "campaigns":
        campaigns = body["campaigns"]
        lift_keys = sorted({k for c in campaigns for k in c["lift"]})
        # held_back_now is the state at the moment of asking, not a figure of the data.
        skip = ("lift", "held_back_now", "follow_up")
        plain = [k for k in CampaignFigures.__dataclass_fields__ if k not in skip]
        # follow-ups after the visit (issue 18): their scalar figures, empty for the others
        follow = sorted(
            {
                k
                for c in campaigns
                for k, v in (c.get("follow_up") or {}).items()
                if not isinstance(v, dict) and k != "lift_words"
            }
        )
        rows.append(
            [*plain, *(f"lift_{k}" for k in lift_keys), *(f"follow_up_{k}" for k in follow)]
        )
        rows += [
            [
                *(c[k] for k in plain),
                *(c["lift"].get(k) for k in lift_keys),
                *((c.get("follow_up") or {}).get(k) for k in follow),
            ]
            for c in campaigns
        ]
    elif view == "capture":
        rows += capture_csv_rows(body)
    else:
        raise ValueError(f"unknown view {view!r}")
    return rows


# -- helpers --------------------------------------------------------------------------


def _exit_via(plan: StorePlan) -> np.ndarray[Any, np.dtype[np.int64]]:
    """Per zone, the entrance a shopper ending a trip there leaves through."""
    index = {z.id: i for i, z in enumerate(plan.zones)}
    return core.nearest_exit(
        [centroid(z.polygon) for z in plan.zones], [index[e] for e in plan.entrances]
    )


def _columns(
    rows: list[Any], width: int, *, text: int | None = None
) -> tuple[Any, Any, tuple[Any, ...]]:
    """Rows of ints (and at most one text column, ``text``) as the events'
    columns: (first int column, second int column, the text column or ())."""
    n = len(rows)
    ints = [
        np.fromiter((r[k] for r in rows), dtype=np.int64, count=n)
        for k in range(width)
        if k != text
    ]
    return ints[0], ints[1], (tuple([r[text] for r in rows]) if text is not None else ())


def _ints(values: Any) -> np.ndarray[Any, np.dtype[np.int64]]:
    return np.fromiter(values, dtype=np.int64)


def _num(value: float) -> float:
    return round(float(value), 3)


def _opt(value: float) -> float | None:
    return None if math.isnan(value) else round(float(value), 3)


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None
