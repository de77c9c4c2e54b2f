"""Shopper identity and consent: the decisions, over plain data.

- ``EidPolicy`` says which rotation periods phones get; ``EidResolver`` turns a
  rotating ``eid:<16 hex>`` sighting back into the device that advertised it,
  a ``Replay`` of one, or ``None`` (the sighting is then dropped).
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
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Literal

from omnizone.contract.eid import EidParams, EidSchedule, new_eid_params

__all__ = [
    "DEFAULT_EID_SKEW_S",
    "MAX_POLICY_EXPONENT",
    "MIN_POLICY_EXPONENT",
    "SIGNATURE_HEADER",
    "Channel",
    "Consent",
    "ConsentChange",
    "EidPolicy",
    "EidResolver",
    "ProductView",
    "ProfileEvent",
    "ProfileEventType",
    "ProfileSummary",
    "Purpose",
    "QrTokenError",
    "QrTokenExpired",
    "Replay",
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


@dataclass(frozen=True, slots=True)
class ShopperDrift:
    """How a node's view of the shoppers differs from what the database holds."""

    added: dict[str, tuple[EidParams, Consent]]
    """Registered elsewhere: the device's rotating-id parameters and its consent."""
    erased: frozenset[str]
    """Known here, gone from the database: erased elsewhere."""
    consents: dict[str, Consent]
    """Known on both sides, consent changed elsewhere: the stored one."""

    @property
    def empty(self) -> bool:
        return not (self.added or self.erased or self.consents)


def shopper_drift(
    known: Mapping[str, Consent],
    stored_devices: Mapping[str, EidParams],
    stored_consents: Mapping[str, Consent],
) -> ShopperDrift:
    """What a chain node must change so its memory matches the database
    (docs/scaling.md, "The shopper change feed"): the full re-read a node
    makes at start, when its feed had a gap, and every so often, so that a
    missed change notice is never more than stale. A device whose consent
    rows are not there yet has the default consent (nothing granted)."""
    added = {
        shopper: (eid, stored_consents.get(shopper, Consent()))
        for shopper, eid in stored_devices.items()
        if shopper not in known
    }
    changed = {
        shopper: stored_consents.get(shopper, Consent())
        for shopper, consent in known.items()
        if shopper in stored_devices and stored_consents.get(shopper, Consent()) != consent
    }
    return ShopperDrift(added, frozenset(known.keys() - stored_devices.keys()), changed)


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
    eid_exponent: int = field(kw_only=True)
    """The phone's rotation exponent K (its id changes every 2**K s), set at registration."""
    eid_clock_offset_s: int = field(kw_only=True)
    """The phone's beacon clock: (unix seconds + offset) mod 2**32, set at registration."""

    @property
    def eid(self) -> EidParams:
        return EidParams(self.eid_key, self.eid_exponent, self.eid_clock_offset_s)


def hash_token(token: str) -> str:
    """What is stored instead of a token: a leaked database grants no access."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


# -- the ephemeral id policy --------------------------------------------------------

#: The rotation exponents a server may hand out: 16 s to 2048 s (34 min). Longer
#: periods let anyone in the store link a phone's visit for longer; shorter ones
#: only cost the resolver work. The Eddystone specification allows up to 15 (9 h).
MIN_POLICY_EXPONENT = 4
MAX_POLICY_EXPONENT = 11
DEFAULT_EID_SKEW_S = 30
MAX_EID_SKEW_S = 300


@dataclass(frozen=True, slots=True)
class EidPolicy:
    """Which rotation periods phones get at registration, and how far off a
    phone's clock may be before its id stops resolving (docs/identity.md)."""

    min_exponent: int = 8  # 256 s
    max_exponent: int = 10  # 1024 s
    skew_s: int = DEFAULT_EID_SKEW_S

    def __post_init__(self) -> None:
        lo, hi = MIN_POLICY_EXPONENT, MAX_POLICY_EXPONENT
        if not lo <= self.min_exponent <= self.max_exponent <= hi:
            raise ValueError(
                f"EID rotation periods must be powers of two from {2**lo} s to {2**hi} s, "
                f"shortest first; got {2**self.min_exponent} s to {2**self.max_exponent} s"
            )
        if not 0 <= self.skew_s <= MAX_EID_SKEW_S or 2 * self.skew_s >= 2**self.min_exponent:
            raise ValueError(
                f"EID clock skew must be 0 to {MAX_EID_SKEW_S} s and less than half the "
                f"shortest rotation period ({2**self.min_exponent} s), got {self.skew_s} s"
            )

    def new_params(self) -> EidParams:
        """A new phone's key, exponent and beacon clock, all random."""
        return new_eid_params(self.min_exponent, self.max_exponent)


# -- the ephemeral id resolver ------------------------------------------------------

_EID_KEY = re.compile(r"^eid:[0-9a-f]{16}$")


def is_eid_key(device_key: str) -> bool:
    return _EID_KEY.match(device_key) is not None


@dataclass(frozen=True, slots=True)
class Replay:
    """A registered phone's id heard where or when that phone cannot have sent it.

    ``out_of_period``: outside its own period plus the skew (captured and
    replayed later, or a phone whose clock is badly off). ``other_store``: in
    its period, but at a second store; an id belongs to the first store that
    resolved it until its period ends."""

    device: str
    reason: Literal["out_of_period", "other_store"]


@dataclass(frozen=True, slots=True)
class _Period:
    device: str
    start_ms: int
    end_ms: int


_AMBIGUOUS = _Period("", 0, 0)  # two devices share this EID around then: resolve neither
_BUCKET_MS = 256_000  # each table covers this much time
_KEEP_BUCKETS = 4  # tables kept, so slightly out-of-order sightings rebuild nothing
_BINDING_MEMORY_MS = 3_600_000  # how long a period's store stays remembered after it ends


