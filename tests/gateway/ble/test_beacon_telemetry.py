"""A fixed beacon's Eddystone-TLM, from raw advertising bytes to the wire:
the gateway ties it to the beacon's id frame by the address both come from
(a keyed digest, in memory), publishes it on the beacon's sighting, and
never links a phone's address or lets one out."""

import re
import uuid

import pytest
from bleak.backends.device import BLEDevice

from omnizone.contract import BleMessage, ContractError, HealthMessage, parse_message
from omnizone.contract.ids import eddystone_uid_key, ibeacon_key
from omnizone.gateway.ble.adstructures import (
    eddystone_eid_payload,
    eddystone_tlm_payload,
    eddystone_uid_payload,
    ibeacon_payload,
    parse_ad_structures,
)
from omnizone.gateway.ble.decode import decode_eddystone_tlm
from omnizone.gateway.ble.telemetry import TelemetryLinker
from omnizone.gateway.node import GatewayNode
from omnizone.gateway.outbox import Outbox
from tests.gateway.conftest import FakeClock

T0 = 1_767_225_600_000
STORE, GATEWAY = "paris-rivoli", "gw-entrance"
BEACON_MAC = "C3:00:1D:2E:4F:50"
OTHER_MAC = "C4:11:22:33:44:55"
PHONE_MAC = "7C:D1:C3:4A:5B:6E"
UUID = uuid.UUID("f7826da6-4fa2-4e98-8024-bc5b71e0893e")
MAC_LIKE = re.compile(r"(?i)[0-9a-f]{2}([:-])[0-9a-f]{2}(\1[0-9a-f]{2}){4}")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def node(outbox: Outbox, clock: FakeClock) -> GatewayNode:
    return GatewayNode(STORE, GATEWAY, outbox, window_ms=1000, health_interval_ms=5000, clock=clock)


def hear(node: GatewayNode, mac: str, payload: bytes, rssi: int) -> None:
    device = BLEDevice(mac, None, {"path": f"/org/bluez/hci0/dev_{mac.replace(':', '_')}"})
    node.on_advertisement(device, parse_ad_structures(payload, rssi))


def ble_items(outbox: Outbox) -> list[dict[str, object]]:
    items = []
    for entry in outbox.pending():
        message = parse_message(entry.topic, entry.payload)
        if isinstance(message, BleMessage):
            items += [i.model_dump(exclude_none=True) for i in message.items]
    return items


def test_tlm_is_published_on_the_sighting_of_the_beacon_that_sent_it(
    node: GatewayNode, outbox: Outbox, clock: FakeClock
) -> None:
    ibeacon = ibeacon_payload(UUID, 100, 1, -59)
    tlm = eddystone_tlm_payload(2870, 22.5, 123_456, 86_400.0)
    hear(node, BEACON_MAC, ibeacon, -61)
    clock.now_ms += 300
    hear(node, BEACON_MAC, tlm, -62)  # same address: a Kontakt-style interleave
    clock.now_ms += 300
    hear(node, OTHER_MAC, eddystone_tlm_payload(2999, None, 5, 1.0), -70)  # id never heard
    clock.now_ms = T0 + 1000
    node.tick()
    [item] = ble_items(outbox)
    assert item["device"] == ibeacon_key(UUID, 100, 1)
    assert item["telemetry"] == {
        "battery_mv": 2870,
        "temperature_c": 22.5,
        "adv_count": 123_456,
        "uptime_s": 86_400.0,
        "heard_ms": T0 + 300,
    }
    counters = node.health_counters()
    assert counters["ble.tlm.linked"] == 1
    assert counters["ble.tlm.unlinked"] == 1
    assert counters["ble.frames.eddystone_tlm"] == 2


def test_tlm_heard_in_a_window_without_the_id_waits_for_the_next_sighting(
    node: GatewayNode, outbox: Outbox, clock: FakeClock
) -> None:
    uid = eddystone_uid_payload(bytes(range(10)), bytes(range(6)), -18)
    hear(node, BEACON_MAC, uid, -60)
    clock.now_ms = T0 + 1500
    node.tick()
    hear(node, BEACON_MAC, eddystone_tlm_payload(None, None, 7, 3.0), -60)  # mains powered
    clock.now_ms = T0 + 2500
    node.tick()  # window 1 held only the TLM: nothing to publish yet
    hear(node, BEACON_MAC, uid, -59)
    clock.now_ms = T0 + 3500
    node.tick()
    items = ble_items(outbox)
    assert [i.get("telemetry") for i in items] == [
        None,
        {"adv_count": 7, "uptime_s": 3.0, "heard_ms": T0 + 1500},
    ]
    assert items[1]["device"] == eddystone_uid_key(bytes(range(10)), bytes(range(6)))


