"""`omnizone sim …`: drive the real gateway code from a scenario against a broker."""

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from omnizone.paths import DEFAULT_SCENARIO, shipped_config
from omnizone.sim.recording.commands import record_command, replay_command
from omnizone.sim.recording.import_cli import import_command

if TYPE_CHECKING:
    from rich.console import Console

    from omnizone.sim.engine import SimClock
    from omnizone.sim.fleet import GatewayFleet
    from omnizone.sim.scenario import Scenario
    from omnizone.store import StorePlan

sim_app = typer.Typer(
    help="Simulate a store: shoppers, phones, radios, gateways.", no_args_is_help=True
)
sim_app.command("import")(import_command)
sim_app.command("record")(record_command)
sim_app.command("replay")(replay_command)


@sim_app.command("survey-walk")
def survey_walk(
    accounts: Annotated[
        Path,
        typer.Option(help="YAML mapping 'gateways: {<gateway id>: <password>}' for the broker"),
    ],
    api_url: Annotated[str, typer.Option(help="the server (its public API)")],
    code: Annotated[str, typer.Option(help="the pairing code the dashboard's Survey page shows")],
    zones: Annotated[
        str | None,
        typer.Option(
            help="walk these zones in turn (comma-separated), each until the server says "
            "enough; omit: follow the zone staff pick in the dashboard"
        ),
    ] = None,
    scenario: Annotated[Path | None, typer.Option(help="scenario YAML (store, radio)")] = None,
    broker_host: Annotated[str, typer.Option(help="MQTT broker host")] = "127.0.0.1",
    broker_port: Annotated[int, typer.Option(help="MQTT broker port")] = 1883,
    tls_ca: Annotated[str | None, typer.Option(help="CA file: use TLS")] = None,
    speed: Annotated[float, typer.Option(min=0.1, help="simulated seconds per wall second")] = 1.0,
    wall_limit_s: Annotated[
        float | None, typer.Option(help="give up after this many wall seconds")
    ] = None,
    run_dir: Annotated[Path, typer.Option(help="the gateways' outboxes go here")] = Path(
        "run/survey"
    ),
    json_output: Annotated[bool, typer.Option("--json", help="print one JSON summary")] = False,
) -> None:
    """A simulated staff phone walks a guided survey: it pairs with CODE and
    walks the zones while the simulated gateways hear it (docs/localization.md)."""
    import httpx
    from rich.console import Console

    from omnizone.sim.engine import Simulation
    from omnizone.sim.scenario import ScenarioError, load_scenario
    from omnizone.sim.survey_walk import (
        SurveyWalkError,
        pair_walker,
        survey_scenario,
        walk_survey,
    )

    console = Console(stderr=True)
    try:
        plan = survey_scenario(load_scenario(scenario or shipped_config(DEFAULT_SCENARIO)))
    except ScenarioError as error:
        console.print(f"[red]{error}[/]")
        raise typer.Exit(2) from None
    store, clock, fleet = _fleet(console, plan, accounts, run_dir, broker_host, broker_port, tls_ca)
    wanted = [z.strip() for z in zones.split(",") if z.strip()] if zones else []
    _start_or_exit(console, fleet)
    try:
        with httpx.Client(base_url=api_url, timeout=10.0) as client:
            simulation = Simulation(plan, store, fleet.nodes, clock)
            walker = pair_walker(simulation, client, code, zones=wanted, seed=plan.seed)
            console.print(f"paired with survey {walker.status.get('id') or code}; walking")
            walk_survey(simulation, walker, speed=speed, wall_limit_s=wall_limit_s)
            simulation.close_windows()
    except (SurveyWalkError, httpx.HTTPError) as error:
        console.print(f"[red]{error}[/]")
        raise typer.Exit(1) from None
    finally:
        fleet.stop()
    summary = {
        "survey": walker.status.get("id"),
        "state": walker.status.get("state"),
        "walked": walker.walked,
        "zones": {
            z["zone"]: {"windows": z["windows"], "anchors": z["anchors"], "enough": z["enough"]}
            for z in walker.status.get("zones", [])
            if z["windows"]
        },
        "published": fleet.published,
    }
    if json_output:
        typer.echo(json.dumps(summary))
    else:
        console.print(summary)


