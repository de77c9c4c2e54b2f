"""Shared by the gateway tests: a clock the test moves, and a real outbox."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from omnizone.gateway.outbox import Outbox


class FakeClock:
    """Epoch milliseconds that only move when the test says so."""

    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    box = Outbox(tmp_path / "outbox.db")
    yield box
    box.close()
