"""ESPresense nodes as omnizone BLE gateways: a bridge between two MQTT brokers.

ESPresense (espresense.com) is firmware for cheap ESP32 boards. Each node,
named by its room, publishes what it hears on ``espresense/devices/<id>/<room>``
as JSON (``mac, id, name, rssi@1m, rssi, rxAdj, rssiVar, distance, var, int``,
…), its retained ``online``/``offline`` (last will) on
``espresense/rooms/<room>/status``, and a JSON health report on
``espresense/rooms/<room>/telemetry`` (``ip, uptime, firm, rssi, ver, adverts,
seen, reported, freeHeap, maxHeap``, …).

The store file maps a room to a gateway (``gateways[].espresense_room``). For
each mapped room the bridge runs the real gateway pipeline (``GatewayNode``,
``Outbox``, ``MqttLink`` with that gateway's own broker account), so the server
sees an ordinary gateway: windowed ``ble`` sightings, its status birth/will,
and ``health`` messages whose ``readers["espresense"]`` is the node's room
status and whose counters carry its telemetry.

Privacy is decided here, before anything is stored or sent: the report's
``mac`` (and ``name``, ``irk``, ``ip``) are never read into the bridge's data.
Only ESPresense ids that name a beacon frame omnizone can resolve are kept
(``iBeacon:``, ``altBeacon:``, ``eddy:`` Eddystone-UID); every other id
(``apple:…``, ``name:…``, ``md:…``, MAC-derived ids such as ``tile:<mac>`` or a
bare MAC, ``irk:…``) is dropped and counted by its kind, never by its value.
Whether the beacon belongs to a consented shopper is decided by the server's
identity resolution, as for any gateway.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from omnizone.contract.ids import altbeacon_key, check_device_key, eddystone_uid_key, ibeacon_key
from omnizone.contract.timefmt import wall_clock_ms
from omnizone.gateway import __version__
from omnizone.gateway.mqtt import BrokerAddress, MqttLink
from omnizone.gateway.node import GatewayNode
from omnizone.gateway.outbox import Outbox
from omnizone.store import StorePlan

log = logging.getLogger(__name__)

TOPIC_ROOT = "espresense"
DEVICES_FILTER = f"{TOPIC_ROOT}/devices/+/+"
ROOMS_FILTER = f"{TOPIC_ROOT}/rooms/+/+"
READER = "espresense"
MAX_PAYLOAD_BYTES = 4096  # an ESPresense report is a few hundred bytes

_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_IBEACON = re.compile(rf"^iBeacon:({_UUID})-(\d{{1,5}})-(\d{{1,5}})$")
_ALTBEACON = re.compile(rf"^altBeacon:({_UUID})-(\d{{1,5}})-(\d{{1,5}})$")
_EDDY = re.compile(r"^eddy:([0-9a-f]{20}|[0-9a-f]{22})-([0-9a-f]{12})$")
#: Telemetry fields kept as health counters (integers only; ip, firm, ver are not kept).
TELEMETRY_COUNTERS: Mapping[str, str] = {
    "uptime": "uptime_s",
    "rssi": "wifi_rssi",
    "adverts": "adverts",
    "seen": "seen",
    "reported": "reported",
    "failed": "failed",
    "teleFails": "tele_fails",
    "reconnectTries": "reconnect_tries",
    "freeHeap": "free_heap",
    "maxHeap": "max_heap",
    "fingerprints": "fingerprints",
}


@dataclass(frozen=True, slots=True)
class Reading:
    """One ESPresense report reduced to what omnizone keeps: no MAC, no name."""

    room: str
    device: str
    rssi: float
    tx_power: int | None


@dataclass(frozen=True, slots=True)
class Dropped:
    """Why a report was not kept: a kind ("unresolvable:apple", "bad-json", …), no values."""

    reason: str


def device_key_for(espresense_id: str) -> str | None:
    """The omnizone device key an ESPresense id names, or None when it names none.

    ESPresense prints the Eddystone-UID namespace with byte 6 repeated in some
    releases (22 hex digits instead of 20); that duplicate is removed.
    """
    if (m := _IBEACON.match(espresense_id)) is not None:
        return ibeacon_key(uuid.UUID(m[1].lower()), int(m[2]), int(m[3]))
    if (m := _ALTBEACON.match(espresense_id)) is not None:
        return altbeacon_key(uuid.UUID(m[1].lower()).bytes, int(m[2]), int(m[3]))
    if (m := _EDDY.match(espresense_id)) is not None:
        namespace = m[1]
        if len(namespace) == 22:
            if namespace[8:10] != namespace[10:12]:
                return None
            namespace = namespace[:10] + namespace[12:]
        return eddystone_uid_key(bytes.fromhex(namespace), bytes.fromhex(m[2]))
    return None


def _id_kind(espresense_id: str) -> str:
    """A value-free label for a dropped id: its prefix, or "mac" for a bare address."""
    prefix, sep, _rest = espresense_id.partition(":")
    if not sep:
        return "mac" if re.fullmatch(r"[0-9a-fA-F]{12}", espresense_id) else "other"
    return prefix.lower() if re.fullmatch(r"[A-Za-z]{1,12}", prefix) else "other"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _json_object(payload: bytes) -> dict[str, object] | Dropped:
    """A bounded payload that is one JSON object, or why it is dropped."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        return Dropped("too-large")
    try:
        report = json.loads(payload)
    except (UnicodeDecodeError, ValueError):
        return Dropped("bad-json")
    if not isinstance(report, dict):
        return Dropped("bad-json")
    return report


