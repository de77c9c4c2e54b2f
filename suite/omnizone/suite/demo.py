"""`omnizone demo`: a broker, the server on SQLite and the simulated store,
wired together exactly as in production, with a live view and a JSON summary.

Everything is started here and stopped here (finally blocks), so nothing —
broker process, threads, sockets, temp files — outlives the command.
"""

import contextlib
import logging
import secrets
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import httpx
import yaml
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from omnizone.broker import BrokerAccounts, start_broker
from omnizone.broker.files import write_private
from omnizone.sim.app_client import expected_shoppers, register_app_phones
from omnizone.sim.engine import SimClock, Simulation
from omnizone.sim.fitting_rooms import FittingRooms, fitting_rooms_possible
from omnizone.sim.fleet import GatewayFleet
from omnizone.sim.runner import run_paced
from omnizone.sim.scenario import Scenario
from omnizone.sim.tap_points import TapPoints
from omnizone.store import StorePlan, load_store


@dataclass
class DemoOptions:
    scenario: Scenario
    duration_s: float | None = None  # wall seconds; None: until the scenario ends
    speed: float = 20.0  # simulated seconds per wall second
    prefer_broker: Literal["auto", "mosquitto", "embedded"] = "auto"
    api_port: int = 8600
    run_dir: Path | None = None  # kept when given, else a temp dir removed at the end
    live: bool = True
    start: datetime | None = None  # sim start; default: now


@dataclass
class DemoResult:
    broker: str
    api_url: str
    speed: float
    wall_s: float
    simulated_s: float
    shoppers: int
    published: int
    ingested: int
    duplicates: int
    dead_lettered: int
    gaps: int
    not_ingested: int
    zones: list[dict[str, Any]] = field(default_factory=list)
    activity: dict[str, int] = field(default_factory=dict)
    database: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "broker": self.broker,
            "duration_unit": "wall seconds",
            "wall_s": round(self.wall_s, 2),
            "speed": self.speed,
            "simulated_s": round(self.simulated_s, 1),
            "shoppers": self.shoppers,
            "published": self.published,
            "ingested": self.ingested,
            "duplicates": self.duplicates,
            "dead_lettered": self.dead_lettered,
            "gaps": self.gaps,
            "not_ingested": self.not_ingested,
            "zones": self.zones,
            **self.activity,
            "api_url": self.api_url,
            "database": self.database,
        }


def run_demo(options: DemoOptions, console: Console | None = None) -> DemoResult:
    from omnizone.server.runtime import ServerRuntime
    from omnizone.server.settings import ServerSettings

    console = console or Console(stderr=True)
    scenario = options.scenario
    store = load_store(scenario.store_file)
    with _run_directory(options.run_dir) as run_dir, _log_to(run_dir / "omnizone.log"):
        accounts = BrokerAccounts.for_store(store, recorder=True)
        accounts_file = _write_accounts_file(run_dir, accounts)
        api_key = secrets.token_urlsafe(24)
        stop = threading.Event()
        wall_start = time.monotonic()
        with (
            _interrupt_sets(stop),
            start_broker(
                accounts, run_dir=run_dir / "broker", prefer=options.prefer_broker
            ) as broker,
        ):
            database = run_dir / "omnizone.db"
            settings = ServerSettings.on_broker(
                broker,
                accounts,
                database_url=f"sqlite:///{database}",
                api_keys={api_key: ["read", "admin"]},
                api_port=_port_or_any(options.api_port),
            )
            server = ServerRuntime(settings, stores={store.id: store})
            server.start()
            try:
                start = options.start or datetime.now(UTC).replace(microsecond=0)
                clock = SimClock.starting_at(start)
                fleet = GatewayFleet.on_broker(
                    store, clock, run_dir, broker, accounts, scenario.window_ms
                )
                fleet.start()
                hardware: list[FittingRooms | TapPoints] = []
                if fitting_rooms_possible(options.speed):
                    # Emulated UHF readers and NFC cards run in real time: only when paced.
                    hardware = [
                        FittingRooms(store, fleet.nodes, seed=scenario.seed),
                        TapPoints(store, fleet.nodes, seed=scenario.seed),
                    ]
                    for device in hardware:
                        device.start()
                # Every shopper carries the app: registered, with consent, like a real phone.
                phones = register_app_phones(
                    server.api_url,
                    store.id,
                    expected_shoppers(
                        scenario,
                        None
                        if options.duration_s is None or options.speed <= 0
                        else options.duration_s * options.speed,
                    ),
                )
                with (run_dir / "ground-truth.jsonl").open("w", encoding="utf-8") as truth:
                    simulation = Simulation(
                        scenario,
                        store,
                        fleet.nodes,
                        clock,
                        truth,
                        [h.observe for h in hardware],
                        app_phones=phones,
                    )
                    console.print(
                        f"[bold]omnizone demo[/]: broker [cyan]{broker.kind}[/] on port "
                        f"{broker.port}, API [cyan]{server.api_url}[/] "
                        f"(X-API-Key: {api_key}), docs at {server.api_url}/docs; "
                        f"gateway and recorder logins in {accounts_file} (docs/recording.md)"
                    )
                    _simulate(
                        simulation, fleet, server.api_url, api_key, store, options, stop, console
                    )
                    simulation.close_windows()
                for device in hardware:
                    device.stop()
                fleet.stop()
                acknowledged = fleet.acknowledged_keys()
                _wait_for_ingest(server, store.id, acknowledged, timeout_s=20)
                result = _summarize(server, store, broker.kind, acknowledged, api_key)
                result.speed = options.speed
                result.wall_s = time.monotonic() - wall_start
                result.simulated_s = (clock.now_ms - simulation.start_ms) / 1000
                result.shoppers = simulation.counters.shoppers_arrived
                result.database = str(database) if options.run_dir else None
                return result
            finally:
                server.stop()


