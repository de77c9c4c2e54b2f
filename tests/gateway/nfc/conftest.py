import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from omnizone.gateway.node import GatewayNode
from omnizone.gateway.outbox import Outbox
from omnizone.sim.devices.nfc_tag import NfcTagEmulator
from tests.gateway.conftest import FakeClock

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
STORE, GATEWAY = "paris-rivoli", "gw-denim"

Wait = Callable[[Callable[[], object], str], None]


def _wait(condition: Callable[[], object], what: str, timeout_s: float = 15.0) -> None:
    """Wait for an event; the timeout only turns a hang into a failure."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.005)


@pytest.fixture
def wait() -> Wait:
    return _wait


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    box = Outbox(tmp_path / "outbox.db")
    yield box
    box.close()


@pytest.fixture
def node(outbox: Outbox, clock: FakeClock) -> GatewayNode:
    return GatewayNode(STORE, GATEWAY, outbox, clock=clock)


@pytest.fixture
def emulator() -> Iterator[NfcTagEmulator]:
    with NfcTagEmulator() as card:
        yield card


@pytest.fixture(autouse=True)
def no_thread_left() -> Iterator[None]:
    yield
    left = [t.name for t in threading.enumerate() if t.name.startswith("nfc-")]
    assert left == [], f"threads left running: {left}"