@sim_app.command("run")
def run(
    accounts: Annotated[
        Path,
        typer.Option(help="YAML mapping 'gateways: {<gateway id>: <password>}' for the broker"),
    ],
    scenario: Annotated[Path | None, typer.Option(help="scenario YAML")] = None,
    broker_host: Annotated[str, typer.Option(help="MQTT broker host")] = "127.0.0.1",
    broker_port: Annotated[int, typer.Option(help="MQTT broker port")] = 1883,
    tls_ca: Annotated[str | None, typer.Option(help="CA file: use TLS")] = None,
    speed: Annotated[
        float | None, typer.Option(help="simulated seconds per wall second; omit: flat out")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="override the scenario's seed")] = None,
    run_dir: Annotated[Path, typer.Option(help="outboxes and ground truth go here")] = Path(
        "run/sim"
    ),
    fitting_rooms: Annotated[
        bool,
        typer.Option(help="emulated UHF readers in the fitting rooms (needs --speed ≤ 20)"),
    ] = True,
    tap_points: Annotated[
        bool, typer.Option(help="emulated NFC taps at the tap points (needs --speed ≤ 20)")
    ] = True,
    api_url: Annotated[
        str | None,
        typer.Option(
            help=(
                "server to register the shoppers' app phones with (public API, with consent);"
                " without it the phones are anonymous and a server drops them"
            )
        ),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="print one JSON summary")] = False,
) -> None:
    """Run a scenario; writes ground truth to RUN_DIR/ground-truth.jsonl."""
    import httpx
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from omnizone.sim.app_client import expected_shoppers, register_app_phones
    from omnizone.sim.engine import Simulation
    from omnizone.sim.fitting_rooms import FittingRooms, fitting_rooms_possible
    from omnizone.sim.runner import run_paced
    from omnizone.sim.scenario import ScenarioError, load_scenario
    from omnizone.sim.tap_points import TapPoints

    console = Console(stderr=True)
    try:
        plan = load_scenario(scenario or shipped_config(DEFAULT_SCENARIO), seed=seed)
    except ScenarioError as error:
        console.print(f"[red]{error}[/]")
        raise typer.Exit(2) from None
    store, clock, fleet = _fleet(console, plan, accounts, run_dir, broker_host, broker_port, tls_ca)
    _start_or_exit(console, fleet)
    rooms = None
    if fitting_rooms and fitting_rooms_possible(speed):
        rooms = FittingRooms(
            store, fleet.nodes, seed=plan.seed, try_ons=(run_dir / "try-ons.jsonl").open("w")
        )
        rooms.start()
    elif fitting_rooms:
        console.print("[yellow]fitting rooms off: they need --speed 20 or slower[/]")
    taps = None
    if tap_points and fitting_rooms_possible(speed):
        taps = TapPoints(
            store, fleet.nodes, seed=plan.seed, taps=(run_dir / "taps.jsonl").open("w")
        )
        taps.start()
    elif tap_points:
        console.print("[yellow]tap points off: they need --speed 20 or slower[/]")
    observers = [hardware.observe for hardware in (rooms, taps) if hardware is not None]
    truth_path = run_dir / "ground-truth.jsonl"
    try:
        with (
            truth_path.open("w", encoding="utf-8") as truth,
            Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TimeRemainingColumn(),
                console=console,
                disable=json_output,
            ) as progress,
        ):
            try:
                phones = (
                    register_app_phones(api_url, store.id, expected_shoppers(plan))
                    if api_url
                    else []
                )
            except httpx.HTTPError as error:
                console.print(
                    f"[red]omnizone sim: --api-url {api_url}: cannot register the app phones: "
                    f"{error}[/]",
                    soft_wrap=True,
                )
                raise typer.Exit(2) from None
            simulation = Simulation(
                plan, store, fleet.nodes, clock, truth, observers, app_phones=phones
            )
            task = progress.add_task(plan.name, total=plan.duration_s)
            run_paced(
                simulation,
                speed=speed,
                on_progress=lambda s: progress.update(
                    task, completed=(s.clock.now_ms - s.start_ms) / 1000
                ),
            )
            simulation.close_windows()
    finally:
        if rooms is not None:
            rooms.stop()
        if taps is not None:
            taps.stop()
        fleet.stop()
    summary = {
        "scenario": plan.name,
        "seed": plan.seed,
        "simulated_s": plan.duration_s,
        "shoppers": simulation.counters.shoppers_arrived,
        "adverts_heard": simulation.counters.adverts_heard,
        "published": fleet.published,
        "backlog": fleet.backlog,
        "fitting_rooms": rooms is not None,
        "tap_points": taps is not None,
        "ground_truth": str(truth_path),
    }
    if json_output:
        typer.echo(json.dumps(summary))
    else:
        console.print(summary)


