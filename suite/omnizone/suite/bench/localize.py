"""``omnizone bench localize``: how many sightings per second the localizer core takes.

A synthetic store of the requested size (a grid of 5 m × 5 m zones, anchors
spread evenly over it, the path-loss radio map), devices placed at random in
zones and readings drawn from the map. Each window goes through
``StoreLocalizer.update``: likelihood, forward step, hysteresis and the
decision list for every device. A *sighting* is one anchor hearing one
device in one window (a non-NaN reading); ``cells_per_s`` also counts the
silent device × anchor pairs, which cost the same.

The measurement runs in a fresh ``python -m omnizone.suite.bench.localize``
with BLAS pinned to one thread (OMP/OpenBLAS/MKL) and is timed with that
process's CPU clock, so the figure is per core even on a shared machine
(``wall_s`` is the wall time of the same run, and the ``wall_*`` figures are
computed from it: on a shared machine they are lower, since other processes
hold the core part of the time). ``--model grid``, the default,
is the production localizer (``StoreLocalizer.on_grid`` with its defaults).
"""

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from omnizone.server.domain.localize.localizer import StoreLocalizer
from omnizone.server.domain.localize.radio_map import RadioMap
from omnizone.store import StorePlan

ZONE_SIZE_M = 5.0
#: Linear means the cost per device stays within this factor across sizes. Not
#: 1.0: fixed per-window costs weigh on small sizes, and once the arrays outgrow
#: the CPU caches each device costs a little more.
LINEAR_SPREAD_MAX = 2.0
_THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
)


