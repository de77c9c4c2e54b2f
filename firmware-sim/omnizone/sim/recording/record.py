"""``omnizone sim record``: subscribe to a store's gateway topics as its
recorder account and append every message, with its receive time, to a
recording (docs/recording.md).

One thread does everything: paho's network loop is driven from ``run`` so
the message callback, the once-a-second flush and the rotation never race.
MQTT 5 is used for "retain as published" (a live subscriber otherwise sees
every retained publish with the flag cleared) and "do not send retained
messages" (what was retained before the recording started is not traffic of
this recording).
"""

import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.subscribeoptions import SubscribeOptions

from omnizone.contract.timefmt import wall_clock_ms
from omnizone.contract.topics import recorder_read_patterns
from omnizone.sim.recording.format import (
    RecordedMessage,
    RecordingHeader,
    RecordingWriter,
    part_path,
)

MEGABYTE = 1024 * 1024
HOUR_MS = 3_600_000


class RecorderError(RuntimeError):
    """The recorder cannot start or keep going: what and how to fix it."""


@dataclass(frozen=True, slots=True)
class RecorderOptions:
    store: str
    out: Path
    host: str
    port: int
    username: str
    password: str
    tls_ca: str | None = None
    rotate_bytes: int = 64 * MEGABYTE
    flush_interval_ms: int = 1000
    duration_s: float | None = None


@dataclass(slots=True)
class RecorderStats:
    """What the live line shows and ``--json`` prints."""

    store: str
    files: list[str] = field(default_factory=list)
    per_gateway: Counter[str] = field(default_factory=Counter)
    rates: dict[str, float] = field(default_factory=dict)
    reconnects: int = 0
    started_ms: int = 0
    stopped_ms: int = 0

    @property
    def messages(self) -> int:
        return sum(self.per_gateway.values())

    def as_json(self) -> dict[str, Any]:
        return {
            "store": self.store,
            "messages": self.messages,
            "per_gateway": dict(sorted(self.per_gateway.items())),
            "files": self.files,
            "seconds": round((self.stopped_ms - self.started_ms) / 1000, 1),
            "reconnects": self.reconnects,
        }


def must_rotate(size_bytes: int, limit_bytes: int, part_started_ms: int, now_ms: int) -> bool:
    """A part ends when it reaches the size limit or the UTC hour changes."""
    return size_bytes >= limit_bytes or now_ms // HOUR_MS != part_started_ms // HOUR_MS


def rates_per_second(
    before: Counter[str], after: Counter[str], elapsed_s: float
) -> dict[str, float]:
    """Messages per second per gateway between two counts."""
    if elapsed_s <= 0:
        return {gateway: 0.0 for gateway in after}
    return {gw: (after[gw] - before.get(gw, 0)) / elapsed_s for gw in sorted(after)}


def gateway_of(topic: str) -> str:
    """The gateway level of ``omnizone/v1/<store>/<gateway>/<kind>``."""
    parts = topic.split("/")
    return parts[3] if len(parts) == 5 else topic


