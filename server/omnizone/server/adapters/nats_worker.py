"""A chain worker: consume whole stores from the JetStream stream, one partition at a time.

Gateways publish over MQTT to nats-server; its subject mapping puts each
message in partition ``fnv1a(store) mod P`` of the stream (``ozp.<k>.…``).
Each worker:

- says it is alive (``member.<id>`` in a KV bucket whose entries expire after
  ``lease_ttl_s``), and computes from the live members which partitions are
  its own (``domain.partitions.assign``: every worker reaches the same answer);
- takes a partition only by creating its lease key (``part.<k>``, refused
  while another worker holds it) and refreshes it every heartbeat; a worker
  that cannot refresh in time stops consuming it, and a dead worker's leases
  expire, so another takes its stores over;
- on taking a partition builds that partition's ingest from PostgreSQL (the
  stores' open stays, ``IngestService`` loads them) and re-creates the
  partition's durable consumer at its ack floor: whatever the last owner had
  not acknowledged is read again, in stream order, and ingest's
  de-duplication on (gateway, epoch, seq) makes what it had already
  committed harmless (at-least-once transport, exactly-once effects);
- before consuming, warms the stores' filters on the last ``warm_s`` seconds
  of the partition that the last owner committed (``IngestService.warm``:
  the locators only, nothing written), so a take-over does not start the
  filter's belief cold;
- acknowledges a message to JetStream only after ingest committed it, and
  tells the gateway (``…/ack`` subject, the MQTT ack topic) the run it stored.

Batching: each fetched batch goes through ``handle_batch`` below: one
transaction (COPY on PostgreSQL) for up to ``OMNIZONE_INGEST_BATCH_MAX``
messages, through the same ``IngestService.handle_batch`` as the one-store
MQTT path; nothing of a chunk is acknowledged before it committed.
"""

import asyncio
import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    KeyValueConfig,
    StorageType,
    StreamConfig,
)
from nats.js.client import JetStreamContext
from nats.js.errors import KeyWrongLastSequenceError, NotFoundError
from nats.js.kv import KeyValue

from omnizone.contract import ack_topic, dump_ack
from omnizone.contract.timefmt import wall_clock_ms
from omnizone.server.adapters.mqtt_ingest import AckRuns
from omnizone.server.adapters.nats_link import NatsLink, ensure_stream, when_jetstream_ready
from omnizone.server.domain.partitions import assign, partition_weights, stores_by_partition
from omnizone.server.service.ingest import InboundMessage, IngestOutcome, IngestService
from omnizone.store import StorePlan

log = logging.getLogger(__name__)

PARTITION_PREFIX = "ozp"
LEASE_BUCKET = "omnizone_leases"
EMPTY_PARTITION_WEIGHT = 0.001
"""A partition with no known store still has an owner: it dead-letters strays."""

WARM_FETCH = 500
"""Messages a warm-up reads from the stream at once."""
WARM_IDLE_S = 30.0
"""A warm-up's consumer left behind by a worker that died is removed this long after."""

REBIND_AFTER_FAILURES = 25
"""Fetches failing in a row (not timeouts) before the consumer is re-created."""
INGEST_THREADS = 8
"""Partitions whose batches are ingested at the same time."""
FETCH_WAIT_S = 0.2
"""A fetch returns what came within this long: the most a message waits for its batch."""
STALE_FRACTION = 0.6
"""A lease not refreshed for this part of its TTL is no longer acted on."""
REFRESH_FRACTION = 0.2
"""Member and lease keys are rewritten when this part of the TTL has passed:
two tries before a lease goes stale, and a fifth of the quorum writes a
per-beat refresh would make at the default TTL."""

IngestFactory = Callable[[Mapping[str, StorePlan]], IngestService]


def topic_of(subject: str) -> str:
    """``ozp.<k>.omnizone.v1.s.g.kind`` -> the MQTT topic ``omnizone/v1/s/g/kind``."""
    parts = subject.split(".")
    if parts and parts[0] == PARTITION_PREFIX:
        parts = parts[2:]
    return "/".join(parts)


