"""The scanner service on the emulated adapter: the real BleakScanner, a real
GatewayNode and a real outbox; the watchdog is stepped on a fake clock."""

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from omnizone.contract import BleConfig, BleMessage, GatewayConfig, parse_message
from omnizone.gateway.ble.adstructures import eddystone_eid_payload, ibeacon_payload
from omnizone.gateway.ble.scanner import BleScannerService, backoff_s
from omnizone.gateway.node import GatewayNode
from omnizone.gateway.outbox import Outbox
from omnizone.sim.devices.ble_backend import EmulatedAdapter
from tests.gateway.conftest import FakeClock

T0 = 1_767_225_600_000
STORE, GATEWAY = "paris-rivoli", "gw-entrance"
PHONE = "7C:D1:C3:4A:5B:6E"
EID = bytes.fromhex("a1b2c3d4e5f60718")
EID_ADVERT = eddystone_eid_payload(EID, -20)
IBEACON_ADVERT = ibeacon_payload(uuid.UUID("f7826da6-4fa2-4e98-8024-bc5b71e0893e"), 7, 42, -59)
CONTINUITY = bytes.fromhex("020106 0aff4c0010050118 1c2e7a")  # iPhone "Nearby Info"
NEVER = 1e9  # background checks never fire by themselves: the tests step the watchdog


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def epoch() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def node(outbox: Outbox, epoch: FakeClock) -> GatewayNode:
    return GatewayNode(STORE, GATEWAY, outbox, window_ms=1000, clock=epoch)


@pytest.fixture
def clock() -> Clock:
    return Clock(100.0)


@pytest.fixture
def adapter() -> Iterator[EmulatedAdapter]:
    radio = EmulatedAdapter("hci0")
    yield radio
    radio.close()


@pytest.fixture
async def service(
    node: GatewayNode, adapter: EmulatedAdapter, clock: Clock
) -> AsyncIterator[BleScannerService]:
    scanner = BleScannerService(
        node, watchdog_s=30, backend=adapter.backend, clock=clock, check_every_s=NEVER
    )
    yield scanner
    await scanner.stop()


def scanning(adapter: EmulatedAdapter) -> str | None:
    return adapter.scanning  # a call, so that mypy does not narrow between steps


def ble_messages(outbox: Outbox) -> list[BleMessage]:
    found = []
    for entry in outbox.pending(limit=1000):
        message = parse_message(entry.topic, entry.payload)
        if isinstance(message, BleMessage):
            found.append(message)
    return found


async def test_adverts_through_bleak_become_a_ble_message_without_macs(
    service: BleScannerService,
    node: GatewayNode,
    adapter: EmulatedAdapter,
    outbox: Outbox,
    epoch: FakeClock,
) -> None:
    await service.start()
    assert node.readers["ble"] == "scanning (passive)"
    assert adapter.scanning == "passive"
    for rssi in (-60, -70, -80):
        assert adapter.push(PHONE, EID_ADVERT, rssi)
    assert adapter.push("C3:00:1D:2E:4F:50", IBEACON_ADVERT, -50)
    # an iPhone's Continuity advert does not match the or-patterns: BlueZ keeps it
    assert not adapter.push("11:22:33:44:55:66", CONTINUITY, -40)
    assert adapter.counters.filtered == 1
    epoch.now_ms += 1000
    node.tick()
    (message,) = ble_messages(outbox)
    by_device = {item.device: item for item in message.items}
    assert set(by_device) == {
        "eid:a1b2c3d4e5f60718",
        "ibeacon:f7826da6-4fa2-4e98-8024-bc5b71e0893e:7:42",
    }
    eid = by_device["eid:a1b2c3d4e5f60718"]
    assert (eid.count, eid.rssi_mean, eid.rssi_max, eid.tx_power) == (3, -70.0, -60.0, -20)
    raw = outbox.pending()[0].payload.decode()
    assert PHONE not in raw and PHONE.replace(":", "") not in raw.upper()
    assert service.counters.scanner_starts == 1