class EidResolver:
    """Maps ``eid:<hex>`` sightings to device ids without AES per sighting.

    Every phone has its own period (``2**K`` s) and its own boundaries, so the
    ids are tabled per slice of time (``_BUCKET_MS``): a slice's table holds
    each device's ids of the periods around it, with when each was on air. A
    sighting is one dict look-up and one comparison:

    - in its period, give or take ``skew_s``: resolved;
    - the same phone's id from the period before or after, outside that:
      a ``Replay`` (``out_of_period``);
    - anything else (or an id two devices share): unknown.

    ``identify(..., store)`` also binds each period's id to the first store
    that resolves it; the same id at another store in that period is a
    ``Replay`` (``other_store``). Thread-safe: devices change from API threads
    while ingest resolves.
    """

    def __init__(
        self, devices: Mapping[str, EidParams], *, skew_s: int = DEFAULT_EID_SKEW_S
    ) -> None:
        if not 0 <= skew_s <= MAX_EID_SKEW_S:
            raise ValueError(f"EID clock skew must be 0 to {MAX_EID_SKEW_S} s, got {skew_s}")
        for device in devices:
            _check_device(device)
        self._devices = {device: EidSchedule(params) for device, params in devices.items()}
        self._skew_ms = skew_s * 1000
        self._tables: dict[int, dict[bytes, _Period]] = {}
        # device -> period start -> (the store it is bound to, period end)
        self._stores: dict[str, dict[int, tuple[str, int]]] = {}
        self._newest_ms = 0
        self._lock = threading.Lock()

    @property
    def skew_s(self) -> int:
        return self._skew_ms // 1000

    def __len__(self) -> int:
        return len(self._devices)

    def resolve(self, device_key: str, at_ms: int) -> str | None:
        """The device that advertised ``device_key`` at ``at_ms``, if any (no store rule)."""
        found = self.identify(device_key, at_ms)
        return found if isinstance(found, str) else None

    def identify(
        self, device_key: str, at_ms: int, store: str | None = None
    ) -> str | Replay | None:
        """The device, a ``Replay`` of one, or None for an id nobody has around ``at_ms``."""
        if not is_eid_key(device_key) or at_ms < 0:
            return None
        eid = bytes.fromhex(device_key[4:])
        with self._lock:
            period = self._table(at_ms // _BUCKET_MS).get(eid)
            if period is None or period is _AMBIGUOUS:
                return None
            if not period.start_ms - self._skew_ms <= at_ms < period.end_ms + self._skew_ms:
                return Replay(period.device, "out_of_period")
            if store is not None:
                bindings = self._stores.setdefault(period.device, {})
                bound, _end = bindings.setdefault(period.start_ms, (store, period.end_ms))
                if bound != store:
                    return Replay(period.device, "other_store")
                self._forget_old_stores(at_ms)
            return period.device

    def update(self, device: str, params: EidParams | None) -> None:
        """Add or re-key a device, or (``params=None``) forget it at once."""
        _check_device(device)
        with self._lock:
            old = self._devices.pop(device, None)
            new = None if params is None else EidSchedule(params)
            if new is not None:
                self._devices[device] = new
            self._stores.pop(device, None)
            for bucket in list(self._tables):
                table = self._tables[bucket]
                if old is not None and not _remove(table, device, old, bucket):
                    del self._tables[bucket]  # it shared an id: rebuilt when next needed
                    continue
                if new is not None:
                    for eid, period in _periods_near(device, new, bucket):
                        _insert(table, eid, period)

    def _table(self, bucket: int) -> dict[bytes, _Period]:
        table = self._tables.get(bucket)
        if table is None:
            table = {}
            for device, schedule in self._devices.items():
                for eid, period in _periods_near(device, schedule, bucket):
                    _insert(table, eid, period)
            self._tables[bucket] = table
            while len(self._tables) > _KEEP_BUCKETS:
                del self._tables[max(self._tables, key=lambda b: abs(b - bucket))]
        return table

    def _forget_old_stores(self, at_ms: int) -> None:
        if at_ms <= self._newest_ms + _BUCKET_MS:
            return
        self._newest_ms = at_ms
        horizon = at_ms - _BINDING_MEMORY_MS - self._skew_ms
        for device, bindings in list(self._stores.items()):
            kept = {start: bound for start, bound in bindings.items() if bound[1] > horizon}
            if kept:
                self._stores[device] = kept
            else:
                del self._stores[device]


def _periods_near(
    device: str, schedule: EidSchedule, bucket: int
) -> Iterator[tuple[bytes, _Period]]:
    """The device's ids of every period within one period of the bucket: what
    resolves there, and what is recognised as a replay there."""
    margin = schedule.params.rotation_s * 1000
    start, end = bucket * _BUCKET_MS, (bucket + 1) * _BUCKET_MS
    for period in schedule.periods(max(0, start - margin), end + margin):
        yield period.eid, _Period(device, period.start_ms, period.end_ms)


def _remove(table: dict[bytes, _Period], device: str, old: EidSchedule, bucket: int) -> bool:
    """Take the device's ids out; False if one was shared, so the table must be rebuilt."""
    for eid, _period in _periods_near(device, old, bucket):
        present = table.get(eid)
        if present is _AMBIGUOUS:
            return False
        if present is not None and present.device == device:
            del table[eid]
    return True


def _insert(table: dict[bytes, _Period], eid: bytes, period: _Period) -> None:
    present = table.get(eid)
    table[eid] = period if present is None or present == period else _AMBIGUOUS


def _check_device(device: str) -> None:
    if not device:
        raise ValueError("a device id must not be empty")


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
