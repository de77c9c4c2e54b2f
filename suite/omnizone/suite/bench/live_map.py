"""``omnizone bench live-map``: the dashboard's live floor with hundreds of
shoppers, measured in a real browser.

What runs for real: the server (ingest with the grid localizer, SQLite, the
API, the live-map WebSocket and the dashboard's files) and Debian's headless
Chromium showing ``/dashboard/#/live``. What is shortcut: the radios, the
gateway processes and the broker. The simulator's shoppers walk the store
(``omnizone.sim``) and every second the ten gateways' BLE messages for that
window (the RSSI each gateway would measure, from the simulator's radio
model) go straight into the server's ``IngestService.handle``, the call the
MQTT adapter makes for each message. Every shopper carries an app phone,
registered with the server's shopper service (what ``POST /api/v1/shoppers``
calls; through HTTP, 600 registrations took a minute) with consent to
location analytics, that advertises rotating ids, so ingest resolves,
localizes and keeps visits exactly as in a store.

The page counts what it receives and paints (``window.__liveStats``,
``web/dashboard/js/live.js``): snapshots per second, render time, lag from
the server building a snapshot to the frame after it was drawn, snapshots
replaced before they were painted (the page never queues), snapshots the
server skipped for it, and main-thread tasks over 50 ms.
"""

import json
import secrets
import shutil
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from omnizone.contract import BleMessage, BleSighting, dump_message, topic_for
from omnizone.contract.ids import eid_key
from omnizone.contract.timefmt import wall_clock_ms
from omnizone.paths import shipped_config
from omnizone.sim.engine import SimClock, Simulation
from omnizone.sim.radio import receptions
from omnizone.sim.scenario import load_scenario
from omnizone.sim.shoppers import AppPhone
from omnizone.store import StorePlan, load_store

CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
#: Simulated seconds the shoppers walk before any gateway hears them: spread out.
SPREAD_S = 150
#: Windows fed as fast as ingest takes them before the paced run: the filter settles.
CATCH_UP_WINDOWS = 15
#: The page falls behind when the lag of what it receives grows faster than
#: this (100 ms over a 20 s run); a page that keeps up has a flat trend.
MAX_LAG_GROWTH_MS_PER_S = 5.0


