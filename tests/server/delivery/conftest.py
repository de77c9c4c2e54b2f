"""Offer delivery fixtures: a real SQLite file, a real uvicorn server running the
offers router, and small real HTTP servers standing in for push services."""

import base64
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from fastapi import FastAPI
from websockets.sync.client import ClientConnection, connect
from websockets.sync.connection import Connection

from omnizone.contract.timefmt import wall_clock_ms
from omnizone.server.adapters.db import make_engine
from omnizone.server.adapters.offer_db import OfferRepository
from omnizone.server.adapters.webpush import VapidKeys, WebPushChannel
from omnizone.server.domain.offers import OfferDraft
from omnizone.server.entrypoints.api import _authorizer
from omnizone.server.entrypoints.offers_api import offers_router
from omnizone.server.service.delivery import OfferDelivery, PushChannel
from omnizone.server.service.endpoints import EndpointGuard

WAIT_S = 15.0  # how long a test waits for something that must happen (a failure bound)
SHOPPER_TOKENS = {"tok-alice": "alice", "tok-bob": "bob"}
API_KEYS = {"key-pos": {"pos"}, "key-read": {"read"}}
SUBJECT = "mailto:ops@omnizone.example"

LOCAL_PUSH_HOSTS = ("127.0.0.1", "localhost", "::1")


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def verify_es256(token: str, public_key: ec.EllipticCurvePublicKey) -> tuple[dict, dict]:  # type: ignore[type-arg]
    """Header and claims of a compact ES256 JWT whose signature checks out (else raises)."""
    header_b64, claims_b64, signature_b64 = token.split(".")
    raw = unb64url(signature_b64)
    assert len(raw) == 64, "ES256 signatures are r||s, 64 bytes"
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    public_key.verify(der, f"{header_b64}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256()))
    return json.loads(unb64url(header_b64)), json.loads(unb64url(claims_b64))


class Clock:
    """The delivery's clock: real time unless a test moves it."""

    def __init__(self) -> None:
        self.offset_ms = 0

    def __call__(self) -> int:
        return wall_clock_ms() + self.offset_ms


def draft(
    n: int = 1,
    *,
    campaign: str = "denim-10",
    store: str = "paris-rivoli",
    expires_in_ms: int = 3_600_000,
    coupon: str | None = "DENIM10",
    coupon_unique: bool = False,
    **extra: Any,
) -> OfferDraft:
    return OfferDraft(
        store=store,
        campaign_id=campaign,
        title=f"Offer {n}",
        body=f"10% off denim, offer number {n}",
        created_ms=wall_clock_ms(),
        expires_ms=wall_clock_ms() + expires_in_ms,
        trigger={"type": "zone_entered", "zone": "denim", "n": n},
        coupon_code=coupon,
        coupon_unique=coupon_unique,
        **extra,
    )


# -- a recording HTTP server (push services, OAuth token endpoint) ---------------------


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


Responder = Callable[[Recorded], tuple[int, dict[str, str], bytes]]


class RecordingServer:
    """A real HTTP/1.1 server on a free port that records every request."""

    def __init__(self, respond: Responder) -> None:
        self.requests: list[Recorded] = []
        self._cond = threading.Condition()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                got = Recorded(
                    self.command,
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length),
                )
                status, headers, body = respond(got)
                with outer._cond:
                    outer.requests.append(got)
                    outer._cond.notify_all()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET = do_DELETE = _handle

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def wait_for(self, count: int, timeout_s: float = WAIT_S) -> list[Recorded]:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.requests) >= count, timeout_s), (
                f"expected {count} requests, got {len(self.requests)}"
            )
            return list(self.requests)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def recording_server() -> Iterator[Callable[[Responder], RecordingServer]]:
    servers: list[RecordingServer] = []

    def make(respond: Responder) -> RecordingServer:
        server = RecordingServer(respond)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


@dataclass
class PushService:
    """A Web Push service: 201 by default, or a fixed status for some paths."""

    server: RecordingServer
    status_by_path: dict[str, int] = field(default_factory=dict)

    def endpoint(self, name: str) -> str:
        return f"{self.server.url}/push/{name}"


@pytest.fixture
def push_service(recording_server: Callable[[Responder], RecordingServer]) -> PushService:
    statuses: dict[str, int] = {}

    def respond(request: Recorded) -> tuple[int, dict[str, str], bytes]:
        return statuses.get(request.path, 201), {"Location": "/msg/1"}, b""

    return PushService(recording_server(respond), statuses)


