"""Shopper identity and consent: the decisions, over plain data.

- ``EidResolver`` turns a rotating ``eid:<16 hex>`` sighting back into the
  device that advertised it, or ``None`` (the sighting is then dropped).
- The consent gates say what each purpose allows; nothing else decides it.
- ``summarize_profile`` folds the omnichannel profile events into what a
  store associate sees.
- Webhook signatures and QR tokens are HMACs checked in constant time.

See docs/identity.md.
"""

import base64
import hashlib
import hmac
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Literal

from omnizone.contract.eid import IDENTITY_KEY_BYTES, eid_for_counter, rotation_counter

__all__ = [
    "SIGNATURE_HEADER",
    "Channel",
    "Consent",
    "ConsentChange",
    "EidResolver",
    "ProductView",
    "ProfileEvent",
    "ProfileEventType",
    "ProfileSummary",
    "Purpose",
    "QrTokenError",
    "QrTokenExpired",
    "Shopper",
    "WebhookSignatureError",
    "check_webhook_signature",
    "current_consent",
    "hash_token",
    "is_eid_key",
    "may_log_decision",
    "may_send_offer",
    "may_show_associate_context",
    "may_store_location",
    "read_qr_token",
    "sign_qr_token",
    "summarize_profile",
    "webhook_signature",
]

# -- consent ------------------------------------------------------------------------


class Purpose(StrEnum):
    """What a shopper may consent to; each gates one use of their data."""

    LOCATION_ANALYTICS = "location_analytics"
    PERSONALIZED_OFFERS = "personalized_offers"


@dataclass(frozen=True, slots=True)
class Consent:
    """The shopper's current choices; everything is refused until given."""

    location_analytics: bool = False
    personalized_offers: bool = False

    def granted(self, purpose: Purpose) -> bool:
        return bool(getattr(self, purpose.value))

    def changed(self, changes: Mapping[Purpose, bool]) -> "Consent":
        return replace(self, **{purpose.value: value for purpose, value in changes.items()})


@dataclass(frozen=True, slots=True)
class ConsentChange:
    """One row of the consent history: kept so a shopper (or an auditor) sees when."""

    purpose: Purpose
    granted: bool
    changed_ms: int


def current_consent(history: Iterable[ConsentChange]) -> Consent:
    """The consent a history (oldest first) ends in."""
    consent = Consent()
    for change in history:
        consent = consent.changed({change.purpose: change.granted})
    return consent


def may_store_location(consent: Consent | None) -> bool:
    """Sightings, zone placements and visits of a device are written only with this."""
    return consent is not None and consent.location_analytics


def may_send_offer(consent: Consent | None) -> bool:
    """Offers use the shopper's live zone and profile: only with personalized_offers."""
    return consent is not None and consent.personalized_offers


#: The one moment the shopper shows rather than being tracked: a shelf tag read
#: with the phone (docs/offers.md, "Why tap triggers do not need location consent").
SHOWN_BY_SHOPPER = frozenset({"nfc_tap"})


def may_log_decision(consent: Consent | None, moment: str) -> bool:
    """A decision about a moment (``store_entered``, ``dwell``, ``nfc_tap``...)
    is written to the decision log only if the shopper allows storing what it
    says. Every moment but a tap is a location inferred from tracking, so it
    needs ``location_analytics``; a tap is the shopper's own gesture, so
    ``personalized_offers`` (the purpose of the decision) is enough. With
    neither, or for an erased shopper (``None``), nothing is logged."""
    if consent is None:
        return False
    if moment in SHOWN_BY_SHOPPER and consent.personalized_offers:
        return True
    return consent.location_analytics


def may_show_associate_context(consent: Consent | None) -> bool:
    """An associate sees the profile only when the shopper opted into personalization."""
    return consent is not None and consent.personalized_offers


# -- shoppers -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Shopper:
    """One registered app install: the shopper and their phone are one id."""

    id: str
    store: str
    token_hash: str
    eid_key: bytes
    created_ms: int
    loyalty_id: str | None = None