def parse_device_report(topic: str, payload: bytes) -> Reading | Dropped:
    """An ``espresense/devices/<id>/<room>`` message, reduced to a Reading."""
    parts = topic.split("/")
    if len(parts) != 4 or parts[0] != TOPIC_ROOT or parts[1] != "devices" or not parts[3]:
        return Dropped("bad-topic")
    report = _json_object(payload)
    if isinstance(report, Dropped):
        return report
    espresense_id = report.get("id")
    if not isinstance(espresense_id, str):
        return Dropped("no-id")
    device = device_key_for(espresense_id)
    if device is None:
        return Dropped(f"unresolvable:{_id_kind(espresense_id)}")
    check_device_key(device)  # the contract's own guard: never a MAC
    rssi = _number(report.get("rssi"))
    if rssi is None:
        return Dropped("no-rssi")
    ref = _number(report.get("rssi@1m"))
    tx_power = round(ref) if ref is not None and -127 <= ref <= 20 else None
    return Reading(room=parts[3], device=device, rssi=rssi, tx_power=tx_power)


@dataclass(frozen=True, slots=True)
class RoomStatus:
    room: str
    state: str  # "online" | "offline"


@dataclass(frozen=True, slots=True)
class RoomTelemetry:
    room: str
    counters: dict[str, int]


def parse_room_message(topic: str, payload: bytes) -> RoomStatus | RoomTelemetry | Dropped | None:
    """``espresense/rooms/<room>/status`` or ``/telemetry``; None for the other
    retained room settings (max_distance, absorption, …), which are not health."""
    parts = topic.split("/")
    if len(parts) != 4 or parts[0] != TOPIC_ROOT or parts[1] != "rooms" or not parts[2]:
        return Dropped("bad-topic")
    room, leaf = parts[2], parts[3]
    if leaf == "status":
        state = payload.decode("utf-8", "replace").strip().lower()
        if state not in ("online", "offline"):
            return Dropped("bad-status")
        return RoomStatus(room, state)
    if leaf != "telemetry":
        return None
    report = _json_object(payload)
    if isinstance(report, Dropped):
        return report
    counters: dict[str, int] = {}
    for source, name in TELEMETRY_COUNTERS.items():
        value = _number(report.get(source))
        if value is not None:
            counters[name] = round(value)
    return RoomTelemetry(room, counters)


def room_gateways(plan: StorePlan) -> dict[str, str]:
    """ESPresense room -> gateway id, from the store file; refuses a room mapped twice."""
    mapping: dict[str, str] = {}
    for gateway in plan.gateways:
        room = gateway.espresense_room
        if room is None:
            continue
        if room in mapping:
            raise ValueError(
                f"store {plan.store.id}: ESPresense room {room!r} is mapped to both "
                f"{mapping[room]!r} and {gateway.id!r}; give each room one gateway"
            )
        mapping[room] = gateway.id
    return mapping