def _write_accounts_file(run_dir: Path, accounts: BrokerAccounts) -> Path:
    """The gateways' and the recorder's logins, as ``sim run`` / ``sim record
    --accounts`` read them; owner-only, inside the demo's run directory."""
    path = run_dir / "accounts.yaml"
    write_private(path, yaml.safe_dump(accounts.clients_file(), sort_keys=True))
    return path


def _simulate(
    simulation: Simulation,
    fleet: GatewayFleet,
    api_url: str,
    api_key: str,
    store: StorePlan,
    options: DemoOptions,
    stop: threading.Event,
    console: Console,
) -> None:
    if not options.live:
        run_paced(simulation, speed=options.speed, stop=stop, wall_limit_s=options.duration_s)
        return
    client = httpx.Client(base_url=api_url, headers={"X-API-Key": api_key}, timeout=2)
    with client, Live(console=console, refresh_per_second=2, transient=False) as live:

        def show(sim: Simulation) -> None:
            live.update(_live_view(client, store, sim, fleet))

        run_paced(
            simulation,
            speed=options.speed,
            stop=stop,
            wall_limit_s=options.duration_s,
            on_progress=show,
            progress_every_s=1.0,
        )


def _live_view(
    client: httpx.Client, store: StorePlan, sim: Simulation, fleet: GatewayFleet
) -> Group:
    table = Table(title=f"{store.store.name} — live occupancy", expand=False)
    table.add_column("zone")
    table.add_column("now", justify="right")
    table.add_column("visits", justify="right")
    table.add_column("mean dwell", justify="right")
    try:
        occupancy = {
            z["zone"]: z["devices"]
            for z in client.get(f"/api/v1/stores/{store.id}/occupancy").json()["zones"]
        }
        summary = {
            z["zone"]: z for z in client.get(f"/api/v1/stores/{store.id}/zones/summary").json()
        }
        stats = client.get("/api/v1/ingest/stats").json()
    except (httpx.HTTPError, KeyError, ValueError) as error:
        return Group(table, Text(f"API not answering: {error}", style="red"))
    for zone in store.zones:
        row = summary.get(zone.id, {})
        dwell = row.get("mean_dwell_s")
        table.add_row(
            zone.name,
            str(occupancy.get(zone.id, 0)),
            str(row.get("visits", 0)),
            f"{dwell:.0f} s" if dwell is not None else "—",
        )
    sim_time = datetime.fromtimestamp(sim.clock.now_ms / 1000, UTC).strftime("%H:%M:%S UTC")
    footer = Text(
        f"sim {sim_time} · shoppers in store {len(sim.shoppers)} · published {fleet.published}"
        f" · ingested {stats.get('ingested')} · dead-lettered {stats.get('dead_lettered')}"
    )
    return Group(table, footer)


def _wait_for_ingest(
    server: Any, store: str, acknowledged: set[tuple[str, int]], timeout_s: float
) -> None:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        received = {(k.gateway, k.seq) for k in server.repository.received_keys(store)}
        if acknowledged <= received:
            return
        time.sleep(0.1)


def _summarize(
    server: Any,
    store: StorePlan,
    broker_kind: str,
    acknowledged: set[tuple[str, int]],
    api_key: str,
) -> DemoResult:
    headers = {"X-API-Key": api_key}
    with httpx.Client(base_url=server.api_url, headers=headers, timeout=5) as client:
        stats = client.get("/api/v1/ingest/stats").raise_for_status().json()
        summary = client.get(f"/api/v1/stores/{store.id}/zones/summary").raise_for_status().json()
    received = {(k.gateway, k.seq) for k in server.repository.received_keys(store.id)}
    by_zone = {row["zone"]: row for row in summary}
    zones = []
    for zone in store.zones:
        row = by_zone.get(zone.id, {})
        dwell = row.get("mean_dwell_s")
        zones.append(
            {
                "zone": zone.id,
                "visits": row.get("visits", 0),
                "mean_dwell_s": round(dwell, 1) if dwell is not None else None,
                "pass_bys": row.get("pass_bys", 0),
                "open_visits": row.get("open_visits", 0),
            }
        )
    return DemoResult(
        broker=broker_kind,
        api_url=server.api_url,
        speed=0,
        wall_s=0,
        simulated_s=0,
        shoppers=0,
        published=len(acknowledged),
        ingested=int(stats["ingested"]),
        duplicates=int(stats["duplicates"]),
        dead_lettered=int(stats["dead_lettered"]),
        gaps=int(stats["gaps"]),
        not_ingested=len(acknowledged - received),
        zones=zones,
        activity=server.repository.activity_counts(store.id),
    )


@contextlib.contextmanager
def _run_directory(given: Path | None) -> Iterator[Path]:
    if given is not None:
        given.mkdir(parents=True, exist_ok=True)
        yield given
        return
    path = Path(tempfile.mkdtemp(prefix="omnizone-demo-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def _log_to(path: Path) -> Iterator[None]:
    """Server and gateway logs go to a file in the run directory, not over the live view."""
    root = logging.getLogger()
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    previous_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(previous_level)
        handler.close()


@contextlib.contextmanager
def _interrupt_sets(stop: threading.Event) -> Iterator[None]:
    """Ctrl-C / SIGTERM end the simulation early but still shut down cleanly."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, lambda *_: stop.set())
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _port_or_any(port: int) -> int:
    from omnizone.broker import port_is_free

    return port if port == 0 or port_is_free("127.0.0.1", port) else 0