def hash_token(token: str) -> str:
    """What is stored instead of a token: a leaked database grants no access."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


# -- the ephemeral id resolver ------------------------------------------------------

_EID_KEY = re.compile(r"^eid:[0-9a-f]{16}$")


def is_eid_key(device_key: str) -> bool:
    return _EID_KEY.match(device_key) is not None


_AMBIGUOUS = ""  # two devices share this EID in a period: resolve neither


class EidResolver:
    """Maps ``eid:<hex>`` sightings to device ids without an HMAC per sighting.

    The EIDs of every device are computed once per rotation period and kept in
    a dict per period; a sighting is a few dict look-ups over the periods
    within ``skew_periods`` of its time, so phones whose clocks are a period
    ahead or behind still resolve. A handful of periods stay cached, so
    sightings that arrive slightly out of order do not rebuild tables.
    Thread-safe: devices change from API threads while ingest resolves.
    """

    def __init__(
        self, keys: Mapping[str, bytes], rotation_s: int, *, skew_periods: int = 1
    ) -> None:
        if rotation_s < 1:
            raise ValueError(f"rotation period must be at least 1 s, got {rotation_s}")
        if skew_periods < 0:
            raise ValueError(f"skew tolerance must be >= 0 periods, got {skew_periods}")
        for device, key in keys.items():
            _check_key(device, key)
        self._keys = dict(keys)
        self._rotation_s = rotation_s
        self._skew = skew_periods
        self._keep = 2 * skew_periods + 3
        self._tables: dict[int, dict[bytes, str]] = {}
        self._lock = threading.Lock()

    @property
    def rotation_s(self) -> int:
        return self._rotation_s

    def __len__(self) -> int:
        return len(self._keys)

    def resolve(self, device_key: str, at_ms: int) -> str | None:
        """The device that advertised ``device_key`` around ``at_ms``, if any."""
        if not is_eid_key(device_key):
            return None
        eid = bytes.fromhex(device_key[4:])
        try:
            center = rotation_counter(at_ms, self._rotation_s)
        except ValueError:
            return None
        found: str | None = None
        with self._lock:
            for counter in range(center - self._skew, center + self._skew + 1):
                if not 0 <= counter < 2**32:
                    continue
                device = self._table(counter, center).get(eid)
                if device is None:
                    continue
                if device == _AMBIGUOUS or (found is not None and found != device):
                    return None
                found = device
        return found

    def update(self, device: str, key: bytes | None) -> None:
        """Add or re-key a device, or (``key=None``) forget it at once."""
        if key is not None:
            _check_key(device, key)
        with self._lock:
            old = self._keys.pop(device, None)
            if old is not None:
                for counter, table in list(self._tables.items()):
                    eid = eid_for_counter(old, counter)
                    if table.get(eid) == device:
                        del table[eid]
                    elif table.get(eid) == _AMBIGUOUS:
                        del self._tables[counter]  # the other device resolves again
            if key is not None:
                self._keys[device] = key
                for counter, table in self._tables.items():
                    _insert(table, eid_for_counter(key, counter), device)

    def _table(self, counter: int, center: int) -> dict[bytes, str]:
        table = self._tables.get(counter)
        if table is None:
            table = {}
            for device, key in self._keys.items():
                _insert(table, eid_for_counter(key, counter), device)
            self._tables[counter] = table
            while len(self._tables) > self._keep:
                del self._tables[max(self._tables, key=lambda c: abs(c - center))]
        return table


def _insert(table: dict[bytes, str], eid: bytes, device: str) -> None:
    present = table.get(eid)
    table[eid] = device if present is None or present == device else _AMBIGUOUS


def _check_key(device: str, key: bytes) -> None:
    if not device:
        raise ValueError("a device id must not be empty")
    if len(key) != IDENTITY_KEY_BYTES:
        raise ValueError(
            f"identity key of device {device!r} is {len(key)} bytes, not {IDENTITY_KEY_BYTES}"
        )


# -- the omnichannel profile ----------------------------------------------------------

ProfileEventType = Literal[
    "cart_add", "cart_remove", "wishlist_add", "wishlist_remove", "product_view", "purchase"
]
Channel = Literal["online", "pos", "app"]


@dataclass(frozen=True, slots=True)
class ProfileEvent:
    type: ProfileEventType
    gtin: str
    channel: Channel
    at_ms: int
    amount: float | None = None


@dataclass(frozen=True, slots=True)
class ProductView:
    gtin: str
    at_ms: int
    channel: Channel


@dataclass(frozen=True, slots=True)
class ProfileSummary:
    """Most recent first; cart and wishlist hold what is still in them."""

    cart: tuple[str, ...] = ()
    wishlist: tuple[str, ...] = ()
    recent_views: tuple[ProductView, ...] = ()
    purchases: tuple[ProfileEvent, ...] = ()


def summarize_profile(
    events: Iterable[ProfileEvent], *, views: int = 10, purchases: int = 20
) -> ProfileSummary:
    """Fold the events in time order: a removal or a purchase takes the item out."""
    cart: dict[str, None] = {}
    wishlist: dict[str, None] = {}
    seen: dict[str, ProductView] = {}
    bought: list[ProfileEvent] = []
    for event in sorted(events, key=lambda e: e.at_ms):  # stable: ties keep arrival order
        gtin = event.gtin
        if event.type in ("cart_add", "wishlist_add"):
            target = cart if event.type == "cart_add" else wishlist
            target.pop(gtin, None)
            target[gtin] = None  # re-adding moves it to the most recent end
        elif event.type == "cart_remove":
            cart.pop(gtin, None)
        elif event.type == "wishlist_remove":
            wishlist.pop(gtin, None)
        elif event.type == "product_view":
            seen.pop(gtin, None)
            seen[gtin] = ProductView(gtin, event.at_ms, event.channel)
        else:  # purchase
            bought.append(event)
            cart.pop(gtin, None)
            wishlist.pop(gtin, None)
    return ProfileSummary(
        cart=tuple(reversed(cart)),
        wishlist=tuple(reversed(wishlist)),
        recent_views=tuple(reversed(seen.values()))[:views],
        purchases=tuple(reversed(bought))[:purchases],
    )


# -- webhook signatures ---------------------------------------------------------------

SIGNATURE_HEADER = "X-Omnizone-Signature"
_SIGNATURE = re.compile(r"^sha256=([0-9a-fA-F]{64})$")


class WebhookSignatureError(ValueError):
    """The webhook body was not signed with the shared secret."""


def webhook_signature(secret: bytes, body: bytes) -> str:
    """The header value a sender puts on ``body``: ``sha256=<hex>``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def check_webhook_signature(secret: bytes, body: bytes, header: str | None) -> None:
    """Raises ``WebhookSignatureError`` saying what is wrong; compares in constant time."""
    if not header:
        raise WebhookSignatureError(
            f"missing {SIGNATURE_HEADER} header: send sha256=<hex HMAC-SHA256 of the raw body>"
        )
    match = _SIGNATURE.match(header.strip())
    if match is None:
        raise WebhookSignatureError(
            f"{SIGNATURE_HEADER} must be sha256=<64 hex digits>, got {header[:80]!r}"
        )
    expected = webhook_signature(secret, body)[len("sha256=") :]
    if not hmac.compare_digest(expected, match.group(1).lower()):
        raise WebhookSignatureError(
            f"{SIGNATURE_HEADER} does not match the body: sign the exact bytes sent "
            "with the shared webhook secret"
        )


