"""Retail insight use cases (issue 18, points 1, 2, 3 and 5): headline
figures, period comparison, new and repeat visitors, staff filtering.

Each one reads the stored events of its ranges, runs the pure core
(``domain/analytics/headline.py``, ``compare.py``, ``loyalty.py``,
``staff.py``) and answers a plain dict, which the API sends as JSON, turns
into one CSV table (``insight_csv``) and ``omnizone report`` writes.
Staff devices (registered or detected) are left out of every figure here and,
through ``AnalyticsService.exclude_devices``, of every analytics view.
"""

import csv
import io
import math
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

import numpy as np

from omnizone.contract.timefmt import wall_clock_ms
from omnizone.server.domain import analytics as core
from omnizone.server.domain.analytics import Stays
from omnizone.server.domain.analytics.compare import (
    Difference,
    Figure,
    difference,
    dwell_moments,
)
from omnizone.server.domain.analytics.headline import (
    WEEK_MS,
    day_figures,
    shoppers_at,
    usual_shoppers,
)
from omnizone.server.domain.analytics.loyalty import (
    FREQUENCY_BINS,
    RECENCY_BINS_DAYS,
    bin_labels,
    is_shopper_id,
    loyalty,
)
from omnizone.server.domain.analytics.staff import StaffDevice, detect_staff
from omnizone.server.service.analytics import MARGIN_MS, VIEWS, AnalyticsService, BadRange
from omnizone.server.service.ports.analytics import AnalyticsReads
from omnizone.server.service.ports.insight import InsightReads
from omnizone.store import StorePlan, ZoneKind

INSIGHT_VIEWS = ("headline", "compare", "loyalty", "staff")
USUAL_WEEKS = 4
LOYALTY_LOOKBACK_DAYS = 28
STAFF_LOOKBACK_DAYS = 7
Preset = Literal["week", "day"]


