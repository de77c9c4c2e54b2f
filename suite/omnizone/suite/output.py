"""How a command prints its result: one JSON object with ``--json``, else rich."""

import json
from typing import TYPE_CHECKING, Any, NoReturn

import typer

if TYPE_CHECKING:
    from rich.console import Console


def print_result(result: Any, json_output: bool, console: "Console | None" = None) -> None:
    """A command's result: one JSON object on stdout with --json, else rich's
    pretty print (on ``console``, stdout by default)."""
    if json_output:
        typer.echo(json.dumps(result))
        return
    if console is None:
        from rich.console import Console

        console = Console()
    console.print(result)


def fail(command: str, message: str) -> NoReturn:
    """A user's mistake: one line on stderr (what, where, how to fix it), exit code 2."""
    typer.echo(f"omnizone {command}: {message}", err=True)
    raise typer.Exit(2)