# -- associate QR tokens --------------------------------------------------------------

_QR_LABEL = b"omnizone-qr."
_QR_MAC_BYTES = 16  # 128 bits: keeps the QR code small


class QrTokenError(ValueError):
    """Not a QR token this server issued."""


class QrTokenExpired(QrTokenError):
    """A genuine QR token, but too old: the shopper shows a fresh one."""


def sign_qr_token(secret: bytes, shopper_id: str, expires_ms: int) -> str:
    """``<shopper>.<expires_ms>.<mac>``: checked without any database row."""
    if "." in shopper_id:
        raise ValueError(f"shopper id {shopper_id!r} must not contain '.'")
    payload = f"{shopper_id}.{expires_ms}"
    return f"{payload}.{_qr_mac(secret, payload)}"


def read_qr_token(secret: bytes, token: str, now_ms: int) -> str:
    """The shopper id a QR token names; raises ``QrTokenError`` if forged or expired."""
    parts = token.split(".")
    if len(parts) != 3 or not parts[0] or not parts[1].isdigit():
        raise QrTokenError("qr_token is not an omnizone QR token (<shopper>.<expiry>.<mac>)")
    shopper_id, expires, mac = parts
    if not hmac.compare_digest(_qr_mac(secret, f"{shopper_id}.{expires}"), mac):
        raise QrTokenError("qr_token signature is not valid: it was not issued by this server")
    if int(expires) <= now_ms:
        raise QrTokenExpired(
            f"qr_token expired at {expires} (now {now_ms}): ask the shopper to refresh the QR code"
        )
    return shopper_id


def _qr_mac(secret: bytes, payload: str) -> str:
    digest = hmac.digest(secret, _QR_LABEL + payload.encode("utf-8"), "sha256")
    return base64.urlsafe_b64encode(digest[:_QR_MAC_BYTES]).rstrip(b"=").decode("ascii")
