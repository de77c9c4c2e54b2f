"""`omnizone sim import`: a readings CSV from any tool becomes a recording."""

import json
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer


def import_command(
    store: Annotated[Path, typer.Option(help="store file (YAML) the anchors and zones belong to")],
    readings: Annotated[Path, typer.Option(help="readings CSV: time,anchor,device,rssi")],
    out: Annotated[Path, typer.Option(help="recording to write (.ozr)")],
    truth: Annotated[
        Path | None,
        typer.Option(help="ground truth CSV to check: time,device,x,y or time,device,zone"),
    ] = None,
    window_ms: Annotated[
        int, typer.Option(min=100, max=600_000, help="the gateways' aggregation window")
    ] = 1000,
    force: Annotated[bool, typer.Option(help="overwrite OUT if it exists")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="print one JSON summary")] = False,
) -> None:
    """Turn a readings CSV into a recording, aggregated by the real gateway code.

    With --truth, the truth file is checked too (docs/real-data.md)."""
    from rich.console import Console

    from omnizone.sim.recording.format import RecordingHeader, write_recording
    from omnizone.sim.recording.imports import (
        ImportProblems,
        read_readings,
        read_truth,
        readings_to_messages,
    )
    from omnizone.store import StoreConfigError, load_store

    console = Console(stderr=True, soft_wrap=True)
    try:
        plan = load_store(store)
        rows = read_readings(readings, plan)
        points = read_truth(truth, plan) if truth is not None else None
    except (StoreConfigError, ImportProblems) as error:
        console.print(str(error), style="red", markup=False, highlight=False)
        raise typer.Exit(2) from None
    if out.exists() and not force:
        console.print(f"{out}: exists; pass --force to overwrite", style="red", markup=False)
        raise typer.Exit(2)
    messages = readings_to_messages(plan, rows, window_ms=window_ms)
    header = RecordingHeader(
        store=plan.id, started_ms=rows[0].t_ms, source="import", note=f"from {readings.name}"
    )
    try:
        out.unlink(missing_ok=True)
        write_recording(out, header, messages)
    except OSError as error:
        console.print(f"{out}: cannot write: {error.strerror}", style="red", markup=False)
        raise typer.Exit(2) from None
    per_anchor = Counter(m.topic.split("/")[3] for m in messages)
    gateways = {g.id for g in plan.gateways}
    beacon_only = sorted({r.anchor for r in rows} - gateways)
    if beacon_only:
        console.print(
            f"fixed beacons as anchors: {', '.join(beacon_only)}; the server drops their messages "
            "unless the store also has gateways of those ids (docs/real-data.md)",
            style="yellow",
            markup=False,
        )
    summary: dict[str, Any] = {
        "store": plan.id,
        "readings": len(rows),
        "devices": len({r.device for r in rows}),
        "first_ms": rows[0].t_ms,
        "last_ms": rows[-1].t_ms,
        "window_ms": window_ms,
        "messages": len(messages),
        "messages_per_anchor": dict(sorted(per_anchor.items())),
        "beacon_anchors": beacon_only,
        "out": str(out),
        "truth": None,
    }
    if points is not None:
        zones = Counter(p.zone or "(outside)" for p in points)
        truth_devices = {p.device for p in points}
        summary["truth"] = {
            "points": len(points),
            "devices": len(truth_devices),
            "devices_without_readings": len(truth_devices - {r.device for r in rows}),
            "zones": dict(sorted(zones.items())),
        }
    if json_output:
        typer.echo(json.dumps(summary))
    else:
        console.print(summary)
