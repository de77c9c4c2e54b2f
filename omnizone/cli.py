"""The `omnizone` command. Each part's commands import their heavy
dependencies lazily, so `omnizone gateway …` works on a gateway-only install."""

import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

if TYPE_CHECKING:
    from rich.console import Console

from omnizone.gateway.cli import gateway_app
from omnizone.paths import DEFAULT_SCENARIO, shipped_config
from omnizone.server.cli import server_app
from omnizone.sim.cli import sim_app

app = typer.Typer(
    help="omnizone: in-store proximity — gateways, server, simulator.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(gateway_app, name="gateway")
app.add_typer(server_app, name="server")
app.add_typer(sim_app, name="sim")

bench_app = typer.Typer(help="Benchmarks that print JSON (see docs/benchmarks.md).")
app.add_typer(bench_app, name="bench")


def _print_result(result: Any, json_output: bool, console: "Console | None" = None) -> None:
    """A command's result: one JSON object on stdout with --json, else rich's
    pretty print (on ``console``, stdout by default)."""
    if json_output:
        typer.echo(json.dumps(result))
        return
    if console is None:
        from rich.console import Console

        console = Console()
    console.print(result)


eval_app = typer.Typer(help="Accuracy against ground truth; prints JSON (docs/benchmarks.md).")
app.add_typer(eval_app, name="eval")


@eval_app.command("localize")
def eval_localize(
    scenario: Annotated[Path, typer.Option(help="scenario YAML (config/scenarios/…)")],
    seed: Annotated[int | None, typer.Option(help="override the scenario's seed")] = None,
    duration: Annotated[float | None, typer.Option(help="simulated seconds")] = None,
    localizer: Annotated[
        str, typer.Option(help="grid (position filter, the default) or zone (zone filter)")
    ] = "grid",
    enter_probability: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="the filter's hysteresis bar instead of its default (latency/flap trade-off)",
        ),
    ] = None,
    truth_interval_ms: Annotated[
        int | None,
        typer.Option(
            min=100, help="ground truth every N ms (default: the scenario's, 1000): finer latency"
        ),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Simulate the scenario through the real gateway and server path; score the
    localizer and the nearest-gateway baseline against ground truth."""
    from rich.console import Console
    from rich.progress import Progress

    from omnizone.evaluation.localize import run_localize_eval
    from omnizone.sim.scenario import ScenarioError, load_scenario

    console = Console(stderr=True)
    if localizer not in ("grid", "zone"):
        console.print(f"[red]--localizer must be grid or zone, not {localizer!r}[/]")
        raise typer.Exit(2)
    try:
        plan = load_scenario(
            scenario,
            seed=seed,
            duration_s=duration,
            ground_truth_interval_ms=truth_interval_ms,
        )
    except ScenarioError as error:
        console.print(f"[red]{error}[/]")
        raise typer.Exit(2) from None
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(f"{plan.name} (seed {plan.seed})", total=1.0)
        result = run_localize_eval(
            plan,
            localizer="grid" if localizer == "grid" else "zone",
            enter_probability=enter_probability,
            on_progress=lambda f: progress.update(task, completed=f),
        )
    _print_result(result, json_output, console)


@eval_app.command("fingerprint")
def eval_fingerprint(
    train: Annotated[Path, typer.Option(help="survey CSV to learn from")],
    test: Annotated[Path, typer.Option(help="survey CSV to classify")],
    json_output: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Train on one survey, classify the other; compare with a k-nearest-neighbours baseline."""
    from rich.console import Console

    from omnizone.server.domain.localize.survey import SurveyError, load_survey
    from omnizone.server.eval_fingerprint import evaluate_fingerprint

    console = Console(stderr=True)
    try:
        result = evaluate_fingerprint(load_survey(train), load_survey(test))
    except SurveyError as error:
        console.print(f"[red]{error}[/]")
        raise typer.Exit(2) from None
    _print_result(result, json_output, console)


@bench_app.command("localize")
def bench_localize(
    devices: Annotated[int, typer.Option(help="devices in the largest run")] = 5000,
    anchors: Annotated[int, typer.Option(help="anchors (gateways/beacons)")] = 40,
    model: Annotated[str, typer.Option(help="grid (position filter) or zone")] = "grid",
    json_output: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Localizer core throughput on one core, and how it scales with devices."""
    from omnizone.server.domain.localize.bench import run_localize_bench

    sizes = sorted({s for s in (500, 1000, 2000, devices) if s <= devices})
    try:
        result = run_localize_bench(devices=devices, anchors=anchors, sizes=sizes, model=model)
    except ValueError as error:
        typer.echo(f"omnizone bench localize: {error}", err=True)
        raise typer.Exit(2) from None
    _print_result(result, json_output)


@bench_app.command("gateway")
def bench_gateway(
    seconds: Annotated[float, typer.Option(help="length of the paced run")] = 5.0,
    rate: Annotated[int, typer.Option(help="adverts per second in the paced run")] = 2000,
    devices: Annotated[int, typer.Option(help="distinct advertisers")] = 300,
    json_output: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Decode + aggregate throughput on one core; CPU and memory at a given advert rate."""
    from omnizone.gateway.bench import run_gateway_bench

    result = run_gateway_bench(seconds=seconds, rate=rate, devices=devices)
    _print_result(result, json_output)


@bench_app.command("analytics")
def bench_analytics(
    days: Annotated[int, typer.Option(help="simulated days of one store")] = 7,
    trips: Annotated[int, typer.Option(help="store trips per day")] = 3000,
    runs: Annotated[int, typer.Option(help="timed runs of each view")] = 5,
    database_url: Annotated[
        str | None,
        typer.Option(help="an empty database to fill; default: SQLite in a temp dir"),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Every analytics view over a simulated week: latency per view and row counts."""
    from omnizone.bench_analytics import run_analytics_bench

    if days < 1 or trips < 1 or runs < 1:
        typer.echo(
            "omnizone bench analytics: --days, --trips and --runs must be positive", err=True
        )
        raise typer.Exit(2)
    try:
        result = run_analytics_bench(
            days=days, trips_per_day=trips, runs=runs, database_url=database_url
        )
    except ValueError as error:
        typer.echo(f"omnizone bench analytics: {error}", err=True)
        raise typer.Exit(2) from None
    _print_result(result, json_output)


@bench_app.command("offers")
def bench_offers(
    shoppers: Annotated[int, typer.Option(help="shoppers with the app, each on a WebSocket")] = 500,
    duration: Annotated[float, typer.Option(help="wall seconds of store traffic")] = 60.0,
    database_url: Annotated[
        str | None,
        typer.Option(help="server database (an empty one); default: SQLite in a temp dir"),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Offer latency from gateway publish to the phone, through a real broker and server."""
    from omnizone.bench_offers import run_offers_bench

    if shoppers < 1 or duration <= 0:
        typer.echo("omnizone bench offers: --shoppers and --duration must be positive", err=True)
        raise typer.Exit(2)
    result = run_offers_bench(shoppers=shoppers, duration_s=duration, database_url=database_url)
    _print_result(result, json_output)


@bench_app.command("live-map")
def bench_live_map(
    shoppers: Annotated[int, typer.Option(help="shoppers in the store, each with the app")] = 500,
    seconds: Annotated[float, typer.Option(help="wall seconds measured in the browser")] = 20.0,
    json_output: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """The dashboard's live map in headless Chromium: updates per second, render time, lag."""
    from omnizone.bench_live_map import run_live_map_bench

    if shoppers < 1 or seconds <= 0:
        typer.echo("omnizone bench live-map: --shoppers and --seconds must be positive", err=True)
        raise typer.Exit(2)
    try:
        result = run_live_map_bench(shoppers=shoppers, seconds=seconds)
    except RuntimeError as error:
        typer.echo(f"omnizone bench live-map: {error}", err=True)
        raise typer.Exit(2) from None
    _print_result(result, json_output)


@app.command()
def report(
    store: Annotated[str, typer.Option(help="store id, e.g. paris-rivoli")],
    from_: Annotated[
        str, typer.Option("--from", help="ISO date or date-time; no offset: the store's time")
    ],
    to: Annotated[str, typer.Option(help="ISO date or date-time, exclusive")],
    out: Annotated[Path, typer.Option(help="folder for the CSV and PNG files")],
    database_url: Annotated[
        str | None, typer.Option(help="SQLAlchemy URL [env OMNIZONE_DATABASE_URL]")
    ] = None,
    store_file: Annotated[
        list[Path] | None,
        typer.Option(help="store file (YAML); repeatable [env OMNIZONE_STORE_FILES]"),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """The analytics of one store and range as CSV files and PNG charts (docs/analytics.md)."""
    from pydantic import ValidationError

    from omnizone.report import ReportError, write_report
    from omnizone.server.adapters import schema
    from omnizone.server.adapters.analytics_db import AnalyticsRepository
    from omnizone.server.adapters.db import SqlRepository
    from omnizone.server.adapters.layout_db import LayoutRepository
    from omnizone.server.adapters.shopper_db import ShopperRepository
    from omnizone.server.entrypoints.analytics_api import stored_campaigns
    from omnizone.server.service.layouts import apply_saved_layouts
    from omnizone.server.service.shoppers import ShopperService
    from omnizone.server.settings import ServerSettings
    from omnizone.store import StoreConfigError, load_store

    overrides: dict[str, Any] = {"database_url": database_url, "store_files": store_file}
    try:
        settings = ServerSettings(**{k: v for k, v in overrides.items() if v is not None})
        plans = {plan.id: plan for plan in map(load_store, settings.store_files)}
    except (ValidationError, StoreConfigError, OSError) as error:
        typer.echo(f"omnizone report: {error}", err=True)
        raise typer.Exit(2) from None
    repository = SqlRepository.from_url(settings.database_url, create=False)
    try:
        schema.upgrade(repository.engine)
        # The plans the server runs: a layout saved in the dashboard replaces the file's.
        plans, _versions = apply_saved_layouts(plans, LayoutRepository(repository.engine))
        engine = repository.engine
        reads = AnalyticsRepository(engine)
        shoppers = ShopperService(list(plans), ShopperRepository(engine))
        campaigns = stored_campaigns(engine, reads, shoppers)
        result = write_report(plans, reads, store, from_, to, out, campaigns)
    except ReportError as error:
        typer.echo(f"omnizone report: {error}", err=True)
        raise typer.Exit(2) from None
    finally:
        repository.close()
    if json_output:
        typer.echo(json.dumps(result.as_json()))
    else:
        typer.echo(f"wrote {len(result.files)} files to {out}", err=True)


@app.command()
def demo(
    duration: Annotated[
        float | None,
        typer.Option(help="wall-clock seconds to run; default: until the scenario ends"),
    ] = None,
    speed: Annotated[float, typer.Option(help="simulated seconds per wall second")] = 20.0,
    scenario: Annotated[Path | None, typer.Option(help="scenario YAML")] = None,
    seed: Annotated[int | None, typer.Option(help="override the scenario's seed")] = None,
    broker: Annotated[
        str, typer.Option(help="auto (Mosquitto when installed), mosquitto or embedded")
    ] = "auto",
    api_port: Annotated[int, typer.Option(help="HTTP API port (busy: any free one)")] = 8600,
    run_dir: Annotated[
        Path | None, typer.Option(help="keep database, outboxes and ground truth here")
    ] = None,
    start: Annotated[
        datetime | None, typer.Option(help="simulated start time (UTC); default: now")
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="no live view; print one JSON object at the end")
    ] = False,
) -> None:
    """Broker + server (SQLite) + simulated store, end to end, then a summary."""
    from datetime import UTC

    from rich.console import Console

    from omnizone.demo import DemoOptions, run_demo
    from omnizone.sim.scenario import ScenarioError, load_scenario
    from omnizone.store import StoreConfigError

    console = Console(stderr=True)
    if broker not in ("auto", "mosquitto", "embedded"):
        console.print(f"[red]--broker must be auto, mosquitto or embedded, not {broker!r}[/]")
        raise typer.Exit(2)
    try:
        plan = load_scenario(scenario or shipped_config(DEFAULT_SCENARIO), seed=seed)
    except ScenarioError as error:
        console.print(f"[red]{error}[/]")
        raise typer.Exit(2) from None
    prefer: Literal["auto", "mosquitto", "embedded"] = broker  # type: ignore[assignment]
    options = DemoOptions(
        scenario=plan,
        duration_s=duration,
        speed=speed,
        prefer_broker=prefer,
        api_port=api_port,
        run_dir=run_dir,
        live=not json_output,
        start=start.replace(tzinfo=start.tzinfo or UTC) if start else None,
    )
    try:
        result = run_demo(options, console)
    except StoreConfigError as error:
        console.print(f"[red]{error}[/]")
        raise typer.Exit(2) from None
    if json_output:
        typer.echo(json.dumps(result.as_json()))
    else:
        console.print(result.as_json())