async def test_a_stalled_scan_is_restarted_counted_and_resumes(
    service: BleScannerService, node: GatewayNode, adapter: EmulatedAdapter, clock: Clock
) -> None:
    await service.start()
    adapter.push(PHONE, EID_ADVERT, -60)
    await service.check()
    adapter.stall()
    assert not adapter.push(PHONE, EID_ADVERT, -60)
    clock.now += 29
    await service.check()
    assert service.counters.watchdog_restarts == 0  # not silent long enough yet
    clock.now += 1
    await service.check()
    assert service.counters.silent_restarts == 1
    assert service.counters.watchdog_restarts == 1
    assert service.counters.scanner_starts == 2
    assert node.readers["ble"] == "scanning (passive)"
    health = node.health_counters()
    assert health["ble.watchdog_restarts"] == 1
    assert health["ble.silent_restarts"] == 1
    seen = node.counters.adverts_seen
    assert adapter.push(PHONE, EID_ADVERT, -61)
    assert node.counters.adverts_seen == seen + 1


async def test_repeated_silence_backs_off(
    service: BleScannerService, node: GatewayNode, adapter: EmulatedAdapter, clock: Clock
) -> None:
    await service.start()
    adapter.stall(restarts=2)  # the next two restarts do not cure it
    clock.now += 30
    await service.check()  # first failure: restart at once
    assert service.counters.scanner_starts == 2
    clock.now += 30
    await service.check()  # second: wait backoff_s(2) = 1 s first
    assert node.readers["ble"] == "restarting"
    assert service.counters.scanner_starts == 2
    clock.now += backoff_s(2, 60)
    await service.check()
    assert service.counters.scanner_starts == 3
    assert not adapter.push(PHONE, EID_ADVERT, -60)  # still stalled
    clock.now += 30
    await service.check()
    clock.now += backoff_s(3, 60)
    await service.check()
    assert service.counters.watchdog_restarts == 3
    assert adapter.push(PHONE, EID_ADVERT, -60)  # cured on the third restart
    await service.check()
    starts = service.counters.scanner_starts
    adapter.stall()  # an advert reset the backoff: the next restart is immediate again
    clock.now += 30
    await service.check()
    assert service.counters.scanner_starts == starts + 1
    assert node.readers["ble"] == "scanning (passive)"


async def test_auto_falls_back_to_active_when_passive_is_refused(
    node: GatewayNode, clock: Clock
) -> None:
    radio = EmulatedAdapter("hci0", refuse_passive=True)
    scanner = BleScannerService(node, backend=radio.backend, clock=clock, check_every_s=NEVER)
    await scanner.start()
    try:
        assert node.readers["ble"] == "scanning (active)"
        assert radio.scanning == "active"
        assert scanner.counters.passive_fallbacks == 1
        assert scanner.counters.start_errors == 1
        # active scanning hears everything; the decoder drops the iPhone
        assert radio.push("11:22:33:44:55:66", CONTINUITY, -40)
        assert node.counters.adverts_seen == 1 and node.counters.adverts_kept == 0
        # a later restart goes straight to active: no new start error
        await scanner.check()  # the watchdog notes the advert
        clock.now += 30
        await scanner.check()
        assert scanner.counters.watchdog_restarts == 1
        assert scanner.counters.start_errors == 1
        assert radio.scanning == "active"
    finally:
        await scanner.stop()


async def test_passive_only_reports_the_error_and_retries(node: GatewayNode, clock: Clock) -> None:
    radio = EmulatedAdapter("hci0", refuse_passive=True)
    scanner = BleScannerService(
        node, scanning_mode="passive", backend=radio.backend, clock=clock, check_every_s=NEVER
    )
    await scanner.start()
    try:
        assert node.readers["ble"].startswith("error: passive: passive scanning on Linux")
        assert radio.scanning is None
        radio.refuse_passive = False  # the admin enabled --experimental
        await scanner.check()
        assert radio.scanning is None  # waits for its backoff
        clock.now += 1
        await scanner.check()
        assert node.readers["ble"] == "scanning (passive)"
    finally:
        await scanner.stop()


