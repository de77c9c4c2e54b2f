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
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import httpx
import yaml
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from omnizone.broker import BrokerAccounts, start_broker
from omnizone.broker.files import write_private
from omnizone.paths import shipped_config
from omnizone.sim.app_client import expected_shoppers, register_app_phones
from omnizone.sim.engine import SimClock, Simulation
from omnizone.sim.fitting_rooms import FittingRooms, fitting_rooms_possible
from omnizone.sim.fleet import GatewayFleet
from omnizone.sim.runner import run_paced
from omnizone.sim.scenario import Scenario
from omnizone.sim.shopper_apps import Product, ShopperApps
from omnizone.sim.tap_points import TapPoints
from omnizone.store import StorePlan, load_store


@dataclass
class DemoOptions:
    scenario: Scenario
    duration_s: float | None = None  # wall seconds in all; None: until Ctrl-C
    speed: float = 20.0  # simulated seconds per wall second
    prefer_broker: Literal["auto", "mosquitto", "embedded"] = "auto"
    api_port: int = 8600
    run_dir: Path | None = None  # kept when given, else a temp dir removed at the end
    live: bool = True
    start: datetime | None = None  # sim start; default: inside store hours (demo_start)
    serve_after: bool = True  # keep serving once the scenario ends, until Ctrl-C or duration


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
    sim_start: str = ""
    sim_end: str = ""
    shopper_apps: dict[str, int] = field(default_factory=dict)
    campaigns: list[dict[str, Any]] = field(default_factory=list)
    funnel: list[dict[str, Any]] = field(default_factory=list)
    purchased_trips: int = 0
    passers_by: int = 0  # walked past the street front, never entered (issue 18, point 4)

    def as_json(self) -> dict[str, Any]:
        return {
            "broker": self.broker,
            "duration_unit": "wall seconds",
            "wall_s": round(self.wall_s, 2),
            "speed": self.speed,
            "simulated_s": round(self.simulated_s, 1),
            "sim_start": self.sim_start,
            "sim_end": self.sim_end,
            "shoppers": self.shoppers,
            "passers_by": self.passers_by,
            "published": self.published,
            "ingested": self.ingested,
            "duplicates": self.duplicates,
            "dead_lettered": self.dead_lettered,
            "gaps": self.gaps,
            "not_ingested": self.not_ingested,
            "zones": self.zones,
            **self.activity,
            **self.shopper_apps,
            "funnel": self.funnel,
            "purchased_trips": self.purchased_trips,
            "campaigns": self.campaigns,
            "api_url": self.api_url,
            "database": self.database,
        }


#: When the example store is open: the example campaigns' schedules run 10:00-20:00,
#: Monday to Saturday, with quiet hours 21:00-09:00 (config/campaigns/rivoli.yaml).
STORE_OPENS = dtime(10, 0)
STORE_CLOSES = dtime(20, 0)
OPEN_DAYS = frozenset(range(6))  # Monday (0) to Saturday (5)


def demo_start(now: datetime, timezone: str, simulated_s: float) -> datetime:
    """The simulated clock's start: ``now`` when the whole run fits in store
    hours, else the next opening (skipping Sunday), so the example campaigns
    are neither out of schedule nor in quiet hours. A start after ``now`` keeps
    every offer redeemable at the (wall-clock) till until it expires."""
    zone = ZoneInfo(timezone)
    local = now.astimezone(zone)
    closes = datetime.combine(local.date(), STORE_CLOSES, zone)
    opens = datetime.combine(local.date(), STORE_OPENS, zone)
    if (
        local.weekday() in OPEN_DAYS
        and opens <= local
        and local + timedelta(seconds=simulated_s) <= closes
    ):
        return now.replace(microsecond=0)
    day = local.date() if local < opens else local.date() + timedelta(days=1)
    while day.weekday() not in OPEN_DAYS:
        day += timedelta(days=1)
    return datetime.combine(day, STORE_OPENS, zone).astimezone(UTC)


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
        till_key = secrets.token_urlsafe(24)
        webhook_secret = secrets.token_urlsafe(24)
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
                api_keys={api_key: ["read", "admin"], till_key: ["pos"]},
                api_port=_port_or_any(options.api_port),
                webhook_secret=webhook_secret,
            )
            server = ServerRuntime(settings, stores={store.id: store})
            server.start()
            try:
                sim_seconds = scenario.duration_s
                if options.duration_s is not None and options.speed > 0:
                    sim_seconds = min(sim_seconds, options.duration_s * options.speed)
                start = options.start or demo_start(
                    datetime.now(UTC), store.store.timezone, sim_seconds
                )
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
                    server.api_url, store.id, expected_shoppers(scenario, sim_seconds)
                )
                apps = ShopperApps(
                    server.api_url,
                    store,
                    _products(store.id),
                    pos_key=till_key,
                    webhook_secret=webhook_secret,
                    seed=scenario.seed,
                )
                apps.start()
                _print_addresses(console, broker, server.api_url, api_key, accounts_file)
                with (run_dir / "ground-truth.jsonl").open("w", encoding="utf-8") as truth:
                    simulation = Simulation(
                        scenario,
                        store,
                        fleet.nodes,
                        clock,
                        truth,
                        [*(h.observe for h in hardware), apps.observe],
                        app_phones=phones,
                    )
                    sim_wall_start = time.monotonic()
                    _simulate(
                        simulation,
                        fleet,
                        server.api_url,
                        api_key,
                        store,
                        options,
                        stop,
                        console,
                        sim_wall_start,
                    )
                    simulation.close_windows()
                apps.stop()
                for device in hardware:
                    device.stop()
                fleet.stop()
                acknowledged = fleet.acknowledged_keys()
                _wait_for_ingest(server, store.id, acknowledged, timeout_s=20)
                sim_end_ms = clock.now_ms
                if options.serve_after:
                    _serve_on(options, sim_wall_start, stop, console, server.api_url, simulation)
                result = _summarize(
                    server,
                    store,
                    broker.kind,
                    acknowledged,
                    api_key,
                    simulation.start_ms,
                    sim_end_ms,
                )
                result.speed = options.speed
                result.wall_s = time.monotonic() - wall_start
                result.simulated_s = (sim_end_ms - simulation.start_ms) / 1000
                result.shoppers = simulation.counters.shoppers_arrived
                result.passers_by = simulation.street.passers_by
                result.shopper_apps = apps.counters.as_json()
                result.database = str(database) if options.run_dir else None
                return result
            finally:
                server.stop()


