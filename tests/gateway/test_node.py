"""The gateway pipeline end to end without a radio or a broker: raw adverts in,
contract-valid messages in a real outbox out, on an injected clock."""

import re
import uuid
from pathlib import Path

import pytest
from bleak.backends.device import BLEDevice

from omnizone.contract import BleMessage, HealthMessage, parse_message
from omnizone.gateway import __version__
from omnizone.gateway.ble.adstructures import (
    AD_MANUFACTURER,
    ad_structure,
    eddystone_eid_payload,
    ibeacon_payload,
    parse_ad_structures,
)
from omnizone.gateway.node import GatewayNode
from omnizone.gateway.outbox import Outbox
from tests.gateway.conftest import FakeClock

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
STORE, GATEWAY = "paris-rivoli", "gw-entrance"
PHONE_MAC = "7C:D1:C3:4A:5B:6E"
BEACON_MAC = "C3:00:1D:2E:4F:50"
BEACON_UUID = uuid.UUID("f7826da6-4fa2-4e98-8024-bc5b71e0893e")
EID = bytes.fromhex("a1b2c3d4e5f60718")
MAC_LIKE = re.compile(r"(?i)[0-9a-f]{2}([:-])[0-9a-f]{2}(\1[0-9a-f]{2}){4}")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def node(outbox: Outbox, clock: FakeClock) -> GatewayNode:
    return GatewayNode(
        STORE, GATEWAY, outbox, window_ms=1000, health_interval_ms=30_000, clock=clock
    )


def hear(node: GatewayNode, mac: str, payload: bytes, rssi: int) -> None:
    """What bleak's detection callback would deliver for one advert."""
    device = BLEDevice(mac, None, {"path": f"/org/bluez/hci0/dev_{mac.replace(':', '_')}"})
    advert = parse_ad_structures(payload, rssi, platform_data=(mac, {"Address": mac}))
    node.on_advertisement(device, advert)


def test_two_devices_in_one_window_make_one_ble_message(
    node: GatewayNode, outbox: Outbox, clock: FakeClock
) -> None:
    beacon = ibeacon_payload(BEACON_UUID, 100, 1, -59)
    phone = eddystone_eid_payload(EID, -20)
    for offset, mac, payload, rssi in [
        (100, BEACON_MAC, beacon, -62),
        (350, PHONE_MAC, phone, -75),
        (600, BEACON_MAC, beacon, -58),
        (990, PHONE_MAC, phone, -71),
    ]:
        clock.now_ms = T0 + offset
        hear(node, mac, payload, rssi)
    clock.now_ms = T0 + 999
    node.tick()
    assert outbox.depth() == 0, "the window is still open"

    clock.now_ms = T0 + 1000
    node.tick()
    [entry] = outbox.pending()
    assert entry.topic == f"omnizone/v1/{STORE}/{GATEWAY}/ble"
    message = parse_message(entry.topic, entry.payload)
    assert isinstance(message, BleMessage)
    assert (message.store, message.gateway, message.seq, message.sent_ms) == (
        STORE,
        GATEWAY,
        0,
        T0 + 1000,
    )
    got = {s.device: s for s in message.items}
    beacon_key = f"ibeacon:{BEACON_UUID}:100:1"
    assert set(got) == {beacon_key, "eid:a1b2c3d4e5f60718"}
    assert (got[beacon_key].count, got[beacon_key].rssi_mean, got[beacon_key].rssi_max) == (
        2,
        -60,
        -58,
    )
    assert got[beacon_key].tx_power == -59
    assert got["eid:a1b2c3d4e5f60718"].tx_power == -20
    assert all(s.window_start_ms == T0 and s.window_ms == 1000 for s in message.items)
    assert node.counters.messages_enqueued == 1