class InsightService:
    def __init__(
        self,
        analytics: AnalyticsService,
        reads: AnalyticsReads,
        insight: InsightReads,
        *,
        clock_ms: Callable[[], int] = wall_clock_ms,
        filter_views: bool = True,
    ) -> None:
        """``filter_views``: leave staff out of the analytics views too."""
        self._analytics = analytics
        self._reads = reads
        self._insight = insight
        self._clock_ms = clock_ms
        self._staff_cache: dict[tuple[str, int, tuple[str, ...]], list[StaffDevice]] = {}
        if filter_views:
            analytics.exclude_devices(self.staff_ids)

    @property
    def stores(self) -> Mapping[str, StorePlan]:
        return self._analytics.stores

    # -- staff (point 5) -----------------------------------------------------------------

    def staff(self, store: str, at_ms: int | None = None) -> list[StaffDevice]:
        """Registered staff devices and those detected over the week before
        ``at_ms`` (default: the latest stored event). Cached per hour."""
        plan = self._analytics.plan(store)
        end = at_ms if at_ms is not None else self._now(store)
        hour = end // core.HOUR_MS
        registered = self._insight.staff_devices(store)
        key = (store, hour, tuple(sorted(registered)))
        if key not in self._staff_cache:
            lo = (hour + 1) * core.HOUR_MS - STAFF_LOOKBACK_DAYS * core.DAY_MS
            hi = (hour + 1) * core.HOUR_MS
            stays = self._read_stays(plan, lo, hi, exclude=())
            midnights = core.local_midnights(lo, hi, plan.store.timezone)
            back = [i for i, z in enumerate(plan.zones) if z.kind is ZoneKind.BACK_OFFICE]
            if len(self._staff_cache) > 256:
                self._staff_cache.clear()
            self._staff_cache[key] = detect_staff(stays, midnights, back, set(registered))
        return self._staff_cache[key]

    def forget_staff(self) -> None:
        """Drop the cached verdicts (the next view detects staff afresh)."""
        self._staff_cache.clear()

    def staff_ids(self, store: str, _from_ms: int, to_ms: int) -> list[str]:
        """The devices to leave out of a view of ``store`` ending at ``to_ms``."""
        return [s.device for s in self.staff(store, min(to_ms, self._now(store) + 1))]

    def staff_view(self, store: str, at_ms: int | None = None) -> dict[str, Any]:
        registered = self._insight.staff_devices(store)
        found = self.staff(store, at_ms)
        return {
            "store": store,
            "lookback_days": STAFF_LOOKBACK_DAYS,
            "rule": (
                "registered, or present at least 4 h a day on 3 days of the week,"
                " or over a minute in a back-office zone"
            ),
            "devices": [
                {
                    "device": s.device,
                    "label": registered.get(s.device),
                    "reason": s.reason,
                    "days_present": s.days_present,
                    "long_days": s.long_days,
                    "mean_daily_hours": s.mean_daily_hours,
                    "back_office_s": s.back_office_s,
                }
                for s in found
            ],
        }

    def register_staff(self, store: str, device: str, label: str) -> None:
        self._analytics.plan(store)
        self._insight.register_staff(store, device, label, self._clock_ms())

    def remove_staff(self, store: str, device: str) -> bool:
        self._analytics.plan(store)
        return self._insight.remove_staff(store, device)

    # -- headline (point 1) --------------------------------------------------------------

    def headline(self, store: str, at_ms: int | None = None) -> dict[str, Any]:
        """Shoppers now against the usual count at this weekday and time;
        today so far against the same part of the same weekday last week."""
        plan = self._analytics.plan(store)
        now = at_ms if at_ms is not None else self._now(store)
        staff = self.staff_ids(store, now, now + 1)
        tz = plan.store.timezone
        here = self._read_stays(plan, now - MARGIN_MS, now + 1, exclude=staff)
        usual, samples = usual_shoppers(
            [
                (
                    self._read_stays(
                        plan, now - k * WEEK_MS - MARGIN_MS, now - k * WEEK_MS + 1, staff
                    ),
                    now - k * WEEK_MS,
                )
                for k in range(USUAL_WEEKS, 0, -1)
            ]
        )
        midnight = int(core.local_midnights(now, now, tz)[0])
        today = self._day(plan, midnight, now + 1, staff)
        last_week = self._day(plan, midnight - WEEK_MS, now + 1 - WEEK_MS, staff)
        shoppers_now = shoppers_at(here, now)

        def pair(
            name: str, a: float | None, b: float | None, kind: str, na: int, nb: int
        ) -> dict[str, Any]:
            fa = Figure(a, kind, na)  # type: ignore[arg-type]
            fb = Figure(b, kind, nb)  # type: ignore[arg-type]
            return {"figure": name, **_difference_dict(difference(fa, fb))}

        return {
            "store": store,
            "timezone": tz,
            "at_ms": now,
            "day_from_ms": midnight,
            "shoppers_now": shoppers_now,
            "usual_now": None if usual is None else round(usual, 2),
            "usual_weeks": len(samples),
            "usual_samples": samples,
            "today": _day_dict(today),
            "same_day_last_week": _day_dict(last_week),
            "comparisons": [
                pair("shoppers_now", usual, shoppers_now, "count", 0, 0),
                pair("visitors", last_week[0], today[0], "count", 0, 0),
                pair("median_visit_s", last_week[2], today[2], "plain", 0, 0),
                pair("conversion", _conv(last_week), _conv(today), "rate", last_week[1], today[1]),
            ],
            "staff_excluded": len(staff),
        }

    def _day(
        self, plan: StorePlan, from_ms: int, to_ms: int, staff: list[str]
    ) -> tuple[int, int, float | None, int]:
        # Trips are followed past ``to_ms`` (a trip under way ends where it ends).
        stays = self._read_stays(plan, from_ms - MARGIN_MS, to_ms + MARGIN_MS, staff)
        gap_ms = round(plan.store.visits.device_timeout_s * 1000)
        trips = core.split_trips(stays, gap_ms)
        index = {d: i for i, d in enumerate(stays.devices)}
        bought = [
            (index[s], at)
            for s, _g, at in self._reads.purchases(plan.id, from_ms, to_ms)
            if s in index
        ]
        purchases = core.ShopperEvents(_ints(b[0] for b in bought), _ints(b[1] for b in bought))
        midnights = core.local_midnights(
            from_ms - MARGIN_MS, to_ms + core.DAY_MS, plan.store.timezone
        )
        found = day_figures(stays, trips, purchases, midnights, from_ms, to_ms)
        median = None if found.median_visit_s is None else round(found.median_visit_s, 1)
        return found.visitors, found.trips, median, found.purchased_trips

    # -- loyalty (point 3) ---------------------------------------------------------------

    def loyalty(
        self, store: str, from_ms: int | None = None, to_ms: int | None = None
    ) -> dict[str, Any]:
        plan = self._analytics.plan(store)
        start, end = self._analytics.resolve_range(store, from_ms, to_ms)
        staff = self.staff_ids(store, start, end)
        stays = self._read_stays(plan, start - MARGIN_MS, end + MARGIN_MS, staff)
        trips = core.split_trips(stays, round(plan.store.visits.device_timeout_s * 1000))
        lookback = LOYALTY_LOOKBACK_DAYS * core.DAY_MS
        # The margin's stays are the previous trips of shoppers who came just before.
        before = self._insight.last_entries(plan.id, start - lookback, start - MARGIN_MS)
        left_out = set(staff)
        for d, at in _last_entries(stays, start).items():
            before[d] = max(before.get(d, at), at)
        before = {d: at for d, at in before.items() if is_shopper_id(d) and d not in left_out}
        found = loyalty(stays, trips, start, end, before)
        return {
            "store": store,
            "timezone": plan.store.timezone,
            "from_ms": start,
            "to_ms": end,
            "lookback_days": LOYALTY_LOOKBACK_DAYS,
            "shoppers": found.shoppers,
            "new": found.new,
            "repeat": found.repeat,
            "repeat_share": _ratio(found.repeat, found.shoppers),
            "trips": found.trips,
            "mean_trips_per_shopper": _opt(found.mean_trips_per_shopper),
            "median_days_since_previous": _opt(found.median_days_since_previous),
            "frequency": [
                {"trips": label, "shoppers": n}
                for label, n in zip(bin_labels(FREQUENCY_BINS, ""), found.frequency, strict=True)
            ],
            "recency": [
                {"days_since_previous": label, "shoppers": n}
                for label, n in zip(bin_labels(RECENCY_BINS_DAYS, "d"), found.recency, strict=True)
            ],
        }

    # -- comparison (point 2) ------------------------------------------------------------

    def ranges(
        self,
        store: str,
        preset: Preset | None,
        a: tuple[int | None, int | None],
        b: tuple[int | None, int | None],
    ) -> tuple[tuple[int, int], tuple[int, int]]:
        """(reference range a, range b). ``preset`` week: this week so far
        (from the store-local Monday) against the same span a week before;
        day: today so far against the same part of the same day last week."""
        plan = self._analytics.plan(store)
        if preset is not None:
            now = self._now(store) + 1
            tz = ZoneInfo(plan.store.timezone)
            local = datetime.fromtimestamp(now / 1000, tz)
            day = local.date()
            if preset == "week":
                day -= timedelta(days=local.weekday())
            begin = round(datetime(day.year, day.month, day.day, tzinfo=tz).timestamp() * 1000)
            return (begin - WEEK_MS, now - WEEK_MS), (begin, now)
        if b[0] is None and b[1] is None:
            raise BadRange("b_from_ms", "give b_from_ms and b_to_ms, or preset=week|day")
        rb = self._analytics.resolve_range(store, *b)
        if a[0] is None and a[1] is None:  # the same span just before
            span = rb[1] - rb[0]
            return (max(0, rb[0] - span), rb[0]), rb
        return self._analytics.resolve_range(store, *a), rb

    def compare(
        self,
        store: str,
        view: str,
        preset: Preset | None = None,
        a: tuple[int | None, int | None] = (None, None),
        b: tuple[int | None, int | None] = (None, None),
    ) -> dict[str, Any]:
        """One view over two ranges side by side, with each figure's difference
        and whether it is within noise (``domain/analytics/compare.py``)."""
        plan = self._analytics.plan(store)
        if view not in (*VIEWS, "loyalty"):
            raise BadRange(
                "view", f"unknown view {view!r}; views: {', '.join((*VIEWS, 'loyalty'))}"
            )
        ra, rb = self.ranges(store, preset, a, b)
        if view == "loyalty":
            body_a, body_b = self.loyalty(store, *ra), self.loyalty(store, *rb)
        else:
            body_a = self._analytics.view(store, view, *ra)
            body_b = self._analytics.view(store, view, *rb)
        fa = self._figures(plan, view, body_a, ra)
        fb = self._figures(plan, view, body_b, rb)
        rows = []
        # Ties (figures of no zone of the plan) keep the views' own order: a set's
        # order would change from one process to the next.
        keys = list(dict.fromkeys([*fa, *fb]))
        for key in sorted(keys, key=lambda k: (_order(plan, k[0]), k[1])):
            zone, metric = key
            found = difference(fa.get(key, Figure(None)), fb.get(key, Figure(None)))
            rows.append({"zone": zone, "metric": metric, **_difference_dict(found)})
        changed = [r for r in rows if r["within_noise"] is False]
        return {
            "store": store,
            "view": view,
            "timezone": plan.store.timezone,
            "a": {"from_ms": ra[0], "to_ms": ra[1]},
            "b": {"from_ms": rb[0], "to_ms": rb[1]},
            "rows": rows,
            "changed": len(changed),
            "summary": _summary(changed, rows),
            "a_view": body_a,
            "b_view": body_b,
        }

    def _figures(
        self, plan: StorePlan, view: str, body: dict[str, Any], span: tuple[int, int]
    ) -> dict[tuple[str, str], Figure]:
        out: dict[tuple[str, str], Figure] = {}
        if view in ("dwell", "visits"):
            staff = self.staff_ids(plan.id, *span)
            stays = self._read_stays(plan, span[0], span[1], staff)
            n, mean, sd = dwell_moments(stays, len(plan.zones), span[0], span[1], core.VISIT)
        if view == "presence":
            for z in body["zones"]:
                out[(z["zone"], "presence_s")] = Figure(z["presence_s"])
        elif view == "dwell":
            for i, z in enumerate(body["zones"]):
                out[(z["zone"], "visits")] = Figure(z["visits"], "count")
                out[(z["zone"], "mean_s")] = Figure(
                    _opt(mean[i]), "mean", int(n[i]), float(sd[i]) if n[i] > 1 else 0.0
                )
                out[(z["zone"], "median_s")] = Figure(z["median_s"])
        elif view == "footfall":
            for z in body["zones"]:
                out[(z["zone"], "entries")] = Figure(z["total"], "count")
        elif view == "visits":
            for i, z in enumerate(body["zones"]):
                out[(z["zone"], "visits")] = Figure(z["visits"], "count")
                out[(z["zone"], "pass_bys")] = Figure(z["pass_bys"], "count")
                out[(z["zone"], "visit_rate")] = Figure(
                    z["visit_rate"], "rate", z["visits"] + z["pass_bys"]
                )
                out[(z["zone"], "mean_dwell_s")] = Figure(
                    _opt(mean[i]), "mean", int(n[i]), float(sd[i]) if n[i] > 1 else 0.0
                )
        elif view == "transitions":
            out[("", "trips")] = Figure(body["trips"], "count")
            out[("", "moves")] = Figure(body["moves"], "count")
            names = body["zones"]
            for i, row in enumerate(body["matrix"]):
                for j, moves in enumerate(row):
                    if i != j:
                        out[(f"{names[i]} > {names[j]}", "moves")] = Figure(moves, "count")
        elif view == "routes":
            out[("", "trips")] = Figure(body["trips"], "count")
            for r in body["routes"]:
                out[(" > ".join(r["zones"]) or "(no stop)", "trips")] = Figure(r["trips"], "count")
        elif view == "funnel":
            first = body["steps"][0]["trips"]
            for s in body["steps"]:
                out[("", f"{s['step']}_trips")] = Figure(s["trips"], "count")
                out[("", f"{s['step']}_rate")] = Figure(s["rate"], "rate", first)
        elif view == "campaigns":
            for c in body["campaigns"]:
                out[(c["campaign_id"], "redeemed")] = Figure(c["redeemed"], "count")
        elif view == "capture":  # issue 18, point 4
            out[("", "entrants")] = Figure(body["entrants"], "count")
            out[("", "passers_by")] = Figure(body["passers_by"], "count")
            street = body["entrants"] + body["passers_by"]
            out[("", "capture_rate")] = Figure(body["capture_rate"], "rate", street)
        elif view == "loyalty":
            for k in ("shoppers", "new", "repeat", "trips"):
                out[("", k)] = Figure(body[k], "count")
            out[("", "repeat_share")] = Figure(body["repeat_share"], "rate", body["shoppers"])
        return out

    # -- helpers ----------------------------------------------------------------------------

    def _now(self, store: str) -> int:
        last = self._reads.extent(store).last_ms
        return last if last is not None else self._clock_ms()

    def _read_stays(
        self, plan: StorePlan, from_ms: int, to_ms: int, exclude: list[str] | tuple[str, ...]
    ) -> Stays:
        beacons = [b.device for b in plan.beacons]
        return self._reads.stay_columns(
            plan.id, from_ms, to_ms, [z.id for z in plan.zones], [*beacons, *exclude]
        )


