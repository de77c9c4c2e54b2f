"""``omnizone bench offers``: how fast an offer reaches the phone.

The whole path runs for real on this machine: the simulator's shoppers carry
registered app phones that advertise rotating ids; the real gateway code
aggregates them and publishes over MQTT to a real broker; the server
resolves, localizes, decides and delivers over WebSocket to one client per
shopper, which acknowledges every offer like the reference app.

The simulation runs on the wall clock (speed 1), so the gateway's publish
time and the client's arrival time are on the same clock. Latency is from
the gateway publishing the message that completed the placement that made
the trigger true (``trigger_published_ms``, stored with the offer) to the
offer's arrival at the client. The gateway's one-second aggregation window
comes before that publish and is not in the figure (docs/benchmarks.md).
"""

import asyncio
import json
import multiprocessing
import queue
import secrets
import statistics
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import httpx
import websockets

from omnizone.broker import BrokerAccounts, start_broker
from omnizone.contract.timefmt import wall_clock_ms
from omnizone.server import bootstrap
from omnizone.server.adapters.offer_db import OfferRepository
from omnizone.sim.app_client import register_app_phones
from omnizone.sim.engine import SimClock, Simulation
from omnizone.sim.fleet import GatewayFleet
from omnizone.sim.runner import run_paced
from omnizone.sim.shoppers import AppPhone
from omnizone.store import load_store
from omnizone.suite.demo import _log_to, _run_directory
from omnizone.suite.measured import every_zone_campaign, quick_scenario

#: Every zone entry is worth an offer: the bench measures delivery, not campaign rules.
BENCH_CAMPAIGN = every_zone_campaign("bench-every-zone", "Bench: every zone entry", "Bench offer")


@dataclass
class Arrivals:
    """What the phones received: offer id -> wall ms of arrival (first copy only)."""

    first_ms: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    connected: int = 0
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def run_offers_bench(
    shoppers: int = 500,
    duration_s: float = 60.0,
    *,
    settle_s: float = 10.0,
    run_dir: Path | None = None,
    prefer_broker: Literal["auto", "mosquitto", "embedded"] = "auto",
    database_url: str | None = None,
) -> dict[str, Any]:
    """``database_url``: the server's database (default: SQLite in the run
    directory); give an empty PostgreSQL database to measure on PostgreSQL."""
    from omnizone.server.settings import ServerSettings

    scenario = quick_scenario(shoppers, duration_s + 5)
    store = load_store(scenario.store_file)
    with _run_directory(run_dir) as folder, _log_to(folder / "omnizone.log"):
        accounts = BrokerAccounts.for_store(store)
        api_key = secrets.token_urlsafe(24)
        with start_broker(accounts, run_dir=folder / "broker", prefer=prefer_broker) as broker:
            settings = ServerSettings.on_broker(
                broker,
                accounts,
                database_url=database_url or f"sqlite:///{folder / 'omnizone.db'}",
                api_keys={api_key: ["read", "admin"]},
                api_port=0,
                campaign_files=[],
            )
            with _ServerProcess(settings, scenario.store_file) as api_url:
                campaign = {
                    **BENCH_CAMPAIGN,
                    "trigger": {"kind": "zone_entered", "zones": [z.id for z in store.zones]},
                }
                httpx.post(
                    f"{api_url}/api/v1/stores/{store.id}/campaigns",
                    json=campaign,
                    headers={"X-API-Key": api_key},
                    timeout=10,
                ).raise_for_status()
                phones = register_app_phones(api_url, store.id, shoppers)
                arrivals = Arrivals()
                clients = _Phones(api_url, phones, arrivals)
                clients.start()
                clock = SimClock(wall_clock_ms())
                fleet = GatewayFleet.on_broker(
                    store, clock, folder, broker, accounts, scenario.window_ms
                )
                fleet.start()
                wall_start = time.monotonic()
                try:
                    simulation = Simulation(scenario, store, fleet.nodes, clock, app_phones=phones)
                    run_paced(simulation, speed=1.0, wall_limit_s=duration_s, on_wall_clock=True)
                    simulation.close_windows()
                finally:
                    fleet.stop(flush_timeout_s=10)
                lag_ms = clock.now_ms - wall_clock_ms()  # sim behind wall: negative
                storage = bootstrap.open_storage(settings.database_url)
                try:
                    sent = _wait_for_offers(storage.offers, phones, clients, settle_s)
                finally:
                    storage.close()
                clients.stop()
                result = _summary(
                    sent,
                    arrivals,
                    phones,
                    duration_s,
                    time.monotonic() - wall_start,
                    lag_ms,
                    broker.kind,
                )
                result["database"] = settings.database_url.split(":", 1)[0]
                return result


