"""docs/store-config.md cannot drift from the code: its example loads, and the
error messages it quotes are the ones the broken fixtures really produce."""

import re
from pathlib import Path

import pytest

from omnizone.store import StoreConfigError, ZoneKind, load_store, parse_store

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "store-config.md"
BROKEN = Path(__file__).resolve().parent / "broken"


def _blocks(language: str) -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    return re.findall(rf"^```{language}\n(.*?)^```$", text, flags=re.S | re.M)


def test_the_trimmed_example_loads() -> None:
    [example] = _blocks("yaml")
    plan = parse_store(example, source=f"{DOC.name} example")
    assert plan.id == "paris-rivoli"
    assert plan.entrances == ["entrance"]
    assert "fitting-room-2" not in plan.adjacency["fitting-room-1"]
    assert plan.gateway_zones["gw-denim"] == "denim"
    assert plan.zone("womenswear").kind is ZoneKind.SALES


def test_the_trimmed_example_agrees_with_the_full_file() -> None:
    [example] = _blocks("yaml")
    trimmed = parse_store(example)
    full = load_store(ROOT / "config" / "stores" / "rivoli.yaml")
    for zone in trimmed.zones:
        assert zone == full.zone(zone.id)
    assert trimmed.store == full.store


QUOTED = [
    line for block in _blocks("") for line in block.splitlines() if line.startswith("broken/")
]


def test_the_doc_quotes_errors() -> None:
    assert len(QUOTED) >= 8


@pytest.mark.parametrize("line", QUOTED, ids=QUOTED)
def test_quoted_error_is_what_the_loader_says(line: str) -> None:
    """Each quoted line is one line the loader prints for that file."""
    name = line.removeprefix("broken/").split(": ", 1)[0]
    with pytest.raises(StoreConfigError) as caught:
        load_store(BROKEN / name)
    printed = str(caught.value).replace(str(BROKEN), "broken").splitlines()
    assert line in printed
