"""``omnizone report``'s floor heatmap (issue 18 point 6): the CSV the API's
``GET /stores/{store}/heatmap?format=csv`` answers, and a PNG of the cells
over the floor plan's zone outlines."""

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Polygon as PolygonPatch

from omnizone.server.service.heatmap import HeatmapService, heatmap_csv
from omnizone.store import StorePlan, geometry

CELL_M = 1.0


def write_heatmap(
    heatmap: HeatmapService, plan: StorePlan, from_ms: int, to_ms: int, out: Path
) -> list[str]:
    """The heatmap of [from_ms, to_ms) at 1 m cells as CSV and PNG; the file names."""
    body = heatmap.heatmap(plan.id, from_ms, to_ms, cell_m=CELL_M)
    csv_name = f"{plan.id}-heatmap.csv"
    (out / csv_name).write_text(heatmap_csv(body), encoding="utf-8")
    png_name = f"{plan.id}-heatmap.png"
    heatmap_chart(plan, body).savefig(out / png_name, dpi=120)
    return [csv_name, png_name]


def heatmap_chart(plan: StorePlan, body: Mapping[str, Any]) -> Figure:
    """Shopper-minutes per cell over the floor, zones outlined."""
    floor = plan.store.floor
    cell = body["cell_m"]
    grid = np.zeros((body["rows"], body["columns"]))
    for ix, iy, seconds in body["cells"]:
        grid[iy, ix] = seconds / 60
    figure = Figure(figsize=(9.0, 9.0 * floor.depth_m / floor.width_m + 1.2))
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    shown = np.ma.masked_where(grid <= 0, grid)
    image = axes.imshow(
        shown,
        cmap="inferno_r",
        origin="lower",
        extent=(0, body["columns"] * cell, 0, body["rows"] * cell),
        interpolation="nearest",
    )
    for zone in plan.zones:
        axes.add_patch(
            PolygonPatch(zone.polygon, closed=True, fill=False, edgecolor="#333333", lw=0.8)
        )
        x, y = geometry.centroid(zone.polygon)
        axes.text(x, y, zone.name, ha="center", va="center", fontsize=7, color="#1f2933")
    axes.set_xlim(0, floor.width_m)
    axes.set_ylim(0, floor.depth_m)
    axes.set_aspect("equal")
    axes.set_xlabel("m along the street front")
    axes.set_ylabel("m into the store")
    figure.colorbar(image, ax=axes, label=f"shopper-minutes per {cell:g} m cell")
    tz = ZoneInfo(body["timezone"])

    def iso(ms: int) -> str:
        return datetime.fromtimestamp(ms / 1000, tz).isoformat(timespec="seconds")

    axes.set_title(
        f"{plan.id}: floor heatmap\n{iso(body['from_ms'])} to {iso(body['to_ms'])}", fontsize=10
    )
    figure.tight_layout()
    return figure