def handle_batch(
    ingest: IngestService,
    batch: Sequence[tuple[str, bytes]],
    received_ms: int,
    *,
    keep_going: Callable[[], bool],
    retry_s: float = 1.0,
    on_error: Callable[[], None] = lambda: None,
    most: int = 200,
) -> list[IngestOutcome]:
    """Ingest ``batch`` in order, ``most`` messages to a transaction
    (``IngestService.handle_batch``), retrying a chunk while storage is down.
    Returns the outcomes of the prefix that committed: fewer than the batch
    when ``keep_going`` turned false (stopping, or the lease was lost)."""
    outcomes: list[IngestOutcome] = []
    for first in range(0, len(batch), most):
        if not keep_going():  # the lease may be someone else's soon: leave the rest
            return outcomes
        chunk = [InboundMessage(t, p, received_ms) for t, p in batch[first : first + most]]
        while True:
            try:
                outcomes.extend(ingest.handle_batch(chunk))
                break
            except Exception:
                on_error()
                log.exception(
                    "storing %d messages from %s failed; retrying", len(chunk), chunk[0].topic
                )
                if not keep_going():
                    return outcomes
                time.sleep(retry_s)
    return outcomes


@dataclass(slots=True)
class WorkerCounters:
    handled: int = 0
    accepted: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    storage_errors: int = 0
    acquired: int = 0
    released: int = 0
    lost: int = 0
    fetch_errors: int = 0
    warmed: int = 0
    """Messages replayed into a taken partition's filters before consuming it."""
    warm_cpu_s: float = 0.0
    redelivered: int = 0
    """Messages JetStream delivered more than once (an ack lost or late, a take-over)."""
    cpu_s: float = 0.0
    by_store: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class _Held:
    partition: int
    revision: int
    refreshed: float
    task: "asyncio.Task[None] | None" = None
    stop: asyncio.Event = field(default_factory=asyncio.Event)


