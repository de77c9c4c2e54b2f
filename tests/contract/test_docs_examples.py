"""docs/wire-contract.md cannot drift from the code: every ```json block in it
must be accepted by parse_message on the topic written just above it."""

import json
import re
from pathlib import Path

import pytest

from omnizone.contract import (
    dump_ack,
    dump_config,
    dump_message,
    parse_ack,
    parse_config,
    parse_message,
    parse_topic,
)
from omnizone.contract.topics import GATEWAY_KINDS, SERVER_KINDS, Kind

DOC = Path(__file__).resolve().parents[2] / "docs" / "wire-contract.md"
TOPIC_IN_LINE = re.compile(r"`(omnizone/v\d+/[^`\s]+)`")


def examples() -> list[tuple[int, str, str]]:
    """(line number, topic, json text) for every ```json block of the doc."""
    lines = DOC.read_text(encoding="utf-8").splitlines()
    found = []
    for i, line in enumerate(lines):
        if line.strip() != "```json":
            continue
        above = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        match = TOPIC_IN_LINE.search(above)
        assert match, f"{DOC.name}:{i + 1}: a json block needs its topic on the line above"
        end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "```")
        found.append((i + 1, match.group(1), "\n".join(lines[i + 1 : end])))
    return found


EXAMPLES = examples()


def test_the_doc_has_one_example_of_every_kind() -> None:
    kinds = sorted(parse_topic(topic).kind.value for _, topic, _ in EXAMPLES)
    assert kinds == sorted(k.value for k in GATEWAY_KINDS | SERVER_KINDS)


@pytest.mark.parametrize(
    ("line", "topic", "text"), EXAMPLES, ids=[f"line-{line}" for line, _, _ in EXAMPLES]
)
def test_doc_example_is_a_valid_message(line: int, topic: str, text: str) -> None:
    # The example shows exactly what is sent: nothing left to defaults.
    kind = parse_topic(topic).kind
    if kind is Kind.CONFIG:
        sent = dump_config(parse_config(topic, text.encode()))
    elif kind is Kind.ACK:
        sent = dump_ack(parse_ack(topic, text.encode()))
    else:
        sent = dump_message(parse_message(topic, text.encode()))
    assert json.loads(sent) == json.loads(text), f"line {line}"
