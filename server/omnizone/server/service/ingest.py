"""Ingest use case: a batch of MQTT messages in, one database transaction out.

Every message is validated against the contract, de-duplicated on
(store, gateway, epoch, seq), stored, and for BLE turned into zone placements and
visit events. The messages that arrived together (the gateways of a store
publish each window at the same moment) are written in one transaction:
one commit and one insert of all their sightings, not one of each per
message. Bad input never raises: it is dead-lettered on its own, with a
reason that says what and where, and the good messages beside it are handled
as usual. In-memory visit state is only updated after the transaction
commits, so a batch that failed half-way is re-processed cleanly when it is
redelivered. ``handle`` is a batch of one.
"""

import json
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from enum import StrEnum
from typing import Protocol

from omnizone.contract import (
    MAX_SEQ,
    BleMessage,
    BleSighting,
    ContractError,
    GatewayMessage,
    HealthMessage,
    NfcMessage,
    RfidMessage,
    StatusMessage,
    TryOn,
    parse_message,
    parse_topic,
)
from omnizone.contract.ids import is_rotating
from omnizone.contract.messages import MAX_PAYLOAD_BYTES
from omnizone.server.domain import sequence
from omnizone.server.domain.analytics.event_stream import tap_event, try_on_event, visit_events
from omnizone.server.domain.identity import Replay
from omnizone.server.domain.nearest import DEFAULT_STALE_MS
from omnizone.server.domain.redact import (
    DEFAULT_DEAD_LETTER_BYTES,
    MAX_REASON_CHARS,
    cap_text,
    keep_payload,
)
from omnizone.server.domain.visits import (
    DeviceVisitState,
    VisitEvent,
    advance,
    expire,
    without_zones,
)
from omnizone.server.service.locators import (
    Forgets,
    ListenedWindow,
    Listens,
    Locator,
    NearestGatewayLocator,
    Positions,
    Sighting,
    ZonePlacement,
)
from omnizone.server.service.ports import (
    IngestTransaction,
    ReceivedKey,
    Repository,
    SightingFields,
)
from omnizone.store import StorePlan

log = logging.getLogger(__name__)

SWEEP_EVERY_MS = 1000
#: A device's presence row (what a restart resumes from) is rewritten when its
#: stay changes, else at most this often: rewriting every device every window
#: cost more than the rest of ingest. After a restart, "last heard" may be
#: this much older than it was.
PRESENCE_REFRESH_MS = 10_000