def _start_or_exit(console: "Console", fleet: "GatewayFleet") -> None:
    """Connect the gateways, or one line saying which broker did not answer, exit 2."""
    try:
        fleet.start()
    except ConnectionError as error:
        console.print(f"[red]omnizone sim: {error}[/]", soft_wrap=True)
        raise typer.Exit(2) from None


def _fleet(
    console: "Console",
    plan: "Scenario",
    accounts: Path,
    run_dir: Path,
    broker_host: str,
    broker_port: int,
    tls_ca: str | None,
) -> "tuple[StorePlan, SimClock, GatewayFleet]":
    """The scenario's store and its simulated gateways, logged in with the
    accounts file's passwords; a bad store or accounts file exits 2."""
    import yaml

    from omnizone.sim.engine import SimClock
    from omnizone.sim.fleet import GatewayFleet
    from omnizone.store import StoreConfigError, load_store

    try:
        store = load_store(plan.store_file)
        passwords = yaml.safe_load(accounts.read_text(encoding="utf-8"))["gateways"]
    except StoreConfigError as error:
        console.print(f"[red]{error}[/]")
        raise typer.Exit(2) from None
    except OSError as error:
        console.print(
            f"[red]--accounts {accounts}: cannot read the file ({error.strerror}); give the "
            "gateways' logins, e.g. RUN/accounts.yaml of `omnizone demo --run-dir RUN`[/]",
            soft_wrap=True,
        )
        raise typer.Exit(2) from None
    except (KeyError, TypeError, yaml.YAMLError) as error:
        console.print(
            f"[red]--accounts {accounts}: expected 'gateways: {{<id>: <password>}}' "
            f"({str(error).splitlines()[0]})[/]",
            soft_wrap=True,
        )
        raise typer.Exit(2) from None
    if not isinstance(passwords, dict):
        console.print(f"[red]{accounts}: expected 'gateways: {{<id>: <password>}}'[/]")
        raise typer.Exit(2)
    missing = [g.id for g in store.gateways if g.id not in passwords]
    if missing:
        console.print(
            f"[red]{accounts}: gateways: no password for {', '.join(missing)} of store "
            f"{store.id!r}; use the accounts file the broker was made with "
            "(`omnizone demo --run-dir RUN` writes RUN/accounts.yaml)[/]",
            soft_wrap=True,
        )
        raise typer.Exit(2)
    run_dir.mkdir(parents=True, exist_ok=True)
    clock = SimClock.starting_at(plan.start)
    fleet = GatewayFleet(
        store,
        clock,
        run_dir,
        broker_host=broker_host,
        broker_port=broker_port,
        credentials={g: (g, str(p)) for g, p in passwords.items()},
        window_ms=plan.window_ms,
        tls_ca=tls_ca,
    )
    return store, clock, fleet
