"""Ingest's storage: what one gateway message writes, and what the API reads back.

``Repository`` is the whole port (``adapters.db.SqlRepository``,
``adapters.memory.MemoryRepository``); it is made of a write half
(``IngestWrites``: one transaction per message) and a read half
(``IngestReads``: what the API and start-up read), the same split as the SQL
adapter's modules. ``LocationData`` is what a shopper's export, erasure and
the retention limit need of the same rows.
"""

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from omnizone.contract import (
    BleSighting,
    HealthMessage,
    NfcTap,
    RfidItem,
    StatusMessage,
)
from omnizone.server.domain.visits import DeviceVisitState, VisitEvent

VisitStatus = Literal["open", "visit", "pass_by"]


@dataclass(frozen=True, slots=True)
class ReceivedKey:
    store: str
    gateway: str
    seq: int


@dataclass(frozen=True, slots=True)
class VisitRecord:
    device: str
    zone: str
    entered_ms: int
    left_ms: int | None
    dwell_s: float | None
    status: VisitStatus


@dataclass(frozen=True, slots=True)
class ZoneSummary:
    zone: str
    visits: int
    pass_bys: int
    open_visits: int
    mean_dwell_s: float | None


@dataclass(frozen=True, slots=True)
class IngestStats:
    ingested: int
    duplicates: int
    dead_lettered: int
    gaps: int


@dataclass(frozen=True, slots=True)
class GatewayRecord:
    """What the server last heard from a gateway: status, health, when."""

    store: str
    gateway: str
    state: str | None
    session: int | None
    version: str | None
    last_seen_ms: int
    health: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class StoredGatewayConfig:
    revision: int
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A rejected message: its payload capped and MAC-like strings masked
    (``domain.redact``), ``original_bytes`` the size it arrived with."""

    id: int
    received_ms: int
    topic: str
    payload: bytes
    reason: str
    original_bytes: int = -1

    def __post_init__(self) -> None:
        if self.original_bytes < 0:  # rows from before the size was kept
            object.__setattr__(self, "original_bytes", len(self.payload))


class IngestTransaction(Protocol):
    """Everything one message changes; committed together or not at all."""

    def received_before(self, key: ReceivedKey) -> bool: ...

    def count_duplicate(self, key: ReceivedKey) -> None: ...

    def record_received(
        self, key: ReceivedKey, kind: str, sent_ms: int, received_ms: int, items: int
    ) -> None: ...

    def add_ble_sightings(
        self, store: str, gateway: str, seq: int, items: Sequence[BleSighting]
    ) -> None: ...

    def add_nfc_taps(self, store: str, gateway: str, seq: int, items: Sequence[NfcTap]) -> None: ...

    def add_rfid_reads(
        self, store: str, gateway: str, seq: int, items: Sequence[RfidItem]
    ) -> None: ...

    def record_status(self, message: StatusMessage, received_ms: int) -> None: ...

    def record_health(self, message: HealthMessage, received_ms: int) -> None: ...

    def touch_gateway(self, store: str, gateway: str, received_ms: int) -> None: ...

    def apply_visit_events(self, store: str, device: str, events: Sequence[VisitEvent]) -> None: ...

    def save_presence(self, store: str, device: str, state: DeviceVisitState | None) -> None: ...


class IngestWrites(Protocol):
    """The write side: one transaction per message, dead letters, issued configs."""

    def transaction(self) -> AbstractContextManager[IngestTransaction]: ...

    def add_dead_letter(
        self,
        received_ms: int,
        topic: str,
        payload: bytes,
        reason: str,
        original_bytes: int | None = None,
    ) -> None:
        """Store what the caller kept of a rejected message (``original_bytes``:
        its size on arrival; None: ``len(payload)``)."""
        ...

    def prune_dead_letters(self, older_than_ms: int) -> int:
        """Delete dead letters received before ``older_than_ms``; how many."""
        ...

    def is_transient(self, error: BaseException) -> bool:
        """True when the storage itself failed (retry later), not the message."""
        ...

    def save_gateway_config(
        self, store: str, gateway: str, revision: int, body: dict[str, Any]
    ) -> None: ...


class IngestReads(Protocol):
    """The read side: state restored at start-up and what the API shows."""

    # -- state restored at start-up ---------------------------------------
    def load_presence(self) -> dict[tuple[str, str], DeviceVisitState]: ...

    def highest_seqs(self) -> dict[tuple[str, str], int]: ...

    # -- reads for the API --------------------------------------------------
    def presence_by_zone(self, store: str) -> dict[str, int]: ...

    def latest_event_ms(self, store: str) -> int | None: ...

    def recent_visits(self, store: str, limit: int, zone: str | None) -> list[VisitRecord]: ...

    def zone_summaries(self, store: str) -> list[ZoneSummary]: ...

    def ingest_stats(self) -> IngestStats: ...

    def activity_counts(self, store: str) -> dict[str, int]:
        """NFC taps and fitting-room try-ons stored for a store."""
        ...

    def gateway_records(self, store: str) -> list[GatewayRecord]: ...

    def gateway_config(self, store: str, gateway: str) -> StoredGatewayConfig | None: ...

    def received_keys(self, store: str) -> list[ReceivedKey]:
        """Every accepted (gateway, seq) of a store, for exactly-once checks."""
        ...

    def dead_letters(self, limit: int) -> list[DeadLetter]: ...


class Repository(IngestWrites, IngestReads, Protocol):
    """Everything ingest, the store queries and gateway admin use."""


class LocationData(Protocol):
    """Where one device was: a shopper's export and erasure, and the retention
    limit on raw sightings (``service.retention``)."""

    def device_history(self, device: str) -> dict[str, Any]:
        """Every visit (by entry) and sighting (by window) of the device, any store."""
        ...

    def erase_device(self, device: str) -> None:
        """Delete the device's visits, sightings and presence, in every store."""
        ...

    def prune_sightings(self, older_than_ms: int, batch: int = 20_000) -> int:
        """Delete sightings whose window started before ``older_than_ms``; how many."""
        ...