def _products(store: str) -> list[Product]:
    """What the simulated till sells: the shipped catalog's products in stock here."""
    from omnizone.server.settings import ServerSettings

    path = ServerSettings.model_fields["catalog_file"].default or shipped_config(
        "catalog/rivoli.yaml"
    )
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return []
    return [
        Product(str(p["gtin"]), float(p.get("price", 0)))
        for p in data.get("products", [])
        if int((p.get("stock") or {}).get(store, 1)) > 0
    ]


def _print_addresses(
    console: Console, broker: Any, api_url: str, api_key: str, accounts_file: Path
) -> None:
    """One line per address and the key, never wrapped, so each can be copied."""
    lines = [
        f"omnizone demo: broker {broker.kind} on port {broker.port}",
        f"  dashboard    {api_url}/dashboard/",
        f"  shopper app  {api_url}/app/",
        f"  API docs     {api_url}/docs",
        f"  API key      {api_key}",
        f"  logins       {accounts_file} (gateways and recorder, docs/recording.md)",
    ]
    for line in lines:
        console.print(line, soft_wrap=True, highlight=False, markup=False)


def _serve_on(
    options: DemoOptions,
    wall_start: float,
    stop: threading.Event,
    console: Console,
    api_url: str,
    simulation: Simulation,
) -> None:
    """The simulation is over; the server stays up for the dashboard and the
    app until Ctrl-C, or until ``--duration`` wall seconds have passed since
    the simulation started."""
    if stop.is_set():
        return
    end = None if options.duration_s is None else wall_start + options.duration_s
    if end is not None and time.monotonic() >= end:
        return
    sim_time = datetime.fromtimestamp(simulation.clock.now_ms / 1000, UTC)
    until = "Ctrl-C" if end is None else f"Ctrl-C or {end - time.monotonic():.0f} s more"
    console.print(
        f"simulation ended at {sim_time:%H:%M:%S} UTC; still serving {api_url}/dashboard/ "
        f"until {until}",
        soft_wrap=True,
        highlight=False,
        markup=False,
    )
    while not stop.is_set() and (end is None or time.monotonic() < end):
        stop.wait(0.2 if end is None else min(0.2, max(0.0, end - time.monotonic())))


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
    wall_start: float,
) -> None:
    # --duration counts from the simulation's start (setting up is not part of it).
    limit = (
        None
        if options.duration_s is None
        else max(0.0, wall_start + options.duration_s - time.monotonic())
    )
    if not options.live:
        run_paced(simulation, speed=options.speed, stop=stop, wall_limit_s=limit)
        return
    client = httpx.Client(base_url=api_url, headers={"X-API-Key": api_key}, timeout=2)
    with client, Live(console=console, refresh_per_second=2, transient=False) as live:

        def show(sim: Simulation) -> None:
            live.update(_live_view(client, store, sim, fleet))

        run_paced(
            simulation,
            speed=options.speed,
            stop=stop,
            wall_limit_s=limit,
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
    sim_start_ms: int,
    sim_end_ms: int,
) -> DemoResult:
    headers = {"X-API-Key": api_key}
    with httpx.Client(base_url=server.api_url, headers=headers, timeout=30) as client:
        stats = client.get("/api/v1/ingest/stats").raise_for_status().json()
        summary = client.get(f"/api/v1/stores/{store.id}/zones/summary").raise_for_status().json()
        # The day's funnel, so purchases matched to the trip's store-local day count.
        funnel = (
            client.get(
                f"/api/v1/stores/{store.id}/analytics/funnel",
                params={"from_ms": sim_start_ms, "to_ms": sim_end_ms + 1},
            )
            .raise_for_status()
            .json()
        )
        campaigns = (
            client.get(f"/api/v1/stores/{store.id}/campaigns/report").raise_for_status().json()
        )
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
        sim_start=_iso(sim_start_ms, store.store.timezone),
        sim_end=_iso(sim_end_ms, store.store.timezone),
        funnel=[
            {"step": step["step"], "trips": step["trips"], "shoppers": step["shoppers"]}
            for step in funnel.get("steps", [])
        ],
        campaigns=[_campaign_line(c) for c in campaigns],
        purchased_trips=int(funnel.get("purchased_trips", 0)),
    )