@dataclass
class Subscriber:
    """A browser's side of a push subscription: the keys it keeps secret."""

    private_key: ec.EllipticCurvePrivateKey
    auth: bytes
    endpoint: str

    @property
    def p256dh(self) -> str:
        return b64url(
            self.private_key.public_key().public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )
        )

    def subscription_json(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "expirationTime": None,
            "keys": {"p256dh": self.p256dh, "auth": b64url(self.auth)},
        }


def new_subscriber(endpoint: str) -> Subscriber:
    return Subscriber(ec.generate_private_key(ec.SECP256R1()), os.urandom(16), endpoint)


# -- the server under test ---------------------------------------------------------


class LiveServer:
    """uvicorn serving ``app`` on a free port in a background thread."""

    def __init__(self, app: FastAPI) -> None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self._socket = sock
        port = sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + WAIT_S
        while not self._server.started:
            assert self._thread.is_alive(), "uvicorn exited during start-up"
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        self.url = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(WAIT_S)
        self._socket.close()


@dataclass
class Stack:
    repo: OfferRepository
    delivery: OfferDelivery
    clock: Clock
    vapid: VapidKeys
    base: str  # http://127.0.0.1:port/api/v1

    def ws(self, token: str | None, after: int | None = None) -> ClientConnection:
        query = []
        if token is not None:
            query.append(f"token={token}")
        if after is not None:
            query.append(f"after={after}")
        url = self.base.replace("http://", "ws://") + "/me/offers/ws"
        if query:
            url += "?" + "&".join(query)
        return connect(url, open_timeout=WAIT_S, close_timeout=2)


StackFactory = Callable[..., Stack]


@pytest.fixture
def make_stack(tmp_path: Path) -> Iterator[StackFactory]:
    """Build the delivery service and serve its router; ``webpush=True`` adds the channel."""
    made: list[tuple[OfferDelivery, LiveServer, OfferRepository]] = []

    def make(
        *,
        ack_timeout_s: float = 60.0,
        webpush: bool = False,
        channels: tuple[PushChannel, ...] = (),
        may_deliver: Callable[[str], bool] | None = None,
        push_hosts: Sequence[str] = LOCAL_PUSH_HOSTS,
        sessions_elsewhere: bool = False,
    ) -> Stack:
        engine = make_engine(f"sqlite:///{tmp_path / 'omnizone.db'}")
        repo = OfferRepository(engine)
        clock = Clock()
        vapid = VapidKeys(tmp_path / "vapid.pem")
        chosen = list(channels)
        # The push services of these tests run on this machine: allowed explicitly.
        local = EndpointGuard(push_hosts)
        if webpush:
            chosen.append(WebPushChannel(repo, vapid, SUBJECT, guard=local))
        delivery = OfferDelivery(
            repo,
            channels=chosen,
            ack_timeout_s=ack_timeout_s,
            may_deliver=may_deliver,
            clock=clock,
            allow_http_push_endpoints=True,
            endpoint_guard=local,
            sessions_elsewhere=sessions_elsewhere,
        )
        keys = {key: frozenset(scopes) for key, scopes in API_KEYS.items()}
        app = FastAPI()
        app.include_router(
            offers_router(delivery, SHOPPER_TOKENS.get, _authorizer(keys), vapid.public_key_b64url)
        )
        server = LiveServer(app)
        made.append((delivery, server, repo))
        return Stack(repo, delivery, clock, vapid, f"{server.url}/api/v1")

    yield make
    for delivery, server, repo in made:
        delivery.close()
        server.stop()
        repo.engine.dispose()


def recv_json(ws: Connection) -> dict[str, Any]:
    message = ws.recv(timeout=WAIT_S)
    assert isinstance(message, str)
    data: dict[str, Any] = json.loads(message)
    return data


def wait_for_sessions(stack: Stack, shopper: str, count: int) -> None:
    """Until the shopper's sockets have joined the hub (so offers go the live way)."""
    deadline = time.monotonic() + WAIT_S
    while stack.delivery.live_sessions(shopper) < count:
        assert time.monotonic() < deadline, "the socket never joined the hub"
        time.sleep(0.01)
