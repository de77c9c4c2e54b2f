"""`omnizone sim …`: drive the real gateway code from a scenario against a broker."""

import json
from pathlib import Path
from typing import Annotated

import typer

from omnizone.paths import DEFAULT_SCENARIO, shipped_config
from omnizone.sim.recording.import_cli import import_command

sim_app = typer.Typer(
    help="Simulate a store: shoppers, phones, radios, gateways.", no_args_is_help=True
)
sim_app.command("import")(import_command)


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
    import yaml
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from omnizone.sim.app_client import expected_shoppers, register_app_phones
    from omnizone.sim.engine import SimClock, Simulation
    from omnizone.sim.fitting_rooms import FittingRooms, fitting_rooms_possible
    from omnizone.sim.fleet import GatewayFleet
    from omnizone.sim.runner import run_paced
    from omnizone.sim.scenario import ScenarioError, load_scenario
    from omnizone.sim.tap_points import TapPoints
    from omnizone.store import StoreConfigError, load_store

    console = Console(stderr=True)
    try:
        plan = load_scenario(scenario or shipped_config(DEFAULT_SCENARIO), seed=seed)
        store = load_store(plan.store_file)
        passwords = yaml.safe_load(accounts.read_text(encoding="utf-8"))["gateways"]
    except (ScenarioError, StoreConfigError) as error:
        console.print(f"[red]{error}[/]")
        raise typer.Exit(2) from None
    except (OSError, KeyError, TypeError, yaml.YAMLError) as error:
        console.print(f"[red]{accounts}: expected 'gateways: {{<id>: <password>}}' ({error})[/]")
        raise typer.Exit(2) from None
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
    fleet.start()
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
            phones = (
                register_app_phones(api_url, store.id, expected_shoppers(plan)) if api_url else []
            )
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