def test_adverts_that_name_no_device_are_counted_and_dropped(
    node: GatewayNode, outbox: Outbox, clock: FakeClock
) -> None:
    continuity = ad_structure(AD_MANUFACTURER, bytes.fromhex("4c001005011c2e7a"))
    hear(node, PHONE_MAC, continuity, -50)
    hear(node, BEACON_MAC, ibeacon_payload(BEACON_UUID, 1, 2, -59), -60)
    clock.now_ms = T0 + 1000
    node.tick()
    assert (node.counters.adverts_seen, node.counters.adverts_kept) == (2, 1)
    [entry] = outbox.pending()
    message = parse_message(entry.topic, entry.payload)
    assert isinstance(message, BleMessage)
    assert [s.device for s in message.items] == [f"ibeacon:{BEACON_UUID}:1:2"]


def test_no_mac_address_ever_reaches_the_outbox(
    node: GatewayNode, outbox: Outbox, clock: FakeClock
) -> None:
    for second in range(3):
        clock.now_ms = T0 + second * 1000 + 10
        hear(node, BEACON_MAC, ibeacon_payload(BEACON_UUID, 7, 8, -59), -60)
        hear(node, PHONE_MAC, eddystone_eid_payload(EID, -20), -70)
    clock.now_ms = T0 + 30_000
    node.tick()
    entries = outbox.pending()
    assert [e.topic.rsplit("/", 1)[1] for e in entries] == ["ble", "ble", "ble", "health"]
    for entry in entries:
        text = entry.payload.decode()
        for mac in (PHONE_MAC, BEACON_MAC):
            for spelling in (mac, mac.lower(), mac.replace(":", ""), mac.replace(":", "").lower()):
                assert spelling not in text
        assert not MAC_LIKE.search(text), text
        parse_message(entry.topic, entry.payload)


def test_health_is_enqueued_once_the_interval_has_passed(
    node: GatewayNode, outbox: Outbox, clock: FakeClock
) -> None:
    clock.now_ms = T0 + 29_999
    node.tick()
    assert outbox.pending() == []

    hear(node, BEACON_MAC, ibeacon_payload(BEACON_UUID, 1, 1, -59), -60)
    clock.now_ms = T0 + 30_000
    node.tick()
    ble, health = outbox.pending()
    assert (ble.seq, health.seq) == (0, 1), "one counter over all kinds"
    message = parse_message(health.topic, health.payload)
    assert isinstance(message, HealthMessage)
    assert message.uptime_s == 30
    assert message.outbox_depth == 1  # the BLE message waiting before it
    assert message.outbox_dropped == 0
    assert message.readers == {"ble": "idle"}
    assert message.version == __version__
    assert message.sent_ms == T0 + 30_000

    clock.now_ms = T0 + 45_000
    node.tick()
    assert len(outbox.pending()) == 2, "the next health is due 30 s after the last"
    clock.now_ms = T0 + 60_000
    node.tick()
    assert [e.topic.rsplit("/", 1)[1] for e in outbox.pending()] == ["ble", "health", "health"]


def test_sequence_continues_after_a_restart_on_the_same_outbox(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = tmp_path / "outbox.db"
    for run in range(2):
        box = Outbox(path)
        node = GatewayNode(STORE, GATEWAY, box, clock=clock)
        clock.now_ms += 10
        hear(node, BEACON_MAC, ibeacon_payload(BEACON_UUID, 1, run, -59), -60)
        clock.now_ms += 1000
        node.tick()
        box.close()
    box = Outbox(path)
    try:
        assert [e.seq for e in box.pending()] == [0, 1]
    finally:
        box.close()


def test_on_enqueued_is_called_for_every_message(outbox: Outbox, clock: FakeClock) -> None:
    calls: list[int] = []
    node = GatewayNode(
        STORE,
        GATEWAY,
        outbox,
        clock=clock,
        health_interval_ms=1000,
        on_enqueued=lambda: calls.append(outbox.depth()),
    )
    hear(node, BEACON_MAC, ibeacon_payload(BEACON_UUID, 1, 1, -59), -60)
    clock.now_ms = T0 + 1000
    node.tick()
    assert calls == [1, 2]  # the BLE message, then health; each after it was stored
