"""The real driver against the emulated reader on a pseudo-terminal, feeding a
real GatewayNode and a real SQLite outbox; time is a fake clock the test moves."""

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from omnizone.contract import (
    GatewayConfig,
    HealthMessage,
    RfidConfig,
    RfidMessage,
    RfidRead,
    TryOn,
    parse_message,
)
from omnizone.gateway.node import GatewayNode
from omnizone.gateway.outbox import Outbox
from omnizone.gateway.rfid.reader import RfidReader
from omnizone.gateway.rfid.settings import RfidReaderSettings
from omnizone.sim.devices.uhf_reader import EmulatedUhfReader, SerialNoise

T0 = 1_700_000_000_000
SHIRT = "3074257bf7194e4000001a85"  # GTIN 80614141123458, serial 6789
NOISE = SerialNoise(garbage_rate=0.08, split_rate=0.2, corrupt_rate=0.04, truncate_rate=0.03)


class FakeClock:
    def __init__(self) -> None:
        self.now = T0
        self._lock = threading.Lock()

    def __call__(self) -> int:
        return self.now

    def advance(self, ms: int) -> None:
        with self._lock:
            self.now += ms


def wait_for(predicate: Callable[[], bool], what: str, limit_s: float = 15.0) -> None:
    """Poll; the limit only bounds a hung test, nothing is asserted about speed."""
    deadline = time.monotonic() + limit_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.005)


class Rig:
    def __init__(self, tmp_path: Path, emulator: EmulatedUhfReader, **overrides: object) -> None:
        self.clock = FakeClock()
        self.outbox = Outbox(tmp_path / "outbox.db")
        self.node = GatewayNode(
            "rivoli", "gw-fitting", self.outbox, clock=self.clock, health_interval_ms=60_000
        )
        self.emulator = emulator
        fields: dict[str, object] = {
            "id": "fitting-1",
            "port": emulator.port,
            "antennas": [1, 2],
            "arrive_reads": 3,
            "arrive_within_ms": 2_000,
            "depart_after_ms": 8_000,
            "window_ms": 1_000,
            "response_timeout_s": 0.2,
        }
        fields.update(overrides)
        self.settings = RfidReaderSettings.model_validate(fields)
        self.reader = RfidReader(self.settings, self.node, backoff_s=(0.01, 0.05))

    def messages(self) -> list[RfidMessage | HealthMessage]:
        out: list[RfidMessage | HealthMessage] = []
        for entry in self.outbox.pending(limit=10_000):
            message = parse_message(entry.topic, entry.payload)
            assert isinstance(message, RfidMessage | HealthMessage)
            out.append(message)
        return out

    def try_ons(self) -> list[TryOn]:
        return [
            item
            for m in self.messages()
            if isinstance(m, RfidMessage)
            for item in m.items
            if isinstance(item, TryOn)
        ]

    def rounds_pass(self, n: int = 2) -> None:
        """Let the driver finish `n` more inventory rounds."""
        target = self.reader.counters.rounds + n
        wait_for(lambda: self.reader.counters.rounds >= target, f"{n} inventory rounds")


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    emulator = EmulatedUhfReader(noise=NOISE, seed=3, round_s=0.002)
    emulator.start()
    rig = Rig(tmp_path, emulator)
    rig.reader.start()
    yield rig
    rig.reader.stop()
    emulator.stop()
    rig.outbox.close()


def test_garment_arrives_and_departs_through_a_noisy_line(rig: Rig) -> None:
    wait_for(lambda: rig.node.readers["fitting-1"] == "inventory", "inventory state")
    assert rig.emulator.power_dbm == rig.settings.power_dbm

    rig.emulator.put_tag(SHIRT, rssi_dbm=-48, antenna=2)
    wait_for(lambda: any(t.event == "arrived" for t in rig.try_ons()), "arrival")

    # Keep the garment in while the clock runs: it stays, its reads are published.
    for _ in range(5):
        rig.clock.advance(1_000)
        rig.rounds_pass()
    assert [t.event for t in rig.try_ons()] == ["arrived"]
    assert rig.node.health_counters()["rfid.fitting-1.items_present"] == 1

    rig.emulator.remove_tag(SHIRT)
    for _ in range(40):
        rig.clock.advance(1_000)
        rig.rounds_pass()
        if len(rig.try_ons()) > 1:
            break
    arrived, departed = rig.try_ons()
    assert (arrived.event, departed.event) == ("arrived", "departed")
    for event in (arrived, departed):
        assert (event.reader, event.epc) == ("fitting-1", SHIRT)
        assert (event.gtin, event.serial) == ("80614141123458", "6789")
    assert departed.at_ms > arrived.at_ms

    reads = [
        i
        for m in rig.messages()
        if isinstance(m, RfidMessage)
        for i in m.items
        if isinstance(i, RfidRead)
    ]
    assert reads and {(r.antenna, r.epc, r.gtin) for r in reads} == {(2, SHIRT, "80614141123458")}
    assert all(r.rssi == -48.0 for r in reads)

    # The noise was real, and the driver counted it in its health report.
    wait_for(
        lambda: rig.emulator.counters.corrupted > 0 and rig.emulator.counters.truncated > 0, "noise"
    )
    rig.clock.advance(60_000)
    rig.node.tick()
    health = [m for m in rig.messages() if isinstance(m, HealthMessage)][-1]
    assert health.readers["fitting-1"] == "inventory"
    assert health.counters["rfid.fitting-1.bad_frames"] >= 1
    assert health.counters["rfid.fitting-1.resyncs"] >= 1
    assert health.counters["rfid.fitting-1.reads"] >= 3
    assert health.counters["rfid.fitting-1.reconnects"] == 0


