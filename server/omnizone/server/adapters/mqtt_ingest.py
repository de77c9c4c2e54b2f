"""MQTT ingest: subscribe to every gateway topic and feed one worker thread.

QoS 1 with a persistent session and MANUAL acknowledgements: a message is
acknowledged only after its database transaction committed, so a crash at any
point leaves it with the broker, which redelivers it (de-duplication makes the
second delivery harmless). One worker keeps messages in arrival order.

The worker takes the messages that arrived together as one batch (at most
``batch_max``, waiting at most ``batch_wait_ms`` after the first for more):
the gateways of a store publish each window at the same moment, and one
transaction for them all costs about what one per message did
(``IngestService.handle_batch``). Nothing of a batch is acknowledged before
the whole batch is committed.

After the commit the worker also tells the gateway, retained on its ``ack``
topic, the run of its epoch's sequence numbers now stored (``AckRuns``):
the gateway deletes those outbox rows then, and only then. Duplicates are
acknowledged too, since a gateway re-sends exactly what it has not yet seen
acknowledged.
"""

import logging
import queue
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from omnizone.contract import AckMessage, ack_topic, dump_ack, subscription_filter
from omnizone.contract.timefmt import wall_clock_ms
from omnizone.contract.topics import GATEWAY_KINDS
from omnizone.server.service.ingest import InboundMessage, IngestService
from omnizone.server.service.ports import ReceivedKey

log = logging.getLogger(__name__)


#: Defaults of ``OMNIZONE_INGEST_BATCH_MAX`` and ``OMNIZONE_INGEST_BATCH_WAIT_MS``.
DEFAULT_BATCH_MAX = 200
DEFAULT_BATCH_WAIT_MS = 20.0


@dataclass(slots=True)
class MqttIngestCounters:
    received: int = 0
    handled: int = 0
    batches: int = 0
    largest_batch: int = 0
    acknowledged: int = 0
    storage_errors: int = 0
    connects: int = 0
    acks_published: int = 0


@dataclass(slots=True)
class _Run:
    epoch: int
    first: int
    last: int


class AckRuns:
    """Per gateway, the run of consecutive sequence numbers of one epoch that is
    stored, grown as messages commit: what the next ack says. Constant work per
    message. A number that does not touch the run starts a new one; the old run
    is handed back so that it is published before it is forgotten."""

    def __init__(self) -> None:
        self._runs: dict[tuple[str, str], _Run] = {}
        self._dirty: set[tuple[str, str]] = set()

    def note(self, key: ReceivedKey) -> AckMessage | None:
        """Record a committed key; returns the replaced run's ack, if one was waiting."""
        gateway = (key.store, key.gateway)
        run = self._runs.get(gateway)
        replaced = None
        if run is not None and run.epoch == key.epoch and run.first - 1 <= key.seq <= run.last + 1:
            run.first, run.last = min(run.first, key.seq), max(run.last, key.seq)
        else:
            if run is not None and gateway in self._dirty:
                replaced = self._ack(gateway, run)
            self._runs[gateway] = _Run(key.epoch, key.seq, key.seq)
        self._dirty.add(gateway)
        return replaced

    def take(self) -> list[AckMessage]:
        """Acks for every run that grew since the last take."""
        acks = [self._ack(gateway, self._runs[gateway]) for gateway in sorted(self._dirty)]
        self._dirty.clear()
        return acks

    @staticmethod
    def _ack(gateway: tuple[str, str], run: _Run) -> AckMessage:
        return AckMessage(
            store=gateway[0],
            gateway=gateway[1],
            epoch=run.epoch,
            first_seq=run.first,
            last_seq=run.last,
            issued_ms=wall_clock_ms(),
        )


@dataclass(frozen=True, slots=True)
class _Delivery:
    topic: str
    payload: bytes
    mid: int
    qos: int
    session: int
    received_ms: int
    queued_s: float  # time.monotonic() when it was queued: the batch's wait counts from it


