"""Web Push (RFC 8030) with VAPID (RFC 8292) and aes128gcm payloads (RFC 8291),
through pywebpush.

The VAPID key pair is made once and kept in a PEM file: browsers bind every
subscription to the public key, so a new key would orphan all of them.
"""

import base64
import logging
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests
import urllib3
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid  # type: ignore[import-untyped]
from pywebpush import WebPushException, webpush  # type: ignore[import-untyped]
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NameResolutionError, NewConnectionError

from omnizone.contract.timefmt import wall_clock_ms
from omnizone.server.service.delivery import (
    DeliveredOffer,
    PushReceipt,
    PushSubscription,
    push_payload,
)
from omnizone.server.service.endpoints import EndpointGuard, EndpointRefused

log = logging.getLogger(__name__)

MAX_TTL_S = 24 * 3600
GONE = (404, 410)  # the push service forgot the subscription: drop it


class VapidKeyError(ValueError):
    pass


class VapidKeys:
    """The server's VAPID key pair (P-256), created on first use at ``path``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._private = self._load_or_create()

    def _load_or_create(self) -> ec.EllipticCurvePrivateKey:
        if not self.path.exists():
            key = ec.generate_private_key(ec.SECP256R1())
            pem = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:  # O_EXCL: of two processes starting at once, one key wins
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "wb") as out:
                    out.write(pem)
                log.info("created the VAPID key pair in %s", self.path)
        if self.path.exists() and self.path.stat().st_mode & 0o077:
            log.warning("%s was readable by others: made it 0600", self.path)
            self.path.chmod(0o600)
        try:
            loaded = serialization.load_pem_private_key(self.path.read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as error:
            raise VapidKeyError(
                f"{self.path}: not a readable unencrypted PEM private key ({error})"
            ) from None
        if not isinstance(loaded, ec.EllipticCurvePrivateKey) or not isinstance(
            loaded.curve, ec.SECP256R1
        ):
            raise VapidKeyError(f"{self.path}: VAPID needs an EC P-256 private key")
        return loaded

    def public_key_b64url(self) -> str:
        """The ``applicationServerKey`` for ``PushManager.subscribe`` (uncompressed point)."""
        raw = self._private.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")

    def vapid(self) -> Any:
        return Vapid(self._private)


class PushSubscriptions(Protocol):
    def push_subscriptions(self, shopper_id: str) -> list[PushSubscription]: ...

    def remove_push_subscription(self, endpoint: str, shopper_id: str | None = None) -> bool: ...


def check_subject(subject: str) -> str:
    """VAPID ``sub``: who the push service contacts about this sender."""
    if not (subject.startswith("mailto:") and "@" in subject) and not subject.startswith(
        "https://"
    ):
        raise VapidKeyError(
            f"VAPID subject must be mailto:<address> or https://..., got {subject!r}"
        )
    return subject


class _GuardedConnect:
    """Connects only to an address the guard passed, the very one it checked
    (TLS still verifies the host name), so a name that resolves to a private
    address at send time, or a redirect to one, is refused (DNS rebinding)."""

    guard: EndpointGuard

    def _new_conn(self) -> Any:
        conn: Any = self
        try:
            addresses = self.guard.addresses(conn._dns_host, conn.port)
        except EndpointRefused as error:
            raise NewConnectionError(conn, f"refused: {error}") from None
        except OSError as error:
            raise NameResolutionError(conn.host, conn, error) from error  # type: ignore[arg-type]
        failure: OSError | None = None
        for address in addresses:
            try:
                return urllib3.util.connection.create_connection(
                    (address, conn.port),
                    conn.timeout,
                    source_address=conn.source_address,
                    socket_options=conn.socket_options,
                )
            except OSError as error:
                failure = error
        raise NewConnectionError(conn, f"Failed to establish a new connection: {failure}")


class GuardedAdapter(HTTPAdapter):
    """A requests adapter whose every connection goes through ``guard``."""

    def __init__(self, guard: EndpointGuard) -> None:
        self._guard = guard
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        extra = {"guard": self._guard}
        http = type("GuardedHTTP", (_GuardedConnect, HTTPConnection), extra)
        https = type("GuardedHTTPS", (_GuardedConnect, HTTPSConnection), extra)
        self.poolmanager.pool_classes_by_scheme = {
            "http": type("GuardedHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": http}),
            "https": type("GuardedHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": https}),
        }


def guarded_session(guard: EndpointGuard) -> requests.Session:
    session = requests.Session()
    adapter = GuardedAdapter(guard)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


class WebPushChannel:
    """Sends an offer to every Web Push subscription of the shopper."""

    name = "webpush"

    def __init__(
        self,
        subscriptions: PushSubscriptions,
        keys: VapidKeys,
        subject: str,
        *,
        timeout_s: float = 10.0,
        session: requests.Session | None = None,
        clock_ms: Callable[[], int] = wall_clock_ms,
        guard: EndpointGuard | None = None,
    ) -> None:
        """Every connection goes through ``guard`` (default: public hosts only),
        on the given ``session`` too."""
        self._guard = guard if guard is not None else EndpointGuard()
        if session is not None:
            adapter = GuardedAdapter(self._guard)
            session.mount("https://", adapter)
            session.mount("http://", adapter)
        self._subscriptions = subscriptions
        self._keys = keys
        self._vapid = keys.vapid()
        self._subject = check_subject(subject)
        self._timeout_s = timeout_s
        self._shared = session
        self._local = threading.local()  # a requests.Session per push worker thread
        self._clock_ms = clock_ms

    def public_key_b64url(self) -> str:
        return self._keys.public_key_b64url()

    def send(self, shopper_id: str, offer: DeliveredOffer) -> PushReceipt:
        subscriptions = self._subscriptions.push_subscriptions(shopper_id)
        return self.send_to(subscriptions, offer, shopper_id)

    def send_to(
        self, subscriptions: Sequence[PushSubscription], offer: DeliveredOffer, shopper_id: str
    ) -> PushReceipt:
        data = push_payload(offer).decode()
        ttl = self._ttl_s(offer)
        sent = failed = removed = 0
        errors: list[str] = []
        for subscription in subscriptions:
            origin = urlsplit(subscription.endpoint)
            try:
                webpush(
                    subscription_info={
                        "endpoint": subscription.endpoint,
                        "keys": {"p256dh": subscription.p256dh, "auth": subscription.auth},
                    },
                    data=data,
                    vapid_private_key=self._vapid,
                    # a fresh dict each time: pywebpush writes aud and exp into it
                    vapid_claims={"sub": self._subject},
                    content_encoding="aes128gcm",
                    ttl=ttl,
                    timeout=self._timeout_s,
                    headers={"Urgency": "high"},
                    requests_session=self._session(),
                )
                sent += 1
            except WebPushException as error:
                code = error.response.status_code if error.response is not None else None
                if code in GONE:
                    self._subscriptions.remove_push_subscription(subscription.endpoint, shopper_id)
                    removed += 1
                else:
                    failed += 1
                    errors.append(f"{origin.netloc}: HTTP {code}")
            except requests.RequestException as error:
                failed += 1
                errors.append(f"{origin.netloc}: {type(error).__name__}")
        return PushReceipt(
            self.name, sent=sent, failed=failed, removed=removed, errors=tuple(errors)
        )

    def _session(self) -> requests.Session:
        if self._shared is not None:
            return self._shared
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = guarded_session(self._guard)
        return session

    def _ttl_s(self, offer: DeliveredOffer) -> int:
        """Until the offer expires (a day at most): a stale offer is not worth a buzz."""
        return max(0, min(MAX_TTL_S, (offer.expires_ms - self._clock_ms()) // 1000))
