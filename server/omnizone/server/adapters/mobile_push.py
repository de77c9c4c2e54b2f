"""Native push for the shopper's app: Firebase Cloud Messaging (HTTP v1 API) and
the Apple Push Notification service (token-based auth over HTTP/2).

Both are configured by credentials (a Google service account; an APNs .p8
key with its key id, team id and the app's bundle id as topic) and take the
base URL, so tests and staging can point them elsewhere. Tokens the service
reports as gone (FCM ``UNREGISTERED``, APNs 410 / ``BadDeviceToken``) are
removed so they are not tried again.
"""

import base64
import json
import logging
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from omnizone.contract.timefmt import wall_clock_ms
from omnizone.server.service.delivery import (
    DeliveredOffer,
    NativePlatform,
    PushChannel,
    PushReceipt,
    push_payload,
)

__all__ = [
    "APNS_PRODUCTION_URL",
    "APNS_SANDBOX_URL",
    "FCM_BASE_URL",
    "FCM_SCOPE",
    "ApnsChannel",
    "ApnsKey",
    "FcmChannel",
    "GoogleServiceAccount",
    "PushChannel",
    "PushTokens",
    "apns_jwt",
    "apns_request",
    "fcm_message",
]

log = logging.getLogger(__name__)

FCM_BASE_URL = "https://fcm.googleapis.com"
FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
APNS_PRODUCTION_URL = "https://api.push.apple.com"
APNS_SANDBOX_URL = "https://api.sandbox.push.apple.com"
# Apple: refresh the provider token at most every 20 min, and before 60 min.
APNS_TOKEN_LIFETIME_S = 50 * 60
NATIVE_PAYLOAD_LIMIT = 3000  # both services take 4 KB; leave room for the envelope
MAX_TTL_S = 24 * 3600


class PushTokens(Protocol):
    """Where the shopper's app tokens are kept (``OfferRepository``)."""

    def push_tokens(self, shopper_id: str, platform: NativePlatform) -> list[str]: ...

    def remove_push_token(self, platform: NativePlatform, token: str) -> bool: ...


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _offer_data(offer: DeliveredOffer) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(push_payload(offer, NATIVE_PAYLOAD_LIMIT))
    return data


# -- FCM ---------------------------------------------------------------------------


class GoogleServiceAccount:
    """OAuth2 access tokens for FCM from a service-account JSON, via google-auth.

    Call it for a current token (refreshed when close to expiry). Any other
    callable returning a bearer token can stand in for it in ``FcmChannel``.
    """

    def __init__(self, path: str | Path) -> None:
        try:
            from google.auth.transport.requests import Request
            from google.oauth2 import service_account
        except ImportError:  # pragma: no cover - google-auth is in the server extra
            raise RuntimeError(
                "FCM with a service-account file needs google-auth: pip install google-auth"
            ) from None
        try:
            info = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise ValueError(f"{path}: not a readable service-account JSON ({error})") from None
        if not isinstance(info, dict) or info.get("type") != "service_account":
            raise ValueError(f"{path}: expected a JSON object with type 'service_account'")
        missing = [k for k in ("project_id", "client_email", "private_key") if not info.get(k)]
        if missing:
            raise ValueError(f"{path}: missing {', '.join(missing)}")
        self.project_id: str = info["project_id"]
        self._credentials = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
            info, scopes=[FCM_SCOPE]
        )
        self._request = Request()
        self._lock = threading.Lock()

    def __call__(self) -> str:
        with self._lock:
            if not self._credentials.valid:
                self._credentials.refresh(self._request)
            return str(self._credentials.token)


