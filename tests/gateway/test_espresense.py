"""ESPresense nodes as gateways (issue 18 point 11): payloads in ESPresense's
published format, through two real Mosquitto brokers (the nodes' own and the
store's), out as ordinary omnizone gateway messages with no MAC in them."""

from __future__ import annotations

import json
import os
import pwd
import queue
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from omnizone.broker import BrokerAccounts, find_mosquitto, start_broker
from omnizone.broker.accounts import hash_password
from omnizone.broker.process import free_port
from omnizone.contract import BleMessage, HealthMessage, parse_message
from omnizone.gateway.espresense import (
    Dropped,
    EspresenseBridge,
    Reading,
    RoomStatus,
    RoomTelemetry,
    device_key_for,
    parse_device_report,
    parse_room_message,
    room_gateways,
)
from omnizone.gateway.mqtt import BrokerAddress
from omnizone.store import StorePlan, load_store

REPO = Path(__file__).resolve().parents[2]
WAIT_S = 20.0  # bound on waits for broker round trips; never a pass/fail threshold
MAC = "c4a5d1e2f3a4"
IBEACON_ID = "iBeacon:e5ca1ade-f007-ba11-0000-000000000000-100-7"
IBEACON_KEY = "ibeacon:e5ca1ade-f007-ba11-0000-000000000000:100:7"


def report(espresense_id: str, rssi: float = -63.25) -> bytes:
    """A device report as ESPresense's BleFingerprint::fill writes it."""
    return json.dumps(
        {
            "mac": MAC,
            "id": espresense_id,
            "name": "Shopper phone",
            "rssi@1m": -59,
            "rssi": rssi,
            "rxAdj": 0,
            "rssiVar": 1.52,
            "distance": 1.41,
            "var": 0.12,
            "int": 102,
        }
    ).encode()


TELEMETRY = json.dumps(
    {
        "ip": "192.168.1.57",
        "uptime": 3605,
        "firm": "esp32",
        "rssi": -61,
        "ver": "v4.1.0",
        "adverts": 812,
        "seen": 40,
        "reported": 12,
        "freeHeap": 81234,
        "maxHeap": 65524,
        "fingerprints": 17,
        "scanStack": 900,
    }
).encode()


# -- the pure translation ----------------------------------------------------


def test_beacon_ids_map_to_device_keys() -> None:
    assert device_key_for(IBEACON_ID) == IBEACON_KEY
    assert (
        device_key_for("altBeacon:0102030405060708090a0b0c0d0e0f10-1-2")
        is None  # not a UUID form: ESPresense prints AltBeacon ids as UUIDs
    )
    assert (
        device_key_for("altBeacon:01020304-0506-0708-090a-0b0c0d0e0f10-1-2")
        == "altbeacon:0102030405060708090a0b0c0d0e0f10:1:2"
    )
    # Eddystone-UID, as printed correctly and with ESPresense's repeated byte 6.
    assert device_key_for("eddy:00112233445566778899-aabbccddeeff") == (
        "eddystone-uid:00112233445566778899:aabbccddeeff"
    )
    assert device_key_for("eddy:0011223344445566778899-aabbccddeeff") == (
        "eddystone-uid:00112233445566778899:aabbccddeeff"
    )
    for unresolvable in (MAC, f"tile:{MAC}", "apple:1005:9-26", "name:jane-s-iphone", "irk:00ff"):
        assert device_key_for(unresolvable) is None


def test_device_report_keeps_no_mac_and_reads_power_at_1m() -> None:
    reading = parse_device_report("espresense/devices/x/entrance", report(IBEACON_ID))
    assert reading == Reading(room="entrance", device=IBEACON_KEY, rssi=-63.25, tx_power=-59)
    assert MAC not in repr(reading)


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        ("espresense/devices/x/entrance", report(MAC), "unresolvable:mac"),
        ("espresense/devices/x/entrance", report(f"tile:{MAC}"), "unresolvable:tile"),
        ("espresense/devices/x/entrance", report("apple:1005:9-26"), "unresolvable:apple"),
        ("espresense/devices/x/entrance", b"{not json", "bad-json"),
        ("espresense/devices/x/entrance", b'{"id": 3}', "no-id"),
        ("espresense/devices/x/entrance", b'{"id": "' + IBEACON_ID.encode() + b'"}', "no-rssi"),
        ("espresense/devices/entrance", report(IBEACON_ID), "bad-topic"),
    ],
)
def test_bad_or_unresolvable_reports_are_dropped_by_kind(
    topic: str, payload: bytes, reason: str
) -> None:
    assert parse_device_report(topic, payload) == Dropped(reason)


