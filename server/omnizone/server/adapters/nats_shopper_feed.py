"""The shopper change feed of a chain: registrations, consent changes and
erasures made on one node reach every other node (docs/scaling.md).

Every chain node (API node or worker) keeps the devices and consents in
memory (``ShopperService``, ``RegisteredDevices``): ingest resolves rotating
ids and checks consent per sighting, delivery checks consent per offer. A
change committed on one node is published, after the commit, to a JetStream
stream (``SHOPPERS``: subjects ``omnizone.chain.shoppers.<change>``, the
gateway stream's replicas and age). Each node reads the stream from where its
last full re-read of the database began, and for each notice re-reads that
shopper from the database (``ShopperService.refresh_shopper``): the notice
says *who* changed, the database says *what*, so a notice that comes twice,
late or out of order does no harm.

A notice can still be missed: the publishing node dies between its commit and
the stream's ack, or the stream loses messages (max age, a power cut of every
node, a stream re-created). So a node re-reads every shopper
(``ShopperService.refresh_all``) when it starts following, when the stream's
sequence shows a gap or went backwards, and every ``refresh_s``.
"""

import asyncio
import contextlib
import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, get_args

from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StorageType, StreamConfig
from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError

from omnizone.server.adapters.nats_link import NatsLink, ensure_stream, when_jetstream_ready
from omnizone.server.service.shoppers import ShopperChange, ShopperService

log = logging.getLogger(__name__)

FEED_STREAM = "SHOPPERS"
FEED_PREFIX = "omnizone.chain.shoppers"
PUBLISH_WAIT_S = 5.0
"""How long the committing request waits for the stream's ack; after that the
notice is re-sent in the background (and the full re-reads cover a loss)."""
RETRY_FOR_S = 300.0
FETCH_WAIT_S = 5.0
"""A fetch's long poll: a notice is handed over as soon as it is stored."""
CONSUMER_IDLE_S = 60.0
"""An ephemeral consumer whose node stopped asking is removed after this."""


def encode_notice(shopper_id: str, change: ShopperChange) -> tuple[str, bytes]:
    return f"{FEED_PREFIX}.{change}", json.dumps({"shopper": shopper_id, "change": change}).encode()


def decode_notice(payload: bytes) -> tuple[str, ShopperChange] | None:
    """The shopper and change of a notice; None for anything malformed."""
    try:
        raw: Any = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(raw, dict):
        return None
    shopper, change = raw.get("shopper"), raw.get("change")
    if not isinstance(shopper, str):
        return None
    for known in get_args(ShopperChange):
        if change == known:
            return shopper, known
    return None


@dataclass(slots=True)
class FeedCounters:
    published: int = 0
    publish_retries: int = 0
    not_published: int = 0
    """Given up (stopping, or retried for ``RETRY_FOR_S``): the full re-reads bring them."""
    applied: int = 0
    full_refreshes: int = 0
    gaps: int = 0
    stream_resets: int = 0
    malformed: int = 0
    last_seq: int = 0