def test_server_config_applies_without_restart(rig: Rig) -> None:
    wait_for(lambda: rig.node.readers["fitting-1"] == "inventory", "inventory state")
    config = GatewayConfig(
        store="rivoli",
        gateway="gw-fitting",
        revision=1,
        issued_ms=T0,
        rfid=RfidConfig(power_dbm=18, arrive_reads=1, depart_after_ms=2_000),
    )
    assert rig.node.apply_config(config)
    wait_for(lambda: rig.emulator.power_dbm == 18, "new output power")
    assert rig.reader.settings.depart_after_ms == 2_000
    assert rig.reader.room.rules.arrive_reads == 1
    assert rig.reader._thread is not None and rig.reader._thread.is_alive()


def test_port_vanishes_and_comes_back(tmp_path: Path) -> None:
    link = tmp_path / "ttyUSB-uhf"
    first = EmulatedUhfReader(link=link, round_s=0.002)
    first.start()
    rig = Rig(tmp_path, first, port=str(link), antennas=[1])
    rig.reader.start()
    try:
        wait_for(lambda: rig.node.readers["fitting-1"] == "inventory", "inventory state")
        first.stop()  # USB cable pulled
        wait_for(lambda: rig.node.readers["fitting-1"] != "inventory", "the driver noticing")
        assert rig.node.readers["fitting-1"].startswith(("error", "reconnecting"))

        second = EmulatedUhfReader(link=link, round_s=0.002)  # plugged back: a new /dev/pts/N
        second.start()
        try:
            wait_for(lambda: rig.node.readers["fitting-1"] == "inventory", "reconnection")
            assert rig.reader.counters.reconnects >= 1
            second.put_tag(SHIRT)
            wait_for(
                lambda: [t.event for t in rig.try_ons()] == ["arrived"], "arrival after replug"
            )
        finally:
            second.stop()
    finally:
        rig.reader.stop()
        rig.outbox.close()
    assert rig.node.readers["fitting-1"] == "stopped"


def test_a_port_spewing_garbage_never_kills_the_driver(tmp_path: Path) -> None:
    awful = SerialNoise(garbage_rate=1.0, split_rate=0.5, corrupt_rate=0.5, truncate_rate=0.3)
    emulator = EmulatedUhfReader(noise=awful, seed=11, round_s=0.001)
    emulator.start()
    rig = Rig(tmp_path, emulator, antennas=[1])
    emulator.put_tag(SHIRT)
    rig.reader.start()
    try:
        wait_for(lambda: rig.reader.parser.stats.bad_frames >= 20, "many bad frames")
        assert rig.reader._thread is not None and rig.reader._thread.is_alive()
        values = rig.node.health_counters()
        assert values["rfid.fitting-1.bad_frames"] >= 20
        assert "rfid.fitting-1.counter_errors" not in values
    finally:
        rig.reader.stop()
        emulator.stop()
        rig.outbox.close()


def test_missing_port_is_reported_and_retried(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.db")
    node = GatewayNode("rivoli", "gw-fitting", outbox, clock=FakeClock())
    settings = RfidReaderSettings(id="fitting-1", port=str(tmp_path / "nothing-here"))
    reader = RfidReader(settings, node, backoff_s=(0.01, 0.02))
    reader.start()
    try:
        wait_for(lambda: reader.counters.reconnects >= 3, "retries")
        assert node.readers["fitting-1"].startswith(("error:", "reconnecting"))
    finally:
        reader.stop()
        outbox.close()


def test_probe_for_doctor(tmp_path: Path) -> None:
    from omnizone.gateway.rfid.reader import probe_reader

    with EmulatedUhfReader(firmware=(3, 1)) as emulator:
        ok, text = probe_reader(RfidReaderSettings(id="fitting-1", port=emulator.port))
        assert ok and "firmware 3.1" in text
        silent = RfidReaderSettings(
            id="fitting-1", port=emulator.port, address=0x07, response_timeout_s=0.1
        )
        ok, text = probe_reader(silent)  # the module answers only its own address
        assert not ok and "no answer" in text
    ok, text = probe_reader(RfidReaderSettings(id="fitting-1", port=str(tmp_path / "gone")))
    assert not ok and "dialout" in text