async def test_a_vanished_adapter_is_retried_until_it_returns(
    service: BleScannerService, node: GatewayNode, adapter: EmulatedAdapter, clock: Clock
) -> None:
    await service.start()
    adapter.power_off()
    clock.now += 30
    await service.check()
    assert node.readers["ble"].startswith("error: ")
    assert "adapter 'hci0' not found" in node.readers["ble"]
    starts = adapter.counters.starts
    for _ in range(5):
        clock.now += 60
        await service.check()
    assert adapter.counters.starts > starts  # it kept trying
    adapter.power_on()
    clock.now += 60
    await service.check()
    assert node.readers["ble"] == "scanning (passive)"
    assert node.health_counters()["ble.start_errors"] >= 1


async def test_a_start_that_raises_anything_is_survived(
    service: BleScannerService, node: GatewayNode, adapter: EmulatedAdapter, clock: Clock
) -> None:
    adapter.fail_starts(OSError("dbus socket gone"), RuntimeError("boom"))
    await service.start()  # passive and active both raise
    assert "dbus socket gone" in node.readers["ble"] and "boom" in node.readers["ble"]
    clock.now += 1
    await service.check()
    assert node.readers["ble"] == "scanning (passive)"


async def test_server_config_changes_mode_and_watchdog_at_run_time(
    service: BleScannerService, node: GatewayNode, adapter: EmulatedAdapter, clock: Clock
) -> None:
    await service.start()
    assert scanning(adapter) == "passive"
    config = GatewayConfig(
        store=STORE,
        gateway=GATEWAY,
        revision=1,
        issued_ms=T0,
        ble=BleConfig(scanning_mode="active", watchdog_s=10),
    )
    assert node.apply_config(config)
    assert service.watchdog_s == 10
    await service.check()  # the restart, if the spawned task has not run it yet
    assert adapter.scanning == "active"
    assert node.readers["ble"] == "scanning (active)"
    assert service.counters.reconfigures == 1
    clock.now += 10
    await service.check()
    assert service.counters.silent_restarts == 1  # the new, shorter watchdog applies


async def test_config_from_the_mqtt_thread_is_applied_on_the_loop(
    service: BleScannerService, node: GatewayNode, adapter: EmulatedAdapter
) -> None:
    await service.start()
    config = GatewayConfig(
        store=STORE,
        gateway=GATEWAY,
        revision=2,
        issued_ms=T0,
        ble=BleConfig(scanning_mode="active"),
    )
    thread = threading.Thread(target=node.apply_config, args=(config,))
    thread.start()
    thread.join()
    for _ in range(100):  # the loop runs the callback, then the restart task
        await asyncio.sleep(0)
        if adapter.scanning == "active":
            break
    await service.check()  # the restart, if the spawned task has not run it yet
    assert adapter.scanning == "active"


async def test_the_background_watchdog_runs_by_itself(
    node: GatewayNode, adapter: EmulatedAdapter
) -> None:
    clock = Clock(0.0)
    scanner = BleScannerService(
        node, watchdog_s=30, backend=adapter.backend, clock=clock, check_every_s=0.001
    )
    await scanner.start()
    try:
        clock.now = 31.0
        for _ in range(2000):
            await asyncio.sleep(0.001)
            if scanner.counters.silent_restarts:
                break
        assert scanner.counters.silent_restarts >= 1
    finally:
        await scanner.stop()
    assert node.readers["ble"] == "stopped"
    assert adapter.scanning is None


def test_watchdog_must_be_positive(node: GatewayNode) -> None:
    with pytest.raises(ValueError, match="watchdog_s"):
        BleScannerService(node, watchdog_s=0)


def test_backoff_grows_and_is_capped() -> None:
    assert [backoff_s(n, 60) for n in range(1, 10)] == [0, 1, 2, 4, 8, 16, 32, 60, 60]
