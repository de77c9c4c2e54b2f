"""``omnizone calibrate``: a store's radio parameters from a survey walk,
written to the calibration file the store file points to (docs/localization.md)."""

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from rich.console import Console


def calibrate(
    store: Annotated[Path, typer.Option(help="store file (YAML)")],
    survey: Annotated[
        Path | None,
        typer.Option(
            help="survey CSV: zone[,x,y],<anchor>…; default: the one the store file names"
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="write the calibration YAML here (default: print only)")
    ] = None,
    force: Annotated[bool, typer.Option(help="overwrite --out if it exists")] = False,
    folds: Annotated[int, typer.Option(min=2, max=20, help="cross-validation folds")] = 5,
    json_output: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Fit each anchor's power at 1 m, path-loss exponent and spread from a survey;
    flag anchors whose fit is poor or whose position looks wrong; estimate the
    zone accuracy to expect, by cross-validation."""
    from rich.console import Console

    from omnizone.server.domain.localize.survey import SurveyError, load_survey
    from omnizone.server.service.calibration import calibrate as fit
    from omnizone.server.service.calibration import report
    from omnizone.store import StoreConfigError, load_store
    from omnizone.store.calibration import dump_calibration

    console = Console(stderr=True)
    try:
        plan = load_store(store)
        survey_path = survey or (
            Path(plan.localization.survey) if plan.localization.survey else None
        )
        if survey_path is None:
            console.print(f"[red]{store}: no --survey given and the store file names none[/]")
            raise typer.Exit(2)
        walk = load_survey(survey_path, plan)
    except (StoreConfigError, SurveyError) as error:
        console.print(str(error), style="red", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    if out is not None and out.exists() and not force:
        console.print(f"[red]{out} exists; pass --force to overwrite it[/]")
        raise typer.Exit(2)
    result = fit(plan, walk, folds=folds)
    summary = report(result, plan)
    summary["survey"] = str(survey_path)
    if out is not None:
        out.write_text(dump_calibration(result.calibration), encoding="utf-8")
        summary["written"] = str(out)
        named = plan.localization.calibration
        if named is None or Path(named).resolve() != out.resolve():
            relative = os.path.relpath(out.resolve(), store.resolve().parent)
            summary["notes"].append(
                f"the store file does not point to {out}: add 'localization: "
                f"{{calibration: {relative}}}' to {store} for the server to use it"
            )
    if json_output:
        typer.echo(json.dumps(summary))
        return
    _print(console, summary)


def _print(console: "Console", summary: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title=f"calibration of {summary['store']} ({summary['positions']})")
    for name in ("anchor", "power@1m", "exponent", "spread", "outliers", "flags"):
        table.add_column(name)
    for anchor, fit in summary["anchors"].items():
        table.add_row(
            anchor,
            f"{fit['power_1m_dbm']:.1f} dBm",
            f"{fit['exponent']:.2f}",
            f"{fit['spread_db']:.1f} dB",
            f"{fit['outlier_share']:.0%}",
            "\n".join(fit["flags"]) or "ok",
        )
    console.print(table)
    console.print("expected zone accuracy:", summary["expected_zone_accuracy"])
    for note in summary["notes"]:
        console.print(f"note: {note}")