def test_room_status_and_telemetry() -> None:
    assert parse_room_message("espresense/rooms/entrance/status", b"offline") == RoomStatus(
        "entrance", "offline"
    )
    telemetry = parse_room_message("espresense/rooms/entrance/telemetry", TELEMETRY)
    assert isinstance(telemetry, RoomTelemetry)
    assert telemetry.counters["uptime_s"] == 3605
    assert telemetry.counters["free_heap"] == 81234
    assert "ip" not in telemetry.counters
    assert parse_room_message("espresense/rooms/entrance/max_distance", b"16") is None
    assert parse_room_message("espresense/rooms/entrance/status", b"maybe") == Dropped("bad-status")


def _mapped_plan() -> StorePlan:
    plan = load_store(REPO / "config" / "stores" / "rivoli.yaml")
    rooms = {"gw-entrance": "entrance", "gw-womenswear": "womenswear"}
    gateways = [
        gw.model_copy(update={"espresense_room": rooms[gw.id]}) if gw.id in rooms else gw
        for gw in plan.gateways
    ]
    return plan.model_copy(update={"gateways": gateways})


def test_store_file_maps_rooms_and_refuses_a_room_twice() -> None:
    plan = _mapped_plan()
    assert room_gateways(plan) == {"entrance": "gw-entrance", "womenswear": "gw-womenswear"}
    twice = plan.model_copy(
        update={
            "gateways": [
                gw.model_copy(update={"espresense_room": "entrance"}) if i < 2 else gw
                for i, gw in enumerate(plan.gateways)
            ]
        }
    )
    with pytest.raises(ValueError, match="mapped to both"):
        room_gateways(twice)


# -- through real brokers ----------------------------------------------------


