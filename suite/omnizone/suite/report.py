"""``omnizone report``: the analytics views of one store and range as files.

One CSV per view, the same bytes the API's ``format=csv`` answers, plus PNG
charts for people who want a picture: presence on the floor plan, the dwell
distribution per zone and the transition matrix (matplotlib figures on the
Agg canvas, without pyplot: no display, no global state). It reads the
database the server writes, with the same settings (docs/analytics.md).
"""

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Polygon as PolygonPatch

from omnizone.server.domain.analytics.alerts import AlertEpisode
from omnizone.server.entrypoints.alerts_api import history_csv
from omnizone.server.entrypoints.analytics_api import View, view_answer
from omnizone.server.service.analytics import (
    MAX_RANGE_DAYS,
    AnalyticsService,
    BadRange,
    to_csv,
)
from omnizone.server.service.heatmap import HeatmapService
from omnizone.server.service.insight import InsightService, insight_csv
from omnizone.server.service.predictions import PredictionService, predictions_csv
from omnizone.store import StorePlan, geometry

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class ReportError(ValueError):
    """Bad input to the report; the text says which option and why."""


def parse_time(value: str, timezone: str, option: str) -> int:
    """An ISO date or date-time as epoch ms; without an offset it is read in
    the store's timezone, and a date alone is its local midnight."""
    zone = ZoneInfo(timezone)
    try:
        if _DATE.match(value):
            day = date.fromisoformat(value)
            moment = datetime.combine(day, time(0), zone)
        else:
            moment = datetime.fromisoformat(value)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=zone)
    except ValueError:
        raise ReportError(
            f"{option}: {value!r} is not an ISO date or date-time "
            "(e.g. 2026-11-21 or 2026-11-21T14:00)"
        ) from None
    return round(moment.astimezone(UTC).timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class ReportResult:
    store: str
    from_ms: int
    to_ms: int
    files: list[str]

    timezone: str = "UTC"

    def as_json(self) -> dict[str, Any]:
        return {
            "store": self.store,
            "from_ms": self.from_ms,
            "to_ms": self.to_ms,
            "from": _iso(self.from_ms, self.timezone),
            "to": _iso(self.to_ms, self.timezone),
            "files": self.files,
        }


def missing_database(url: str) -> str | None:
    """Why ``url`` names no database to report on (a SQLite file that does not
    exist, or one in memory), or None. Opening one would create it empty."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return f"--database-url: {url!r} is not a SQLAlchemy URL (e.g. sqlite:///RUN/omnizone.db)"
    if not parsed.drivername.startswith("sqlite"):
        return None
    path = parsed.database
    if not path or path == ":memory:":
        return f"--database-url: {url} is an empty in-memory database; name the server's file"
    if not Path(path).is_file():
        return (
            f"--database-url: no database at {Path(path).resolve()} ({url}); give the server's "
            "database, e.g. --database-url sqlite:///RUN/omnizone.db after "
            "`omnizone demo --run-dir RUN`"
        )
    return None


def choose_store(plans: Mapping[str, StorePlan], service: AnalyticsService) -> str:
    """The store to report when none is named: the only one with stored data
    (or the only store there is); several: the caller must choose."""
    with_data = [s for s in sorted(plans) if service.index(s)["first_event_ms"] is not None]
    if len(with_data) == 1:
        return with_data[0]
    if not with_data and len(plans) == 1:
        return next(iter(plans))
    known = ", ".join(with_data or sorted(plans)) or "none"
    raise ReportError(f"--store: the database holds several stores ({known}); name one")


def write_report(
    plans: Mapping[str, StorePlan],
    service: AnalyticsService,
    store: str | None,
    start: str | None,
    end: str | None,
    out: Path,
    *,
    insight: InsightService | None = None,
    alert_history: Callable[[str, int, int], list[AlertEpisode]] | None = None,
    heatmap: HeatmapService | None = None,
    predictions: PredictionService | None = None,
) -> ReportResult:
    """Every view of ``store`` over [start, end) into ``out``: CSVs, PNGs, summary.json.
    ``service`` answers the views as the API does (``bootstrap.build_reports``).
    No store: the database's only one; no ``start``/``end``: all of its data
    (at most the last ``MAX_RANGE_DAYS`` days)."""
    if store is None:
        store = choose_store(plans, service)
    plan = plans.get(store)
    if plan is None:
        known = ", ".join(sorted(plans)) or "none"
        raise ReportError(f"--store: unknown store {store!r} (known: {known})")
    tz = plan.store.timezone
    index = service.index(store)
    first, last = index["first_event_ms"], index["last_event_ms"]
    if (start is None or end is None) and first is None:
        raise ReportError(
            f"--store: the database holds no visits of {store!r}, so there is no range to "
            "default to; give --from and --to, or point --database-url at the server's database"
        )
    to_ms = parse_time(end, tz, "--to") if end is not None else int(last or 0) + 1
    if start is not None:
        from_ms = parse_time(start, tz, "--from")
    else:
        from_ms = max(int(first or 0), to_ms - MAX_RANGE_DAYS * 86_400_000)
    if from_ms >= to_ms:
        raise ReportError(f"--to: {_iso(to_ms, tz)} must be after --from {_iso(from_ms, tz)}")
    try:
        service.resolve_range(store, from_ms, to_ms)
    except BadRange as error:
        raise ReportError(f"--to: {error}") from None
    out.mkdir(parents=True, exist_ok=True)
    files: list[str] = []
    answers: dict[View, dict[str, Any]] = {}
    for view in View:
        answer = view_answer(service, store, view, from_ms, to_ms)
        answers[view] = answer
        name = f"{store}-{view.value}.csv"
        (out / name).write_text(to_csv(view.value, answer), encoding="utf-8")
        files.append(name)
    if insight is not None:  # issue 18: the same tables as the insight API's format=csv
        tables = {
            "headline": insight.headline(store, to_ms - 1),
            "compare": insight.compare(store, "visits", None, (None, None), (from_ms, to_ms)),
            "loyalty": insight.loyalty(store, from_ms, to_ms),
            "staff": insight.staff_view(store, to_ms),
        }
        for kind, body in tables.items():
            name = f"{store}-{kind}.csv"
            (out / name).write_text(insight_csv(kind, body), encoding="utf-8")
            files.append(name)
    if alert_history is not None:  # issue 18 point 7: the alert log, raised to cleared
        episodes = [e.as_json() for e in alert_history(store, from_ms, to_ms)]
        name = f"{store}-alert-history.csv"
        (out / name).write_text(history_csv(episodes), encoding="utf-8")
        files.append(name)
    if heatmap is not None:  # issue 18 point 6: the floor heatmap, CSV and PNG
        from omnizone.suite.report_heatmap import write_heatmap

        files += write_heatmap(heatmap, plan, from_ms, to_ms, out)
    if predictions is not None:  # issue 18 point 9: as of the range's end, as the API's csv
        forecasts = {
            "footfall-forecast": ("footfall", predictions.footfall(store, to_ms)),
            "next-products": ("products", predictions.products(store, to_ms, limit=1000)),
        }
        for suffix, (kind, body) in forecasts.items():
            name = f"{store}-{suffix}.csv"
            (out / name).write_text(predictions_csv(kind, body), encoding="utf-8")
            files.append(name)
    charts = {
        f"{store}-presence.png": presence_chart(plan, answers[View.PRESENCE]),
        f"{store}-dwell.png": dwell_chart(answers[View.DWELL]),
        f"{store}-transitions.png": transitions_chart(answers[View.TRANSITIONS]),
    }
    for name, figure in charts.items():
        figure.savefig(out / name, dpi=120)
        files.append(name)
    result = ReportResult(store, from_ms, to_ms, files, tz)
    (out / "summary.json").write_text(json.dumps(result.as_json(), indent=2) + "\n")
    return result


# -- charts ---------------------------------------------------------------------------


def _title(answer: Mapping[str, Any], what: str) -> str:
    tz = answer["timezone"]
    return (
        f"{answer['store']}: {what}\n{_iso(answer['from_ms'], tz)} to {_iso(answer['to_ms'], tz)}"
    )


def presence_chart(plan: StorePlan, answer: Mapping[str, Any]) -> Figure:
    """The floor plan, each zone coloured by its shopper-hours in the range."""
    hours = {z["zone"]: z["presence_s"] / 3600 for z in answer["zones"]}
    top = max(hours.values(), default=0.0) or 1.0
    cmap = colormaps["YlOrRd"]
    norm = Normalize(vmin=0, vmax=top)
    floor = plan.store.floor
    width = 9.0
    figure = _figure(width, width * floor.depth_m / floor.width_m + 1.2)
    axes = figure.subplots()
    for zone in plan.zones:
        value = hours.get(zone.id, 0.0)
        axes.add_patch(
            PolygonPatch(
                zone.polygon, closed=True, facecolor=cmap(norm(value)), edgecolor="#333333"
            )
        )
        x, y = geometry.centroid(zone.polygon)
        left, _bottom, right, _top = geometry.bounding_box(zone.polygon)
        name = zone.name.replace(" ", "\n") if right - left < 0.15 * floor.width_m else zone.name
        axes.text(x, y, f"{name}\n{value:.1f} h", ha="center", va="center", fontsize=8)
    axes.set_xlim(0, floor.width_m)
    axes.set_ylim(0, floor.depth_m)
    axes.set_aspect("equal")
    axes.set_xlabel("m along the street front")
    axes.set_ylabel("m into the store")
    figure.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=axes, label="shopper-hours")
    axes.set_title(_title(answer, "presence"), fontsize=10)
    figure.tight_layout()
    return figure


def dwell_chart(answer: Mapping[str, Any]) -> Figure:
    """One bar chart of the dwell distribution per zone."""
    zones = answer["zones"]
    columns = 2
    rows = max(1, -(-len(zones) // columns))
    figure = _figure(11, 2.1 * rows + 0.8)
    grid = figure.subplots(rows, columns, sharex=True, squeeze=False)
    labels = answer["labels"]
    for k, axes in enumerate(grid.flat):
        if k >= len(zones):
            axes.set_visible(False)
            continue
        zone = zones[k]
        axes.bar(range(len(labels)), zone["counts"], color="#3b7dd8")
        mean = "-" if zone["mean_s"] is None else f"{zone['mean_s']:.0f} s"
        axes.set_title(f"{zone['name']}: {zone['visits']} visits, mean {mean}", fontsize=9)
        axes.tick_params(labelsize=7)
        axes.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    figure.suptitle(_title(answer, "dwell of visits per zone"), fontsize=10)
    figure.tight_layout()
    return figure


def transitions_chart(answer: Mapping[str, Any]) -> Figure:
    """The zone-to-zone move counts as a heatmap, street first."""
    names = answer["names"]
    matrix = answer["matrix"]
    figure = _figure(9, 8)
    axes = figure.subplots()
    image = axes.imshow(matrix, cmap="Blues")
    axes.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    axes.set_yticks(range(len(names)), names, fontsize=8)
    axes.set_xlabel("to")
    axes.set_ylabel("from")
    top = max((max(row) for row in matrix), default=0) or 1
    for i, row in enumerate(matrix):
        for j, n in enumerate(row):
            if n:
                colour = "white" if n > top / 2 else "black"
                axes.text(j, i, str(n), ha="center", va="center", fontsize=7, color=colour)
    figure.colorbar(image, ax=axes, label="moves")
    axes.set_title(_title(answer, f"transitions ({answer['trips']} trips)"), fontsize=10)
    figure.tight_layout()
    return figure


def _figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height))
    FigureCanvasAgg(figure)  # PNG through Agg, whatever backend pyplot would pick
    return figure


def _iso(ms: int, timezone: str) -> str:
    return datetime.fromtimestamp(ms / 1000, ZoneInfo(timezone)).isoformat(timespec="seconds")
