"""The gateway's MQTT session: drains the outbox in sequence order at QoS 1.

A row leaves the outbox only once the server says it committed it: the server
publishes, retained on this gateway's ``ack`` topic, the run of sequence
numbers of this outbox's epoch it has stored, and the link deletes exactly
those rows. The broker's PUBACK only paces publishing: a broker that crashes
before saving its store, or an ACL that silently drops a publish (MQTT 3.1.1
still PUBACKs it), loses nothing. What the server has not acknowledged is sent
again after a reconnect, or when no acknowledgement came for
``ack_timeout_s`` (doubling up to ``max_ack_timeout_s`` while none comes, so
an absent server sees a trickle, not a storm); at most ``max_unacked`` rows
wait for the server at a time. The server drops duplicates by (gateway, epoch,
seq). Each connection the broker accepts reserves two sequence numbers: the
retained "online" birth and, above it, the "offline" last will, so the
sequence stays gap-free however the session ends (a try the broker never
accepted keeps its pair for the next).

Only the drain thread touches the in-flight list; paho's callbacks just set
flags and wake it, so no lock is ever held across a call into paho.
"""

import contextlib
import logging
import queue
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from omnizone.contract import (
    AckMessage,
    ContractError,
    GatewayState,
    Kind,
    StatusMessage,
    ack_topic,
    dump_message,
    parse_ack,
    topic_for,
)
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
        *,
        max_unacked: int = 1000,
        ack_timeout_s: float = 10.0,
        max_ack_timeout_s: float = 300.0,
    ) -> None:
        self.broker = broker
        self.store = store
        self.gateway = gateway
        self.outbox = outbox
        self.clock = clock
        self.version = version
        self.max_inflight = max_inflight
        self.max_unacked = max(max_unacked, max_inflight)
        self.ack_timeout_s = ack_timeout_s
        self.max_ack_timeout_s = max(max_ack_timeout_s, ack_timeout_s)
        self.acknowledged = 0
        # Every sequence number known to have arrived, in order: outbox rows the
        # server acknowledged, status messages the broker acknowledged. The
        # simulator checks these arrive exactly once.
        self.acknowledged_seqs: list[int] = []
        self.resends = 0
        """Times the unacknowledged rows were sent again because no ack came."""
        self.acks_ignored = 0
        """Acks refused by the contract, or for another epoch than this outbox's."""
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
        self._ack_topic = ack_topic(store, gateway)
        self._acks: queue.SimpleQueue[AckMessage] = queue.SimpleQueue()
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
        # Retained: the current config and the latest ack arrive right after
        # (re)connecting.
        topics = [(self._ack_topic, 1)]
        if self._on_config is not None:
            topics.append((self._config_topic, 1))
        client.subscribe(topics)
        birth = client.publish(*self._status("online", self._will_seq - 1), qos=1, retain=True)
        self._births.append((self._will_seq - 1, birth))
        self._generation += 1
        self._connected = True
        self._wake.set()

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        accepted = self._connected
        self._connected = False
        self._generation += 1
        if not self._stopping.is_set():
            self.last_error = f"disconnected: {reason}"
            if accepted:
                # The broker publishes the old will; the next connection gets a
                # fresh birth/will pair.
                self._prepare_session()
            # A try the broker never accepted (the link turned it away, no
            # CONNACK) keeps its pair for the next try: reserving one per try
            # would leave holes the server counts as lost messages. Had the
            # broker got that CONNECT after all, it publishes that will, and
            # the next session's offline status with the same seq is dropped
            # by the server as a duplicate.
        self._wake.set()

    def _on_publish(self, _c: mqtt.Client, _u: Any, _mid: int, _r: Any, _p: Any) -> None:
        self._wake.set()

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        if message.topic == self._ack_topic:
            self._on_ack(bytes(message.payload))
            return
        if self._on_config is None or message.topic != self._config_topic:
            return
        try:
            self._on_config(message.topic, bytes(message.payload))
        except Exception:  # a bad config must never take the gateway down
            log.exception("gateway %s: applying the config failed", self.gateway)

    def _on_ack(self, payload: bytes) -> None:
        try:
            ack = parse_ack(self._ack_topic, payload)
        except ContractError as error:
            self.acks_ignored += 1
            log.warning("gateway %s: ack refused: %s", self.gateway, error)
            return
        if ack.epoch != self.outbox.epoch:  # another outbox's (a replaced SD card's)
            self.acks_ignored += 1
            return
        self._acks.put(ack)
        self._wake.set()

    # -- the drain thread ------------------------------------------------------

    def _drain_loop(self) -> None:
        state = _DrainState(self.ack_timeout_s)
        generation = -1
        while not self._stopping.is_set():
            self._wake.wait(timeout=0.5)
            self._wake.clear()
            try:
                if generation != self._generation:
                    # New connection (or lost one): whatever the server has not
                    # acknowledged goes again, from the lowest sequence number.
                    generation = self._generation
                    state.restart()
                self._collect_pubacks(state)
                self._apply_acks(state)
                if self._connected:
                    self._resend_if_overdue(state)
                    self._send_more(state, generation)
            except Exception:  # one bad row must not stop the gateway publishing
                log.exception("gateway %s: publishing from the outbox failed", self.gateway)

    def _collect_pubacks(self, state: "_DrainState") -> None:
        for seq, info in list(self._births):
            if info.is_published():
                self._births.remove((seq, info))
                self.acknowledged_seqs.append(seq)
        # The broker has them: they now wait for the server, not the broker.
        state.inflight = [(seq, info) for seq, info in state.inflight if not info.is_published()]

    def _apply_acks(self, state: "_DrainState") -> None:
        while True:
            try:
                ack = self._acks.get_nowait()
            except queue.Empty:
                return
            seqs = self.outbox.seqs_between(ack.first_seq, ack.last_seq)
            if seqs:
                self.outbox.remove_range(ack.first_seq, ack.last_seq)
                self.acknowledged += len(seqs)
                self.acknowledged_seqs.extend(seqs)
                state.progress(self.ack_timeout_s)
            for seq in [s for s in state.sent if ack.first_seq <= s <= ack.last_seq]:
                del state.sent[seq]

    def _resend_if_overdue(self, state: "_DrainState") -> None:
        if not state.sent:
            return
        oldest = min(state.sent.values())
        if time.monotonic() - oldest < state.timeout_s:
            return
        # No ack for that long: the server may be away, or the broker lost them.
        # Send what is unacknowledged again, and wait twice as long next time.
        self.resends += 1
        log.info(
            "gateway %s: no ack for %d rows in %.0f s; sending them again",
            self.gateway,
            len(state.sent),
            state.timeout_s,
        )
        state.restart()
        state.timeout_s = min(state.timeout_s * 2, self.max_ack_timeout_s)

    def _send_more(self, state: "_DrainState", generation: int) -> None:
        room = min(self.max_inflight - len(state.inflight), self.max_unacked - len(state.sent))
        if room <= 0:
            return
        now = time.monotonic()
        for entry in self.outbox.pending(after_seq=state.last_sent, limit=room):
            if generation != self._generation:
                break
            info = self._client.publish(entry.topic, entry.payload, qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                break
            state.inflight.append((entry.seq, info))
            state.sent[entry.seq] = now
            state.last_sent = entry.seq

    def _prepare_session(self) -> None:
        self._session = self.outbox.next_session()
        self._will_seq = self.outbox.reserve(2) + 1
        self._client.will_set(*self._status("offline", self._will_seq), qos=1, retain=True)

    def _status(self, state: GatewayState, seq: int) -> tuple[str, bytes]:
        message = StatusMessage(
            store=self.store,
            gateway=self.gateway,
            epoch=self.outbox.epoch,
            seq=seq,
            sent_ms=self.clock(),
            state=state,
            session=self._session,
            version=self.version,
        )
        return topic_for(self.store, self.gateway, Kind.STATUS), dump_message(message)


@dataclass(slots=True)
class _DrainState:
    """The drain thread's own bookkeeping (no other thread touches it)."""

    timeout_s: float
    last_sent: int = -1
    inflight: list[tuple[int, mqtt.MQTTMessageInfo]] = field(default_factory=list)
    """Published, the broker's PUBACK not yet in."""
    sent: dict[int, float] = field(default_factory=dict)
    """Published and not yet acknowledged by the server: seq -> when (monotonic)."""

    def restart(self) -> None:
        self.last_sent, self.inflight, self.sent = -1, [], {}

    def progress(self, base_timeout_s: float) -> None:
        self.timeout_s = base_timeout_s
