"""`omnizone gateway …` commands. Heavy imports stay inside the commands."""

from pathlib import Path
from typing import Annotated

import typer

from omnizone.gateway.nfc.cli import nfc_write

gateway_app = typer.Typer(
    help="Run an edge gateway (BLE, NFC, UHF RFID → MQTT).", no_args_is_help=True
)
gateway_app.command("nfc-write")(nfc_write)


@gateway_app.command("run")
def run(
    config: Annotated[Path, typer.Option("--config", "-c", help="gateway YAML file")] = Path(
        "/etc/omnizone/gateway.yaml"
    ),
) -> None:
    """Scan BLE, aggregate per window and publish through the durable outbox."""
    import asyncio
    import logging

    from omnizone.gateway.runner import run_gateway
    from omnizone.gateway.settings import GatewayConfigError, load_gateway_settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        settings = load_gateway_settings(config)
    except GatewayConfigError as error:
        typer.secho(str(error), fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    asyncio.run(run_gateway(settings))


@gateway_app.command("doctor")
def doctor(
    config: Annotated[Path, typer.Option("--config", "-c", help="gateway YAML file")] = Path(
        "/etc/omnizone/gateway.yaml"
    ),
    json_output: Annotated[bool, typer.Option("--json", help="one JSON object")] = False,
) -> None:
    """Check the config, storage, clock, Bluetooth, readers and broker login; say what to fix."""
    import json

    from rich.console import Console
    from rich.table import Table

    from omnizone.gateway.doctor import diagnose

    findings = diagnose(config)
    failed = any(f.verdict == "fail" for f in findings)
    if json_output:
        typer.echo(json.dumps({"ok": not failed, "checks": [f.as_json() for f in findings]}))
    else:
        marks = {"ok": "[green]✓[/]", "warn": "[yellow]![/]", "fail": "[red]✗[/]"}
        table = Table(title=f"omnizone gateway doctor — {config}")
        for column in ("", "check", "finding", "what to do"):
            table.add_column(column)
        for f in findings:
            table.add_row(marks[f.verdict], f.check, f.detail, f.fix)
        Console().print(table)
    if failed:
        raise typer.Exit(1)
