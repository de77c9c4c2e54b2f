"""Shopper use cases: registration, consent, the omnichannel profile, export
and erasure, and the associate's QR hand-off.

A registration is one app install: the shopper id is also the device id the
``EidResolver`` answers with. Each registration draws the phone's own
rotating-id parameters (key, rotation exponent, beacon clock) from the
``EidPolicy``. Other parts plug in without this module knowing them,
subscribed where the server is put together (``bootstrap.py``):
``add_export_section`` adds a section to a shopper's export (visits,
offers...), ``subscribe_to_erasure`` deletes what a part holds about a
shopper, ``subscribe_to_scrub`` makes deleted rows unreadable in the
storage's files after an erasure, ``subscribe_to_devices`` hears of
every device added or removed with its parameters (the resolver's ``update``),
and ``subscribe_to_changes`` hears of every registration, consent change and
erasure once it is committed (a chain's shopper change feed, docs/scaling.md).

On a chain every node keeps its own copy of the devices and consents in
memory; ``refresh_shopper`` (one shopper, on a change notice from another
node) and ``refresh_all`` (everyone) bring it back to what the database holds.
"""

import logging
import secrets
import threading
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from omnizone.contract.eid import EidParams
from omnizone.contract.messages import EpochMs, Gtin
from omnizone.contract.timefmt import wall_clock_ms
from omnizone.server.domain.identity import (
    Channel,
    Consent,
    ConsentChange,
    EidPolicy,
    ProfileEvent,
    ProfileEventType,
    ProfileSummary,
    Purpose,
    Shopper,
    ShopperDrift,
    check_webhook_signature,
    current_consent,
    hash_token,
    may_show_associate_context,
    read_qr_token,
    shopper_drift,
    sign_qr_token,
    summarize_profile,
)
from omnizone.server.service.ports.shoppers import ShopperStore

log = logging.getLogger(__name__)

DEFAULT_QR_TTL_S = 300
MAX_WEBHOOK_EVENTS = 1000
LOYALTY_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
SHOPPER_ID_PATTERN = r"^[0-9a-f]{32}$"

LoyaltyId = Annotated[
    str, Field(pattern=LOYALTY_ID_PATTERN, description="the retailer's loyalty card number")
]


# -- input -----------------------------------------------------------------------------


class ProfileEventIn(BaseModel):
    """One change of the omnichannel profile, from the app, the web shop or a till."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"type": "cart_add", "gtin": "09506000134352", "channel": "online"},
                {
                    "type": "purchase",
                    "gtin": "09506000134352",
                    "channel": "pos",
                    "at_ms": 1767225600000,
                    "amount": 89.9,
                },
            ]
        },
    )

    type: ProfileEventType
    gtin: Gtin
    channel: Channel
    at_ms: EpochMs | None = Field(None, description="when it happened; default: when received")
    amount: float | None = Field(
        None, ge=0, allow_inf_nan=False, description="price paid (purchases)"
    )


class WebhookIn(BaseModel):
    """What the web shop or POS posts to ``/webhooks/profile``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "loyalty_id": "FR-0042-7781",
                    "events": [
                        {"type": "wishlist_add", "gtin": "09506000134352", "channel": "online"}
                    ],
                }
            ]
        },
    )

    loyalty_id: LoyaltyId | None = None
    shopper_id: str | None = Field(None, pattern=SHOPPER_ID_PATTERN)
    events: list[ProfileEventIn] = Field(min_length=1, max_length=MAX_WEBHOOK_EVENTS)

    @model_validator(mode="after")
    def _one_identity(self) -> "WebhookIn":
        if (self.loyalty_id is None) == (self.shopper_id is None):
            raise ValueError("give exactly one of loyalty_id or shopper_id")
        return self


# -- errors ----------------------------------------------------------------------------


class ShopperError(Exception):
    """A refusal with a message meant for the caller."""


class UnknownStore(ShopperError, ValueError):
    def __init__(self, store: str, known: Iterable[str]) -> None:
        super().__init__(f"store {store!r} is not served here; known: {sorted(known)}")


