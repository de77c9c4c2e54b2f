"""`omnizone sim datasets …`: the shared real-radio data sets as omnizone files."""

import json
from pathlib import Path
from typing import Annotated

import typer

datasets_app = typer.Typer(
    help="Turn the shared public BLE data sets into stores, readings, truth and surveys.",
    no_args_is_help=True,
)


@datasets_app.command("convert")
def convert(
    out: Annotated[Path, typer.Option(help="folder to write the converted files into")],
    data: Annotated[
        Path, typer.Option(help="the shared data sets (read only, never copied)")
    ] = Path("../shared/data"),
    only: Annotated[
        list[str] | None, typer.Option("--set", help="convert only this set (repeatable)")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="print the manifest")] = False,
) -> None:
    """Convert every set found in DATA into OUT (docs/real-data.md)."""
    from rich.console import Console

    from omnizone.suite.datasets.common import DatasetError
    from omnizone.suite.datasets.convert import convert_all

    console = Console(stderr=True, soft_wrap=True)
    try:
        manifest = convert_all(data, out, only)
    except DatasetError as error:
        console.print(str(error), style="red", markup=False, highlight=False)
        raise typer.Exit(2) from None
    if json_output:
        typer.echo(json.dumps(manifest))
        return
    for name in manifest["missing_sets"]:
        console.print(f"{data / name}: not found, skipped", style="yellow", markup=False)
    console.print(
        f"{len(manifest['files'])} files in {out}; see {out / 'README.txt'}", markup=False
    )