_STOP = object()


class MqttIngest:
    """Broker → IngestService, acknowledging only what is safely stored."""

    def __init__(
        self,
        service: IngestService,
        *,
        host: str = "127.0.0.1",
        port: int = 1883,
        username: str | None = None,
        password: str | None = None,
        tls_ca: Path | None = None,
        client_id: str = "omnizone-server",
        topic: str | None = None,
        retry_delay_s: float = 1.0,
        clock: Callable[[], int] = wall_clock_ms,
        ack_every: int = 50,
        batch_max: int = DEFAULT_BATCH_MAX,
        batch_wait_ms: float = DEFAULT_BATCH_WAIT_MS,
    ) -> None:
        """``batch_max`` and ``batch_wait_ms``: a batch is what is queued, up to
        ``batch_max`` messages, and what arrives until ``batch_wait_ms`` after
        its first message was received (1 and 0: one message at a time)."""
        self._service = service
        self._host, self._port = host, port
        # Every gateway kind, never `config`: that is what the server itself sends.
        self._topics = (
            [topic] if topic else [subscription_filter(kind=k.value) for k in sorted(GATEWAY_KINDS)]
        )
        self._retry_delay_s = retry_delay_s
        self._clock = clock
        # Acks go out when the queue runs dry, or every `ack_every` messages in a burst.
        self._ack_every = max(1, ack_every)
        self._batch_max = max(1, batch_max)
        self._batch_wait_s = max(0.0, batch_wait_ms) / 1000
        self._acks = AckRuns()
        self._unpublished = 0
        self.counters = MqttIngestCounters()
        self._queue: queue.Queue[_Delivery | object] = queue.Queue()
        self._stopping = threading.Event()
        self._connected = threading.Event()
        self._session = 0  # bumped on every connect: message ids are per connection
        self._worker: threading.Thread | None = None
        self._started = False
        self._stopped = False
        self._client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=False,
            protocol=mqtt.MQTTv311,
            manual_ack=True,
        )
        if username is not None:
            self._client.username_pw_set(username, password)
        if tls_ca is not None:
            self._client.tls_set(ca_certs=str(tls_ca), tls_version=ssl.PROTOCOL_TLS_CLIENT)
        self._client.reconnect_delay_set(min_delay=1, max_delay=30)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message

    @property
    def connected(self) -> bool:
        """Connected and subscribed: messages published from now on reach us."""
        return self._connected.is_set()

    @property
    def pending(self) -> int:
        """Messages received but not yet handled."""
        return self._queue.qsize()

    def wait_connected(self, timeout: float | None = None) -> bool:
        return self._connected.wait(timeout)

    def publish_retained(self, topic: str, payload: bytes, timeout_s: float = 5.0) -> bool:
        """Publish (QoS 1, retained) and wait for the broker's acknowledgement."""
        info = self._client.publish(topic, payload, qos=1, retain=True)
        try:
            info.wait_for_publish(timeout=timeout_s)
        except (RuntimeError, ValueError):
            return False
        return info.is_published()

    def start(self) -> None:
        """Connect in the background (retrying until the broker answers)."""
        if self._started:
            return
        self._started = True
        self._worker = threading.Thread(target=self._work, name="omnizone-ingest", daemon=True)
        self._worker.start()
        self._client.connect_async(self._host, self._port, keepalive=30)
        self._client.loop_start()

    def stop(self, timeout: float | None = None) -> None:
        """Handle (and acknowledge) what was received, then disconnect. Idempotent."""
        if not self._started or self._stopped:
            return
        self._stopped = True
        # A message that cannot be stored right now is left unacknowledged: the
        # broker redelivers it to the next session.
        self._stopping.set()
        self._queue.put(_STOP)
        if self._worker is not None:
            self._worker.join(timeout)
        self._client.disconnect()
        self._client.loop_stop()
        self._connected.clear()

    # -- paho callbacks (network thread) ---------------------------------------------

    def _on_connect(
        self, client: mqtt.Client, _userdata: Any, flags: Any, reason: Any, _props: Any
    ) -> None:
        if reason.is_failure:
            log.error("broker %s:%s refused the connection: %s", self._host, self._port, reason)
            return
        self._session += 1
        self.counters.connects += 1
        client.subscribe([(t, 1) for t in self._topics])
        log.info(
            "connected to %s:%s (session present: %s), subscribed to %s",
            self._host,
            self._port,
            flags.session_present,
            self._topics,
        )

    def _on_subscribe(
        self, _client: mqtt.Client, _userdata: Any, _mid: int, reasons: Any, _props: Any
    ) -> None:
        if any(r.is_failure for r in reasons):
            log.error("broker refused the subscription to %s: %s", self._topics, reasons)
            return
        self._connected.set()

    def _on_disconnect(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        self._connected.clear()
        if not self._stopping.is_set():
            log.warning("disconnected from %s:%s: %s; reconnecting", self._host, self._port, reason)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self.counters.received += 1
        self._queue.put(
            _Delivery(
                msg.topic,
                bytes(msg.payload),
                msg.mid,
                msg.qos,
                self._session,
                self._clock(),
                time.monotonic(),
            )
        )

    # -- worker thread -----------------------------------------------------------

    def _work(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            assert isinstance(first, _Delivery)
            batch, stop = self._collect(first)
            if not self._handle(batch) or stop:
                return

    def _collect(self, first: _Delivery) -> tuple[list[_Delivery], bool]:
        """``first`` and what arrives with it; True when a stop came after them."""
        batch = [first]
        deadline = first.queued_s + self._batch_wait_s
        while len(batch) < self._batch_max:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                wait_s = deadline - time.monotonic()
                if wait_s <= 0:
                    break
                try:
                    item = self._queue.get(timeout=wait_s)
                except queue.Empty:
                    break
            if item is _STOP:
                return batch, True
            assert isinstance(item, _Delivery)
            batch.append(item)
        return batch, False

    def _handle(self, batch: list[_Delivery]) -> bool:
        """Handle until stored; False when stopping before that (leave it unacked)."""
        inbound = [InboundMessage(d.topic, d.payload, d.received_ms) for d in batch]
        while True:
            try:
                outcomes = self._service.handle_batch(inbound)
                break
            except Exception:
                self.counters.storage_errors += 1
                log.exception(
                    "storing %d messages (first from %s) failed; retrying",
                    len(batch),
                    batch[0].topic,
                )
                if self._stopping.wait(self._retry_delay_s):
                    return False
        self.counters.handled += len(batch)
        self.counters.batches += 1
        self.counters.largest_batch = max(self.counters.largest_batch, len(batch))
        for delivery, outcome in zip(batch, outcomes, strict=True):
            # An id from an earlier connection means nothing now: the broker
            # redelivers that message itself, and de-duplication absorbs it.
            if delivery.qos > 0 and delivery.session == self._session:
                self._client.ack(delivery.mid, delivery.qos)
                self.counters.acknowledged += 1
            if outcome.key is not None:
                replaced = self._acks.note(outcome.key)
                if replaced is not None:
                    self._publish_ack(replaced)
                self._unpublished += 1
        if self._unpublished and (self._queue.empty() or self._unpublished >= self._ack_every):
            for ack in self._acks.take():
                self._publish_ack(ack)
            self._unpublished = 0
        return True

    def _publish_ack(self, ack: AckMessage) -> None:
        """Committed: tell the gateway (retained, QoS 1; not waited for: a lost
        ack only makes the gateway send those rows again, and they are acked as
        duplicates)."""
        self._client.publish(ack_topic(ack.store, ack.gateway), dump_ack(ack), qos=1, retain=True)
        self.counters.acks_published += 1