@dataclass(slots=True)
class BridgeCounters:
    reports: int = 0
    kept: int = 0
    unmapped_room: int = 0
    dropped: dict[str, int] = field(default_factory=dict)

    def drop(self, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1

    def as_counters(self) -> dict[str, int]:
        return {
            "reports": self.reports,
            "kept": self.kept,
            "unmapped_room": self.unmapped_room,
            **{f"dropped.{reason}": n for reason, n in self.dropped.items()},
        }


class EspresenseRouter:
    """Routes ESPresense messages to the mapped gateways' pipelines (no network here)."""

    def __init__(
        self, nodes: Mapping[str, GatewayNode], clock: Callable[[], int] = wall_clock_ms
    ) -> None:
        self.nodes = dict(nodes)  # room -> node
        self.clock = clock
        self.counters = BridgeCounters()
        self.telemetry: dict[str, dict[str, int]] = {room: {} for room in self.nodes}
        self._telemetry_ms: dict[str, int] = {}
        self._lock = threading.Lock()
        for room, node in self.nodes.items():
            node.readers[READER] = "unknown"
            node.add_counters(READER, self._health_source(room))

    def _health_source(self, room: str) -> Callable[[], Mapping[str, int]]:
        def source() -> Mapping[str, int]:
            with self._lock:
                values = dict(self.telemetry.get(room, {}))
                seen_ms = self._telemetry_ms.get(room)
                bridge = self.counters.as_counters()
            if seen_ms is not None:
                values["telemetry_age_s"] = max(0, (self.clock() - seen_ms) // 1000)
            values.update({f"bridge.{k}": v for k, v in bridge.items()})
            return values

        return source

    def handle(self, topic: str, payload: bytes) -> None:
        if topic.startswith(f"{TOPIC_ROOT}/devices/"):
            self._device(topic, payload)
        elif topic.startswith(f"{TOPIC_ROOT}/rooms/"):
            self._room(topic, payload)

    def _device(self, topic: str, payload: bytes) -> None:
        result = parse_device_report(topic, payload)
        with self._lock:
            self.counters.reports += 1
            if isinstance(result, Dropped):
                self.counters.drop(result.reason)
                return
            node = self.nodes.get(result.room)
            if node is None:
                self.counters.unmapped_room += 1
                return
            self.counters.kept += 1
        node.on_reading(result.device, result.rssi, result.tx_power, self.clock())

    def _room(self, topic: str, payload: bytes) -> None:
        result = parse_room_message(topic, payload)
        if result is None:
            return
        with self._lock:
            if isinstance(result, Dropped):
                self.counters.drop(result.reason)
                return
            node = self.nodes.get(result.room)
            if node is None:
                self.counters.unmapped_room += 1
                return
            if isinstance(result, RoomStatus):
                node.readers[READER] = result.state
            else:
                self.telemetry[result.room] = result.counters
                self._telemetry_ms[result.room] = self.clock()
                node.readers[READER] = "online"

    def tick(self) -> None:
        for node in self.nodes.values():
            node.tick()


@dataclass(frozen=True, slots=True)
class _Pipeline:
    node: GatewayNode
    outbox: Outbox
    link: MqttLink


class EspresenseBridge:
    """The running bridge: one subscriber on the ESPresense broker, one gateway
    pipeline (own outbox and broker account) per mapped room."""

    def __init__(
        self,
        plan: StorePlan,
        espresense_broker: BrokerAddress,
        omnizone_broker: Callable[[str], BrokerAddress],
        outbox_dir: Path,
        *,
        window_ms: int = 1000,
        health_interval_ms: int = 30_000,
        clock: Callable[[], int] = wall_clock_ms,
    ) -> None:
        mapping = room_gateways(plan)
        if not mapping:
            raise ValueError(
                f"store {plan.store.id}: no gateway has an espresense_room; "
                "map each ESPresense room to a gateway in the store file"
            )
        store = plan.store.id
        self._pipelines: dict[str, _Pipeline] = {}
        for room, gateway in mapping.items():
            outbox = Outbox(outbox_dir / f"{gateway}.sqlite")
            link = MqttLink(omnizone_broker(gateway), store, gateway, outbox, clock, __version__)
            node = GatewayNode(
                store,
                gateway,
                outbox,
                window_ms=window_ms,
                health_interval_ms=health_interval_ms,
                clock=clock,
                on_enqueued=link.notify,
            )
            link.on_config(node.apply_config_message)
            self._pipelines[room] = _Pipeline(node, outbox, link)
        self.router = EspresenseRouter({r: p.node for r, p in self._pipelines.items()}, clock)
        self._client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"omnizone-espresense-{store}",
            clean_session=True,
            protocol=mqtt.MQTTv311,
        )
        self._client.username_pw_set(espresense_broker.username, espresense_broker.password)
        if espresense_broker.tls_ca:
            self._client.tls_set(ca_certs=espresense_broker.tls_ca)
        self._client.reconnect_delay_set(min_delay=1, max_delay=10)
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._espresense = espresense_broker
        self.subscribed = threading.Event()

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.warning("ESPresense broker refused the bridge: %s", reason)
            return
        client.subscribe([(DEVICES_FILTER, 0), (ROOMS_FILTER, 1)])
        self.subscribed.set()

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        self.router.handle(message.topic, bytes(message.payload))

    def start(self) -> None:
        for pipeline in self._pipelines.values():
            pipeline.link.start()
        self._client.connect_async(
            self._espresense.host, self._espresense.port, self._espresense.keepalive_s
        )
        self._client.loop_start()

    def tick(self) -> None:
        self.router.tick()

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
        for pipeline in self._pipelines.values():
            pipeline.node.tick()
            pipeline.link.stop()
            pipeline.outbox.close()