def _iso(ms: int, timezone: str) -> str:
    return datetime.fromtimestamp(ms / 1000, ZoneInfo(timezone)).isoformat(timespec="seconds")


def _campaign_line(figures: dict[str, Any]) -> dict[str, Any]:
    keep = (
        "campaign_id",
        "triggered",
        "sent",
        "held_out",
        "delivered",
        "opened",
        "redeemed",
        "treated_shoppers",
        "treated_converted",
        "control_shoppers",
        "control_converted",
    )
    lift = figures.get("lift") or {}
    return {
        **{k: figures.get(k) for k in keep},
        "lift_pt": None if lift.get("absolute") is None else round(100 * lift["absolute"], 1),
        "lift_low_pt": None
        if lift.get("absolute_low") is None
        else round(100 * lift["absolute_low"], 1),
        "lift_high_pt": None
        if lift.get("absolute_high") is None
        else round(100 * lift["absolute_high"], 1),
    }


def summary_text(result: DemoResult) -> Group:
    """The closing summary for people: what ran, what the server saw, what sold."""
    r = result
    lines = [
        Text(
            f"omnizone demo: simulated {r.simulated_s / 60:.1f} min ({r.sim_start} to "
            f"{r.sim_end}) in {r.wall_s:.0f} s at {r.speed:g}×, broker {r.broker}",
            style="bold",
        ),
        Text(
            f"shoppers {r.shoppers}; readings published {r.published}, ingested {r.ingested}, "
            f"not ingested {r.not_ingested}, dead-lettered {r.dead_lettered}, "
            f"duplicates {r.duplicates}, gaps {r.gaps}"
        ),
    ]
    apps = r.shopper_apps
    if apps:
        lines.append(
            Text(
                f"phones: offers delivered {apps.get('receipts_delivered', 0)}, opened "
                f"{apps.get('receipts_opened', 0)}; till: checkouts {apps.get('checkouts', 0)}, "
                f"purchases {apps.get('purchases_sent', 0)}, redemptions "
                f"{apps.get('redemptions', 0)}"
            )
        )
    if r.funnel:
        lines.append(
            Text(
                "funnel (trips): "
                + " → ".join(f"{s['step']} {s['trips']}" for s in r.funnel)
                + f"; trips with a purchase {r.purchased_trips}"
            )
        )
    zones = Table(title="zones", expand=False)
    for column in ("zone", "visits", "mean dwell", "pass-bys"):
        zones.add_column(column, justify="left" if column == "zone" else "right")
    for z in r.zones:
        dwell = z["mean_dwell_s"]
        zones.add_row(
            z["zone"],
            str(z["visits"]),
            "—" if dwell is None else f"{dwell:.0f} s",
            str(z["pass_bys"]),
        )
    campaigns = Table(title="campaigns", expand=False)
    for column in ("campaign", "triggered", "sent", "opened", "redeemed", "lift"):
        campaigns.add_column(column, justify="left" if column == "campaign" else "right")
    for c in r.campaigns:
        lift = (
            "too few shoppers"
            if c["lift_pt"] is None
            else f"{c['lift_pt']:+.1f} pt ({c['lift_low_pt']:+.1f} to {c['lift_high_pt']:+.1f})"
        )
        campaigns.add_row(
            str(c["campaign_id"]),
            str(c["triggered"]),
            str(c["sent"]),
            str(c["opened"]),
            str(c["redeemed"]),
            lift,
        )
    where = f"database kept at {r.database}" if r.database else "run directory removed"
    return Group(*lines, zones, campaigns, Text(f"{where}; --json prints all of this as JSON"))


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