class Outcome(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    DEAD_LETTERED = "dead_lettered"


@dataclass(frozen=True, slots=True)
class IngestOutcome:
    outcome: Outcome
    reason: str | None = None
    gap: int = 0
    """How many sequence numbers of this gateway's epoch were skipped just before it."""
    key: ReceivedKey | None = None
    """The message's identity when it is known, accepted, duplicate or dead-lettered
    alike: the server has committed what it will ever do with it, and may tell
    the gateway so (its end-to-end acknowledgement)."""


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """One message as the transport delivered it: topic, raw body, and when it
    was received (wall ms)."""

    topic: str
    payload: bytes
    received_ms: int


@dataclass(slots=True)
class ResolvedSighting:
    """A sighting whose rotating id was resolved: the contract's fields with
    the shopper as the device (a plain record, not a validated model: it is
    made for every resolved sighting of every message)."""

    device: str
    window_start_ms: int
    window_ms: int
    count: int
    rssi_mean: float
    rssi_max: float
    tx_power: int | None


class _BatchFailed(Exception):
    """A message of a batch could not be worked out (a bug, not storage): the
    batch is rolled back and its messages are handled one at a time, so only
    the one at fault is dead-lettered."""


@dataclass(slots=True)
class IngestCounters:
    """Since this process started (the API's stats come from the database)."""

    accepted: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    gaps: int = 0
    seq_jumps: int = 0
    """Messages whose seq jumped implausibly far ahead (each counted as one gap)."""
    unresolved_dropped: int = 0
    """Sightings of rotating ids no registered phone has: dropped, never stored."""
    not_consented_dropped: int = 0
    """Sightings of shoppers who consented to neither location nor offers."""
    replayed_dropped: int = 0
    """Registered phones' ids heard outside their period or at a second store."""
    gateway_beacons: int = 0
    """Sightings of the store's own gateways' beacons: self-calibration, never a shopper."""
    fixed_beacons: int = 0
    """Gateways' sightings of the store file's fixed beacons: the beacon fleet and
    self-calibration, never a shopper."""


class DeviceIdentity(Protocol):
    """Who a sighted device is, and what the shopper allows (docs/identity.md).

    ``resolve`` maps a rotating ephemeral id heard at ``store`` to the
    registered device, returns a ``Replay`` when that id cannot have come from
    the phone then and there, and None when nobody registered it; other keys
    (fixed beacons, tags) come back unchanged. ``may_store_location`` and ``may_track`` are the
    shopper's consent: a device tracked only for offers is placed in memory,
    but nothing about where it was is written down."""

    def resolve(self, device: str, at_ms: int, store: str) -> str | Replay | None: ...
    def may_store_location(self, device: str) -> bool: ...
    def may_track(self, device: str) -> bool: ...


class WindowTap(Protocol):
    """Who else reads some devices' raw windows, as the gateways reported
    them (the guided survey's staff phone, ``service/surveys.py``). Asked per
    resolved sighting, before consent is applied: a tapped device's windows
    reach the tap after commit, and are stored or localized only as its own
    consent allows."""

    def wanted(self, store: str, device: str) -> bool: ...
    def on_windows(self, store: str, gateway: str, sightings: Sequence[Sighting]) -> None: ...


@dataclass(slots=True)
class _Pending:
    """Visit state changes of one message, applied to memory after commit."""

    states: dict[str, DeviceVisitState | None] = field(default_factory=dict)
    events: dict[str, list[VisitEvent]] = field(default_factory=dict)
    clock_ms: int | None = None
    swept_ms: int | None = None
    try_ons: list[TryOn] = field(default_factory=list)
    placements: list[ZonePlacement] = field(default_factory=list)
    presence_saved: dict[str, int | None] = field(default_factory=dict)
    tapped: list[tuple[str, Sighting]] = field(default_factory=list)  # (gateway, window)
    gateway_hearings: list[tuple[str, list[BleSighting]]] = field(default_factory=list)
    heard_ms: int | None = None  # the newest window end of the message
    #: (window end, key) of phones a street-front gateway heard that are not
    #: shoppers whose location may be stored: counted, never stored (capture rate)
    passers_by: list[tuple[int, str]] = field(default_factory=list)
    street_heard_ms: int | None = None

    def record(self, device: str, state: DeviceVisitState | None, events: list[VisitEvent]) -> None:
        self.states[device] = state
        if events:
            self.events.setdefault(device, []).extend(events)


#: Told of every placement after its message is committed: (store, placement).
PlacementListener = Callable[[str, ZonePlacement], None]
#: Told of every item brought into a fitting room, after commit: (store, reader, gtin, at_ms).
TryOnListener = Callable[[str, str, str, int], None]


class PasserCount(Protocol):
    """Counts passers-by anonymously (``service/passers_by.py``): told, after
    commit, the (window end, key) pairs a store's street-front gateways heard."""

    def hear(self, store: str, heard: Sequence[tuple[int, str]], saved_ms: int) -> None: ...


#: Told, after commit, what a gateway heard of the store's fixed anchors: the
#: other gateways' beacons and the store file's fixed beacons (store,
#: receiving gateway, sightings). Self-calibration and the beacon fleet.
GatewayHearingListener = Callable[[str, str, list[BleSighting]], object]


class IngestService:
    """Turns gateway messages into stored facts, zone stays and visits."""

    def __init__(
        self,
        stores: Mapping[str, StorePlan],
        repository: Repository,
        *,
        stale_ms: int = DEFAULT_STALE_MS,
        locators: Mapping[str, Locator] | None = None,
        identity: DeviceIdentity | None = None,
        placement_listeners: Sequence[PlacementListener] = (),
        try_on_listeners: Sequence[TryOnListener] = (),
        dead_letter_bytes: int = DEFAULT_DEAD_LETTER_BYTES,
        gateway_hearing_listeners: Sequence[GatewayHearingListener] = (),
        passers_by: PasserCount | None = None,
    ) -> None:
        """``identity`` None keeps every device key as sighted (replays and the
        localization evaluation, whose phones are anonymous); the server
        always passes one (``OMNIZONE_RESOLVE_EIDS``). The listeners are who
        else acts on what was committed: the offer engine in the server
        (wired in ``bootstrap.py``), a recorder in the evaluations;
        ``gateway_hearing_listeners`` are told what a gateway heard of the
        store's other gateways (self-calibration). A dead letter keeps at most
        ``dead_letter_bytes`` of its payload."""
        self._dead_letter_bytes = dead_letter_bytes
        self._identity = identity
        self._stores = dict(stores)
        self._repo = repository
        self._stale_ms = stale_ms
        self._locators: dict[str, Locator] = {
            store: NearestGatewayLocator(plan, stale_ms) for store, plan in self._stores.items()
        }
        self._locators.update(locators or {})
        self._placement_listeners = tuple(placement_listeners)
        self._try_on_listeners = tuple(try_on_listeners)
        self._taps: tuple[WindowTap, ...] = ()
        self._gateway_hearing_listeners = tuple(gateway_hearing_listeners)
        self._passers_by = passers_by
        self._lock = threading.Lock()
        self.counters = IngestCounters()
        self._states: dict[str, dict[str, DeviceVisitState]] = {s: {} for s in self._stores}
        self._clock_ms: dict[str, int] = {}
        # store -> wall clock of the newest BLE message taken in by this process
        self._received_ms: dict[str, int] = {}

        # store -> (first, newest) BLE window end any gateway reported since start
        self._heard_span: dict[str, tuple[int, int]] = {}
        # store -> device -> last_heard_ms written to its presence row
        self._presence_saved: dict[str, dict[str, int]] = {}
        self._swept_ms: dict[str, int] = {}
        for (store, device), state in repository.load_presence().items():
            if store in self._states:
                self._states[store][device] = state
                clock = max(self._clock_ms.get(store, 0), state.last_heard_ms)
                self._clock_ms[store] = clock
        # (store, gateway, epoch) -> highest seq; gaps are counted per epoch.
        self._highest: dict[tuple[str, str, int], int] = repository.sequence_heads()
        # live sessions: (store, gateway, epoch) -> the seq reserved for the will
        self._wills: dict[tuple[str, str, int], int] = {}
        # Within one batch: (key, window end, store) -> what it resolved to, and
        # device -> (may track, may store its location). A store's ten gateways
        # report the same phones in the same window: each is resolved once, not
        # ten times. Emptied at the start of every transaction (consent and
        # registrations may change between batches, never within one).
        self._resolved: dict[tuple[str, int, str], str | Replay | None] = {}
        self._consents: dict[str, tuple[bool, bool]] = {}

    def subscribe_to_placements(self, listener: PlacementListener) -> None:
        """Tell ``listener`` of every placement from now on, after its message
        is committed, like the listeners given at construction (a replay's
        recorder of zone timelines, a part wired later)."""
        with self._lock:
            self._placement_listeners = (*self._placement_listeners, listener)

    def tap_windows(self, tap: WindowTap) -> None:
        """Hand ``tap`` the raw windows of the devices it wants, from now on."""
        with self._lock:
            self._taps = (*self._taps, tap)

    @property
    def stores(self) -> Mapping[str, StorePlan]:
        return self._stores

    def event_time(self, store: str) -> int | None:
        """The store's clock: the latest BLE window end seen (not the wall clock)."""
        return self._clock_ms.get(store)

    def last_received_ms(self, store: str) -> int | None:
        """When this process last took in a BLE message of the store (its
        receipt clock); None when none came since it started: the open stays
        are then only what the last run left (the live map calls that stale)."""
        return self._received_ms.get(store)

    def heard_span(self, store: str) -> tuple[int, int] | None:
        """(first, newest) BLE window end any of the store's gateways reported
        since start, whatever it heard: the clock the beacon fleet's silence
        is measured on."""
        return self._heard_span.get(store)

    def present(self, store: str) -> dict[str, DeviceVisitState]:
        """Devices with an open stay in the store (a copy)."""
        with self._lock:
            return dict(self._states.get(store, {}))

    def live(self, store: str) -> tuple[dict[str, str], dict[str, tuple[float, float]]]:
        """What a live map shows: the zone of every open stay and, where the
        localizer has one, the device's expected position (x, y metres). Only
        devices whose location may be stored (consent); a copy, taken under
        the ingest lock so it is one consistent moment."""
        with self._lock:
            stays = {device: state.zone for device, state in self._states.get(store, {}).items()}
            locator = self._locators.get(store)
            positions: dict[str, tuple[float, float]] = (
                locator.positions() if isinstance(locator, Positions) else {}
            )
        allowed = {device: zone for device, zone in stays.items() if self._may_store(device)}
        return allowed, {d: xy for d, xy in positions.items() if d in allowed}

    def forget_device(self, device: str) -> None:
        """Erasure: waits for the message being processed (its writes are
        committed before this returns, so the erasure's deletes come after
        them), then drops what memory holds about the device: its stays, and
        the locators' pending readings and filter state, so no placement of
        it comes out later. Its ids no longer resolve by then, so nothing
        new arrives for it."""
        with self._lock:
            for states in self._states.values():
                states.pop(device, None)
            for saved in self._presence_saved.values():
                saved.pop(device, None)
            for locator in self._locators.values():
                if isinstance(locator, Forgets):
                    locator.forget(device)

    def handle(self, topic: str, payload: bytes, received_ms: int) -> IngestOutcome:
        """Process one message (a batch of one). Raises only when storage
        itself is unavailable (the caller must then not acknowledge the
        message and retry later)."""
        return self.handle_batch([InboundMessage(topic, payload, received_ms)])[0]

    def handle_batch(self, messages: Sequence[InboundMessage]) -> list[IngestOutcome]:
        """Process messages that arrived together, in order, with one
        transaction for all the valid ones; one outcome per message, in the
        same order. A message that fails validation is dead-lettered on its
        own and the others are stored; a message whose processing fails
        (not storage) is dead-lettered and the others are stored one at a
        time. Raises only when storage itself is unavailable: then nothing
        of the batch is committed, and the caller acknowledges none of it
        and retries later (de-duplication makes a retry harmless)."""
        with self._lock:
            outcomes: list[IngestOutcome | None] = [None] * len(messages)
            valid: list[tuple[int, StorePlan, GatewayMessage, InboundMessage]] = []
            for index, inbound in enumerate(messages):
                checked = self._check(inbound)
                if isinstance(checked, IngestOutcome):
                    outcomes[index] = checked
                else:
                    valid.append((index, *checked, inbound))
            if len(valid) > 1:
                try:
                    done = self._process(valid)
                except _BatchFailed:
                    log.warning("a batch of %d messages failed; one at a time", len(valid))
                else:
                    for (index, *_), outcome in zip(valid, done, strict=True):
                        outcomes[index] = outcome
                    valid = []
            for index, plan, message, inbound in valid:  # one at a time
                outcomes[index] = self._process_alone(plan, message, inbound)
            return [outcome for outcome in outcomes if outcome is not None]

    def observe_listened(self, store: str, device: str, windows: Sequence[ListenedWindow]) -> int:
        """A listening phone's windows of the store's fixed beacons, already
        checked and consented (``service/phone_sightings.py``), into the same
        locator, visits and listeners as the gateways' (issue 15). Returns how
        many windows came too late to count (the locator had decided them)."""
        with self._lock:
            plan, locator = self._stores[store], self._locators[store]
            if not isinstance(locator, Listens):
                return len(windows)
            before = locator.late_listened
            pending = _Pending()
            with self._repo.transaction() as tx:
                self._advance(plan, locator.observe_listened(device, windows), pending)
                self._write_states(plan.id, tx, pending)
            self._apply(store, pending)
            return locator.late_listened - before

    def enter_region(self, store: str, device: str, at_ms: int) -> bool:
        """The phone says it entered the store's beacon region at ``at_ms``
        (iOS region monitoring wakes the app there): a store entry at the
        entrance, unless the radio already has the shopper in the store (then
        the gateways saw the entry first: False). A report older than the
        visit timeout says nothing about now and is ignored too. What the
        radio hears afterwards moves the stay on as any other placement."""
        with self._lock:
            plan = self._stores[store]
            entrances = plan.entrances
            clock = self._clock_ms.get(store, at_ms)
            if not entrances or self._states[store].get(device) is not None:
                return False
            if at_ms < clock - plan.store.visits.device_timeout_s * 1000:
                return False
            pending = _Pending()
            with self._repo.transaction() as tx:
                self._advance(plan, [ZonePlacement(device, entrances[0], at_ms, at_ms)], pending)
                self._write_states(plan.id, tx, pending)
            self._apply(store, pending)
            return True

    def leave_region(self, store: str, device: str, at_ms: int, grace_ms: int = 5000) -> bool:
        """The phone says it left the store's beacon region at ``at_ms``: its
        stay ends there, unless the radio heard it in the store since (then
        the report is stale and ignored: False)."""
        with self._lock:
            plan, locator = self._stores[store], self._locators[store]
            if isinstance(locator, Listens) and locator.heard_since(device, at_ms + grace_ms):
                return False
            at_ms = max(at_ms, self._clock_ms.get(store, at_ms))
            placements = (
                locator.leave(device)
                if isinstance(locator, Listens)
                else [ZonePlacement(device, None, at_ms, at_ms)]
            )
            pending = _Pending()
            with self._repo.transaction() as tx:
                self._advance(plan, placements, pending)
                self._write_states(plan.id, tx, pending)
            self._apply(store, pending)
            return True

    # -- internals -----------------------------------------------------------

    def _check(self, inbound: InboundMessage) -> tuple[StorePlan, GatewayMessage] | IngestOutcome:
        """The message and its store's plan, or its dead letter."""
        topic, payload, received_ms = inbound.topic, inbound.payload, inbound.received_ms
        try:
            message = parse_message(topic, payload)
        except ContractError as error:
            return self._dead_letter(topic, payload, received_ms, error.reason)
        plan = self._stores.get(message.store)
        if plan is None:
            known = ", ".join(sorted(self._stores)) or "none"
            return self._dead_letter(
                topic,
                payload,
                received_ms,
                f"unknown store {message.store!r} (this server knows: {known})",
            )
        if message.gateway not in plan.gateway_zones:
            return self._dead_letter(
                topic,
                payload,
                received_ms,
                f"gateway {message.gateway!r} is not in the plan of store {message.store!r}",
            )
        return plan, message

    def _process_alone(
        self, plan: StorePlan, message: GatewayMessage, inbound: InboundMessage
    ) -> IngestOutcome:
        """One message in its own transaction; a processing failure dead-letters it."""
        try:
            (outcome,) = self._process([(0, plan, message, inbound)])
            return outcome
        except _BatchFailed as failed:
            error = failed.__cause__ or failed
            log.error("processing %s seq %s failed", inbound.topic, message.seq, exc_info=error)
            return self._dead_letter(
                inbound.topic,
                inbound.payload,
                inbound.received_ms,
                f"processing failed: {type(error).__name__}: {error}",
            )

    def _dead_letter(
        self, topic: str, payload: bytes, received_ms: int, reason: str
    ) -> IngestOutcome:
        # Kept for diagnosis, not as a copy: capped, MAC-like strings masked,
        # in the table and in the log alike (domain.redact).
        topic = cap_text(topic, MAX_REASON_CHARS)
        reason = cap_text(reason, MAX_REASON_CHARS)
        kept = keep_payload(payload, self._dead_letter_bytes)
        log.warning("dead letter from %s: %s", topic, reason)
        self._repo.add_dead_letter(received_ms, topic, kept.payload, reason, kept.original_bytes)
        self.counters.dead_lettered += 1
        return IngestOutcome(Outcome.DEAD_LETTERED, reason, key=_claimed_key(topic, payload))

    def _process(
        self, batch: Sequence[tuple[int, StorePlan, GatewayMessage, InboundMessage]]
    ) -> list[IngestOutcome]:
        """Valid messages in one transaction; memory and listeners after commit.
        Raises ``_BatchFailed`` (rolled back) when working one out failed, and
        storage's own errors as they are."""
        pendings: dict[str, _Pending] = {}
        received: dict[str, int] = {}  # store -> newest BLE receipt of the batch
        accepted: list[tuple[ReceivedKey, GatewayMessage] | ReceivedKey] = []
        try:
            with self._repo.transaction() as tx:
                in_batch: set[ReceivedKey] = set()
                keys = [ReceivedKey(m.store, m.gateway, m.seq, m.epoch) for _, _, m, _ in batch]
                seen = tx.received_among(keys)  # one query for the batch, not one each
                for (_, plan, message, inbound), key in zip(batch, keys, strict=True):
                    if key in in_batch or key in seen:
                        tx.count_duplicate(key)
                        accepted.append(key)  # a duplicate: only its key
                        continue
                    in_batch.add(key)
                    items = (
                        len(message.items)
                        if isinstance(message, BleMessage | NfcMessage | RfidMessage)
                        else 0
                    )
                    pending = pendings.setdefault(plan.id, _Pending())
                    tx.record_received(
                        key, message.kind, message.sent_ms, inbound.received_ms, items
                    )
                    try:
                        self._store_facts(plan, message, inbound.received_ms, tx, pending)
                    except Exception as error:
                        if self._repo.is_transient(error):
                            raise
                        raise _BatchFailed(str(error)) from error
                    accepted.append((key, message))
                    if isinstance(message, BleMessage):
                        received[plan.id] = max(
                            received.get(plan.id, inbound.received_ms), inbound.received_ms
                        )
                for store, pending in pendings.items():
                    self._write_states(store, tx, pending)
        except _BatchFailed:
            raise
        except Exception as error:
            # The commit itself refused the batch (a constraint, say): not storage
            # being away, so the batch is handled one message at a time.
            if self._repo.is_transient(error):
                raise
            raise _BatchFailed(str(error)) from error
        finally:  # what the batch resolved is not kept past it (an erasure, a new phone)
            self._resolved.clear()
            self._consents.clear()
        for store, pending in pendings.items():
            self._apply(store, pending)
        self._received_ms.update(received)
        return [self._committed(done) for done in accepted]

    def _committed(self, done: tuple[ReceivedKey, GatewayMessage] | ReceivedKey) -> IngestOutcome:
        """After commit: a message's sequence bookkeeping and its outcome."""
        if isinstance(done, ReceivedKey):
            key = done
            self.counters.duplicates += 1
            return IngestOutcome(
                Outcome.DUPLICATE,
                f"seq {key.seq} of {key.gateway} (epoch {key.epoch}) seen before",
                key=key,
            )
        key, message = done
        epoch = (key.store, key.gateway, key.epoch)
        if isinstance(message, StatusMessage) and message.state == "online":
            self._wills[epoch] = message.seq + 1
        # Constant work whatever the numbers: the will is compared, never searched for.
        moved = sequence.step(self._highest.get(epoch), key.seq, self._wills.get(epoch))
        self._highest[epoch] = moved.highest
        if moved.jump:
            self.counters.seq_jumps += 1
            log.warning(
                "seq %d from %s/%s (epoch %d) jumps more than %d ahead: counted as one gap",
                key.seq,
                key.store,
                key.gateway,
                key.epoch,
                sequence.MAX_COUNTED_GAP,
            )
        elif moved.gap:
            log.warning("gap of %d before seq %d from %s/%s", moved.gap, key.seq, *epoch[:2])
        self.counters.gaps += moved.gap
        self.counters.accepted += 1
        return IngestOutcome(Outcome.ACCEPTED, gap=moved.gap, key=key)

    def _store_facts(
        self,
        plan: StorePlan,
        message: GatewayMessage,
        received_ms: int,
        tx: IngestTransaction,
        pending: _Pending,
    ) -> None:
        store, gateway, seq = message.store, message.gateway, message.seq
        tx.touch_gateway(store, gateway, received_ms)
        match message:
            case BleMessage():
                pending.heard_ms = max(i.window_start_ms + i.window_ms for i in message.items)
                # The store's own gateways hearing one another, and its fixed
                # beacons: radio for self-calibration and the beacon fleet,
                # never a shopper (no visit, no offer).
                heard, message = _without_anchors(plan, message)
                if heard:
                    pending.gateway_hearings.append((gateway, heard))
                tracked = self._identify(message, pending, gateway in plan.street_gateways)
                stored = [i for i in tracked if self._may_store_now(i.device)]
                if stored:
                    tx.add_ble_sightings(store, gateway, seq, stored)
                if tracked:
                    self._localize(plan, tracked, message.gateway, message.sent_ms, pending)
            case NfcMessage():
                tx.add_nfc_taps(store, gateway, seq, message.items)
                tx.add_stream_events(
                    [tap_event(store, gateway, i.tap_point, i.uid, i.at_ms) for i in message.items]
                )
            case RfidMessage():
                tx.add_rfid_reads(store, gateway, seq, message.items)
                arrived = [
                    i for i in message.items if isinstance(i, TryOn) and i.event == "arrived"
                ]
                pending.try_ons += arrived
                tx.add_stream_events(
                    [try_on_event(store, i.reader, i.gtin, i.epc, i.at_ms) for i in arrived]
                )
            case StatusMessage():
                tx.record_status(message, received_ms)
            case HealthMessage():
                tx.record_health(message, received_ms)

    def _state(self, store: str, device: str, pending: _Pending) -> DeviceVisitState | None:
        if device in pending.states:
            return pending.states[device]
        return self._states[store].get(device)

    def replace_store(self, plan: StorePlan, locator: Locator) -> None:
        """A running store's new floor plan or radio (``radio_reload``): the
        windows the old locator holds are decided first, then ``locator``
        takes over, and from the next message the new plan decides which
        gateways are accepted. Visit state is ingest's, not the locator's, so
        it stays, except stays in a zone the new plan removed: those close
        at the last time the device was seen there (one transaction with the
        flush)."""
        with self._lock:
            store = plan.id
            if store not in self._stores:
                raise KeyError(f"unknown store {store!r}")
            zones = {zone.id for zone in plan.zones}
            settings = plan.store.visits
            pending = _Pending()
            with self._repo.transaction() as tx:
                self._advance(self._stores[store], self._locators[store].flush(), pending)
                devices = set(self._states[store]) | set(pending.states)
                for device in sorted(devices):
                    before = self._state(store, device, pending)
                    state, events = without_zones(before, zones, settings)
                    if state is not before:
                        pending.record(device, state, events)
                self._write_states(store, tx, pending)
            self._apply(store, pending)
            self._stores[store] = plan
            self._locators[store] = locator

    def finish(self, store: str) -> None:
        """Place the devices of every window still waiting (end of a replay)."""
        with self._lock:
            plan = self._stores[store]
            pending = _Pending()
            with self._repo.transaction() as tx:
                placements = self._locators[store].flush()
                self._advance(plan, placements, pending)
                self._write_states(store, tx, pending)
            self._apply(store, pending)

    def warm(self, messages: Sequence[InboundMessage]) -> int:
        """A store taken over from another chain worker: the messages its last
        owner committed, replayed in stream order into the locators only, so
        the filter's belief per device and the windows waiting for gateways
        are where the last owner left them (the stays came from the
        database). Nothing is written, no listener is told, no counter moves:
        it is not new traffic. Stops at the first BLE message that is not
        stored yet (the consumer delivers it and what follows as new) and
        returns how many of ``messages`` it went through before it; anything
        else (status, taps, try-ons, a malformed or unknown message) is
        passed over, as it says nothing to a locator."""
        with self._lock:
            ble: list[tuple[int, StorePlan, BleMessage, ReceivedKey]] = []
            for index, inbound in enumerate(messages):
                try:
                    message = parse_message(inbound.topic, inbound.payload)
                except ContractError:
                    continue
                plan = self._stores.get(message.store)
                if (
                    not isinstance(message, BleMessage)
                    or plan is None
                    or message.gateway not in plan.gateway_zones
                ):
                    continue
                key = ReceivedKey(message.store, message.gateway, message.seq, message.epoch)
                ble.append((index, plan, message, key))
            if not ble:
                return len(messages)
            with self._repo.transaction() as tx:
                stored = tx.received_among([key for *_, key in ble])
            counted = replace(self.counters)
            try:
                for index, plan, message, key in ble:
                    if key not in stored:
                        return index
                    _heard, message = _without_anchors(plan, message)
                    tracked = self._identify(message, _Pending())
                    if tracked:
                        self._locators[plan.id].observe(message.gateway, _in_window_order(tracked))
            finally:
                for counter in fields(IngestCounters):
                    setattr(self.counters, counter.name, getattr(counted, counter.name))
                self._resolved.clear()  # as after a batch: nothing resolved is kept
                self._consents.clear()
            return len(messages)

    def _identify(
        self, message: BleMessage, pending: _Pending, street: bool = False
    ) -> list[SightingFields]:
        """The message's sightings with rotating ids resolved to registered
        devices; unknown ids and shoppers who allow nothing are left out.
        What a tap wants goes to ``pending.tapped`` either way. At a
        street-front gateway (``street``), every phone that is not a shopper
        whose location may be stored goes to ``pending.passers_by``: an
        unknown id as advertised, a registered shopper by their id (so a
        rotation within the hour is one phone); replays are nobody."""
        identity = self._identity
        if street and identity is not None and self._passers_by is not None and message.items:
            pending.street_heard_ms = max(
                pending.street_heard_ms or 0,
                max(i.window_start_ms + i.window_ms for i in message.items),
            )
        if identity is None:
            self._tap(message, [(i, i.device) for i in message.items], pending)
            return list(message.items)
        kept: list[SightingFields] = []
        resolved: list[tuple[BleSighting, str]] = []
        store = message.store
        cache = self._resolved
        counting = street and self._passers_by is not None
        for item in message.items:
            at_ms = item.window_start_ms + item.window_ms
            key = (item.device, at_ms, store)
            if key in cache:
                device = cache[key]
            else:
                device = cache[key] = identity.resolve(item.device, at_ms, store)
            if device is None:
                self.counters.unresolved_dropped += 1
                if counting and is_rotating(item.device):  # a phone, not a tag or a beacon
                    pending.passers_by.append((at_ms, item.device))
                continue
            if isinstance(device, Replay):
                self.counters.replayed_dropped += 1
                continue
            resolved.append((item, device))
            track, store_location = self._consent(device)
            if counting and not store_location and is_rotating(item.device):
                pending.passers_by.append((at_ms, device))
            if not track:
                self.counters.not_consented_dropped += 1
            elif device == item.device:
                kept.append(item)
            else:
                kept.append(
                    ResolvedSighting(
                        device,
                        item.window_start_ms,
                        item.window_ms,
                        item.count,
                        item.rssi_mean,
                        item.rssi_max,
                        item.tx_power,
                    )
                )
        self._tap(message, resolved, pending)
        return kept

    def _consent(self, device: str) -> tuple[bool, bool]:
        """(may track, may store location) of a resolved device, asked once a batch."""
        known = self._consents.get(device)
        if known is None:
            identity = self._identity
            assert identity is not None
            known = self._consents[device] = (
                identity.may_track(device),
                identity.may_store_location(device),
            )
        return known

    def _tap(
        self, message: BleMessage, resolved: list[tuple[BleSighting, str]], pending: _Pending
    ) -> None:
        if not self._taps:
            return
        store = message.store
        for item, device in resolved:
            if any(tap.wanted(store, device) for tap in self._taps):
                window = Sighting(device, item.rssi_mean, item.window_start_ms, item.window_ms)
                pending.tapped.append((message.gateway, window))

    def _may_store(self, device: str) -> bool:
        return self._identity is None or self._identity.may_store_location(device)

    def _may_store_now(self, device: str) -> bool:
        """``_may_store`` inside a transaction: asked once a batch per device."""
        return self._identity is None or self._consent(device)[1]

    def _localize(
        self,
        plan: StorePlan,
        items: list[SightingFields],
        gateway: str,
        sent_ms: int,
        pending: _Pending,
    ) -> None:
        placements = [
            replace(p, published_ms=sent_ms)
            for p in self._locators[plan.id].observe(gateway, _in_window_order(items))
        ]
        self._advance(plan, placements, pending)

    def _advance(self, plan: StorePlan, placements: list[ZonePlacement], pending: _Pending) -> None:
        """The stays ``placements`` move, and those that timed out, in ``pending``
        (which may hold earlier messages of the same batch: its clock and sweep
        come first)."""
        store, settings = plan.id, plan.store.visits
        clock = pending.clock_ms if pending.clock_ms is not None else self._clock_ms.get(store, 0)
        swept = pending.swept_ms if pending.swept_ms is not None else self._swept_ms.get(store, 0)
        for placement in placements:
            device, at_ms = placement.device, placement.at_ms
            state, events = advance(
                self._state(store, device, pending), placement.zone, at_ms, settings
            )
            pending.record(device, state, events)
            clock = max(clock, at_ms)
            pending.placements.append(placement)
        pending.clock_ms = clock
        if clock - swept >= SWEEP_EVERY_MS:
            pending.swept_ms = clock
            devices = set(self._states[store]) | set(pending.states)
            for device in sorted(devices):
                state, events = expire(self._state(store, device, pending), clock, settings)
                if events:
                    pending.record(device, state, events)

    def _write_states(self, store: str, tx: IngestTransaction, pending: _Pending) -> None:
        """The visit events and presence rows of the stays ``pending`` changed:
        once per store and transaction, after all its messages were worked out."""
        saved = self._presence_saved.setdefault(store, {})
        for device, state in pending.states.items():
            if not self._may_store(device):  # consent: location may not be written down
                continue
            events = pending.events.get(device, [])
            if events:
                tx.apply_visit_events(store, device, events)
                was_present = self._states[store].get(device) is not None
                tx.add_stream_events(
                    visit_events(store, device, events, was_present, state is not None)
                )
            if _presence_due(self._states[store].get(device), state, saved.get(device)):
                tx.save_presence(store, device, state)
                pending.presence_saved[device] = state.last_heard_ms if state else None

    def _apply(self, store: str, pending: _Pending) -> None:
        saved = self._presence_saved.setdefault(store, {})
        for device, at_ms in pending.presence_saved.items():
            if at_ms is None:
                saved.pop(device, None)
            else:
                saved[device] = at_ms
        states = self._states[store]
        for device, state in pending.states.items():
            if state is None:
                states.pop(device, None)
            else:
                states[device] = state
        if pending.clock_ms is not None:
            self._clock_ms[store] = pending.clock_ms
        if pending.swept_ms is not None:
            self._swept_ms[store] = pending.swept_ms
        # Committed: now others may act on them (and may write to the database).
        for placement in pending.placements:
            for listener in self._placement_listeners:
                listener(store, placement)
        if pending.tapped:
            by_gateway: dict[str, list[Sighting]] = {}
            for gateway, window in pending.tapped:
                by_gateway.setdefault(gateway, []).append(window)
            for gateway, windows in by_gateway.items():
                for tap in self._taps:
                    tap.on_windows(store, gateway, windows)
        if pending.heard_ms is not None:
            first, newest = self._heard_span.get(store, (pending.heard_ms, pending.heard_ms))
            self._heard_span[store] = (min(first, pending.heard_ms), max(newest, pending.heard_ms))
        for gateway, heard in pending.gateway_hearings:
            fixed = sum(1 for i in heard if i.device not in self._stores[store].gateway_beacons)
            self.counters.fixed_beacons += fixed
            self.counters.gateway_beacons += len(heard) - fixed
            for hear in self._gateway_hearing_listeners:
                hear(store, gateway, heard)
        if self._passers_by is not None and pending.street_heard_ms is not None:
            self._passers_by.hear(store, pending.passers_by, pending.street_heard_ms)
        for try_on in pending.try_ons:
            if try_on.gtin is not None:
                for tell in self._try_on_listeners:
                    tell(store, try_on.reader, try_on.gtin, try_on.at_ms)


def _without_anchors(plan: StorePlan, message: BleMessage) -> tuple[list[BleSighting], BleMessage]:
    """What a gateway heard of the store's own gateways' beacons and its fixed
    beacons (radio for self-calibration and the beacon fleet, never a
    shopper), and the message without them."""
    beacons, fixed = plan.gateway_beacons, plan.fixed_beacons
    heard = [i for i in message.items if i.device in beacons or i.device in fixed]
    if not heard:
        return heard, message
    shoppers = [i for i in message.items if i.device not in beacons and i.device not in fixed]
    return heard, message.model_copy(update={"items": shoppers})


def _in_window_order(items: Sequence[SightingFields]) -> list[Sighting]:
    """A message's sightings as the locator takes them, oldest window first."""
    ordered = sorted(items, key=lambda s: s.window_start_ms + s.window_ms)
    return [Sighting(i.device, i.rssi_mean, i.window_start_ms, i.window_ms) for i in ordered]


def _claimed_key(topic: str, payload: bytes) -> ReceivedKey | None:
    """The (store, gateway, epoch, seq) a refused message claims, when its topic
    names a gateway and its body holds an in-range epoch and seq: it is then
    committed (as a dead letter) and the gateway may forget it. Anything less
    certain gets no acknowledgement."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        return None
    try:
        address = parse_topic(topic)
        raw = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    if not isinstance(raw, dict):
        return None
    seq, epoch = raw.get("seq"), raw.get("epoch", 0)
    if type(seq) is not int or type(epoch) is not int:
        return None
    if not (0 <= seq <= MAX_SEQ and 0 <= epoch <= MAX_SEQ):
        return None
    return ReceivedKey(address.store, address.gateway, seq, epoch)


def _presence_due(
    before: DeviceVisitState | None, after: DeviceVisitState | None, saved_ms: int | None
) -> bool:
    """Write the presence row when the stay changed, or when it is stale."""
    if after is None:
        return before is not None or saved_ms is not None
    if before is None or saved_ms is None:
        return True
    moved = (before.zone, before.entered_ms, before.away_zone, before.away_since_ms) != (
        after.zone,
        after.entered_ms,
        after.away_zone,
        after.away_since_ms,
    )
    return moved or after.last_heard_ms - saved_ms >= PRESENCE_REFRESH_MS