class ShopperNotFound(ShopperError, LookupError):
    pass


class WebhookNotConfigured(ShopperError):
    def __init__(self) -> None:
        super().__init__(
            "the profile webhook is off: set OMNIZONE_WEBHOOK_SECRET to the secret "
            "the sender signs with"
        )


class WebhookRejected(ShopperError):
    """Missing or wrong signature: nothing was read or stored."""


@dataclass(frozen=True, slots=True)
class FieldError:
    loc: tuple[str | int, ...]
    msg: str

    @property
    def where(self) -> str:
        out = ""
        for part in self.loc:
            out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
        return out or "body"


class InvalidInput(ShopperError, ValueError):
    """Says which field (``events[2].gtin``) is wrong and why."""

    def __init__(self, errors: Sequence[FieldError]) -> None:
        self.errors = list(errors)
        super().__init__("; ".join(f"{e.where}: {e.msg}" for e in self.errors))

    @classmethod
    def from_validation(cls, error: ValidationError) -> "InvalidInput":
        return cls(
            [
                FieldError(tuple(e["loc"]), e["msg"].removeprefix("Value error, "))
                for e in error.errors(include_url=False)
            ]
        )


class NoConsent(ShopperError, PermissionError):
    pass


# -- results ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Registration:
    shopper_id: str
    token: str
    """Shown once; only its SHA-256 is stored."""
    eid: EidParams
    """What the phone needs to advertise its rotating id."""

    @property
    def eid_key(self) -> bytes:
        return self.eid.key

    @property
    def rotation_s(self) -> int:
        return self.eid.rotation_s


@dataclass(frozen=True, slots=True)
class WebhookResult:
    shopper_ids: tuple[str, ...]
    events: int


@dataclass(frozen=True, slots=True)
class QrToken:
    token: str
    expires_ms: int


@dataclass(frozen=True, slots=True)
class AssociateContext:
    shopper_id: str
    store: str
    loyalty_id: str | None
    profile: ProfileSummary


ExportProvider = Callable[[str], object]
EraseListener = Callable[[str], None]
DeviceListener = Callable[[str, EidParams | None], None]
ScrubListener = Callable[[], None]
ShopperChange = Literal["registered", "consent", "erased"]
ChangeListener = Callable[[str, ShopperChange], None]

_EXPORT_SECTIONS = frozenset(
    {"shopper", "consent", "consent_history", "profile_events", "exported_ms"}
)


# -- the service -----------------------------------------------------------------------


