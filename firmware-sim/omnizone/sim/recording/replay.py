"""``omnizone sim replay``: republish a recording through a real broker as the
recorded gateways, each logged in with its own account and client id, in
each gateway's recorded order and at the recorded pace (docs/recording.md).

The pure part (``plan_messages``: which message goes when, with its times
optionally shifted through the wire contract) is separate from the shell
(``Replayer``: one paho client per gateway, as a live gateway has).
"""

import contextlib
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import BaseModel

from omnizone.contract.messages import BleMessage, ContractError, dump_message, parse_message
from omnizone.contract.timefmt import wall_clock_ms
from omnizone.contract.topics import parse_topic
from omnizone.sim.recording.format import RecordedMessage, iter_messages, recording_files

# The metadata pydantic keeps for the contract's ``EpochMs`` fields: a field
# with exactly these bounds is a point in time (``window_ms`` is a duration).
_EPOCH_MS_METADATA = BleMessage.model_fields["sent_ms"].metadata


class ReplayError(RuntimeError):
    """The replay cannot start or finish: what, where and how to fix it."""


@dataclass(frozen=True, slots=True)
class PlannedMessage:
    at_s: float  # seconds after the replay starts
    store: str
    gateway: str
    topic: str
    payload: bytes
    qos: int
    retain: bool


@dataclass(slots=True)
class ReplayStats:
    files: list[str]
    speed: float
    shifted_ms: int = 0
    planned: Counter[str] = field(default_factory=Counter)
    published: Counter[str] = field(default_factory=Counter)
    wall_s: float = 0.0
    stopped_early: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "speed": self.speed,
            "shifted_ms": self.shifted_ms,
            "messages": sum(self.planned.values()),
            "published": sum(self.published.values()),
            "per_gateway": {
                gw: {"planned": self.planned[gw], "published": self.published[gw]}
                for gw in sorted(self.planned)
            },
            "wall_s": round(self.wall_s, 2),
            "stopped_early": self.stopped_early,
        }


def recorded_messages(files: Iterable[Path]) -> Iterator[RecordedMessage]:
    """Every message of the given parts, in order, streamed (never all in memory)."""
    for path in files:
        yield from iter_messages(path)


def shift_times(model: BaseModel, offset_ms: int) -> BaseModel:
    """The same message with every point in time (each ``EpochMs`` field, also
    inside its items) moved by ``offset_ms``; durations and the rest untouched."""
    update: dict[str, Any] = {}
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        if info.metadata == _EPOCH_MS_METADATA and isinstance(value, int):
            update[name] = value + offset_ms
        elif isinstance(value, list) and value and isinstance(value[0], BaseModel):
            update[name] = [shift_times(item, offset_ms) for item in value]
    return model.model_copy(update=update)


def shift_payload(topic: str, payload: bytes, offset_ms: int) -> bytes:
    """Parse with the contract, shift every time, dump with the contract."""
    message = parse_message(topic, payload)
    shifted = shift_times(message, offset_ms)
    checked = parse_message(topic, dump_message(shifted))  # type: ignore[arg-type]
    return dump_message(checked)


def plan_messages(
    messages: Iterable[RecordedMessage],
    *,
    speed: float,
    shift_ms: int | None = None,
    first_ms: int | None = None,
) -> Iterator[PlannedMessage]:
    """When each message goes (``speed`` 0: all at once, in order) and what it
    says; ``first_ms`` (default: the first message's receive time) is time 0."""
    if speed < 0:
        raise ReplayError(f"--speed must be 0 (as fast as possible) or positive, not {speed}")
    for index, message in enumerate(messages, start=1):
        if first_ms is None:
            first_ms = message.rx_ms
        try:
            address = parse_topic(message.topic)
        except ValueError as error:
            raise ReplayError(f"message {index}: {error}") from None
        payload = message.payload
        if shift_ms is not None:
            try:
                payload = shift_payload(message.topic, payload, shift_ms)
            except ContractError as error:
                raise ReplayError(
                    f"message {index} cannot be shifted to now: {error} (replay without "
                    "--shift-to-now to send it as recorded)"
                ) from None
        at_s = 0.0 if speed == 0 else max(0, message.rx_ms - first_ms) / 1000 / speed
        yield PlannedMessage(
            at_s,
            address.store,
            address.gateway,
            message.topic,
            payload,
            message.qos,
            message.retain,
        )


def plan_replay(
    messages: Sequence[RecordedMessage], *, speed: float, shift_ms: int | None = None
) -> list[PlannedMessage]:
    """``plan_messages`` as a list (small recordings, tests)."""
    return list(plan_messages(messages, speed=speed, shift_ms=shift_ms))


@dataclass(frozen=True, slots=True)
class BrokerLogin:
    host: str
    port: int
    tls_ca: str | None = None


