"""Reading a store file (YAML) with errors that name the file, line, field and
fault: every fault of the file in one run, with a "did you mean" for a
misspelled id or field name, so one edit fixes them all."""

import re
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from omnizone.store.model import Loc, PlanFault, PlanFaults, StorePlan, reference_faults
from omnizone.store.suggest import did_you_mean


@dataclass(frozen=True, slots=True)
class StoreFault:
    """One fault: the line it is on (None: not known, or a one-line document
    such as a JSON layout), and the sentence naming the field and the fault."""

    line: int | None
    text: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.text}" if self.line is not None else self.text


class StoreConfigError(ValueError):
    """A store (or calibration) file that cannot be used. ``problems`` holds one
    line per fault (``line 12: gateways[1] (gw-denim).zone: unknown zone …``);
    ``str()`` puts the file in front of each, one fault per line."""

    def __init__(
        self, source: str, problems: list[str], faults: list[StoreFault] | None = None
    ) -> None:
        self.source = source
        self.problems = problems
        self.faults = faults if faults is not None else [StoreFault(None, p) for p in problems]
        super().__init__("\n".join(f"{source}: {problem}" for problem in problems))


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
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        data: Any = loader.construct_document(root) if root is not None else None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise StoreConfigError(source, [f"{where}not valid YAML: {problem}"]) from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise StoreConfigError(source, ["expected a mapping with 'store', 'zones' and 'gateways'"])
    try:
        return StorePlan.model_validate(data)
    except ValidationError as error:
        lines = root if "\n" in text.strip() else None  # a one-line document has no lines to name
        faults = store_faults(error, data, lines)
        raise StoreConfigError(source, [str(f) for f in faults], faults) from None


def store_faults(
    error: ValidationError, data: dict[str, Any], root: Any = None
) -> list[StoreFault]:
    """Every fault of a store file: field errors, cross-check faults, and the
    misspelled ids a field error kept the cross-checks from reaching, in the
    order of the file."""
    located: list[tuple[Loc, str]] = []
    checked = False
    for item in error.errors(include_url=False):
        cause = (item.get("ctx") or {}).get("error")
        if isinstance(cause, PlanFaults):
            checked = True
            located += [(fault.loc, fault.text) for fault in cause.faults]
        else:
            located.append((tuple(item["loc"]), _problem(item, data, StorePlan)))
    if not checked:  # field errors stopped the cross-checks: still name unknown ids
        field_locs = [loc for loc, _ in located]
        located += [
            (fault.loc, fault.text)
            for fault in reference_faults(data)
            if not any(_related(fault, loc) for loc in field_locs)
        ]
    faults: list[StoreFault] = []
    for loc, text in located:
        fault = StoreFault(_line(root, loc), text)
        if fault not in faults:
            faults.append(fault)
    return sorted(faults, key=lambda f: f.line if f.line is not None else 1 << 30)


def validation_problems(
    error: ValidationError, data: dict[str, Any], model: type[BaseModel] | None = None
) -> list[str]:
    """``field.path: what`` per field error (also used for calibration files)."""
    return [_problem(item, data, model) for item in error.errors(include_url=False)]


def _problem(item: Any, data: dict[str, Any], model: type[BaseModel] | None) -> str:
    loc = list(item["loc"])
    message = item["msg"].removeprefix("Value error, ") + _suggestion(item, model)
    return f"{_field_path(loc, data)}: {message}" if loc else message


def _suggestion(item: Any, model: type[BaseModel] | None) -> str:
    """A near-miss name for an unknown key or an unknown choice, else ``""``."""
    if item["type"] == "extra_forbidden" and model is not None and item["loc"]:
        *parent, key = item["loc"]
        return did_you_mean(key, _field_names(model, parent))
    if item["type"] in ("enum", "literal_error"):
        expected = str((item.get("ctx") or {}).get("expected", ""))
        return did_you_mean(item.get("input"), re.findall(r"'([^']*)'", expected))
    return ""


def _field_names(model: type[BaseModel], loc: list[int | str]) -> list[str]:
    """The field names allowed at ``loc`` (a mapping inside ``model``)."""
    annotation: Any = model
    for part in loc:
        annotation = _unwrap(annotation)
        if isinstance(part, int):
            args = get_args(annotation)
            if get_origin(annotation) not in (list, tuple) or not args:
                return []
            annotation = args[0]
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = annotation.model_fields.get(part)
            if field is None:
                return []
            annotation = field.annotation
        else:
            return []
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return list(annotation.model_fields)
    return []


def _unwrap(annotation: Any) -> Any:
    """``X`` from ``Annotated[X, …]`` and from ``X | None``."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            options = [a for a in get_args(annotation) if a is not type(None)]
            if len(options) != 1:
                return annotation
            annotation = options[0]
        else:
            return annotation


def _related(fault: PlanFault, loc: Loc) -> bool:
    """The same field (or one inside the other): already reported."""
    shorter = min(len(fault.loc), len(loc))
    return fault.loc[:shorter] == loc[:shorter]


def _line(root: Any, loc: Loc) -> int | None:
    """The 1-based line of the deepest part of ``loc`` present in the YAML."""
    if root is None:
        return None
    node: Any = root
    line = int(root.start_mark.line) + 1
    for part in loc:
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == part:
                    node, line = value, int(key.start_mark.line) + 1
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if not 0 <= part < len(node.value):
                return line
            node = node.value[part]
            line = int(node.start_mark.line) + 1
        else:
            return line
    return line


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
