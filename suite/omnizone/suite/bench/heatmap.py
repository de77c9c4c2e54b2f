"""The floor heatmap's part of ``omnizone bench analytics`` (issue 18 point 6).

``fill_floor_cells`` writes, for a simulated week's stays, the hourly cell
totals the server's ``FloorPresence`` would have written: each stay's
seconds spread over a few 0.5 m cells of its zone (a short walk around a
spot near the zone's display, so zones have hot spots). Busy hours fill
most of the floor's cells, which is the table's worst case. Then
``time_heatmap`` times the heatmap over the range (1 m and 0.5 m cells, and
a comparison of its two halves) through the service, and once over HTTP.
"""

import random
import statistics
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, insert

from omnizone.server.adapters.heatmap_db import FloorCellRepository, FloorCellRow
from omnizone.server.domain.analytics import heatmap as core
from omnizone.store import StorePlan

HOUR_MS = 3_600_000
CELLS_PER_STAY = 6


def fill_floor_cells(
    engine: Engine,
    plan: StorePlan,
    visits: list[dict[str, Any]],
    seed: int = 7,
    exclude: set[str] | frozenset[str] = frozenset(),
) -> int:
    """Write the hourly (and daily) cells of ``visits`` (the week's stay rows) but those of
    the devices in ``exclude``; the rows written."""
    FloorCellRepository(engine)  # its table, when missing
    rng = random.Random(seed)
    floor = plan.store.floor
    base = core.grid(floor.width_m, floor.depth_m, core.BASE_CELL_M)
    zone_of = core.zone_of_cells(base, [z.polygon for z in plan.zones])
    cells_in: dict[str, list[tuple[int, int]]] = {z.id: [] for z in plan.zones}
    for iy in range(base.rows):
        for ix in range(base.columns):
            k = int(zone_of[iy, ix])
            if k >= 0:
                cells_in[plan.zones[k].id].append((ix, iy))
    spots = {z: rng.choice(c) for z, c in cells_in.items() if c}
    totals: dict[tuple[int, int, int], float] = {}
    for v in visits:
        if v["device"] in exclude:
            continue
        cells = cells_in.get(v["zone"])
        if not cells:
            continue
        seconds = (v["left_ms"] - v["entered_ms"]) / 1000
        hour = v["entered_ms"] - v["entered_ms"] % HOUR_MS
        sx, sy = spots[v["zone"]]
        n = max(1, min(CELLS_PER_STAY, round(seconds / 5)))
        for _ in range(n):
            # Around the display half the time, anywhere in the zone otherwise.
            if rng.random() < 0.5:
                x, y = sx + round(rng.gauss(0, 2)), sy + round(rng.gauss(0, 2))
                if zone_of[min(max(y, 0), base.rows - 1), min(max(x, 0), base.columns - 1)] < 0:
                    x, y = sx, sy
            else:
                x, y = rng.choice(cells)
            key = (hour, min(max(x, 0), base.columns - 1), min(max(y, 0), base.rows - 1))
            totals[key] = totals.get(key, 0.0) + seconds / n
    days: dict[tuple[int, int, int], float] = {}
    for (h, x, y), s in totals.items():
        key = (h - h % (24 * HOUR_MS), x, y)
        days[key] = days.get(key, 0.0) + s
    rows = [
        {"store": plan.id, "span_h": span, "start_ms": t, "ix": x, "iy": y, "seconds": round(s, 3)}
        for span, found in ((1, totals), (24, days))
        for (t, x, y), s in found.items()
    ]
    with engine.begin() as conn:
        for start in range(0, len(rows), 50_000):
            conn.execute(insert(FloorCellRow), rows[start : start + 50_000])
    return len(rows)


def time_heatmap(
    heatmap: Callable[..., dict[str, Any]],
    store: str,
    from_ms: int,
    to_ms: int,
    runs: int,
) -> dict[str, dict[str, Any]]:
    """Each call ``runs`` times: wall and CPU (process) time, median and max."""
    half = from_ms + (to_ms - from_ms) // 2
    calls: dict[str, Callable[[], dict[str, Any]]] = {
        "heatmap_1m": lambda: heatmap(store, from_ms, to_ms, cell_m=1.0),
        "heatmap_0.5m": lambda: heatmap(store, from_ms, to_ms, cell_m=0.5),
        "heatmap_compare_halves": lambda: heatmap(
            store, half, to_ms, cell_m=1.0, compare=(from_ms, half)
        ),
    }
    out: dict[str, dict[str, Any]] = {}
    for name, call in calls.items():
        wall, cpu = [], []
        body: dict[str, Any] = {}
        for _ in range(runs):
            t0, c0 = time.perf_counter(), time.process_time()
            body = call()
            wall.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        out[name] = {
            "median_ms": round(statistics.median(wall) * 1000, 1),
            "max_ms": round(max(wall) * 1000, 1),
            "cpu_median_ms": round(statistics.median(cpu) * 1000, 1),
            "cells": len(body["cells"]),
        }
    return out