class Replayer:
    """One MQTT client per recorded gateway, logged in as that gateway."""

    def __init__(
        self,
        broker: BrokerLogin,
        credentials: Mapping[str, tuple[str, str]],
        max_inflight: int = 20,
    ) -> None:
        self._broker = broker
        self._credentials = credentials
        self._max_inflight = max_inflight
        self._clients: dict[str, mqtt.Client] = {}
        self._refused: dict[str, str] = {}
        self._connected: set[str] = set()
        self._lock = threading.Lock()

    def run(
        self,
        plan: Iterable[PlannedMessage],
        gateways: Iterable[tuple[str, str]],
        stats: ReplayStats,
        stop: threading.Event,
    ) -> ReplayStats:
        """Publish ``plan`` as the ``(store, gateway)`` pairs it names."""
        gateways = sorted(set(gateways))
        missing = [gw for _store, gw in gateways if gw not in self._credentials]
        if missing:
            raise ReplayError(
                f"no password for gateway(s) {', '.join(missing)} in the accounts file"
            )
        started = time.monotonic()
        try:
            self._connect_all(gateways)
            pending: tuple[str, mqtt.MQTTMessageInfo] | None = None
            start = time.monotonic()
            for message in plan:
                delay = start + message.at_s - time.monotonic()
                if (delay > 0 and stop.wait(delay)) or stop.is_set():
                    break
                if pending is not None:
                    # One at a time across all gateways: the broker hands the
                    # server the messages in the recorded order, as live.
                    self._count_when_published(*pending, stats, stop)
                info = self._clients[message.gateway].publish(
                    message.topic, message.payload, qos=message.qos, retain=message.retain
                )
                pending = (message.gateway, info)
            stats.stopped_early = stop.is_set()
            if pending is not None:
                self._count_when_published(*pending, stats, stop)
        finally:
            for client in self._clients.values():
                client.disconnect()
                client.loop_stop()
            stats.wall_s = time.monotonic() - started
        return stats

    def _count_when_published(
        self, gateway: str, info: mqtt.MQTTMessageInfo, stats: ReplayStats, stop: threading.Event
    ) -> None:
        self._wait_published(gateway, info, stop)
        if info.is_published():
            stats.published[gateway] += 1

    def _wait_published(
        self, gateway: str, info: mqtt.MQTTMessageInfo, stop: threading.Event
    ) -> None:
        """Until the broker has it (QoS 1: its PUBACK; QoS 0: sent)."""
        while not info.is_published() and not stop.is_set():
            if gateway in self._refused:
                raise ReplayError(f"gateway {gateway}: {self._refused[gateway]}")
            with contextlib.suppress(RuntimeError):
                info.wait_for_publish(timeout=0.5)

    def _connect_all(self, gateways: list[tuple[str, str]]) -> None:
        for store, gateway in gateways:
            username, password = self._credentials[gateway]
            client = mqtt.Client(
                callback_api_version=CallbackAPIVersion.VERSION2,
                client_id=f"omnizone-gw-{store}-{gateway}",  # as the live gateway's
                clean_session=True,
                protocol=mqtt.MQTTv311,
                userdata=gateway,
            )
            client.username_pw_set(username, password)
            if self._broker.tls_ca:
                client.tls_set(ca_certs=self._broker.tls_ca, tls_version=ssl.PROTOCOL_TLS_CLIENT)
            client.max_inflight_messages_set(self._max_inflight)
            client.on_connect = self._on_connect
            client.on_disconnect = self._on_disconnect
            try:
                client.connect(self._broker.host, self._broker.port, keepalive=30)
            except OSError as error:
                raise ReplayError(
                    f"cannot reach the broker at {self._broker.host}:{self._broker.port}: {error}"
                ) from None
            client.loop_start()
            self._clients[gateway] = client
        end = time.monotonic() + 15
        while time.monotonic() < end:
            with self._lock:
                if self._refused:
                    gateway, reason = sorted(self._refused.items())[0]
                    raise ReplayError(f"the broker refused gateway {gateway}: {reason}")
                if len(self._connected) == len(gateways):
                    return
            time.sleep(0.02)
        raise ReplayError("not every gateway could log in within 15 s")

    def _on_connect(self, _c: mqtt.Client, gateway: Any, _f: Any, reason: Any, _p: Any) -> None:
        with self._lock:
            if reason.is_failure:
                self._refused[gateway] = f"{reason} (check its password in the accounts file)"
            else:
                self._connected.add(gateway)

    def _on_disconnect(self, _c: mqtt.Client, gateway: Any, _f: Any, _r: Any, _p: Any) -> None:
        with self._lock:
            self._connected.discard(gateway)


def replay(
    paths: Iterable[str | Path],
    broker: BrokerLogin,
    credentials: Mapping[str, tuple[str, str]],
    *,
    speed: float,
    shift_to_now: bool = False,
    stop: threading.Event | None = None,
    clock: Callable[[], int] = wall_clock_ms,
) -> ReplayStats:
    """The whole ``sim replay`` without its terminal. A first pass over the
    files checks every message (and, to shift, its payload) and finds the
    gateways before anything is published; the second streams them out."""
    files = recording_files(paths)
    stats = ReplayStats(files=[str(f) for f in files], speed=speed)
    gateways: set[tuple[str, str]] = set()
    first_ms: int | None = None
    checked = plan_messages(recorded_messages(files), speed=0, shift_ms=0 if shift_to_now else None)
    for message in checked:
        stats.planned[message.gateway] += 1
        gateways.add((message.store, message.gateway))
    first = next(recorded_messages(files), None)
    if first is not None:
        first_ms = first.rx_ms
    shift = clock() - first_ms if shift_to_now and first_ms is not None else None
    stats.shifted_ms = shift or 0
    plan = plan_messages(recorded_messages(files), speed=speed, shift_ms=shift, first_ms=first_ms)
    return Replayer(broker, credentials).run(plan, gateways, stats, stop or threading.Event())