def run_live_map_bench(
    shoppers: int = 500, seconds: float = 20.0, *, settle_s: float = 10.0
) -> dict[str, Any]:
    from omnizone.server.runtime import ServerRuntime
    from omnizone.server.settings import ServerSettings

    scenario = load_scenario(
        shipped_config("scenarios/quick.yaml"),
        duration_s=SPREAD_S + CATCH_UP_WINDOWS + settle_s + seconds + 600,
        shoppers={
            "initial_shoppers": shoppers,
            "max_shoppers": shoppers,
            "arrivals_per_minute": 120,  # refill to `shoppers` as trips end
            "zones_per_trip": [3, 6],
        },
    )
    store = load_store(scenario.store_file)
    api_key = secrets.token_urlsafe(24)
    with _temporary_directory() as folder:
        settings = ServerSettings(
            database_url=f"sqlite:///{folder / 'omnizone.db'}",
            mqtt_port=_closed_port(),  # no broker: messages go straight to ingest
            api_port=0,
            api_keys={api_key: ["read", "admin"]},
            campaign_files=[],
        )
        with ServerRuntime(settings, stores={store.id: store}) as server:
            phones = _register_phones(server.shoppers, store.id, shoppers + shoppers // 5)
            window_ms = scenario.window_ms
            now_ms = wall_clock_ms() // window_ms * window_ms
            clock = SimClock(now_ms - (SPREAD_S + CATCH_UP_WINDOWS) * 1000)
            simulation = Simulation(scenario, store, {}, clock, app_phones=phones)
            feeder = _Feeder(server.ingest, store, simulation)
            for _ in range(SPREAD_S * 1000 // scenario.tick_ms):
                simulation.step()  # walk, unheard
            while clock.now_ms < now_ms:
                feeder.window()  # catch up to the wall clock, as fast as ingest goes
            feeder.start()
            try:
                page_result = _measure_in_browser(
                    server.api_url, api_key, seconds=seconds, settle_s=settle_s
                )
            finally:
                feeder.stop()
            hub = server.dashboard.hub
            return {
                "shoppers": shoppers,
                "seconds": seconds,
                "feed": "simulated shoppers -> radio model -> gateway BLE messages -> "
                "IngestService.handle (no radios, gateway processes or broker)",
                "shoppers_walking_at_end": len(simulation.shoppers),
                "shoppers_with_app_at_end": sum(1 for s in simulation.shoppers if s.app),
                **page_result,
                "server_snapshot_interval_ms": round(hub.interval_s * 1000),
                "ingest_messages_per_s": round(feeder.messages / max(feeder.wall_s, 1e-9), 1),
                "ingest_ms_per_message_mean": round(
                    1000 * feeder.busy_s / max(feeder.messages, 1), 1
                ),
                "feeder_windows_late": feeder.late_windows,
                "started": datetime.now(UTC).replace(microsecond=0).isoformat(),
                "cpu_cores": _cores(),
            }


def _register_phones(shoppers: Any, store: str, count: int) -> list[AppPhone]:
    """App phones registered through the service (what POST /api/v1/shoppers
    and PUT /api/v1/me/consent call), with consent to location analytics."""
    from omnizone.server.domain.identity import Purpose

    phones = []
    for _ in range(count):
        made = shoppers.register(store)
        shoppers.set_consent(made.shopper_id, {Purpose.LOCATION_ANALYTICS: True})
        phones.append(AppPhone(made.shopper_id, made.eid, made.token))
    return phones


class _Feeder(threading.Thread):
    """Each wall second: step the shoppers through the window, work out what
    each gateway heard (two adverts per phone per window), hand ingest one BLE
    message per gateway."""

    def __init__(self, ingest: Any, store: StorePlan, simulation: Simulation) -> None:
        super().__init__(name="live-map-bench-feeder", daemon=True)
        self._ingest = ingest
        self._store = store
        self._simulation = simulation
        self._gateways = [g for g in store.gateways if g.ble]
        self._xy = np.array([g.position for g in self._gateways], dtype=np.float64)
        self._seq = dict.fromkeys((g.id for g in self._gateways), 0)
        self._rng = np.random.default_rng(simulation.scenario.seed)
        self._stopping = threading.Event()
        self.messages = 0
        self.busy_s = 0.0
        self.wall_s = 0.0
        self.late_windows = 0

    def stop(self) -> None:
        self._stopping.set()
        self.join()

    def run(self) -> None:
        self.messages, self.busy_s = 0, 0.0  # the paced run only, not the catch-up
        started = time.monotonic()
        window_s = self._simulation.scenario.window_ms / 1000
        next_at = started
        while not self._stopping.is_set():
            next_at += window_s
            delay = next_at - time.monotonic()
            if delay > 0:
                self._stopping.wait(delay)
            else:
                self.late_windows += 1
            if self._stopping.is_set():
                break
            self.window()
        self.wall_s = time.monotonic() - started

    def window(self) -> None:
        simulation = self._simulation
        scenario = simulation.scenario
        start_ms = simulation.clock.now_ms
        for _ in range(scenario.window_ms // scenario.tick_ms):
            simulation.step()
        end_ms = simulation.clock.now_ms
        walking = [s for s in simulation.shoppers if s.app is not None]
        if not walking:
            return
        xy = np.array([s.position for s in walking], dtype=np.float64)
        first, heard_first = receptions(xy, self._xy, scenario.radio, self._rng)
        second, heard_second = receptions(xy, self._xy, scenario.radio, self._rng)
        count = heard_first.astype(int) + heard_second.astype(int)
        total = np.where(heard_first, first, 0.0) + np.where(heard_second, second, 0.0)
        top = np.maximum(
            np.where(heard_first, first, -200.0), np.where(heard_second, second, -200.0)
        )
        keys = [eid_key(s.app.eid.eid(end_ms)) for s in walking if s.app is not None]
        received_ms = wall_clock_ms()
        for g, gateway in enumerate(self._gateways):
            rows = np.flatnonzero(count[:, g])
            items = [
                BleSighting(
                    device=keys[i],
                    window_start_ms=start_ms,
                    window_ms=end_ms - start_ms,
                    count=int(count[i, g]),
                    rssi_mean=round(float(np.clip(total[i, g] / count[i, g], -127, 20)), 1),
                    rssi_max=round(float(np.clip(top[i, g], -127, 20)), 1),
                )
                for i in rows.tolist()
            ]
            self._seq[gateway.id] += 1
            message = BleMessage(
                store=self._store.id,
                gateway=gateway.id,
                seq=self._seq[gateway.id],
                sent_ms=end_ms,
                items=items,
            )
            began = time.perf_counter()
            self._ingest.handle(
                topic_for(self._store.id, gateway.id, "ble"), dump_message(message), received_ms
            )
            self.busy_s += time.perf_counter() - began
            self.messages += 1


def _measure_in_browser(
    api_url: str, api_key: str, *, seconds: float, settle_s: float
) -> dict[str, Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as error:
        raise RuntimeError(
            "the live-map bench drives a browser: install playwright (pip install "
            "'omnizone[dev]') and Debian's chromium"
        ) from error
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        raise RuntimeError("chromium is not installed (apt install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_FLAGS
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.add_init_script(
                f"sessionStorage.setItem('omnizone.staff.key', {json.dumps(api_key)})"
            )
            page.goto(f"{api_url}/dashboard/#/live")
            page.wait_for_function(
                "window.__liveStats && window.__liveStats.painted > 0", timeout=60_000
            )
            time.sleep(settle_s)  # the page's first frames and the filter settle
            page.evaluate("window.__liveStats.reset()")
            started = time.monotonic()
            dots_seen: list[int] = []
            while time.monotonic() - started < seconds:
                time.sleep(1.0)
                dots_seen.append(int(page.evaluate("window.__liveStats.dots")))
            elapsed = time.monotonic() - started
            estimated = float(
                page.evaluate(
                    "document.querySelectorAll('.dot.estimated').length"
                    " / Math.max(1, document.querySelectorAll('[data-dot]').length)"
                )
            )
            stats: dict[str, Any] = page.evaluate(
                """() => { const s = window.__liveStats; return {
                    received: s.received, painted: s.painted, coalesced: s.coalesced,
                    seqGaps: s.seqGaps, longTasks: s.longTasks, longTaskMs: s.longTaskMs,
                    renderMs: s.renderMs, lagMs: s.lagMs, receiveLagMs: s.receiveLagMs,
                    buildMs: s.buildMs, receivedAt: s.receivedAt }; }"""
            )
        finally:
            browser.close()
    lag = stats["lagMs"]
    third = max(1, len(lag) // 3)
    lag_first, lag_last = _mean(lag[:third]), _mean(lag[-third:])
    arrived = np.asarray(stats["receivedAt"], dtype=np.float64)
    gaps = np.diff(arrived) if arrived.size > 1 else np.array([])
    # A page that falls behind handles each message later than the one before:
    # the delay from the server building a snapshot to the page taking it grows.
    slope = (
        float(np.polyfit(arrived / 1000, np.asarray(stats["receiveLagMs"], float), 1)[0])
        if arrived.size > 2
        else 0.0
    )
    growing = slope > MAX_LAG_GROWTH_MS_PER_S
    per_s = stats["received"] / elapsed
    return {
        "measured_s": round(elapsed, 1),
        "dots_on_map_min": min(dots_seen) if dots_seen else 0,
        "dots_on_map_max": max(dots_seen) if dots_seen else 0,
        "dots_at_localizer_position_share": round(estimated, 3),
        "snapshots_received": stats["received"],
        "snapshots_painted": stats["painted"],
        "updates_per_s": round(per_s, 2),
        "painted_per_s": round(stats["painted"] / elapsed, 2),
        "max_gap_between_snapshots_ms": round(float(gaps.max()), 1) if gaps.size else None,
        "render_ms_p50": _pct(stats["renderMs"], 50),
        "render_ms_p95": _pct(stats["renderMs"], 95),
        "render_ms_max": _pct(stats["renderMs"], 100),
        "lag_to_paint_ms_p50": _pct(lag, 50),
        "lag_to_paint_ms_p95": _pct(lag, 95),
        "lag_to_paint_ms_max": _pct(lag, 100),
        "lag_to_paint_ms_first_third_mean": lag_first,
        "lag_to_paint_ms_last_third_mean": lag_last,
        "receive_lag_ms_p50": _pct(stats["receiveLagMs"], 50),
        "receive_lag_ms_p95": _pct(stats["receiveLagMs"], 95),
        "server_snapshot_build_ms_p50": _pct(stats["buildMs"], 50),
        "server_snapshot_build_ms_p95": _pct(stats["buildMs"], 95),
        "coalesced_in_page": stats["coalesced"],
        "skipped_by_server": stats["seqGaps"],
        "page_long_tasks": stats["longTasks"],
        "page_long_task_ms": round(stats["longTaskMs"], 1),
        "receive_lag_trend_ms_per_s": round(slope, 2),
        "backlog_growing": bool(growing),
        "meets_target": per_s >= 1.0 and not growing,
    }


def _pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


def _mean(values: list[float]) -> float | None:
    return round(statistics.fmean(values), 1) if values else None


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@contextmanager
def _temporary_directory() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="omnizone-live-map-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
