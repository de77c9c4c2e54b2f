"""Config errors for campaign and catalog files, worded so a merchandiser can fix
the file: every problem names the file, the item (index and id) and the field."""

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError


class OffersConfigError(ValueError):
    """One or more problems in a campaign or catalog file (or API body)."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(f"{source}: {problem}" for problem in problems))


def read_yaml(path: str | Path) -> tuple[str, Any]:
    """The file's name as given (for messages) and its parsed YAML."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise OffersConfigError(source, [f"cannot read the file: {error.strerror}"]) from None
    return source, parse_yaml(text, source)


def parse_yaml(text: str, source: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise OffersConfigError(source, [f"{where}not valid YAML: {problem}"]) from None


def top_level_list(data: Any, key: str, source: str) -> list[Any]:
    """The one list a campaign or catalog file holds, e.g. ``campaigns: [...]``."""
    if not isinstance(data, dict) or key not in data:
        raise OffersConfigError(source, [f"expected a mapping with a '{key}' list"])
    unknown = sorted(str(k) for k in data if k != key)
    if unknown:
        raise OffersConfigError(source, [f"unknown top-level key(s): {', '.join(unknown)}"])
    items = data[key]
    if items is None:
        return []
    if not isinstance(items, list):
        raise OffersConfigError(source, [f"{key}: expected a list, got {type(items).__name__}"])
    return items


def item_label(key: str, index: int, item: Any, id_field: str) -> str:
    """``campaigns[2] (id 'denim-10')``; the id only when the item has one."""
    label = f"{key}[{index}]"
    if isinstance(item, dict) and isinstance(item.get(id_field), str):
        label += f" ({id_field} {item[id_field]!r})"
    return label


def validation_problems(error: ValidationError, data: Any) -> list[str]:
    """Pydantic errors as ``field.path[0]: message`` lines."""
    problems = []
    for detail in error.errors(include_url=False):
        message = detail["msg"].removeprefix("Value error, ")
        path = field_path(list(detail["loc"]), data)
        problems.append(f"{path}: {message}" if path else message)
    return problems


def field_path(loc: list[int | str], data: Any) -> str:
    """``trigger.zones[0]`` from pydantic's ``('trigger', 'zone_entered', 'zones', 0)``.

    Discriminated unions add the tag (``zone_entered``) to the location; it is
    not a key of the input, so it is dropped.
    """
    out = ""
    node = data
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            node = node[part] if isinstance(node, list) and 0 <= part < len(node) else None
            continue
        if isinstance(node, dict) and part not in node and part in node.values():
            continue  # the union tag
        out += f".{part}" if out else part
        node = node.get(part) if isinstance(node, dict) else None
    return out