class _ServerProcess:
    """The server in its own process, as in a deployment: the simulated store
    (gateways and shoppers) must not share its interpreter lock."""

    def __init__(self, settings: Any, store_file: Path) -> None:
        context = multiprocessing.get_context("spawn")
        self._stop = context.Event()
        self._started: Any = context.Queue()
        self._process = context.Process(
            target=_serve,
            args=(_plain(settings), str(store_file), self._started, self._stop),
            name="bench-server",
            daemon=True,
        )

    def __enter__(self) -> str:
        self._process.start()
        kind, value = self._started.get(timeout=120)
        if kind != "started":
            raise RuntimeError(f"the bench's server did not start: {value}")
        return str(value)

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._process.join(60)


def _plain(settings: Any) -> dict[str, Any]:
    """Settings for the child, secrets included (a JSON dump masks them)."""
    values: dict[str, Any] = settings.model_dump(mode="json")
    for name in ("mqtt_password", "webhook_secret"):
        secret = getattr(settings, name)
        values[name] = secret.get_secret_value() if secret is not None else None
    return values


def _serve(settings: dict[str, Any], store_file: str, started: Any, stop: Any) -> None:
    from omnizone.server.runtime import ServerRuntime
    from omnizone.server.settings import ServerSettings

    plan = load_store(store_file)
    try:
        runtime = ServerRuntime(ServerSettings(**settings), stores={plan.id: plan})
        runtime.start()
    except Exception as error:
        started.put(("failed", f"{type(error).__name__}: {error}"))
        return
    started.put(("started", runtime.api_url))
    stop.wait()
    runtime.stop()


def _wait_for_offers(
    offers: OfferRepository, phones: Sequence[AppPhone], clients: "_Phones", settle_s: float
) -> dict[str, tuple[int | None, str, int]]:
    """Every offer the server stored for the phones: id -> (trigger_published_ms,
    shopper, created_ms), once every one has arrived or ``settle_s`` has passed."""
    deadline = time.monotonic() + settle_s
    while True:
        sent = {
            offer.offer_id: (offer.trigger_published_ms, phone.shopper_id, offer.created_ms)
            for phone in phones
            for offer in offers.offers_after(phone.shopper_id, 0, 100_000)
        }
        missing = set(sent) - clients.arrived(set(sent))
        if not missing or time.monotonic() > deadline:
            return sent
        time.sleep(0.2)


def _summary(
    sent: dict[str, tuple[int | None, str, int]],
    arrivals: Arrivals,
    phones: Sequence[AppPhone],
    duration_s: float,
    wall_s: float,
    lag_ms: int,
    broker: str,
) -> dict[str, Any]:
    latencies = sorted(
        arrivals.first_ms[offer] - published
        for offer, (published, _shopper, _created) in sent.items()
        if offer in arrivals.first_ms and published is not None
    )
    # Where the time goes: gateway publish -> offer stored (broker, ingest,
    # localizer, offer engine) and offer stored -> phone (WebSocket delivery).
    deciding = sorted(
        created - published for published, _s, created in sent.values() if published is not None
    )
    delivering = sorted(
        arrivals.first_ms[offer] - created
        for offer, (_p, _s, created) in sent.items()
        if offer in arrivals.first_ms
    )
    received = len(set(sent) & set(arrivals.first_ms))

    def pct(q: float, values: list[int] = latencies) -> float | None:
        if not values:
            return None
        return float(values[min(len(values) - 1, round(q * (len(values) - 1)))])

    return {
        "shoppers": len(phones),
        "duration_s": duration_s,
        "wall_s": round(wall_s, 1),
        "broker": broker,
        "offers_sent": len(sent),
        "offers_received": received,
        "offers_lost": len(sent) - received,
        "duplicates_received": arrivals.duplicates,
        "websocket_clients_connected": arrivals.connected,
        "offer_latency_p50_ms": pct(0.50),
        "offer_latency_p90_ms": pct(0.90),
        "offer_latency_p99_ms": pct(0.99),
        "offer_latency_max_ms": float(latencies[-1]) if latencies else None,
        "offer_latency_mean_ms": round(statistics.fmean(latencies), 1) if latencies else None,
        "publish_to_stored_p50_ms": pct(0.50, deciding),
        "publish_to_stored_p99_ms": pct(0.99, deciding),
        "stored_to_phone_p50_ms": pct(0.50, delivering),
        "stored_to_phone_p99_ms": pct(0.99, delivering),
        "latency_from": "gateway publish of the message that completed the trigger",
        "sim_clock_lag_ms_at_end": lag_ms,
        "client_errors": arrivals.errors[:5],
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
    }