class ShopperFeed:
    """Publishes this node's shopper changes and applies the other nodes'."""

    def __init__(
        self,
        link: NatsLink,
        shoppers: ShopperService,
        *,
        stream: str = FEED_STREAM,
        replicas: int = 3,
        max_age_s: float = 86400.0,
        refresh_s: float = 300.0,
    ) -> None:
        self._link = link
        self._shoppers = shoppers
        self._stream = stream
        self._replicas = replicas
        self._max_age_s = max_age_s
        self._refresh_s = refresh_s
        self._last = 0  # the stream sequence applied up to
        self._stopping = threading.Event()
        self._task: asyncio.Task[None] | None = None
        # Every application (one shopper, everyone) on one thread, in stream
        # order: the later database read is the one that stays.
        self._apply = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shopper-feed")
        self.counters = FeedCounters()
        self.consumer: str | None = None
        """The name of the ephemeral consumer this node reads the stream with."""

    # -- this node's changes ----------------------------------------------------------

    def publish(self, shopper_id: str, change: ShopperChange) -> None:
        """``ShopperService.subscribe_to_changes``: called after the commit,
        on the request's thread, which waits for the stream's ack (bounded)."""
        if self._stopping.is_set() or not self._link.loop.is_running():
            log.warning("shopper feed stopped: %s of %s not announced", change, shopper_id)
            self.counters.not_published += 1
            return
        future = self._link.submit(self._publish(shopper_id, change))
        with contextlib.suppress(Exception):  # still retried on the loop
            future.result(PUBLISH_WAIT_S)

    async def _publish(self, shopper_id: str, change: ShopperChange) -> None:
        subject, payload = encode_notice(shopper_id, change)
        js = self._link.client.jetstream()
        deadline = time.monotonic() + RETRY_FOR_S
        wait = 0.2
        while True:
            try:
                await js.publish(subject, payload, stream=self._stream, timeout=2.0)
                self.counters.published += 1
                return
            except Exception as error:
                if time.monotonic() > deadline or self._stopping.is_set():
                    log.error("shopper feed: %s of %s not published: %r", change, shopper_id, error)
                    self.counters.not_published += 1
                    return  # the others' full re-read brings it
                self.counters.publish_retries += 1
                await asyncio.sleep(wait)
                wait = min(wait * 2, 5.0)

    # -- the other nodes' changes -----------------------------------------------------

    def start(self, timeout_s: float = 60.0) -> None:
        """Make sure the stream exists, re-read every shopper, then follow."""
        self._link.run(self._ensure_stream(timeout_s), timeout_s + 5)
        self._task = self._link.run(self._spawn())

    def stop(self) -> None:
        if self._stopping.is_set():
            return
        self._stopping.set()
        if self._task is not None:
            task = self._task

            async def cancel() -> None:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task

            with contextlib.suppress(Exception):
                self._link.run(cancel(), 10.0)
        self._apply.shutdown(wait=True)

    async def _spawn(self) -> "asyncio.Task[None]":
        return asyncio.get_running_loop().create_task(self._follow())

    async def _ensure_stream(self, timeout_s: float) -> None:
        js = self._link.client.jetstream()
        config = StreamConfig(
            name=self._stream,
            subjects=[f"{FEED_PREFIX}.>"],
            num_replicas=self._replicas,
            max_age=self._max_age_s,
            storage=StorageType.FILE,
        )
        await when_jetstream_ready(lambda: ensure_stream(js, config), repr(self._stream), timeout_s)

    async def _run_apply(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._apply, fn, *args)

    async def _refresh_all(self, why: str) -> None:
        drift = await self._run_apply(self._shoppers.refresh_all)
        self.counters.full_refreshes += 1
        if not drift.empty:
            log.warning(
                "shopper feed (%s): %d registered, %d erased, %d consents changed elsewhere",
                why,
                len(drift.added),
                len(drift.erased),
                len(drift.consents),
            )

    async def _follow(self) -> None:
        """Read the stream from the last sequence applied, for ever. The
        sequence is noted *before* the database is re-read, so a change
        committed after the re-read comes as a notice, and one committed
        before it is in the re-read (or both, harmlessly)."""
        js = self._link.client.jetstream()
        started = False
        created: object = None  # which stream we follow: its creation time
        next_refresh = time.monotonic() + self._refresh_s
        while not self._stopping.is_set():
            try:
                try:
                    info = await js.stream_info(self._stream)
                except NotFoundError:  # deleted (by hand, or lost): made again, empty
                    await self._ensure_stream(30.0)
                    info = await js.stream_info(self._stream)
                last_stored = info.state.last_seq
                made_again = started and (info.created != created or last_stored < self._last)
                if not started or made_again:
                    # First read, or the stream is not the one we read (made
                    # again): re-read everything, follow from what it holds now.
                    created = info.created
                    self._last = last_stored
                    self.counters.stream_resets += made_again
                    await self._refresh_all("start" if not started else "stream reset")
                    started = True
                    next_refresh = time.monotonic() + self._refresh_s
                sub = await self._bind(js, self._last + 1)
                try:
                    while not self._stopping.is_set():
                        if time.monotonic() >= next_refresh:
                            await self._refresh_all("periodic")
                            next_refresh = time.monotonic() + self._refresh_s
                        try:
                            msgs = await sub.fetch(1, timeout=min(FETCH_WAIT_S, self._refresh_s))
                        except NatsTimeout:
                            # Idle, or our consumer is gone (its node died, the
                            # stream was deleted): asking about it raises then.
                            await sub.consumer_info()
                            continue
                        for msg in msgs:
                            await self._take(msg.metadata.sequence.stream, msg.data)
                finally:
                    with contextlib.suppress(Exception):
                        await sub.unsubscribe()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # a node down, a leader moving: bind again
                log.warning("shopper feed: %r; following again from %d", error, self._last + 1)
                await asyncio.sleep(0.5)

    async def _take(self, seq: int, payload: bytes) -> None:
        if seq <= self._last:
            return  # seen already (a re-bind)
        if seq > self._last + 1:
            # Notices between were removed from the stream (its max age): re-read.
            self.counters.gaps += 1
            await self._refresh_all(f"gap {self._last + 1}..{seq - 1}")
        notice = decode_notice(payload)
        if notice is None:
            self.counters.malformed += 1
            log.warning("shopper feed: malformed notice at %d skipped", seq)
        else:
            await self._run_apply(self._shoppers.refresh_shopper, notice[0])
            self.counters.applied += 1
        self._last = self.counters.last_seq = seq

    async def _bind(self, js: JetStreamContext, start: int) -> JetStreamContext.PullSubscription:
        config = ConsumerConfig(
            ack_policy=AckPolicy.NONE,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=start,
            inactive_threshold=CONSUMER_IDLE_S,
            mem_storage=True,
            num_replicas=1,
        )
        sub = await js.pull_subscribe(f"{FEED_PREFIX}.>", stream=self._stream, config=config)
        self.consumer = config.name  # pull_subscribe names it
        return sub