class ShopperService:
    """Identity, consent and profile of shoppers; see docs/identity.md."""

    def __init__(
        self,
        stores: Collection[str],
        repository: ShopperStore,
        *,
        eid_policy: EidPolicy | None = None,
        webhook_secret: bytes | None = None,
        qr_secret: bytes | None = None,
        qr_ttl_s: int = DEFAULT_QR_TTL_S,
        clock: Callable[[], int] = wall_clock_ms,
    ) -> None:
        if webhook_secret is not None and len(webhook_secret) < 16:
            raise ValueError("the webhook secret is too short: use at least 16 characters")
        self._stores = frozenset(stores)
        self._repo = repository
        self.eid_policy = eid_policy or EidPolicy()
        self._webhook_secret = webhook_secret
        # Per process unless given: QR tokens live minutes, a restart just asks for a new one.
        self._qr_secret = qr_secret or secrets.token_bytes(32)
        self._qr_ttl_ms = qr_ttl_s * 1000
        self._clock = clock
        self._lock = threading.Lock()
        self._consents = repository.current_consents()  # read per sighting: kept in memory
        self._export_providers: dict[str, ExportProvider] = {}
        self._erase_listeners: list[EraseListener] = []
        self._scrub_listeners: list[ScrubListener] = []
        self._device_listeners: list[DeviceListener] = []
        self._change_listeners: list[ChangeListener] = []
        # Shoppers erased (or being erased) by this process: nothing may be
        # written for them again, whatever was already on its way. After a
        # restart their keys are gone from the database, so nothing resolves
        # to them any more; the set only has to cover work in flight.
        self._erased: set[str] = set()

    # -- the other parts ---------------------------------------------------------------

    def add_export_section(self, name: str, provide: ExportProvider) -> None:
        """``provide(shopper_id)`` is the export's ``name`` section (what the part
        holds about the shopper, as JSON-able data)."""
        self._export_providers[name] = provide

    def subscribe_to_erasure(self, listener: EraseListener, *, first: bool = False) -> None:
        """``listener(shopper_id)`` erases what its part holds, before the
        shopper's own rows go; if it raises, the shopper stays whole.
        ``first``: before the listeners already there (a part whose work in
        flight must end before the others delete rows, as ingest's does)."""
        if first:
            self._erase_listeners.insert(0, listener)
        else:
            self._erase_listeners.append(listener)

    def subscribe_to_scrub(self, listener: ScrubListener) -> None:
        """``listener()`` runs after an erasure has deleted every row: it makes
        the deleted rows unreadable in the storage's files too (SQLite: a
        ``TRUNCATE`` checkpoint of the write-ahead log)."""
        self._scrub_listeners.append(listener)

    def subscribe_to_devices(self, listener: DeviceListener) -> None:
        """``listener(device, key)`` hears of every device key added (a
        registration) or removed (``None``: an erasure)."""
        self._device_listeners.append(listener)

    def subscribe_to_changes(self, listener: ChangeListener) -> None:
        """``listener(shopper_id, change)`` hears of a registration, a consent
        change or an erasure made here, after it is committed (a chain node
        publishes it to the others). A listener that raises is logged: the
        change itself is done."""
        self._change_listeners.append(listener)

    # -- identity ------------------------------------------------------------------

    def register(self, store: str) -> Registration:
        if store not in self._stores:
            raise UnknownStore(store, self._stores)
        shopper_id = uuid.uuid4().hex
        token = f"{shopper_id}.{secrets.token_urlsafe(32)}"
        eid = self.eid_policy.new_params()
        self._repo.add_shopper(
            Shopper(
                id=shopper_id,
                store=store,
                token_hash=hash_token(token),
                eid_key=eid.key,
                created_ms=self._clock(),
                eid_exponent=eid.exponent,
                eid_clock_offset_s=eid.clock_offset_s,
            )
        )
        with self._lock:
            self._consents[shopper_id] = Consent()
        self._notify_devices(shopper_id, eid)
        self._notify_change(shopper_id, "registered")
        return Registration(shopper_id, token, eid)

    def authenticate(self, token: str) -> str | None:
        """The shopper a bearer token belongs to; None for anything else."""
        shopper_id, dot, _secret = token.partition(".")
        if not dot or len(shopper_id) != 32:
            return None
        shopper = self._repo.shopper(shopper_id)
        if shopper is None:
            return None
        return shopper_id if secrets.compare_digest(hash_token(token), shopper.token_hash) else None

    def shopper(self, shopper_id: str) -> Shopper:
        found = self._repo.shopper(shopper_id)
        if found is None:
            raise ShopperNotFound(f"no shopper {shopper_id!r} (unknown or erased)")
        return found

    def all_devices(self) -> dict[str, EidParams]:
        """Device id -> rotating-id parameters of every registered device, for the resolver."""
        return self._repo.devices()

    # -- consent -------------------------------------------------------------------

    def consent(self, shopper_id: str) -> Consent | None:
        """Current consent from memory (hot path of ingest); None if no such
        shopper, or if the shopper is erased or being erased."""
        with self._lock:
            return self._consents.get(shopper_id)

    def is_erased(self, shopper_id: str) -> bool:
        """Erased (or being erased) since this process started: a tombstone."""
        with self._lock:
            return shopper_id in self._erased

    def set_consent(self, shopper_id: str, changes: Mapping[Purpose, bool]) -> Consent:
        """Records a history row for each purpose whose value actually changes
        from what the database holds (on a chain, another node may have changed
        it since this one's memory was last told)."""
        with self._lock:
            unheard = shopper_id not in self._consents and shopper_id not in self._erased
        if unheard:  # registered on another node, its notice not here yet
            self.refresh_shopper(shopper_id)
        with self._lock:
            if self._consents.get(shopper_id) is None:
                raise ShopperNotFound(f"no shopper {shopper_id!r} (unknown or erased)")
            current = current_consent(self._repo.consent_history(shopper_id))
            now = self._clock()
            rows = [
                ConsentChange(purpose, granted, now)
                for purpose, granted in changes.items()
                if current.granted(purpose) != granted
            ]
            if rows:
                self._repo.add_consent_changes(shopper_id, rows)
            updated = current.changed(changes)
            self._consents[shopper_id] = updated
        if rows:
            self._notify_change(shopper_id, "consent")
        return updated

    def consent_history(self, shopper_id: str) -> list[ConsentChange]:
        self.shopper(shopper_id)
        return self._repo.consent_history(shopper_id)

    # -- the omnichannel profile ---------------------------------------------------

    def add_profile_events(
        self, shopper_id: str, events: Sequence[ProfileEventIn]
    ) -> list[ProfileEvent]:
        self.shopper(shopper_id)
        stored = self._to_events(events)
        self._add_profile_events([shopper_id], stored)
        return stored

    def _add_profile_events(self, shopper_ids: Sequence[str], events: list[ProfileEvent]) -> None:
        """Under the lock erasure deletes under: an erasure that began in the
        meantime refuses the write instead of letting it outlive the delete."""
        with self._lock:
            erased = [s for s in shopper_ids if s in self._erased]
            if erased:
                raise ShopperNotFound(f"no shopper {erased[0]!r} (unknown or erased)")
            self._repo.add_profile_events(shopper_ids, events)

    def link_loyalty(self, shopper_id: str, loyalty_id: str) -> None:
        with self._lock:
            linked = shopper_id not in self._erased and self._repo.set_loyalty(
                shopper_id, loyalty_id
            )
        if not linked:
            raise ShopperNotFound(f"no shopper {shopper_id!r} (unknown or erased)")

    def receive_webhook(self, body: bytes, signature: str | None) -> WebhookResult:
        """Checks the signature over the raw bytes before reading anything."""
        if self._webhook_secret is None:
            raise WebhookNotConfigured()
        try:
            check_webhook_signature(self._webhook_secret, body, signature)
        except ValueError as error:
            raise WebhookRejected(str(error)) from None
        try:
            payload = WebhookIn.model_validate_json(body)
        except ValidationError as error:
            raise InvalidInput.from_validation(error) from None
        if payload.shopper_id is not None:
            self.shopper(payload.shopper_id)
            shopper_ids = [payload.shopper_id]
        else:
            assert payload.loyalty_id is not None  # the model allows exactly one
            shopper_ids = self._repo.shoppers_with_loyalty(payload.loyalty_id)
            if not shopper_ids:
                raise ShopperNotFound(f"no shopper has linked loyalty id {payload.loyalty_id!r}")
        events = self._to_events(payload.events)
        self._add_profile_events(shopper_ids, events)
        return WebhookResult(tuple(shopper_ids), len(events))

    def profile(self, shopper_id: str) -> ProfileSummary:
        return summarize_profile(self._repo.profile_events(shopper_id))

    def profiles(self, shopper_ids: Sequence[str]) -> dict[str, ProfileSummary]:
        """Many shoppers' profiles in a few queries (a crowd's offer decisions)."""
        events = self._repo.profile_events_of(shopper_ids)
        return {s: summarize_profile(events.get(s, [])) for s in shopper_ids}

    def loyalty_ids(self, shopper_ids: Sequence[str]) -> dict[str, str | None]:
        return self._repo.loyalty_ids(shopper_ids)

    def _to_events(self, events: Sequence[ProfileEventIn]) -> list[ProfileEvent]:
        now = self._clock()
        return [
            ProfileEvent(
                type=e.type,
                gtin=e.gtin,
                channel=e.channel,
                at_ms=now if e.at_ms is None else e.at_ms,
                amount=e.amount,
            )
            for e in events
        ]

    # -- export and erasure --------------------------------------------------------

    def export(self, shopper_id: str) -> dict[str, Any]:
        """Everything stored about the shopper, plus what other parts add."""
        shopper = self.shopper(shopper_id)
        history = self._repo.consent_history(shopper_id)
        consent = self.consent(shopper_id) or Consent()
        out: dict[str, Any] = {
            "exported_ms": self._clock(),
            "shopper": {
                "shopper_id": shopper.id,
                "store": shopper.store,
                "created_ms": shopper.created_ms,
                "loyalty_id": shopper.loyalty_id,
                "eid_key": shopper.eid_key.hex(),
                "eid_rotation_s": shopper.eid.rotation_s,
                "eid_rotation_exponent": shopper.eid_exponent,
                "eid_clock_offset_s": shopper.eid_clock_offset_s,
            },
            "consent": asdict(consent),
            "consent_history": [
                {"purpose": c.purpose.value, "granted": c.granted, "changed_ms": c.changed_ms}
                for c in history
            ],
            "profile_events": [asdict(e) for e in self._repo.profile_events(shopper_id)],
        }
        for name, provide in self._export_providers.items():
            if name in _EXPORT_SECTIONS:
                raise ValueError(f"export provider {name!r} would overwrite a core section")
            out[name] = provide(shopper_id)
        return out

    def erase(self, shopper_id: str) -> None:
        """Tombstones the shopper, stops resolving the device, lets other parts
        erase, deletes the rows, then scrubs the storage's files.

        From the first step on, ``consent`` answers None and ``is_erased``
        True, so work already on its way (a message being ingested, a batch
        of decisions) writes nothing more for the shopper: each part's
        erasure listener waits for its own work in flight before deleting.
        If another part fails, the shopper stays registered and resolvable,
        so the erasure can simply be asked for again.
        """
        shopper = self.shopper(shopper_id)
        with self._lock:
            if shopper_id in self._erased:  # a second request while the first runs
                raise ShopperNotFound(f"shopper {shopper_id!r} is being erased")
            self._erased.add(shopper_id)
            consent = self._consents.pop(shopper_id, None)
        self._notify_devices(shopper_id, None)
        try:
            for listener in self._erase_listeners:
                listener(shopper_id)
            with self._lock:
                self._repo.erase(shopper_id)
        except BaseException:
            with self._lock:
                self._erased.discard(shopper_id)
                if consent is not None:
                    self._consents[shopper_id] = consent
            self._notify_devices(shopper_id, shopper.eid)
            raise
        for scrub in self._scrub_listeners:
            try:
                scrub()
            except Exception:  # the rows are gone; the next erasure scrubs again
                log.exception("erasure of %s: the storage files could not be scrubbed", shopper_id)
        self._notify_change(shopper_id, "erased")

    def _notify_devices(self, device: str, eid: EidParams | None) -> None:
        for listener in self._device_listeners:
            listener(device, eid)

    def _notify_change(self, shopper_id: str, change: ShopperChange) -> None:
        for listener in self._change_listeners:
            try:
                listener(shopper_id, change)
            except Exception:  # committed already; the others' full re-read catches up
                log.exception("telling the chain of %s (%s) failed", change, shopper_id)

    # -- changes made on another node of a chain -------------------------------------

    def refresh_shopper(self, shopper_id: str) -> str:
        """Another node changed this shopper: read what the database holds now
        and make memory say the same. The notice says only *who*; the database
        says *what*, so notices may come late, twice or out of order.
        Returns what changed here: ``added``, ``consent``, ``erased``,
        ``unchanged`` or ``unknown`` (not in the database, never known here).

        Memory is looked at *before* the database is read: a shopper known
        then was stored then (a registration stores before it is known), so
        one the read does not find was erased; and a consent that changed
        here while the read ran is newer than the read, so it stays."""
        with self._lock:
            before = None if shopper_id in self._erased else self._consents.get(shopper_id)
        stored = self._repo.shopper(shopper_id)
        if stored is None:
            if before is None:
                return "unknown"
            self._forget_erased(shopper_id)
            return "erased"
        consent = current_consent(self._repo.consent_history(shopper_id))
        with self._lock:
            # ``is``: the very value read before (an equal one may be a newer change).
            if shopper_id in self._erased or self._consents.get(shopper_id) is not before:
                return "unchanged"  # being erased here, or changed here meanwhile
            self._consents[shopper_id] = consent
        if before is None:
            self._notify_devices(shopper_id, stored.eid)
            return "added"
        return "unchanged" if before == consent else "consent"

    def refresh_all(self) -> ShopperDrift:
        """Re-read every shopper and apply the difference (``shopper_drift``):
        what a node does when it starts following the feed, when the feed had
        a gap, and every so often, so a missed notice is only late. Memory is
        looked at before the database is read, as in ``refresh_shopper``: a
        registration made here during the read is not taken for an erasure."""
        with self._lock:
            known = {s: c for s, c in self._consents.items() if s not in self._erased}
        devices = self._repo.devices()
        consents = self._repo.current_consents()
        drift = shopper_drift(known, devices, consents)
        for shopper_id in sorted(drift.erased):
            self._forget_erased(shopper_id)
        with self._lock:
            for shopper_id, consent in drift.consents.items():
                if self._consents.get(shopper_id) is known[shopper_id]:  # not changed meanwhile
                    self._consents[shopper_id] = consent
            added = {
                s: eid
                for s, (eid, consent) in drift.added.items()
                if s not in self._erased and self._consents.setdefault(s, consent) is consent
            }
        for shopper_id, eid in added.items():
            self._notify_devices(shopper_id, eid)
        return drift

    def _forget_erased(self, shopper_id: str) -> None:
        """Erased on another node: the same steps as ``erase`` from the
        tombstone on. Each part's listener waits for its work in flight and
        deletes again what this process may have written about the shopper
        since the other node's deletes; the shopper's own rows are gone."""
        with self._lock:
            if shopper_id in self._erased:
                return
            self._erased.add(shopper_id)
            self._consents.pop(shopper_id, None)
        self._notify_devices(shopper_id, None)
        for listener in self._erase_listeners:
            try:
                listener(shopper_id)
            except Exception:  # the tombstone stays: nothing new is written for them
                log.exception("erasure of %s (made elsewhere): a part failed", shopper_id)
        with self._lock:
            self._repo.erase(shopper_id)
        for scrub in self._scrub_listeners:
            try:
                scrub()
            except Exception:
                log.exception("erasure of %s: the storage files could not be scrubbed", shopper_id)

    # -- the associate's QR hand-off ----------------------------------------------

    def issue_qr_token(self, shopper_id: str) -> QrToken:
        self.shopper(shopper_id)
        expires_ms = self._clock() + self._qr_ttl_ms
        return QrToken(sign_qr_token(self._qr_secret, shopper_id, expires_ms), expires_ms)

    def associate_context(self, qr_token: str) -> AssociateContext:
        """Raises ``QrTokenError`` (forged/expired), ``ShopperNotFound`` or ``NoConsent``."""
        shopper_id = read_qr_token(self._qr_secret, qr_token, self._clock())
        shopper = self.shopper(shopper_id)
        if not may_show_associate_context(self.consent(shopper_id)):
            raise NoConsent(
                "the shopper has not consented to personalized_offers, "
                "so their profile is not shown"
            )
        return AssociateContext(
            shopper_id=shopper.id,
            store=shopper.store,
            loyalty_id=shopper.loyalty_id,
            profile=self.profile(shopper_id),
        )
