"""`omnizone gateway …` commands. Heavy imports stay inside the commands.

``make_gateway_app`` takes the BLE backend provider that ``run`` hands to the
runner (ble/backend.py). ``gateway_app`` is the gateway on its own: the
Bluetooth adapter, and ``ble.feed`` refused. The suite builds its own with the
simulator's feed."""

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from omnizone.gateway.nfc.cli import nfc_write

if TYPE_CHECKING:
    from omnizone.gateway.ble.backend import BleBackendProvider

ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="gateway YAML file")]
DEFAULT_CONFIG = Path("/etc/omnizone/gateway.yaml")


def make_gateway_app(ble_backend: "BleBackendProvider | None" = None) -> typer.Typer:
    """The command group; `ble_backend` defaults to the system's Bluetooth."""
    app = typer.Typer(help="Run an edge gateway (BLE, NFC, UHF RFID → MQTT).", no_args_is_help=True)
    app.command("nfc-write")(nfc_write)

    @app.command("run")
    def run(config: ConfigOption = DEFAULT_CONFIG) -> None:
        """Scan BLE, aggregate per window and publish through the durable outbox."""
        _run(config, ble_backend)

    app.command("doctor")(doctor)
    return app


def _run(config: Path, ble_backend: "BleBackendProvider | None") -> None:
    import asyncio
    import logging

    from omnizone.gateway.ble.backend import system_backend
    from omnizone.gateway.runner import run_gateway
    from omnizone.gateway.settings import GatewayConfigError, load_gateway_settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        settings = load_gateway_settings(config)
        asyncio.run(run_gateway(settings, ble_backend=ble_backend or system_backend))
    except GatewayConfigError as error:
        typer.secho(str(error), fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None


def doctor(
    config: ConfigOption = DEFAULT_CONFIG,
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


gateway_app = make_gateway_app()
