"""One NATS connection on its own event loop thread, shared by a process's parts.

The server's services are synchronous (SQLAlchemy, threads); nats-py is
asyncio. ``NatsLink`` runs the loop in a daemon thread and lets threads
publish into it (``publish_threadsafe``) and run coroutines on it (``run``).
It reconnects for ever: a NATS node that dies is replaced by another from
``urls`` (the client knows the cluster's other nodes from any of them).
"""

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from concurrent.futures import Future
from typing import Any, TypeVar

import nats
from nats.aio.client import Client
from nats.js.api import StreamConfig
from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError

log = logging.getLogger(__name__)

T = TypeVar("T")

CONNECT_TIMEOUT_S = 30.0


class NatsLink:
    """A NATS connection on a private event loop thread."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        name: str,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self._urls = list(urls)
        self._name = name
        self._username, self._password = username, password
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run_loop, name=f"nats-{name}", daemon=True)
        self._nc: Client | None = None
        self.reconnects = 0
        self.disconnects = 0

    @property
    def client(self) -> Client:
        if self._nc is None:
            raise RuntimeError("NATS link not connected: call start() first")
        return self._nc

    @property
    def connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    def start(self, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
        """Start the loop and connect; raises when no node answers within ``timeout_s``."""
        self._thread.start()
        self.run(self._connect(), timeout_s)

    def run(self, coro: Coroutine[Any, Any, T], timeout_s: float | None = None) -> T:
        """Run ``coro`` on the link's loop from another thread and wait for it."""
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout_s)

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def publish_threadsafe(self, subject: str, payload: bytes) -> None:
        """Core NATS publish from any thread; not waited for (at most once)."""
        if self._nc is None or self.loop.is_closed():
            return
        self.submit(self._publish(subject, payload))

    async def _publish(self, subject: str, payload: bytes) -> None:
        try:
            await self.client.publish(subject, payload)
        except Exception as error:  # a publish while reconnecting: the next one goes
            log.warning("NATS publish on %s failed: %s", subject, error)

    def stop(self) -> None:
        """Drain and close the connection, stop the loop. Idempotent."""
        if self._thread.is_alive():
            if self._nc is not None:
                try:
                    self.run(self._nc.close(), 10.0)
                except Exception as error:
                    log.warning("closing the NATS connection: %s", error)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10.0)

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    async def _connect(self) -> None:
        async def disconnected() -> None:
            self.disconnects += 1
            log.warning("NATS %s disconnected", self._name)

        async def reconnected() -> None:
            self.reconnects += 1
            log.info("NATS %s reconnected", self._name)

        async def error(e: Exception) -> None:
            log.debug("NATS %s: %s", self._name, e)

        self._nc = await nats.connect(
            servers=self._urls,
            name=self._name,
            user=self._username,
            password=self._password,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            connect_timeout=2,
            allow_reconnect=True,
            disconnected_cb=disconnected,
            reconnected_cb=reconnected,
            error_cb=error,
        )


async def when_jetstream_ready(step: Callable[[], Awaitable[T]], what: str, timeout_s: float) -> T:
    """``step`` again every half second until it succeeds: a fresh cluster is
    still electing its JetStream leaders for a while. Past ``timeout_s`` the
    last error is raised as a RuntimeError naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return await step()
        except Exception as error:  # JetStream still electing its leaders
            if time.monotonic() > deadline:
                raise RuntimeError(f"JetStream not ready for {what}: {error!r}") from error
            await asyncio.sleep(0.5)


async def ensure_stream(js: JetStreamContext, config: StreamConfig) -> None:
    """The stream as configured, made when it does not exist yet."""
    assert config.name is not None
    try:
        await js.stream_info(config.name)
    except NotFoundError:
        await js.add_stream(config)