def test_a_phones_address_is_never_linked_and_no_address_leaves(
    node: GatewayNode, outbox: Outbox, clock: FakeClock
) -> None:
    hear(node, PHONE_MAC, eddystone_eid_payload(bytes.fromhex("a1b2c3d4e5f60718"), -20), -70)
    hear(node, PHONE_MAC, eddystone_tlm_payload(3000, 20.0, 1, 1.0), -70)
    hear(node, BEACON_MAC, ibeacon_payload(UUID, 100, 2, -59), -61)
    hear(node, BEACON_MAC, eddystone_tlm_payload(2400, 19.0, 99, 9.9), -61)
    clock.now_ms = T0 + 5000
    node.tick()
    items = ble_items(outbox)
    assert {i["device"]: "telemetry" in i for i in items} == {
        "eid:a1b2c3d4e5f60718": False,
        ibeacon_key(UUID, 100, 2): True,
    }
    assert node.health_counters()["ble.tlm.unlinked"] == 1  # the phone's
    assert node.health_counters()["ble.frames.tlm_low_battery"] == 1
    for entry in outbox.pending():
        assert not MAC_LIKE.search(entry.payload.decode()), entry.payload
        assert isinstance(parse_message(entry.topic, entry.payload), BleMessage | HealthMessage)


def test_the_link_table_holds_digests_bounded_and_forgets_silent_addresses() -> None:
    linker = TelemetryLinker(max_beacons=2, ttl_ms=10_000, key=b"k" * 16)
    tlm = decode_eddystone_tlm(bytes.fromhex("20000b5400000000000100000064"))
    assert tlm is not None and tlm.battery_mv == 2900
    for n, mac in enumerate(("C0:00:00:00:00:01", "C0:00:00:00:00:02", "C0:00:00:00:00:03")):
        linker.saw(mac, ibeacon_key(UUID, 1, n), T0)
    assert len(linker) == 2 and linker.counters.forgotten == 1
    assert linker.link("C0:00:00:00:00:01", tlm, T0) is None  # pushed out by the third
    linked = linker.link("c0:00:00:00:00:03", tlm, T0 + 9_000)  # case does not matter
    assert linked is not None and linked[0] == ibeacon_key(UUID, 1, 2)
    assert linker.link("C0:00:00:00:00:02", tlm, T0 + 20_000) is None  # not heard for 20 s
    table = repr(linker._ids)  # what the gateway keeps: digests, never an address
    assert "C0:00" not in table.upper() and not MAC_LIKE.search(table)
    linker.saw("C0:00:00:00:00:09", "eid:a1b2c3d4e5f60718", T0)
    assert linker.link("C0:00:00:00:00:09", tlm, T0) is None  # rotating ids are never entered


def test_implausible_telemetry_is_dropped_and_counted() -> None:
    linker = TelemetryLinker(key=b"k" * 16)
    linker.saw(BEACON_MAC, ibeacon_key(UUID, 1, 1), T0)
    tlm = decode_eddystone_tlm(bytes.fromhex("2000ffff00000000000100000064"))  # 65535 mV
    assert tlm is not None
    assert linker.link(BEACON_MAC, tlm, T0) is None
    assert linker.counters.implausible == 1


def test_the_contract_takes_telemetry_as_an_optional_v1_field_never_on_a_rotating_id() -> None:
    topic = f"omnizone/v1/{STORE}/{GATEWAY}/ble"
    base = (
        '{"v":1,"store":"paris-rivoli","gateway":"gw-entrance","seq":1,"sent_ms":1767225601000,'
        '"kind":"ble","items":[{"device":"%s","window_start_ms":1767225600000,"window_ms":1000,'
        '"count":3,"rssi_mean":-60.0,"rssi_max":-58.0%s}]}'
    )
    old = parse_message(topic, (base % (ibeacon_key(UUID, 1, 1), "")).encode())
    assert isinstance(old, BleMessage) and old.items[0].telemetry is None  # old gateways
    tlm = ',"telemetry":{"battery_mv":2900,"adv_count":5,"uptime_s":1.5,"heard_ms":1767225600100}'
    new = parse_message(topic, (base % (ibeacon_key(UUID, 1, 1), tlm)).encode())
    assert isinstance(new, BleMessage) and new.items[0].telemetry is not None
    assert new.items[0].telemetry.battery_mv == 2900
    with pytest.raises(ContractError, match="telemetry is for fixed beacons"):
        parse_message(topic, (base % ("eid:a1b2c3d4e5f60718", tlm)).encode())
    with pytest.raises(ContractError, match="battery_mv"):
        parse_message(
            topic,
            (base % (ibeacon_key(UUID, 1, 1), tlm.replace("2900", "70000"))).encode(),
        )