def _last_entries(stays: Stays, before_ms: int) -> dict[str, int]:
    chosen = stays.entered_ms < before_ms
    out: dict[str, int] = {}
    for d, at in zip(stays.device[chosen].tolist(), stays.entered_ms[chosen].tolist(), strict=True):
        name = stays.devices[d]
        if at > out.get(name, -1):
            out[name] = at
    return out


def _order(plan: StorePlan, zone: str) -> int:
    ids = [z.id for z in plan.zones]
    return ids.index(zone) if zone in ids else len(ids)


def _summary(changed: list[dict[str, Any]], rows: list[dict[str, Any]]) -> str:
    tested = [r for r in rows if r["within_noise"] is not None]
    if not tested:
        return "no figure of this view has a noise test"
    if not changed:
        return f"every difference of the {len(tested)} tested figures is within noise"
    named = ", ".join(
        f"{r['zone'] or 'store'} {r['metric']} {r['note'].split(',')[0]}" for r in changed[:5]
    )
    more = f" and {len(changed) - 5} more" if len(changed) > 5 else ""
    return f"{len(changed)} of {len(tested)} tested figures changed beyond noise: {named}{more}"


def _difference_dict(d: Difference) -> dict[str, Any]:
    return {
        "a": _round(d.a),
        "b": _round(d.b),
        "difference": _round(d.difference),
        "relative": None if d.relative is None else round(d.relative, 4),
        "z": None if d.z is None else round(d.z, 2),
        "within_noise": d.within_noise,
        "note": d.note,
    }


