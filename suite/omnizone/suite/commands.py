"""``omnizone demo`` and ``omnizone report``: the two commands that run the
whole system at once. Heavy imports stay inside the functions."""

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from omnizone.paths import DEFAULT_SCENARIO, shipped_config


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

    from omnizone.server import bootstrap
    from omnizone.server.settings import ServerSettings
    from omnizone.store import StoreConfigError
    from omnizone.suite.report import ReportError, write_report

    overrides: dict[str, Any] = {"database_url": database_url, "store_files": store_file}
    try:
        settings = ServerSettings(**{k: v for k, v in overrides.items() if v is not None})
        plans = bootstrap.load_stores(settings)
    except (ValidationError, StoreConfigError, OSError) as error:
        typer.echo(f"omnizone report: {error}", err=True)
        raise typer.Exit(2) from None
    storage = bootstrap.open_storage(settings.database_url)
    try:
        # The plans the server runs: a layout saved in the dashboard replaces the file's.
        reports = bootstrap.build_reports(storage, plans)
        result = write_report(
            reports.stores, reports.analytics, store, from_, to, out, insight=reports.insight
        )
    except ReportError as error:
        typer.echo(f"omnizone report: {error}", err=True)
        raise typer.Exit(2) from None
    finally:
        storage.close()
    if json_output:
        typer.echo(json.dumps(result.as_json()))
    else:
        typer.echo(f"wrote {len(result.files)} files to {out}", err=True)


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

    from omnizone.sim.scenario import ScenarioError, load_scenario
    from omnizone.store import StoreConfigError
    from omnizone.suite.demo import DemoOptions, run_demo

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