def synthetic_plan(zones: int, anchors: int) -> StorePlan:
    """A grid store: ``zones`` square zones, ``anchors`` gateways on an even grid."""
    if zones < 1 or anchors < 1:
        raise ValueError("zones and anchors must be positive")
    columns = math.ceil(math.sqrt(zones))
    rows = math.ceil(zones / columns)
    width, depth = columns * ZONE_SIZE_M, rows * ZONE_SIZE_M
    zone_list = []
    for i in range(zones):
        x0, y0 = (i % columns) * ZONE_SIZE_M, (i // columns) * ZONE_SIZE_M
        x1, y1 = x0 + ZONE_SIZE_M, y0 + ZONE_SIZE_M
        zone_list.append(
            {
                "id": f"z{i:03d}",
                "name": f"Zone {i}",
                "kind": "entrance" if i == 0 else "sales",
                "polygon": [[x0, y0], [x1, y0], [x1, y1], [x0, y1]],
            }
        )
    a_columns = math.ceil(math.sqrt(anchors * width / depth))
    a_rows = math.ceil(anchors / a_columns)
    gateways = []
    for j in range(anchors):
        x = (j % a_columns + 0.5) * width / a_columns
        y = (j // a_columns + 0.5) * depth / a_rows
        column = min(int(x // ZONE_SIZE_M), columns - 1)
        row = min(int(y // ZONE_SIZE_M), rows - 1)
        zone = min(row * columns + column, zones - 1)
        gateways.append({"id": f"gw{j:03d}", "position": [x, y], "zone": f"z{zone:03d}"})
    return StorePlan.model_validate(
        {
            "store": {
                "id": "bench",
                "name": "Bench",
                "floor": {"width_m": width, "depth_m": depth},
            },
            "zones": zone_list,
            "gateways": gateways,
        }
    )


def synthetic_windows(
    radio: RadioMap, devices: int, windows: int, seed: int = 7
) -> list[NDArray[np.float64]]:
    """Readings drawn from the radio map; each device stays in one random place
    (a zone, or a grid cell for the grid model)."""
    rng = np.random.default_rng(seed)
    zone = rng.integers(0, len(radio.zones), size=devices)
    mean, sigma, p = radio.mean_dbm[zone], radio.sigma_db[zone], radio.p_heard[zone]
    result = []
    for _ in range(windows):
        rssi = mean + sigma * rng.standard_normal(mean.shape)
        rssi[rng.random(mean.shape) >= p] = np.nan
        result.append(rssi)
    return result


def measure(
    devices: int,
    anchors: int,
    zones: int,
    windows: int,
    sizes: Sequence[int],
    repeats: int = 3,
    model: str = "grid",
) -> dict[str, Any]:
    """In this process: each size on a fresh localizer, one warm-up window, then timed."""
    plan = synthetic_plan(zones, anchors)
    template = (
        StoreLocalizer.on_grid(plan)
        if model == "grid"
        else StoreLocalizer.for_store(plan, points_per_zone=50)
    )
    sizes = sorted({min(max(1, s), devices) for s in sizes} | {devices})
    readings = synthetic_windows(template.radio, devices, windows + 1)
    names = [f"eid:{i:016x}" for i in range(devices)]
    scaling = []
    for size in sizes:
        window_names = names[:size]
        batches = [r[:size] for r in readings]
        sightings = sum(int((~np.isnan(b)).sum()) for b in batches[1:])
        cells = size * anchors * windows
        best_cpu = math.inf
        wall = 0.0
        for _ in range(repeats):  # best of a few runs: the least disturbed one
            localizer = template.blank()
            localizer.update(0, window_names, batches[0])  # warm-up: allocates the rows
            started = time.process_time()
            wall_started = time.perf_counter()
            for w in range(1, windows + 1):
                localizer.update(w * 1000, window_names, batches[w])
            cpu = time.process_time() - started
            if cpu < best_cpu:
                best_cpu, wall = cpu, time.perf_counter() - wall_started
        seconds = max(best_cpu, 1e-9)
        wall = max(wall, 1e-9)
        scaling.append(
            {
                "devices": size,
                # CPU time of this process (one core): the per-core figures
                "sightings_per_s": round(sightings / seconds),
                "cells_per_s": round(cells / seconds),
                "seconds_per_window": round(seconds / windows, 6),
                "us_per_device_window": round(1e6 * seconds / windows / size, 3),
                # wall time of the same run: lower when other processes hold the core
                "wall_s": round(wall, 4),
                "wall_sightings_per_s": round(sightings / wall),
                "wall_us_per_device_window": round(1e6 * wall / windows / size, 3),
            }
        )
    largest = scaling[-1]
    exponent = _scaling_exponent(scaling)
    per_device = [row["us_per_device_window"] for row in scaling]
    spread = round(max(per_device) / max(min(per_device), 1e-9), 3)
    return {
        "sightings_per_s": largest["sightings_per_s"],
        "us_per_device_window": largest["us_per_device_window"],
        "wall_sightings_per_s": largest["wall_sightings_per_s"],
        "wall_us_per_device_window": largest["wall_us_per_device_window"],
        "clock": "process_time",
        "cells_per_s": largest["cells_per_s"],
        "heard_fraction": round(float(np.mean([(~np.isnan(r)).mean() for r in readings[1:]])), 4),
        "scaling": scaling,
        # cost ~ devices ** exponent, fitted over the sizes (1.0 is linear)
        "scaling_exponent": exponent,
        "per_device_cost_spread": spread,
        "linear": bool(spread <= LINEAR_SPREAD_MAX),
        "devices": devices,
        "anchors": anchors,
        "zones": zones,
        "model": model,
        "states": template.transition.shape[0],
        "windows": windows,
    }


def _scaling_exponent(scaling: list[dict[str, Any]]) -> float:
    """Slope of log(seconds per window) over log(devices), least squares."""
    if len(scaling) < 2:
        return 1.0
    x = np.log([row["devices"] for row in scaling])
    y = np.log([max(row["seconds_per_window"], 1e-9) for row in scaling])
    return round(float(np.polyfit(x, y, 1)[0]), 3)


def run_localize_bench(
    devices: int = 5000,
    anchors: int = 40,
    zones: int = 30,
    windows: int = 20,
    sizes: Sequence[int] = (500, 1000, 2000, 5000),
    model: str = "grid",
) -> dict[str, Any]:
    """Run the measurement in a fresh interpreter on one BLAS thread; one JSON-able dict."""
    if min(devices, anchors, zones, windows) <= 0:
        raise ValueError("devices, anchors, zones and windows must be positive")
    if model not in ("grid", "zone"):
        raise ValueError(f"model must be grid or zone, not {model!r}")
    command = [
        sys.executable,
        "-m",
        "omnizone.suite.bench.localize",
        "--devices",
        str(devices),
        "--anchors",
        str(anchors),
        "--zones",
        str(zones),
        "--windows",
        str(windows),
        "--sizes",
        ",".join(str(s) for s in sizes),
        "--model",
        model,
    ]
    env = {**os.environ, **dict.fromkeys(_THREAD_VARIABLES, "1")}
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=600, check=False, env=env
    )
    if done.returncode != 0:
        raise RuntimeError(f"localize bench process failed ({done.returncode}): {done.stderr}")
    measured: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return {
        **measured,
        "threads": 1,
        "window_ms": 1000,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="localizer core benchmark (one process)")
    parser.add_argument("--devices", type=int, default=5000)
    parser.add_argument("--anchors", type=int, default=40)
    parser.add_argument("--zones", type=int, default=30)
    parser.add_argument("--windows", type=int, default=20)
    parser.add_argument("--sizes", default="500,1000,2000,5000")
    parser.add_argument("--model", choices=("grid", "zone"), default="grid")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    result = measure(args.devices, args.anchors, args.zones, args.windows, sizes, model=args.model)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
