"""``omnizone bench stream``: the cost of one alert evaluation over a crowd of
open stays, and the event stream's throughput through the outbox (issue 18
points 7, 8). CPU seconds (``time.process_time``), so the figure is a per-core
cost on a shared machine; wall seconds beside them."""

import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from omnizone.paths import shipped_config
from omnizone.server import bootstrap
from omnizone.server.adapters.event_db import EventRepository
from omnizone.server.domain.analytics.alerts import AlertRules, GatewayState, evaluate
from omnizone.server.domain.analytics.event_stream import make_event
from omnizone.server.domain.analytics.stays import Stays
from omnizone.server.entrypoints.events_api import sse
from omnizone.server.service.event_stream import BATCH, EventStream
from omnizone.store import load_store


def _alerts(shoppers: int, runs: int, seed: int) -> dict[str, Any]:
    plan = load_store(shipped_config("stores/rivoli.yaml"))
    zones = [z.id for z in plan.zones]
    rng = random.Random(seed)
    now = 1_800_000_000_000
    rows = []
    for n in range(shoppers):  # a day's closed stays, and one open stay per shopper now
        device = f"shopper-{n:06d}"
        for k in range(3):
            start = now - rng.randint(600_000, 8 * 3_600_000)
            rows.append((device, rng.choice(zones), start, start + 300_000, "visit"))
            del k
        rows.append((device, rng.choice(zones), now - rng.randint(0, 1_800_000), now, "open"))
    stays = Stays.from_rows(rows, zones)
    rules = AlertRules(
        zone_capacity={z: max(1, shoppers // len(zones)) for z in zones},
        checkout_queue=5,
        dwell_s={z: 900.0 for z in zones},
    )
    gateways = [GatewayState(g.id, now - 5_000) for g in plan.gateways]
    checkout = [z.id for z in plan.zones if str(z.kind) == "checkout"]
    cpu, found = [], []
    for _ in range(runs):
        t0 = time.process_time()
        found = evaluate(stays, zones, checkout, gateways, rules, now)
        cpu.append(time.process_time() - t0)
    return {
        "shoppers_in_store": shoppers,
        "stays": len(rows),
        "zones": len(zones),
        "runs": runs,
        "evaluate_cpu_ms_median": round(statistics.median(cpu) * 1000, 2),
        "evaluate_cpu_ms_max": round(max(cpu) * 1000, 2),
        "active": len(found),
    }


def _stream(events: int, database_url: str | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        url = database_url or f"sqlite:///{Path(tmp) / 'stream.db'}"
        storage = bootstrap.open_storage(url)
        try:
            outbox = EventRepository(storage.sql.engine)
            store = "paris-rivoli"
            made = [
                make_event(
                    store, "zone_entered", 1_800_000_000_000 + n, f"shopper-{n % 997}", zone="shoes"
                )
                for n in range(events)
            ]
            t0, c0 = time.perf_counter(), time.process_time()
            for i in range(0, events, BATCH):
                outbox.add(made[i : i + BATCH], stored_ms=1)
            write_s, write_cpu = time.perf_counter() - t0, time.process_time() - c0
            stream = EventStream(lambda: [store], outbox, identified=lambda s: s.endswith("1"))
            t0, c0 = time.perf_counter(), time.process_time()
            cursor, read, size = None, 0, 0
            while True:
                page = stream.after(store, cursor, BATCH)
                if not page:
                    break
                for event_cursor, name, message in page:
                    size += len(sse(event_cursor, name, message))
                read += len(page)
                cursor = page[-1][0]
            read_s, read_cpu = time.perf_counter() - t0, time.process_time() - c0
        finally:
            storage.close()
    return {
        "events": events,
        "database": url.split(":")[0],
        "write_events_per_s": round(events / write_s),
        "write_cpu_us_per_event": round(write_cpu / events * 1e6, 1),
        "read_sse_events_per_s": round(read / read_s),
        "read_cpu_us_per_event": round(read_cpu / read * 1e6, 1),
        "sse_bytes_per_event": round(size / read),
        "read_all": read == events,
    }


def run_stream_bench(
    shoppers: int = 500, events: int = 20_000, runs: int = 20, database_url: str | None = None
) -> dict[str, Any]:
    return {"alerts": _alerts(shoppers, runs, seed=7), "stream": _stream(events, database_url)}