class _Client:
    def __init__(self, port: int, username: str, password: str) -> None:
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"t-{username}",
            protocol=mqtt.MQTTv311,
        )
        self.client.username_pw_set(username, password)
        self.client.on_message = lambda _c, _u, m: self.messages.put(m)
        connected = threading.Event()
        self.client.on_connect = lambda *_a: connected.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert connected.wait(WAIT_S)

    def subscribe(self, topic: str) -> None:
        done = threading.Event()
        self.client.on_subscribe = lambda *_a: done.set()
        self.client.subscribe(topic, 1)
        assert done.wait(WAIT_S)

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(WAIT_S)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def espresense_broker(tmp_path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """The nodes' own Mosquitto: a node account that writes espresense/#, a
    bridge account that only reads it; no anonymous access."""
    binary = find_mosquitto()
    if binary is None:
        pytest.skip("needs the mosquitto binary")
    users = {"node": "node-secret-1", "bridge": "bridge-secret-1"}
    (tmp_path / "passwd").write_text("".join(f"{u}:{hash_password(p)}\n" for u, p in users.items()))
    (tmp_path / "acl").write_text(
        "user node\ntopic write espresense/#\n\nuser bridge\ntopic read espresense/#\n"
    )
    port = free_port("127.0.0.1")
    (tmp_path / "esp.conf").write_text(
        f"user {pwd.getpwuid(os.geteuid()).pw_name}\n"  # as root, Mosquitto would switch user
        f"listener {port} 127.0.0.1\nallow_anonymous false\n"
        f"password_file {tmp_path / 'passwd'}\nacl_file {tmp_path / 'acl'}\n"
    )
    process = subprocess.Popen(
        [binary, "-c", str(tmp_path / "esp.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + WAIT_S
    while True:
        try:
            probe = _Client(port, "node", users["node"])
            probe.close()
            break
        except (OSError, AssertionError):
            if time.monotonic() > deadline:
                process.kill()
                raise
            time.sleep(0.1)
    yield port, users
    process.terminate()
    process.wait(timeout=10)


def _gateway_messages(server: _Client, until: Any) -> list[tuple[str, bytes]]:
    seen: list[tuple[str, bytes]] = []
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        try:
            message = server.messages.get(timeout=0.5)
        except queue.Empty:
            continue
        seen.append((message.topic, bytes(message.payload)))
        if until(seen):
            return seen
    raise AssertionError(f"not seen in time; got {[t for t, _ in seen]}")


def test_espresense_nodes_become_gateways_through_real_brokers(
    tmp_path: Path, espresense_broker: tuple[int, dict[str, str]]
) -> None:
    esp_port, esp_users = espresense_broker
    plan = _mapped_plan()
    accounts = BrokerAccounts.for_store(plan)
    store_broker = start_broker(accounts, prefer="mosquitto", run_dir=tmp_path / "store-broker")
    server = _Client(store_broker.port, *accounts.server_credentials)
    server.subscribe(f"omnizone/v1/{plan.store.id}/+/+")
    node = _Client(esp_port, "node", esp_users["node"])
    bridge = EspresenseBridge(
        plan,
        BrokerAddress("127.0.0.1", esp_port, "bridge", esp_users["bridge"]),
        lambda gw: BrokerAddress(
            store_broker.host, store_broker.port, *accounts.gateway_credentials(gw)
        ),
        tmp_path / "outboxes",
        window_ms=200,
        health_interval_ms=300,
    )
    stop = threading.Event()

    def tick_until_stopped() -> None:
        while not stop.is_set():
            bridge.tick()
            time.sleep(0.05)

    ticker = threading.Thread(target=tick_until_stopped)
    try:
        bridge.start()
        assert bridge.subscribed.wait(WAIT_S)
        ticker.start()
        node.publish("espresense/rooms/entrance/status", b"online", retain=True)
        node.publish("espresense/rooms/entrance/telemetry", TELEMETRY)
        for _ in range(3):
            node.publish(f"espresense/devices/{IBEACON_ID}/entrance", report(IBEACON_ID))
            node.publish(f"espresense/devices/{MAC}/entrance", report(MAC))
            node.publish("espresense/devices/apple:1005:9-26/entrance", report("apple:1005:9-26"))
            node.publish(f"espresense/devices/{IBEACON_ID}/stockroom", report(IBEACON_ID))
            time.sleep(0.1)

        def saw_ble_and_online_health(seen: list[tuple[str, bytes]]) -> bool:
            kinds = {t.rsplit("/", 1)[1] for t, p in seen if "/gw-entrance/" in t}
            online = any(
                t.endswith("/gw-entrance/health")
                and json.loads(p)["readers"].get("espresense") == "online"
                and "espresense.uptime_s" in json.loads(p)["counters"]
                for t, p in seen
            )
            return "ble" in kinds and online

        seen = _gateway_messages(server, saw_ble_and_online_health)
        messages = [parse_message(t, p) for t, p in seen]  # every one passes the contract
        ble = [m for m in messages if isinstance(m, BleMessage)]
        assert {m.gateway for m in ble} == {"gw-entrance"}
        assert {item.device for m in ble for item in m.items} == {IBEACON_KEY}
        assert all(item.tx_power == -59 for m in ble for item in m.items)
        health = [
            m for m in messages if isinstance(m, HealthMessage) and m.gateway == "gw-entrance"
        ]
        last = health[-1].counters
        assert last["espresense.uptime_s"] == 3605
        assert last["espresense.bridge.dropped.unresolvable:mac"] >= 1
        assert last["espresense.bridge.dropped.unresolvable:apple"] >= 1
        assert last["espresense.bridge.unmapped_room"] >= 1
        for _topic, payload in seen:
            text = payload.decode()
            assert MAC not in text and "Shopper phone" not in text and "192.168" not in text

        # The node's last will: the gateway's health says so.
        node.publish("espresense/rooms/entrance/status", b"offline", retain=True)
        _gateway_messages(
            server,
            lambda s: any(
                t.endswith("/gw-entrance/health")
                and json.loads(p)["readers"].get("espresense") == "offline"
                for t, p in s
            ),
        )
    finally:
        stop.set()
        if ticker.is_alive():
            ticker.join(timeout=5)
        bridge.stop()
        node.close()
        server.close()
        store_broker.close()