def fcm_message(token: str, offer: DeliveredOffer, ttl_s: int) -> dict[str, Any]:
    """The HTTP v1 ``messages:send`` body: a notification plus the offer as data.

    Data values must be strings in FCM, so the offer travels as JSON text.
    """
    notification: dict[str, str] = {"title": offer.title, "body": offer.body}
    if offer.image:
        notification["image"] = offer.image
    data = _offer_data(offer)
    return {
        "message": {
            "token": token,
            "notification": notification,
            "data": {
                "type": "offer",
                "offer_id": offer.offer_id,
                "seq": str(offer.seq),
                "campaign_id": offer.campaign_id,
                "offer": json.dumps(data["offer"], separators=(",", ":")),
            },
            "android": {"priority": "HIGH", "ttl": f"{ttl_s}s", "collapse_key": offer.offer_id},
            "apns": {
                "headers": {
                    "apns-priority": "10",
                    "apns-expiration": str(offer.expires_ms // 1000),
                }
            },
        }
    }


def _fcm_unregistered(response: httpx.Response) -> bool:
    if response.status_code == 404:
        return True
    try:
        error = response.json().get("error", {})
    except ValueError:
        return False
    details = error.get("details", []) if isinstance(error, dict) else []
    return any(isinstance(d, dict) and d.get("errorCode") == "UNREGISTERED" for d in details)


class FcmChannel:
    """Sends an offer to every FCM registration token of the shopper."""

    name = "fcm"

    def __init__(
        self,
        project_id: str,
        access_token: Callable[[], str],
        tokens: PushTokens,
        *,
        base_url: str = FCM_BASE_URL,
        client: httpx.Client | None = None,
        timeout_s: float = 10.0,
        clock_ms: Callable[[], int] = wall_clock_ms,
    ) -> None:
        if not project_id:
            raise ValueError("FCM project_id must not be empty")
        self._url = f"{base_url.rstrip('/')}/v1/projects/{project_id}/messages:send"
        self._access_token = access_token
        self._tokens = tokens
        self._client = client or httpx.Client(timeout=timeout_s)
        self._clock_ms = clock_ms

    def send(self, shopper_id: str, offer: DeliveredOffer) -> PushReceipt:
        ttl = max(0, min(MAX_TTL_S, (offer.expires_ms - self._clock_ms()) // 1000))
        sent = failed = removed = 0
        errors: list[str] = []
        for token in self._tokens.push_tokens(shopper_id, "fcm"):
            try:
                response = self._client.post(
                    self._url,
                    json=fcm_message(token, offer, ttl),
                    headers={"Authorization": f"Bearer {self._access_token()}"},
                )
            except httpx.HTTPError as error:
                failed += 1
                errors.append(f"fcm: {type(error).__name__}")
                continue
            if response.status_code == 200:
                sent += 1
            elif _fcm_unregistered(response):
                self._tokens.remove_push_token("fcm", token)
                removed += 1
            else:
                failed += 1
                errors.append(f"fcm: HTTP {response.status_code} {response.text[:200]}")
        return PushReceipt(
            self.name, sent=sent, failed=failed, removed=removed, errors=tuple(errors)
        )

    def close(self) -> None:
        self._client.close()


# -- APNs --------------------------------------------------------------------------


def apns_jwt(private_key: ec.EllipticCurvePrivateKey, key_id: str, team_id: str, iat: int) -> str:
    """The provider token: ES256 JWT with ``kid`` in the header, ``iss`` and ``iat``."""
    header = _b64url(json.dumps({"alg": "ES256", "kid": key_id}, separators=(",", ":")).encode())
    claims = _b64url(json.dumps({"iss": team_id, "iat": iat}, separators=(",", ":")).encode())
    signing_input = f"{header}.{claims}".encode("ascii")
    r, s = decode_dss_signature(private_key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
    return f"{header}.{claims}.{_b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


class ApnsKey:
    """An APNs auth key (.p8) and the provider token made from it, reused ~50 min."""

    def __init__(
        self,
        p8: str | Path | bytes,
        key_id: str,
        team_id: str,
        *,
        clock_s: Callable[[], float] = time.time,
    ) -> None:
        pem = p8 if isinstance(p8, bytes) else Path(p8).read_bytes()
        where = "the APNs key" if isinstance(p8, bytes) else str(p8)
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError) as error:
            raise ValueError(f"{where}: not a PEM (.p8) private key ({error})") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(
            key.curve, ec.SECP256R1
        ):
            raise ValueError(f"{where}: APNs needs an EC P-256 key")
        if len(key_id) != 10 or len(team_id) != 10:
            raise ValueError("APNs key_id and team_id are 10-character identifiers")
        self._key = key
        self.key_id = key_id
        self.team_id = team_id
        self._clock_s = clock_s
        self._lock = threading.Lock()
        self._token: tuple[str, float] | None = None

    def token(self) -> str:
        with self._lock:
            now = self._clock_s()
            if self._token is None or now - self._token[1] >= APNS_TOKEN_LIFETIME_S:
                self._token = (apns_jwt(self._key, self.key_id, self.team_id, int(now)), now)
            return self._token[0]

    def invalidate(self) -> None:
        with self._lock:
            self._token = None


def apns_request(
    device_token: str, offer: DeliveredOffer, topic: str, provider_token: str
) -> tuple[str, dict[str, str], dict[str, Any]]:
    """Path, headers and JSON body of one APNs notification."""
    aps: dict[str, Any] = {
        "alert": {"title": offer.title, "body": offer.body},
        "sound": "default",
        "thread-id": offer.campaign_id,
    }
    if offer.image:
        aps["mutable-content"] = 1  # lets a notification service extension add the image
    headers = {
        "authorization": f"bearer {provider_token}",
        "apns-topic": topic,
        "apns-push-type": "alert",
        "apns-priority": "10",
        "apns-expiration": str(offer.expires_ms // 1000),
        "apns-collapse-id": offer.offer_id,
    }
    return f"/3/device/{device_token}", headers, {"aps": aps, **_offer_data(offer)}


def _apns_reason(response: httpx.Response) -> str:
    try:
        reason = response.json().get("reason", "")
    except ValueError:
        return ""
    return reason if isinstance(reason, str) else ""


class ApnsChannel:
    """Sends an offer to every APNs device token of the shopper, over HTTP/2."""

    name = "apns"

    def __init__(
        self,
        key: ApnsKey,
        topic: str,
        tokens: PushTokens,
        *,
        base_url: str = APNS_PRODUCTION_URL,
        verify: ssl.SSLContext | bool = True,
        timeout_s: float = 10.0,
    ) -> None:
        if not topic:
            raise ValueError("APNs topic (the app's bundle id) must not be empty")
        self._key = key
        self._topic = topic
        self._tokens = tokens
        self._base_url = base_url.rstrip("/")
        self._client = httpx.Client(http2=True, verify=verify, timeout=timeout_s)

    def send(self, shopper_id: str, offer: DeliveredOffer) -> PushReceipt:
        sent = failed = removed = 0
        errors: list[str] = []
        for device_token in self._tokens.push_tokens(shopper_id, "apns"):
            try:
                response = self._post(device_token, offer)
                if response.status_code == 403 and _apns_reason(response) == "ExpiredProviderToken":
                    self._key.invalidate()
                    response = self._post(device_token, offer)
            except httpx.HTTPError as error:
                failed += 1
                errors.append(f"apns: {type(error).__name__}")
                continue
            reason = _apns_reason(response) if response.status_code != 200 else ""
            if response.status_code == 200:
                sent += 1
            elif response.status_code == 410 or reason in (
                "BadDeviceToken",
                "DeviceTokenNotForTopic",
                "Unregistered",
            ):
                self._tokens.remove_push_token("apns", device_token)
                removed += 1
            else:
                failed += 1
                errors.append(f"apns: HTTP {response.status_code} {reason}".rstrip())
        return PushReceipt(
            self.name, sent=sent, failed=failed, removed=removed, errors=tuple(errors)
        )

    def _post(self, device_token: str, offer: DeliveredOffer) -> httpx.Response:
        path, headers, body = apns_request(device_token, offer, self._topic, self._key.token())
        return self._client.post(self._base_url + path, headers=headers, json=body)

    def close(self) -> None:
        self._client.close()
