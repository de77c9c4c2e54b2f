"""What one HTTP client may send: a bounded body on every route, and a rate
on the routes anyone may call without a key or token.

Both are plain ASGI middleware, installed by ``api.create_app``:

- ``BodyLimit`` answers ``413`` as soon as a request declares (``Content-Length``)
  or sends more than its route allows, without reading the rest. The default
  (``OMNIZONE_MAX_REQUEST_BYTES``, 1 MiB) fits every JSON body of the API; a
  route that takes more (the floor-plan image upload, ``MAX_IMAGE_BYTES``)
  gets its own limit.
- ``RateLimit`` gives each client address a small token bucket on the open
  routes (registration and the profile webhook): ``burst`` requests at once,
  refilled at ``per_minute``; past that, ``429`` with ``Retry-After``.
  Buckets live in memory, at most ``max_clients`` of them (the least recently
  used goes first), so a flood of addresses cannot grow them without end.
"""

import json
import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from omnizone.server.entrypoints.http import API_PREFIX
from omnizone.server.service.layouts import MAX_IMAGE_BYTES

#: The default limit on a request body (``OMNIZONE_MAX_REQUEST_BYTES``).
DEFAULT_MAX_REQUEST_BYTES = 1_048_576

#: Routes that take more than the default: (method, path pattern, bytes).
LARGER_BODIES: tuple[tuple[str, str, int], ...] = (
    ("POST", rf"^{API_PREFIX}/stores/[^/]+/floor-images$", MAX_IMAGE_BYTES),
)

#: The routes anyone may call without a key or a token, and pairing with a
#: survey, which needs only the token anyone gets: a guessed code costs a token.
OPEN_ROUTES: tuple[tuple[str, str], ...] = (
    ("POST", rf"^{API_PREFIX}/shoppers$"),
    ("POST", rf"^{API_PREFIX}/webhooks/profile$"),
    ("POST", rf"^{API_PREFIX}/surveys/pair$"),
)


async def _send_error(
    send: Send, status: int, detail: str, headers: Iterable[tuple[str, str]] = ()
) -> None:
    body = json.dumps({"detail": detail}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when a body grows past its limit. An
    ``HTTPException``, so FastAPI's body parsing passes it on as a 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body: more than {limit} bytes")


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else None
    return None


class BodyLimit:
    """ASGI middleware: at most ``max_bytes`` of body per request (``larger``:
    (method, path pattern, bytes) for the routes that need more)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        larger: Iterable[tuple[str, str, int]] = LARGER_BODIES,
    ) -> None:
        if max_bytes < 0:
            raise ValueError("max_bytes must not be negative")
        self.app = app
        self.max_bytes = max_bytes
        self._larger = [(method, re.compile(path), size) for method, path, size in larger]

    def limit_for(self, method: str, path: str) -> int:
        for route_method, pattern, size in self._larger:
            if method == route_method and pattern.match(path):
                return size
        return self.max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["method"], scope["path"])
        declared = _declared_length(scope)
        if declared is not None and declared > limit:
            await _send_error(send, 413, f"request body: more than {limit} bytes")
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, watched_send)
        except BodyTooLarge as error:
            if started:
                raise
            await _send_error(send, 413, str(error.detail))


@dataclass(frozen=True, slots=True)
class RateSettings:
    """``per_minute`` requests per client address on the open routes, after a
    ``burst``; ``per_minute`` 0 turns the limit off."""

    per_minute: float = 60.0
    burst: int = 30
    max_clients: int = 10_000


class TokenBuckets:
    """One token bucket per key (a client address), in memory."""

    def __init__(self, rate: RateSettings, clock: Callable[[], float] = time.monotonic) -> None:
        if rate.per_minute <= 0 or rate.burst < 1:
            raise ValueError("a rate limit needs per_minute > 0 and burst >= 1")
        self._rate = rate
        self._per_s = rate.per_minute / 60.0
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """0 when a request may pass (a token is taken), else the seconds to wait."""
        now = self._clock()
        with self._lock:
            tokens, then = self._buckets.pop(key, (float(self._rate.burst), now))
            tokens = min(float(self._rate.burst), tokens + (now - then) * self._per_s)
            wait = 0.0 if tokens >= 1 else (1 - tokens) / self._per_s
            if wait == 0.0:
                tokens -= 1
            self._buckets[key] = (tokens, now)
            while len(self._buckets) > self._rate.max_clients:
                self._buckets.popitem(last=False)
            return wait


class RateLimit:
    """ASGI middleware: the token bucket of the client's address on ``routes``."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        rate: RateSettings,
        routes: Iterable[tuple[str, str]] = OPEN_ROUTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self._buckets = TokenBuckets(rate, clock)
        self._routes = [(method, re.compile(path)) for method, path in routes]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and any(
            scope["method"] == method and pattern.match(scope["path"])
            for method, pattern in self._routes
        ):
            client = scope.get("client")
            wait = self._buckets.take(client[0] if client else "")
            if wait > 0:
                retry = str(max(1, math.ceil(wait)))
                await _send_error(
                    send,
                    429,
                    f"too many requests from this address: try again in {retry} s",
                    [("retry-after", retry)],
                )
                return
        await self.app(scope, receive, send)
