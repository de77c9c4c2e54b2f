"""Reading a store file (YAML) with errors that name the file, field and fault."""

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from omnizone.store.model import StorePlan


class StoreConfigError(ValueError):
    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


def load_store(path: str | Path) -> StorePlan:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise StoreConfigError(str(path), [f"cannot read the file: {error.strerror}"]) from None
    return resolve_paths(parse_store(text, source=str(path)), path.parent)


def resolve_paths(plan: StorePlan, folder: Path) -> StorePlan:
    """The store file's own references (survey, calibration) as absolute paths:
    relative to the store file, not to wherever the command was started."""
    loc = plan.localization
    fixed = {
        name: str((folder / value).resolve())
        for name, value in (("survey", loc.survey), ("calibration", loc.calibration))
        if value is not None
    }
    if not fixed:
        return plan
    return plan.model_copy(update={"localization": loc.model_copy(update=fixed)})


def parse_store(text: str, source: str = "<store>") -> StorePlan:
    try:
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise StoreConfigError(source, [f"{where}not valid YAML: {problem}"]) from None
    if not isinstance(data, dict):
        raise StoreConfigError(source, ["expected a mapping with 'store', 'zones' and 'gateways'"])
    try:
        return StorePlan.model_validate(data)
    except ValidationError as error:
        raise StoreConfigError(source, validation_problems(error, data)) from None


def validation_problems(error: ValidationError, data: dict[str, Any]) -> list[str]:
    problems = []
    for item in error.errors(include_url=False):
        loc = list(item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        problems.append(f"{_field_path(loc, data)}: {message}" if loc else message)
    return problems


def _field_path(loc: list[int | str], data: Any) -> str:
    """'zones[3] (fitting-room-1).polygon' instead of 'zones.3.polygon'."""
    out = ""
    node = data
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            name = None
            if isinstance(node, list) and 0 <= part < len(node):
                node = node[part]
                name = node.get("id") if isinstance(node, dict) else None
            else:
                node = None
            if name:
                out += f" ({name})"
        else:
            out += f".{part}" if out else str(part)
            node = node.get(part) if isinstance(node, dict) else None
    return out