class _Phones:
    """One WebSocket client per phone, acknowledging each offer as the reference
    app does. They run in a child process: a thousand sockets in the server's
    process would push the MQTT sockets past what ``select()`` can watch."""

    def __init__(self, api_url: str, phones: Sequence[AppPhone], arrivals: Arrivals) -> None:
        url = api_url.replace("http://", "ws://", 1) + "/api/v1/me/offers/ws"
        context = multiprocessing.get_context("spawn")
        self._arrivals = arrivals
        self._stop = context.Event()
        self._results: Any = context.Queue()
        tokens = [p.token or "" for p in phones]
        self._process = context.Process(
            target=_phones_process,
            args=(url, tokens, self._stop, self._results),
            name="bench-phones",
            daemon=True,
        )

    def start(self) -> None:
        self._process.start()
        kind, connected = self._results.get(timeout=180)
        self._arrivals.connected = connected
        if kind != "ready":
            raise RuntimeError(f"the bench's WebSocket clients failed to start: {connected}")

    def arrived(self, offer_ids: set[str]) -> set[str]:
        """Ask the phones which of these offers have arrived (for the settle wait)."""
        self._drain(block=False)
        with self._arrivals.lock:
            return offer_ids & set(self._arrivals.first_ms)

    def stop(self) -> None:
        self._stop.set()
        self._drain(block=True)
        self._process.join(30)

    def _drain(self, *, block: bool) -> None:
        while True:
            try:
                kind, payload = self._results.get(timeout=60 if block else 0.01)
            except queue.Empty:
                return
            if kind == "arrivals":
                with self._arrivals.lock:
                    for offer_id, at_ms in payload["first_ms"].items():
                        self._arrivals.first_ms.setdefault(offer_id, at_ms)
                    self._arrivals.duplicates += payload["duplicates"]
                    self._arrivals.errors += payload["errors"]
                if payload["final"]:
                    return


def _phones_process(url: str, tokens: list[str], stop: Any, results: Any) -> None:
    asyncio.run(_phones_main(url, tokens, stop, results))


async def _phones_main(url: str, tokens: list[str], stop: Any, results: Any) -> None:
    first_ms: dict[str, int] = {}
    duplicates = 0
    errors: list[str] = []
    connected = 0
    all_in = asyncio.Event()
    fresh: dict[str, int] = {}

    async def phone(token: str) -> None:
        nonlocal connected, duplicates
        try:
            # A long opening handshake: 500 phones connect at once, and on a busy
            # machine the server answers them slowly (start-up, not the figure).
            async with websockets.connect(
                f"{url}?token={token}&after=0", max_queue=None, open_timeout=90
            ) as ws:
                connected += 1
                if connected == len(tokens):
                    all_in.set()
                while True:
                    raw = await ws.recv()
                    arrived = wall_clock_ms()
                    message = json.loads(raw)
                    if message.get("type") != "offer":
                        continue
                    offer_id = message["offer"]["offer_id"]
                    if offer_id in first_ms:
                        duplicates += 1
                    else:
                        first_ms[offer_id] = arrived
                        fresh[offer_id] = arrived
                    await ws.send(json.dumps({"type": "ack", "seq": message["seq"]}))
        except (websockets.ConnectionClosed, asyncio.CancelledError):
            return
        except Exception as error:  # a client failing is a result, not a crash
            errors.append(f"{type(error).__name__}: {error}")

    tasks = [asyncio.create_task(phone(t)) for t in tokens]
    try:
        await asyncio.wait_for(all_in.wait(), 100)
        results.put(("ready", connected))
    except TimeoutError:
        results.put(("failed", f"{connected} of {len(tokens)} connected; {errors[:3]}"))
    while not stop.is_set():
        await asyncio.sleep(0.2)
        if fresh:
            batch = dict(fresh)
            fresh.clear()
            results.put(
                ("arrivals", {"first_ms": batch, "duplicates": 0, "errors": [], "final": False})
            )
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    results.put(
        (
            "arrivals",
            {"first_ms": dict(fresh), "duplicates": duplicates, "errors": errors, "final": True},
        )
    )