class NatsWorker:
    """Consumes the partitions this worker holds; see the module docstring."""

    def __init__(
        self,
        plans: Mapping[str, StorePlan],
        ingest_for: IngestFactory,
        link: NatsLink,
        *,
        worker_id: str | None = None,
        partitions: int = 16,
        stream: str = "GATEWAYS",
        replicas: int = 3,
        max_age_s: float = 86400.0,
        lease_ttl_s: float = 5.0,
        heartbeat_s: float = 1.0,
        fetch_batch: int = 100,
        ack_wait_s: float = 30.0,
        warm_s: float = 20.0,
        clock: Callable[[], int] = wall_clock_ms,
    ) -> None:
        self._plans = dict(plans)
        self._ingest_for = ingest_for
        self._link = link
        self.worker_id = worker_id or f"{socket.gethostname()}-{os.getpid()}"
        self._partitions = partitions
        self._stream = stream
        self._replicas = replicas
        self._max_age_s = max_age_s
        self._ttl = lease_ttl_s
        self._heartbeat = heartbeat_s
        #: Member and lease keys are rewritten this often (each a quorum write).
        self._refresh_every = max(heartbeat_s, lease_ttl_s * REFRESH_FRACTION)
        self._member_written = -1e9
        self._batch = fetch_batch
        self._ack_wait = ack_wait_s
        self._warm_s = warm_s
        self._clock = clock
        self._stores = stores_by_partition(self._plans, partitions)
        weights = partition_weights(
            {store: max(1, len(plan.gateways)) for store, plan in self._plans.items()},
            partitions,
        )
        self._weights = {k: weights.get(k, EMPTY_PARTITION_WEIGHT) for k in range(partitions)}
        self._held: dict[int, _Held] = {}
        self._ingests: dict[int, IngestService] = {}
        self._kv: KeyValue | None = None
        self._main: asyncio.Task[None] | None = None
        self._stopping = threading.Event()
        self._ready = threading.Event()
        # Ingest is synchronous (SQLAlchemy): it runs beside the loop. A partition
        # hands one batch at a time, so one store's messages stay in order, and
        # partitions commit side by side (PostgreSQL groups their commits);
        # bounded below the SQL pool's connections.
        self._pool = ThreadPoolExecutor(
            max_workers=min(partitions, INGEST_THREADS), thread_name_prefix="chain-ingest"
        )
        self.counters = WorkerCounters()
        self._lock = threading.Lock()

    # -- what callers use -----------------------------------------------------------

    @property
    def held(self) -> list[int]:
        return sorted(self._held)

    @property
    def ingests(self) -> dict[int, IngestService]:
        return dict(self._ingests)

    def forget_device(self, device: str) -> None:
        """Erasure (``ShopperService.subscribe_to_erasure``): every partition's
        ingest waits for the batch in hand and drops the device's stays and
        filter state, as the one-store ingest does."""
        for ingest in list(self._ingests.values()):
            ingest.forget_device(device)

    def start(self, timeout_s: float = 60.0) -> None:
        """Make sure the stream and the lease bucket exist, then run."""
        self._link.run(self._setup(timeout_s), timeout_s + 5)
        self._main = self._link.run(self._spawn_main())
        self._ready.set()

    def stop(self) -> None:
        """Stop consuming (what is in hand is finished first), give the leases back."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        if self._main is not None:
            with contextlib.suppress(Exception):
                self._link.run(self._shutdown(), 30.0)
        self._pool.shutdown(wait=True)

    # -- the loop -------------------------------------------------------------------

    async def _spawn_main(self) -> "asyncio.Task[None]":
        return asyncio.get_running_loop().create_task(self._membership())

    async def _setup(self, timeout_s: float) -> None:
        js = self._link.client.jetstream()
        config = StreamConfig(
            name=self._stream,
            subjects=[f"{PARTITION_PREFIX}.>"],
            num_replicas=self._replicas,
            max_age=self._max_age_s,
            storage=StorageType.FILE,
            duplicate_window=120.0,
        )
        kv_config = KeyValueConfig(
            bucket=LEASE_BUCKET, ttl=self._ttl, replicas=self._replicas, history=1
        )

        async def ready() -> None:
            await ensure_stream(js, config)
            try:
                self._kv = await js.key_value(LEASE_BUCKET)
            except Exception:
                self._kv = await js.create_key_value(kv_config)

        await when_jetstream_ready(ready, repr(self._stream), timeout_s)

    async def _membership(self) -> None:
        """The heartbeat, for as long as the worker runs: one failed beat (a node
        down, a leader moving, anything else) is logged and the next one comes."""
        while not self._stopping.is_set():
            try:
                await self._beat()
            except Exception:
                log.exception("worker %s: heartbeat failed", self.worker_id)
            await asyncio.sleep(self._heartbeat)

    async def _beat(self) -> None:
        kv = self._kv
        assert kv is not None
        try:
            now = time.monotonic()
            if now - self._member_written >= self._refresh_every:
                await kv.put(f"member.{self.worker_id}", self.worker_id.encode())
                self._member_written = now
            members = await self._members()
            if self.worker_id not in members:
                members.append(self.worker_id)
            mine = set(assign(self._weights, members).get(self.worker_id, []))
            # Side by side: a beat must stay well inside the lease's TTL on a busy
            # machine, so the leases are not written one round trip after another.
            # A lease is rewritten only when a fifth of its TTL has passed, not
            # every beat: every write is a quorum write of the R3 bucket.
            due = {
                k
                for k in set(self._held) & mine
                if now - self._held[k].refreshed >= self._refresh_every
            }
            outcomes = await asyncio.gather(
                *(self._refresh(k) for k in sorted(due)),
                *(self._release(k) for k in sorted(set(self._held) - mine)),
                return_exceptions=True,
            )
            outcomes += await asyncio.gather(
                *(self._acquire(k) for k in sorted(mine - set(self._held))),
                return_exceptions=True,
            )
            failed = [o for o in outcomes if isinstance(o, BaseException)]
            if failed:  # a slow or absent KV leader: the leases wait for the next beat
                log.warning(
                    "worker %s: %d lease writes failed (%r)", self.worker_id, len(failed), failed[0]
                )
        except Exception as error:  # a node down, a leader moving: next beat
            log.warning("worker %s heartbeat: %r", self.worker_id, error)
        # A partition whose consumer ended on its own (an error) is given back,
        # to be taken again on the next beat: a lease must not outlive its consumer.
        for k, held in list(self._held.items()):
            if held.task is not None and held.task.done() and not held.stop.is_set():
                ended = None if held.task.cancelled() else held.task.exception()
                log.warning("worker %s: partition %d stopped: %r", self.worker_id, k, ended)
                await self._release(k)
        # A lease we could not refresh may be someone else's by now: stop.
        for k, held in list(self._held.items()):
            if time.monotonic() - held.refreshed > self._ttl * STALE_FRACTION:
                log.warning("worker %s: lease of partition %d is stale", self.worker_id, k)
                self.counters.lost += 1
                await self._stop_consuming(k)

    async def _members(self) -> list[str]:
        """The live members: the ``member.*`` subjects the bucket's stream holds,
        from one stream-info request to its leader. ``kv.keys()`` would create
        (and delete) a consumer on the R3 bucket every beat, which on a loaded
        machine is what made the bucket stop answering in time."""
        js = self._link.client.jetstream()
        prefix = f"$KV.{LEASE_BUCKET}.member."
        info = await js.stream_info(f"KV_{LEASE_BUCKET}", subjects_filter=f"{prefix}>")
        subjects = info.state.subjects or {}
        return sorted(subject[len(prefix) :] for subject in subjects)

    async def _acquire(self, k: int) -> None:
        kv = self._kv
        assert kv is not None
        sent = time.monotonic()  # the TTL runs from the write, not from its reply
        try:
            revision = await kv.create(f"part.{k}", self.worker_id.encode())
        except KeyWrongLastSequenceError:
            return  # still held by another (alive, or its lease not yet expired)
        held = _Held(k, revision, sent)
        self._held[k] = held
        self.counters.acquired += 1
        held.task = asyncio.get_running_loop().create_task(self._consume(held))
        # A take-over is worth a line in the log (WARNING: shown without logging set up).
        log.warning("worker %s took partition %d %s", self.worker_id, k, self._stores.get(k, []))

    async def _refresh(self, k: int) -> None:
        kv = self._kv
        assert kv is not None
        held = self._held.get(k)
        if held is None:
            return
        sent = time.monotonic()
        try:
            held.revision = await kv.update(
                f"part.{k}", self.worker_id.encode(), last=held.revision
            )
            held.refreshed = sent
        except KeyWrongLastSequenceError:
            self.counters.lost += 1
            log.warning("worker %s lost partition %d", self.worker_id, k)
            await self._stop_consuming(k)

    async def _release(self, k: int) -> None:
        kv = self._kv
        assert kv is not None
        held = self._held.get(k)
        if held is None:
            return
        revision = held.revision
        await self._stop_consuming(k)
        with contextlib.suppress(Exception):
            await kv.delete(f"part.{k}", last=revision)
        self.counters.released += 1

    async def _stop_consuming(self, k: int) -> None:
        held = self._held.pop(k, None)
        if held is None:
            return
        held.stop.set()
        if held.task is not None:
            # Whatever ended it (an error, a cancel), the partition is given up.
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await held.task
        self._ingests.pop(k, None)

    async def _shutdown(self) -> None:
        for k in list(self._held):
            with contextlib.suppress(Exception):
                await self._release(k)
        if self._kv is not None:
            # Purged, not deleted: a delete leaves a marker under the subject,
            # which the member list (stream subjects) would still count.
            with contextlib.suppress(Exception):
                await self._link.client.jetstream().purge_stream(
                    f"KV_{LEASE_BUCKET}", subject=f"$KV.{LEASE_BUCKET}.member.{self.worker_id}"
                )
        if self._main is not None:
            self._main.cancel()
            with contextlib.suppress(BaseException):
                await self._main

    # -- one partition --------------------------------------------------------------

    async def _consume(self, held: _Held) -> None:
        k = held.partition
        loop = asyncio.get_running_loop()
        stores = {store: self._plans[store] for store in self._stores.get(k, [])}
        # The stores' visit state as last committed (by whoever held them).
        ingest = await loop.run_in_executor(self._pool, self._ingest_for, stores)
        self._ingests[k] = ingest
        try:
            await self._warm(k, ingest, held)
        except Exception as error:  # a warm-up is a help, never a condition
            log.warning("partition %d: warming its filters: %r", k, error)
        sub = None
        while sub is None and not held.stop.is_set():
            try:
                sub = await self._bind_at_ack_floor(k)
            except Exception as error:
                log.warning("partition %d: binding its consumer: %r", k, error)
                await asyncio.sleep(0.5)
        acks = AckRuns()

        def keep_going() -> bool:
            """Still ours: not told to stop, and the lease fresh enough that no
            other worker can have taken it (checked before every message)."""
            fresh = time.monotonic() - held.refreshed < self._ttl * STALE_FRACTION
            return fresh and not held.stop.is_set() and not self._stopping.is_set()

        def note_error() -> None:
            self.counters.storage_errors += 1

        failures = 0
        while keep_going() and sub is not None:
            try:
                msgs = await sub.fetch(self._batch, timeout=FETCH_WAIT_S)
                failures = 0
            except NatsTimeout:
                continue
            except Exception as error:
                self.counters.fetch_errors += 1
                failures += 1
                log.debug("partition %d fetch: %r", k, error)
                if failures >= REBIND_AFTER_FAILURES:  # its consumer may be gone: anew
                    log.warning("partition %d: %d fetches failed, re-binding", k, failures)
                    with contextlib.suppress(Exception):
                        sub = await self._bind_at_ack_floor(k)
                    failures = 0
                await asyncio.sleep(0.2)
                continue
            self.counters.redelivered += sum(1 for m in msgs if m.metadata.num_delivered > 1)
            batch = [(topic_of(m.subject), m.data) for m in msgs]
            outcomes = await loop.run_in_executor(
                self._pool, self._timed_batch, ingest, batch, keep_going, note_error
            )
            for msg, outcome in zip(msgs, outcomes, strict=False):
                with contextlib.suppress(Exception):
                    await msg.ack()
                self._count(outcome)
                if outcome.key is not None:
                    replaced = acks.note(outcome.key)
                    if replaced is not None:
                        await self._publish_ack(replaced)
            for ack in acks.take():
                await self._publish_ack(ack)

    def _timed_batch(
        self,
        ingest: IngestService,
        batch: list[tuple[str, bytes]],
        keep_going: Callable[[], bool],
        note_error: Callable[[], None],
    ) -> list[IngestOutcome]:
        start = time.thread_time()
        try:
            return handle_batch(
                ingest, batch, self._clock(), keep_going=keep_going, on_error=note_error
            )
        finally:
            with self._lock:
                self.counters.cpu_s += time.thread_time() - start

    def _count(self, outcome: IngestOutcome) -> None:
        c = self.counters
        c.handled += 1
        match outcome.outcome.value:
            case "accepted":
                c.accepted += 1
            case "duplicate":
                c.duplicates += 1
            case _:
                c.dead_lettered += 1
        if outcome.key is not None:
            c.by_store[outcome.key.store] = c.by_store.get(outcome.key.store, 0) + 1

    async def _publish_ack(self, ack: object) -> None:
        from omnizone.contract import AckMessage

        assert isinstance(ack, AckMessage)
        subject = ack_topic(ack.store, ack.gateway).replace("/", ".")
        with contextlib.suppress(Exception):
            await self._link.client.publish(subject, dump_ack(ack))

    async def _warm(self, k: int, ingest: IngestService, held: _Held) -> None:
        """Replay the last ``warm_s`` seconds of partition ``k`` into its
        filters, up to the first message not yet stored; bounded by the same
        time, after which the rest of the filter starts cold."""
        if self._warm_s <= 0 or not ingest.stores:
            return
        js = self._link.client.jetstream()
        name = f"warm-{k}-{uuid.uuid4().hex[:12]}"
        config = ConsumerConfig(
            name=name,
            filter_subject=f"{PARTITION_PREFIX}.{k}.>",
            ack_policy=AckPolicy.NONE,
            deliver_policy=DeliverPolicy.BY_START_TIME,
            opt_start_time=datetime.now(UTC) - timedelta(seconds=self._warm_s),
            inactive_threshold=WARM_IDLE_S,
            mem_storage=True,
            num_replicas=1,
        )
        await js.add_consumer(self._stream, config)
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + self._warm_s
        warmed = 0
        try:
            sub = await js.pull_subscribe_bind(name, stream=self._stream)
            while not held.stop.is_set() and time.monotonic() < deadline:
                try:
                    msgs = await sub.fetch(WARM_FETCH, timeout=1.0)
                except NatsTimeout:
                    break  # nothing (more) in the window
                batch = [InboundMessage(topic_of(m.subject), m.data, 0) for m in msgs]
                taken = await loop.run_in_executor(self._pool, self._timed_warm, ingest, batch)
                warmed += taken
                if taken < len(batch) or msgs[-1].metadata.num_pending == 0:
                    break  # reached what was never stored, or the end
        finally:
            self.counters.warmed += warmed
            with contextlib.suppress(Exception):
                await js.delete_consumer(self._stream, name)
        log.warning("worker %s warmed partition %d on %d messages", self.worker_id, k, warmed)

    def _timed_warm(self, ingest: IngestService, batch: list[InboundMessage]) -> int:
        start = time.thread_time()
        try:
            return ingest.warm(batch)
        finally:
            with self._lock:
                self.counters.warm_cpu_s += time.thread_time() - start

    async def _bind_at_ack_floor(self, k: int) -> JetStreamContext.PullSubscription:
        """The partition's durable consumer, re-created at its ack floor: what
        the last owner left unacknowledged comes again, in stream order."""
        js = self._link.client.jetstream()
        durable = f"part-{k}"
        start: int | None = None
        try:
            info = await js.consumer_info(self._stream, durable)
            start = info.ack_floor.stream_seq + 1 if info.ack_floor else 1
            await js.delete_consumer(self._stream, durable)
        except NotFoundError:
            start = None
        config = ConsumerConfig(
            durable_name=durable,
            filter_subject=f"{PARTITION_PREFIX}.{k}.>",
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE if start else DeliverPolicy.ALL,
            opt_start_seq=start,
            ack_wait=self._ack_wait,
            max_ack_pending=max(1000, self._batch * 4),
            max_waiting=16,
        )
        await js.add_consumer(self._stream, config)
        return await js.pull_subscribe_bind(durable=durable, stream=self._stream)