def _day_dict(day: tuple[int, int, float | None, int]) -> dict[str, Any]:
    return {
        "visitors": day[0],
        "trips": day[1],
        "median_visit_s": day[2],
        "purchased_trips": day[3],
        "conversion": _conv(day),
    }


def _conv(day: tuple[int, int, float | None, int]) -> float | None:
    return _ratio(day[3], day[1])


def _round(v: float | None) -> float | None:
    return None if v is None else round(float(v), 4)


def _ints(values: Any) -> np.ndarray[Any, np.dtype[np.int64]]:
    return np.fromiter(values, dtype=np.int64)


def _opt(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else round(float(value), 3)


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


# -- CSV ------------------------------------------------------------------------------


def insight_csv(view: str, body: Mapping[str, Any]) -> str:
    """One insight answer as one CSV table with a header row (docs/analytics.md)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for row in _csv_rows(view, body):
        writer.writerow(["" if v is None else v for v in row])
    return out.getvalue()


def _csv_rows(view: str, body: Mapping[str, Any]) -> list[list[Any]]:
    diff_fields = ["a", "b", "difference", "relative", "z", "within_noise", "note"]
    if view == "headline":
        rows: list[list[Any]] = [
            ["figure", "reference", "now", "difference", "relative", "z", "within_noise", "note"]
        ]
        rows += [[c["figure"], *(c[f] for f in diff_fields)] for c in body["comparisons"]]
        return rows
    if view == "compare":
        rows = [["zone", "metric", *diff_fields]]
        rows += [[r["zone"], r["metric"], *(r[f] for f in diff_fields)] for r in body["rows"]]
        return rows
    if view == "loyalty":
        rows = [["section", "bin", "shoppers"]]
        rows += [["visitors", k, body[k]] for k in ("new", "repeat")]
        rows += [["frequency", f["trips"], f["shoppers"]] for f in body["frequency"]]
        rows += [["recency", r["days_since_previous"], r["shoppers"]] for r in body["recency"]]
        return rows
    if view == "staff":
        fields = [
            "device",
            "label",
            "reason",
            "days_present",
            "long_days",
            "mean_daily_hours",
            "back_office_s",
        ]
        return [fields, *([d[f] for f in fields] for d in body["devices"])]
    raise ValueError(f"unknown insight view {view!r}")
