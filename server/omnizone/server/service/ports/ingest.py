"""Ingest's storage: what one gateway message writes, and what the API reads back.

``Repository`` is the whole port (``adapters.db.SqlRepository``,
``adapters.memory.MemoryRepository``); it is made of a write half
(``IngestWrites``: one transaction per message) and a read half
(``IngestReads``: what the API and start-up read), the same split as the SQL
adapter's modules. ``LocationData`` is what a shopper's export, erasure and
the retention limit need of the same rows.
"""

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from omnizone.contract import (
    HealthMessage,
    NfcTap,
    RfidItem,
    StatusMessage,
)
from omnizone.server.domain.analytics.event_stream import OutboxEvent
from omnizone.server.domain.visits import DeviceVisitState, VisitEvent

VisitStatus = Literal["open", "visit", "pass_by"]


@dataclass(frozen=True, slots=True)
class ReceivedKey:
    """What identifies a gateway message: (store, gateway, outbox epoch, seq).
    A new outbox numbers from 0 again under a new epoch; messages of gateways
    that predate epochs are in epoch 0."""

    store: str
    gateway: str
    seq: int
    epoch: int = 0


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


class _WindowFields(Protocol):
    """One BLE window's radio, whoever's it is."""

    @property
    def window_start_ms(self) -> int: ...
    @property
    def window_ms(self) -> int: ...
    @property
    def count(self) -> int: ...
    @property
    def rssi_mean(self) -> float: ...
    @property
    def rssi_max(self) -> float: ...
    @property
    def tx_power(self) -> int | None: ...


class SightingFields(_WindowFields, Protocol):
    """What is stored of one BLE sighting: a contract ``BleSighting`` as it
    came, or ingest's copy of one whose rotating id was resolved to its
    shopper (``service.ingest.ResolvedSighting``)."""

    @property
    def device(self) -> str: ...


class IngestTransaction(Protocol):
    """Everything one message changes; committed together or not at all."""

    def received_before(self, key: ReceivedKey) -> bool: ...

    def received_among(self, keys: Sequence[ReceivedKey]) -> set[ReceivedKey]:
        """Which of ``keys`` are stored already (one look-up for a batch)."""
        ...

    def count_duplicate(self, key: ReceivedKey) -> None: ...

    def record_received(
        self, key: ReceivedKey, kind: str, sent_ms: int, received_ms: int, items: int
    ) -> None: ...

    def add_ble_sightings(
        self, store: str, gateway: str, seq: int, items: Sequence[SightingFields]
    ) -> None: ...

    def add_nfc_taps(self, store: str, gateway: str, seq: int, items: Sequence[NfcTap]) -> None: ...

    def add_stream_events(self, events: "Sequence[OutboxEvent]") -> None:
        """The event stream's rows of what this transaction stores (issue 18
        point 8, ``event_outbox``); a storage without an outbox keeps none."""
        return None

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

    def highest_seqs(self) -> dict[tuple[str, str], int]:
        """The highest accepted seq per (store, gateway), whatever its epoch."""
        ...

    def sequence_heads(self) -> dict[tuple[str, str, int], int]:
        """The highest accepted seq per (store, gateway, epoch): where gap
        detection resumes after a restart."""
        ...

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
        """Every accepted (gateway, epoch, seq) of a store, by gateway, epoch and
        seq, for exactly-once checks."""
        ...

    def dead_letters(self, limit: int) -> list[DeadLetter]: ...


class Repository(IngestWrites, IngestReads, Protocol):
    """Everything ingest, the store queries and gateway admin use."""


class _StoredVisit(Protocol):
    @property
    def store(self) -> str: ...
    @property
    def zone(self) -> str: ...
    @property
    def entered_ms(self) -> int: ...
    @property
    def left_ms(self) -> int | None: ...
    @property
    def dwell_s(self) -> float | None: ...
    @property
    def status(self) -> str: ...


class _StoredSighting(_WindowFields, Protocol):
    @property
    def store(self) -> str: ...
    @property
    def gateway(self) -> str: ...


def location_export(
    visits: Iterable[_StoredVisit], sightings: Iterable[_StoredSighting]
) -> dict[str, Any]:
    """The ``location`` section of a shopper's export, one shape whichever
    storage holds the rows (visits by entry, sightings by window)."""
    return {
        "visits": [
            {
                "store": v.store,
                "zone": v.zone,
                "entered_ms": v.entered_ms,
                "left_ms": v.left_ms,
                "dwell_s": v.dwell_s,
                "status": v.status,
            }
            for v in visits
        ],
        "sightings": [
            {
                "store": s.store,
                "gateway": s.gateway,
                "window_start_ms": s.window_start_ms,
                "window_ms": s.window_ms,
                "count": s.count,
                "rssi_mean": s.rssi_mean,
                "rssi_max": s.rssi_max,
                "tx_power": s.tx_power,
            }
            for s in sightings
        ],
    }


class LocationData(Protocol):
    """Where one device was: a shopper's export and erasure, and the retention
    limit on raw sightings (``service.retention``)."""

    def device_history(self, device: str) -> dict[str, Any]:
        """Every visit (by entry) and sighting (by window) of the device, any store."""
        ...

    def device_presence(self, device: str) -> list[dict[str, Any]]:
        """The device's open stays (what a restart resumes from), one per store."""
        ...

    def erase_device(self, device: str) -> None:
        """Delete the device's visits, sightings and presence, in every store."""
        ...

    def prune_sightings(self, older_than_ms: int, batch: int = 20_000) -> int:
        """Delete sightings whose window started before ``older_than_ms``; how many."""
        ...

    def scrub_deleted(self) -> bool:
        """After an erasure: leave no copy of deleted rows in the storage's own
        files (SQLite: checkpoint and truncate the write-ahead log). True when
        done; False when it could not finish now (the next call tries again)."""
        ...