class Recorder:
    """A store's recorder: connect, subscribe at QoS 1, write, rotate, flush."""

    def __init__(
        self,
        options: RecorderOptions,
        *,
        clock: Callable[[], int] = wall_clock_ms,
        on_tick: Callable[[RecorderStats], None] | None = None,
        on_ready: Callable[[], None] | None = None,
    ) -> None:
        self.options = options
        self._on_ready = on_ready
        self.stats = RecorderStats(store=options.store)
        self._clock = clock
        self._on_tick = on_tick
        self._writer: RecordingWriter | None = None
        self._part = 0
        self._subscribed = threading.Event()
        self._connect_error: str | None = None
        self._client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"{options.username}-{clock()}",
            protocol=mqtt.MQTTv5,
        )
        self._client.username_pw_set(options.username, options.password)
        if options.tls_ca:
            self._client.tls_set(ca_certs=options.tls_ca, tls_version=ssl.PROTOCOL_TLS_CLIENT)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message

    @property
    def subscribed(self) -> threading.Event:
        """Set once the broker granted every subscription (tests, benchmarks)."""
        return self._subscribed

    def run(self, stop: threading.Event) -> RecorderStats:
        """Record until ``stop`` is set (or ``duration_s`` passes); always closes the file."""
        options = self.options
        self.stats.started_ms = self._clock()
        if options.out.exists():
            raise RecorderError(f"{options.out} exists; the recorder never overwrites a file")
        try:
            self._connect()  # before creating a file: a refused login leaves none behind
            if self._writer is None:
                self._open_part()
            if self._on_ready is not None:
                self._on_ready()
            deadline = None if options.duration_s is None else time.monotonic() + options.duration_s
            last_tick, counted = time.monotonic(), Counter[str]()
            while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
                if self._client.loop(timeout=0.1) != mqtt.MQTT_ERR_SUCCESS:
                    self._reconnect(stop)
                if self._connect_error is not None:
                    raise RecorderError(self._connect_error)
                now_ms = self._clock()
                writer = self._writer
                assert writer is not None
                if now_ms - writer.last_flush_ms >= options.flush_interval_ms:
                    writer.flush()
                if must_rotate(writer.size_bytes, options.rotate_bytes, writer.opened_ms, now_ms):
                    self._open_part()
                if time.monotonic() - last_tick >= 1.0:
                    elapsed = time.monotonic() - last_tick
                    self.stats.rates = rates_per_second(counted, self.stats.per_gateway, elapsed)
                    last_tick, counted = time.monotonic(), Counter(self.stats.per_gateway)
                    if self._on_tick is not None:
                        self._on_tick(self.stats)
        finally:
            if self._writer is not None:
                self._writer.close()
            self._client.disconnect()
            self.stats.stopped_ms = self._clock()
        return self.stats

    # -- connection ------------------------------------------------------------

    def _connect(self) -> None:
        options = self.options
        try:
            self._client.connect(options.host, options.port, keepalive=30)
        except OSError as error:
            raise RecorderError(
                f"cannot reach the broker at {options.host}:{options.port}: {error}"
            ) from None
        end = time.monotonic() + 15
        while not self._subscribed.is_set():
            if self._client.loop(timeout=0.1) != mqtt.MQTT_ERR_SUCCESS and not self._connect_error:
                self._connect_error = (
                    f"the broker at {options.host}:{options.port} closed the connection "
                    "(does it speak MQTT 5? the recorder needs Mosquitto 2, not the "
                    "embedded broker)"
                )
            if self._connect_error is not None:
                raise RecorderError(self._connect_error)
            if time.monotonic() > end:
                raise RecorderError(
                    f"no answer from the broker at {options.host}:{options.port} within 15 s: "
                    "the recorder speaks MQTT 5 (Mosquitto 2 does; the embedded amqtt broker "
                    "does not)"
                )

    def _reconnect(self, stop: threading.Event) -> None:
        """Lost the broker: try again once a second, flushing meanwhile."""
        self.stats.reconnects += 1
        while not stop.is_set():
            if self._writer is not None:
                self._writer.flush()
            try:
                if self._client.reconnect() == mqtt.MQTT_ERR_SUCCESS:
                    return
            except OSError:
                pass
            stop.wait(1.0)

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self._connect_error = (
                f"the broker refused the recorder {self.options.username!r}: {reason} "
                "(check the username and password: docs/recording.md)"
            )
            return
        options = SubscribeOptions(
            qos=1, retainAsPublished=True, retainHandling=SubscribeOptions.RETAIN_DO_NOT_SEND
        )
        client.subscribe([(topic, options) for topic in recorder_read_patterns(self.options.store)])

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, _mid: int, codes: Any, _p: Any) -> None:
        refused = [str(code) for code in codes if code.is_failure]
        if refused:
            self._connect_error = (
                f"the broker refused the subscriptions of {self.options.username!r} to "
                f"store {self.options.store!r} ({', '.join(refused)}): is it that store's "
                "recorder account?"
            )
            return
        self._subscribed.set()

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        if self._writer is None:  # a message in the same read as the SUBACK
            self._open_part()
        assert self._writer is not None
        self._writer.add(
            RecordedMessage(
                rx_ms=self._clock(),
                topic=message.topic,
                payload=bytes(message.payload),
                qos=message.qos,
                retain=bool(message.retain),
            )
        )
        self.stats.per_gateway[gateway_of(message.topic)] += 1

    # -- files -----------------------------------------------------------------

    def _open_part(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._part += 1
        path = part_path(self.options.out, self._part)
        header = RecordingHeader(
            store=self.options.store, started_ms=self._clock(), source="record", part=self._part
        )
        try:
            self._writer = RecordingWriter(
                path, header, flush_interval_ms=self.options.flush_interval_ms, clock=self._clock
            )
        except FileExistsError:
            raise RecorderError(f"{path} exists; the recorder never overwrites a file") from None
        except OSError as error:
            raise RecorderError(f"{path}: cannot create it ({error.strerror})") from None
        self.stats.files.append(str(path))


def status_line(stats: RecorderStats) -> str:
    """The live line: total, and messages per second per gateway."""
    per_gateway = "  ".join(f"{gw} {rate:.1f}/s" for gw, rate in stats.rates.items()) or "—"
    now = datetime.now(UTC).strftime("%H:%M:%S")
    return (
        f"{now} recording {stats.store}: {stats.messages} messages "
        f"→ {Path(stats.files[-1]).name if stats.files else '?'} · {per_gateway}"
    )
