"""The CSV examples in docs/real-data.md import as the page says."""

import re
from pathlib import Path

import pytest

from omnizone.paths import shipped_config
from omnizone.sim.recording.imports import (
    import_device_key,
    read_readings,
    read_truth,
    readings_to_messages,
)
from omnizone.store import StorePlan, load_store

DOC = Path(__file__).resolve().parents[2] / "docs" / "real-data.md"
EXAMPLE = re.compile(r"<!-- example: (?P<name>[\w-]+) -->\n```csv\n(?P<body>.*?)```", re.S)


@pytest.fixture(scope="module")
def examples() -> dict[str, str]:
    return {m["name"]: m["body"] for m in EXAMPLE.finditer(DOC.read_text(encoding="utf-8"))}


@pytest.fixture(scope="module")
def plan() -> StorePlan:
    return load_store(shipped_config("stores/rivoli.yaml"))


def test_the_docs_have_their_examples(examples: dict[str, str]) -> None:
    assert set(examples) == {"readings", "truth-xy", "truth-zone"}


def test_the_readings_example_imports(
    tmp_path: Path, examples: dict[str, str], plan: StorePlan
) -> None:
    path = tmp_path / "readings.csv"
    path.write_text(examples["readings"], encoding="utf-8")
    readings = read_readings(path, plan)
    assert len(readings) == len(examples["readings"].splitlines()) - 1
    topics = {m.topic.split("/")[3] for m in readings_to_messages(plan, readings)}
    assert topics == {"gw-entrance", "gw-womenswear", "bcn-checkout"}


def test_the_truth_examples_import(
    tmp_path: Path, examples: dict[str, str], plan: StorePlan
) -> None:
    phone = import_device_key("7C:D1:C3:4A:5B:6E")
    for name, zones in (
        ("truth-xy", ["entrance", "accessories", None]),
        ("truth-zone", ["entrance", "accessories"]),
    ):
        path = tmp_path / f"{name}.csv"
        path.write_text(examples[name], encoding="utf-8")
        points = read_truth(path, plan)
        assert [p.zone for p in points] == zones and {p.device for p in points} == {phone}
