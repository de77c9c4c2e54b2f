"""``omnizone sim datasets convert``: the shared data sets as omnizone files.

Reads ``../shared/data`` (never copies it) and writes, into one folder, the
store files, readings, truth and surveys that ``sim import``, ``eval replay``
and ``eval fingerprint`` take, with a ``manifest.json`` and a ``README.txt``
saying what each file is and where it came from (docs/real-data.md).
"""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import manwestc, marckolak, uci
from .common import DatasetError, Output

DEFAULT_DATA = Path("../shared/data")
CONVERTERS: dict[str, Callable[[Path, Output], dict[str, Any]]] = {
    marckolak.SOURCE: marckolak.convert,
    uci.SOURCE: uci.convert,
    manwestc.SOURCE: manwestc.convert,
}


def convert_all(data: Path, out: Path, sets: list[str] | None = None) -> dict[str, Any]:
    """Convert each set found in ``data`` (or those named) into ``out``."""
    if not data.is_dir():
        raise DatasetError(
            [f"{data}: no data folder here (the shared data sets; pass --data PATH)"]
        )
    wanted = sets or list(CONVERTERS)
    unknown = [name for name in wanted if name not in CONVERTERS]
    if unknown:
        raise DatasetError(
            [f"unknown data set {', '.join(unknown)}; known: {', '.join(CONVERTERS)}"]
        )
    missing = [name for name in wanted if not (data / name).is_dir()]
    if missing and sets:
        raise DatasetError([f"{data / name}: not found" for name in missing])
    out.mkdir(parents=True, exist_ok=True)
    output = Output(out)
    converted = {
        name: CONVERTERS[name](data / name, output) for name in wanted if name not in missing
    }
    manifest = {
        "data": str(data.resolve()),
        "sets": converted,
        "missing_sets": missing,
        "files": output.files,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    (out / "README.txt").write_text(readme(manifest), encoding="utf-8")
    return manifest


def readme(manifest: dict[str, Any]) -> str:
    lines = [
        "Converted by `omnizone sim datasets convert` from the shared data sets",
        f"({manifest['data']}). See docs/real-data.md for the formats, the room",
        "geometry and the zone merges. Every file keeps its source's licence.",
        "",
    ]
    for name, facts in manifest["sets"].items():
        lines += [f"{name}: {facts['licence']}", f"  {facts['citation']}"]
    lines.append("")
    for entry in manifest["files"]:
        rows = f" ({entry['rows']} rows)" if "rows" in entry else ""
        lines.append(f"{entry['file']}  [{entry['kind']}, {entry['source']}]{rows}")
        lines.append(f"    {entry['what']}")
    return "\n".join(lines) + "\n"
