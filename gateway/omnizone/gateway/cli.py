"""`omnizone gateway …` commands. Heavy imports stay inside the commands."""

from pathlib import Path
from typing import Annotated

import typer

gateway_app = typer.Typer(help="Run an edge gateway (BLE → MQTT).", no_args_is_help=True)


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
