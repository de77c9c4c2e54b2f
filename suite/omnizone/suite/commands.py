"""``omnizone demo`` and ``omnizone report``: the two commands that run the
whole system at once. Heavy imports stay inside the functions."""

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from omnizone.paths import DEFAULT_SCENARIO, shipped_config
from omnizone.suite.output import fail


def report(
    out: Annotated[Path, typer.Option(help="folder for the CSV and PNG files")],
    store: Annotated[
        str | None,
        typer.Option(help="store id, e.g. paris-rivoli; default: the database's only one"),
    ] = None,
    from_: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="ISO date or date-time; no offset: the store's time; default: its first data",
        ),
    ] = None,
    to: Annotated[
        str | None, typer.Option(help="ISO date or date-time, exclusive; default: its last data")
    ] = None,
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
    from sqlalchemy.exc import SQLAlchemyError

    from omnizone.server import bootstrap
    from omnizone.server.settings import ServerSettings
    from omnizone.store import StoreConfigError
    from omnizone.suite.report import ReportError, missing_database, write_report

    overrides: dict[str, Any] = {"database_url": database_url, "store_files": store_file}
    try:
        settings = ServerSettings(**{k: v for k, v in overrides.items() if v is not None})
        plans = bootstrap.load_stores(settings)
    except (ValidationError, StoreConfigError, OSError) as error:
        fail("report", str(error).splitlines()[0])
    problem = missing_database(settings.database_url)
    if problem is not None:
        fail("report", problem)
    try:
        storage = bootstrap.open_storage(settings.database_url)
    except SQLAlchemyError as error:
        fail(
            "report",
            f"--database-url: cannot open {settings.database_url}: "
            f"{str(getattr(error, 'orig', None) or error).splitlines()[0]}",
        )
    try:
        # The plans the server runs: a layout saved in the dashboard replaces the file's.
        reports = bootstrap.build_reports(storage, plans)
        result = write_report(
            reports.stores,
            reports.analytics,
            store,
            from_,
            to,
            out,
            insight=reports.insight,
            alert_history=bootstrap.stored_alert_history(storage),
            heatmap=reports.heatmap,
            predictions=reports.predictions,
        )
    except ReportError as error:
        fail("report", str(error))
    finally:
        storage.close()
    if json_output:
        typer.echo(json.dumps(result.as_json()))
    else:
        typer.echo(
            f"wrote {len(result.files)} files to {out} "
            f"(store {result.store}, {result.as_json()['from']} to {result.as_json()['to']})",
            err=True,
        )


def demo(
    duration: Annotated[
        float | None,
        typer.Option(
            help="wall-clock seconds from the simulation's start: simulating, then serving "
            "the dashboard; default: until Ctrl-C"
        ),
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
        datetime | None,
        typer.Option(
            help="simulated start time (UTC unless it has an offset); default: now when the "
            "store is open (10:00-20:00, Mon-Sat, store time), else its next opening"
        ),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="no live view; print one JSON object at the end")
    ] = False,
    chain: Annotated[
        bool,
        typer.Option(
            "--chain",
            help="the cluster version: 3 NATS nodes, PostgreSQL, an API node, workers, "
            "several stores (docs/scaling.md)",
        ),
    ] = False,
    stores: Annotated[int, typer.Option(help="--chain: stores simulated")] = 6,
    workers: Annotated[int, typer.Option(help="--chain: worker processes")] = 2,
    shoppers_per_store: Annotated[int, typer.Option(help="--chain: app shoppers per store")] = 10,
) -> None:
    """Broker + server (SQLite) + simulated store, end to end, then a summary."""
    from datetime import UTC

    from rich.console import Console

    from omnizone.sim.scenario import ScenarioError, load_scenario
    from omnizone.store import StoreConfigError
    from omnizone.suite.demo import DemoOptions, run_demo, summary_text

    console = Console(stderr=True)
    if chain:
        from omnizone.suite.demo_chain import run_chain_demo

        if min(stores, workers, shoppers_per_store) < 1 or speed <= 0:
            console.print("[red]--stores, --workers, --shoppers-per-store, --speed: positive[/]")
            raise typer.Exit(2)
        summary = run_chain_demo(
            console,
            stores=stores,
            workers=workers,
            shoppers_per_store=shoppers_per_store,
            duration_s=duration,
            speed=speed if speed != 20.0 else 5.0,
            run_dir=run_dir,
        )
        typer.echo(json.dumps(summary))
        return
    if broker not in ("auto", "mosquitto", "embedded"):
        fail("demo", f"--broker must be auto, mosquitto or embedded, not {broker!r}")
    try:
        plan = load_scenario(scenario or shipped_config(DEFAULT_SCENARIO), seed=seed)
    except ScenarioError as error:
        fail("demo", f"--scenario: {error}")
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
        fail("demo", str(error))
    except (RuntimeError, OSError) as error:  # a broker that will not start, a busy folder
        fail("demo", f"{error} (the log is in the run directory; --run-dir DIR keeps it)")
    if json_output:
        typer.echo(json.dumps(result.as_json()))  # alone on stdout; everything else on stderr
    else:
        Console().print(summary_text(result))
