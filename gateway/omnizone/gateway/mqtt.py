"""The gateway's MQTT session: drains the outbox in sequence order at QoS 1.

A row leaves the outbox only once the broker's PUBACK arrived. After any
disconnect everything not yet acknowledged is sent again from the lowest
sequence number; the server drops duplicates by (gateway, seq). Each connection
reserves two sequence numbers: the retained "online" birth and, above it, the
"offline" last will, so the sequence stays gap-free however the session ends.

Only the drain thread touches the in-flight list; paho's callbacks just set
flags and wake it, so no lock is ever held across a call into paho.
"""

import contextlib
import logging
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from omnizone.contract import GatewayState, Kind, StatusMessage, dump_message, topic_for
from omnizone.gateway.outbox import Outbox

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    host: str
    port: int
    username: str
    password: str
    tls_ca: str | None = None
    keepalive_s: int = 30


class MqttLink:
    def __init__(
        self,
        broker: BrokerAddress,
        store: str,
        gateway: str,
        outbox: Outbox,
        clock: Callable[[], int],
        version: str,
        max_inflight: int = 20,
        on_config: Callable[[str, bytes], None] | None = None,
    ) -> None:
        self.broker = broker
        self.store = store
        self.gateway = gateway
        self.outbox = outbox
        self.clock = clock
        self.version = version
        self.max_inflight = max_inflight
        self.acknowledged = 0
        # Every sequence number the broker acknowledged (outbox rows and status
        # messages), in order; the simulator checks these arrive exactly once.
        self.acknowledged_seqs: list[int] = []
        self.connects = 0
        self.last_error: str | None = None
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._connected = False
        self._generation = 0  # bumps on every connect/disconnect
        self._session = 0
        self._will_seq = -1
        self._thread: threading.Thread | None = None
        self._births: list[tuple[int, mqtt.MQTTMessageInfo]] = []
        self._on_config = on_config
        self._config_topic = topic_for(store, gateway, Kind.CONFIG)
        self._client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"omnizone-gw-{store}-{gateway}",
            clean_session=True,
            protocol=mqtt.MQTTv311,
        )
        self._client.username_pw_set(broker.username, broker.password)
        if broker.tls_ca:
            self._client.tls_set(ca_certs=broker.tls_ca, tls_version=ssl.PROTOCOL_TLS_CLIENT)
        self._client.max_inflight_messages_set(max_inflight)
        self._client.reconnect_delay_set(min_delay=1, max_delay=10)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._client.on_message = self._on_message

    @property
    def connected(self) -> bool:
        return self._connected

    def start(self) -> None:
        self._prepare_session()
        self._client.connect_async(self.broker.host, self.broker.port, self.broker.keepalive_s)
        self._client.loop_start()
        self._thread = threading.Thread(
            target=self._drain_loop, name=f"outbox-{self.gateway}", daemon=True
        )
        self._thread.start()

    def on_config(self, handler: Callable[[str, bytes], None]) -> None:
        """Who receives the retained config; set before start()."""
        self._on_config = handler

    def notify(self) -> None:
        """New rows are in the outbox."""
        self._wake.set()

    def flush(self, timeout_s: float) -> bool:
        """Wait until the outbox is empty (True) or the timeout passes."""
        end = time.monotonic() + timeout_s
        while self.outbox.depth() > 0:
            if time.monotonic() >= end:
                return False
            self._wake.set()
            time.sleep(0.02)
        return True

    def stop(self, flush_timeout_s: float = 5.0) -> None:
        """Flush what can be flushed, publish the offline status, disconnect."""
        if self._connected:
            self.flush(flush_timeout_s)
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._connected:
            info = self._client.publish(
                *self._status("offline", self._will_seq), qos=1, retain=True
            )
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(timeout=2)
            if info.is_published():
                self.acknowledged_seqs.append(self._will_seq)
        self._client.disconnect()
        self._client.loop_stop()

    # -- paho callbacks (network thread): flags and wake-ups only ----------------

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self.last_error = f"broker refused the connection: {reason}"
            log.warning("gateway %s: %s", self.gateway, self.last_error)
            return
        self.connects += 1
        self.last_error = None
        if self._on_config is not None:
            # Retained: the current config arrives right after (re)connecting.
            client.subscribe(self._config_topic, qos=1)
        birth = client.publish(*self._status("online", self._will_seq - 1), qos=1, retain=True)
        self._births.append((self._will_seq - 1, birth))
        self._generation += 1
        self._connected = True
        self._wake.set()

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self._connected = False
        self._generation += 1
        if not self._stopping.is_set():
            self.last_error = f"disconnected: {reason}"
            # The broker publishes the old will; the next connection gets a
            # fresh birth/will pair.
            self._prepare_session()
        self._wake.set()

    def _on_publish(self, _c: mqtt.Client, _u: Any, _mid: int, _r: Any, _p: Any) -> None:
        self._wake.set()

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        if self._on_config is None or message.topic != self._config_topic:
            return
        try:
            self._on_config(message.topic, bytes(message.payload))
        except Exception:  # a bad config must never take the gateway down
            log.exception("gateway %s: applying the config failed", self.gateway)

    # -- the drain thread ------------------------------------------------------

    def _drain_loop(self) -> None:
        inflight: list[tuple[int, mqtt.MQTTMessageInfo]] = []
        last_sent = -1
        generation = -1
        while not self._stopping.is_set():
            self._wake.wait(timeout=0.5)
            self._wake.clear()
            try:
                if generation != self._generation:
                    # New connection (or lost one): whatever was not acknowledged
                    # goes again, from the lowest sequence number.
                    generation = self._generation
                    inflight, last_sent = [], -1
                inflight = self._collect_acks(inflight)
                if self._connected:
                    last_sent = self._send_more(inflight, last_sent, generation)
            except Exception:  # one bad row must not stop the gateway publishing
                log.exception("gateway %s: publishing from the outbox failed", self.gateway)

    def _collect_acks(
        self, inflight: list[tuple[int, mqtt.MQTTMessageInfo]]
    ) -> list[tuple[int, mqtt.MQTTMessageInfo]]:
        for seq, info in list(self._births):
            if info.is_published():
                self._births.remove((seq, info))
                self.acknowledged_seqs.append(seq)
        still = []
        for seq, info in inflight:
            if info.is_published():
                if self.outbox.remove(seq):
                    self.acknowledged += 1
                    self.acknowledged_seqs.append(seq)
            else:
                still.append((seq, info))
        return still

    def _send_more(
        self, inflight: list[tuple[int, mqtt.MQTTMessageInfo]], last_sent: int, generation: int
    ) -> int:
        room = self.max_inflight - len(inflight)
        if room <= 0:
            return last_sent
        for entry in self.outbox.pending(after_seq=last_sent, limit=room):
            if generation != self._generation:
                break
            info = self._client.publish(entry.topic, entry.payload, qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                break
            inflight.append((entry.seq, info))
            last_sent = entry.seq
        return last_sent

    def _prepare_session(self) -> None:
        self._session = self.outbox.next_session()
        self._will_seq = self.outbox.reserve(2) + 1
        self._client.will_set(*self._status("offline", self._will_seq), qos=1, retain=True)

    def _status(self, state: GatewayState, seq: int) -> tuple[str, bytes]:
        message = StatusMessage(
            store=self.store,
            gateway=self.gateway,
            seq=seq,
            sent_ms=self.clock(),
            state=state,
            session=self._session,
            version=self.version,
        )
        return topic_for(self.store, self.gateway, Kind.STATUS), dump_message(message)
