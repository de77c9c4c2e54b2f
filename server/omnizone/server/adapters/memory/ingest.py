"""Ingest's storage in memory: the ``Repository`` and ``LocationData`` ports.

Behaves as ``adapters.db.SqlRepository`` does (the contract tests in
tests/server/repositories hold both to it): a message's writes are queued and
applied together when its transaction ends, all or nothing; an accepted
(store, gateway, epoch, seq) can be stored once only; JSON bodies come back as
copies, as from a JSON column.
"""

import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from omnizone.contract import (
    HealthMessage,
    NfcTap,
    RfidItem,
    RfidRead,
    StatusMessage,
    TryOn,
)
from omnizone.server.adapters.memory._undo import Undo
from omnizone.server.domain import sequence
from omnizone.server.domain.visits import DeviceVisitState, VisitClosed, VisitEvent, VisitOpened
from omnizone.server.service.ports.ingest import (
    DeadLetter,
    GatewayRecord,
    IngestStats,
    IngestTransaction,
    LocationData,
    ReceivedKey,
    Repository,
    SightingFields,
    StoredGatewayConfig,
    VisitRecord,
    VisitStatus,
    ZoneSummary,
    location_export,
)


class DuplicateKey(ValueError):
    """A second message with an accepted (store, gateway, epoch, seq): the unique key refuses it."""


def _k(key: ReceivedKey) -> tuple[str, str, int, int]:
    return (key.store, key.gateway, key.epoch, key.seq)


def json_copy(value: Any) -> Any:
    """What a JSON column gives back: a fresh copy, tuples as lists, keys as text."""
    return json.loads(json.dumps(value))


@dataclass(slots=True)
class _Received:
    id: int
    kind: str
    sent_ms: int
    received_ms: int
    items: int
    duplicates: int


@dataclass(frozen=True, slots=True)
class Sighting:
    id: int
    store: str
    gateway: str
    device: str
    window_start_ms: int
    window_ms: int
    count: int
    rssi_mean: float
    rssi_max: float
    tx_power: int | None


@dataclass(frozen=True, slots=True)
class Tap:
    id: int
    store: str
    gateway: str
    tap_point: str
    uid: str
    at_ms: int
    ndef_uri: str | None
    tag_type: str | None


@dataclass(frozen=True, slots=True)
class Read:
    id: int
    store: str
    gateway: str
    item: RfidRead


@dataclass(frozen=True, slots=True)
class TryOnRecord:
    id: int
    store: str
    gateway: str
    reader: str
    event: str
    epc: str
    gtin: str | None
    serial: str | None
    at_ms: int


@dataclass(frozen=True, slots=True)
class Visit:
    id: int
    store: str
    device: str
    zone: str
    entered_ms: int
    left_ms: int | None
    dwell_s: float | None
    status: VisitStatus


@dataclass(frozen=True, slots=True)
class _GatewayStatus:
    state: str | None = None
    status_seq: int | None = None
    status_epoch: int = 0
    session: int | None = None
    version: str | None = None
    status_ms: int | None = None
    health_ms: int | None = None
    health: dict[str, Any] | None = None
    received_ms: int = 0


class _Tables:
    """Everything stored, guarded by one lock."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.next_id = 0
        # (store, gateway, epoch, seq) -> the accepted message
        self.received: dict[tuple[str, str, int, int], _Received] = {}
        self.dead_letters: list[DeadLetter] = []
        self.sightings: list[Sighting] = []
        self.taps: list[Tap] = []
        self.reads: list[Read] = []
        self.try_ons: list[TryOnRecord] = []
        self.gateways: dict[tuple[str, str], _GatewayStatus] = {}
        self.configs: dict[tuple[str, str], StoredGatewayConfig] = {}
        self.presence: dict[tuple[str, str], DeviceVisitState] = {}
        self.visits: list[Visit] = []

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id


class MemoryTransaction(IngestTransaction):
    """One message's writes, queued until the transaction ends (as the SQL one
    defers its writes to just before the commit)."""

    def __init__(self, tables: _Tables) -> None:
        self._t = tables
        self._writes: list[Any] = []
        self._message: tuple[str, str, int, int] | None = None

    def commit(self) -> None:
        """Under the tables' lock: every queued write, or none of them."""
        undo = Undo()
        try:
            for write in self._writes:
                write(undo)
        except BaseException:
            undo.rollback()
            raise
        finally:
            self._writes.clear()

    def received_before(self, key: ReceivedKey) -> bool:
        with self._t.lock:
            return _k(key) in self._t.received

    def received_among(self, keys: Sequence[ReceivedKey]) -> set[ReceivedKey]:
        with self._t.lock:
            return {key for key in keys if _k(key) in self._t.received}

    def count_duplicate(self, key: ReceivedKey) -> None:
        def write(undo: Undo) -> None:
            found = self._t.received.get(_k(key))
            if found is not None:
                done = replace(found, duplicates=found.duplicates + 1)
                undo.set(self._t.received, _k(key), done)

        self._writes.append(write)

    def record_received(
        self, key: ReceivedKey, kind: str, sent_ms: int, received_ms: int, items: int
    ) -> None:
        def write(undo: Undo) -> None:
            k = _k(key)
            if k in self._t.received:
                raise DuplicateKey(f"message {k} is stored already")
            row = _Received(self._t.new_id(), kind, sent_ms, received_ms, items, 0)
            undo.set(self._t.received, k, row)
            self._message = k

        self._writes.append(write)

    def _check_message(self) -> None:
        if self._message is None:
            raise RuntimeError("record_received must come before the message's items")

    def add_ble_sightings(
        self, store: str, gateway: str, seq: int, items: Sequence[SightingFields]
    ) -> None:
        def write(undo: Undo) -> None:
            self._check_message()
            for i in items:
                undo.append(
                    self._t.sightings,
                    Sighting(
                        self._t.new_id(),
                        store,
                        gateway,
                        i.device,
                        i.window_start_ms,
                        i.window_ms,
                        i.count,
                        i.rssi_mean,
                        i.rssi_max,
                        i.tx_power,
                    ),
                )

        self._writes.append(write)

    def add_nfc_taps(self, store: str, gateway: str, seq: int, items: Sequence[NfcTap]) -> None:
        def write(undo: Undo) -> None:
            self._check_message()
            for i in items:
                tap = Tap(
                    self._t.new_id(),
                    store,
                    gateway,
                    i.tap_point,
                    i.uid,
                    i.at_ms,
                    i.ndef_uri,
                    i.tag_type,
                )
                undo.append(self._t.taps, tap)

        self._writes.append(write)

    def add_rfid_reads(self, store: str, gateway: str, seq: int, items: Sequence[RfidItem]) -> None:
        def write(undo: Undo) -> None:
            self._check_message()
            for i in items:
                if isinstance(i, RfidRead):
                    undo.append(self._t.reads, Read(self._t.new_id(), store, gateway, i))
            for i in items:
                if isinstance(i, TryOn):
                    undo.append(
                        self._t.try_ons,
                        TryOnRecord(
                            self._t.new_id(),
                            store,
                            gateway,
                            i.reader,
                            i.event,
                            i.epc,
                            i.gtin,
                            i.serial,
                            i.at_ms,
                        ),
                    )

        self._writes.append(write)

    def _status(self, undo: Undo, store: str, gateway: str, received_ms: int) -> _GatewayStatus:
        row = replace(
            self._t.gateways.get((store, gateway), _GatewayStatus()), received_ms=received_ms
        )
        undo.set(self._t.gateways, (store, gateway), row)
        return row

    def touch_gateway(self, store: str, gateway: str, received_ms: int) -> None:
        self._writes.append(lambda undo: self._status(undo, store, gateway, received_ms))

    def record_status(self, message: StatusMessage, received_ms: int) -> None:
        def write(undo: Undo) -> None:
            row = self._status(undo, message.store, message.gateway, received_ms)
            # A retained birth replayed after a newer will must not win: newest sent wins.
            if row.status_ms is None or message.sent_ms >= row.status_ms:
                row = replace(
                    row,
                    state=message.state,
                    session=message.session,
                    status_seq=message.seq,
                    status_epoch=message.epoch,
                    version=message.version,
                    status_ms=message.sent_ms,
                )
                undo.set(self._t.gateways, (message.store, message.gateway), row)

        self._writes.append(write)

    def record_health(self, message: HealthMessage, received_ms: int) -> None:
        def write(undo: Undo) -> None:
            row = self._status(undo, message.store, message.gateway, received_ms)
            if row.health_ms is None or message.sent_ms >= row.health_ms:
                row = replace(
                    row,
                    health_ms=message.sent_ms,
                    health=json_copy(message.model_dump(mode="json")),
                    version=message.version,
                )
                undo.set(self._t.gateways, (message.store, message.gateway), row)

        self._writes.append(write)

    def apply_visit_events(self, store: str, device: str, events: Sequence[VisitEvent]) -> None:
        def write(undo: Undo) -> None:
            for ev in events:
                if isinstance(ev, VisitOpened):
                    visit = Visit(
                        self._t.new_id(), store, device, ev.zone, ev.entered_ms, None, None, "open"
                    )
                    undo.append(self._t.visits, visit)
                    continue
                assert isinstance(ev, VisitClosed)
                status: VisitStatus = "pass_by" if ev.pass_by else "visit"
                index = next(
                    (
                        n
                        for n, v in enumerate(self._t.visits)
                        if (v.store, v.device, v.status, v.zone, v.entered_ms)
                        == (store, device, "open", ev.zone, ev.entered_ms)
                    ),
                    None,
                )
                if index is None:
                    closed = Visit(
                        self._t.new_id(),
                        store,
                        device,
                        ev.zone,
                        ev.entered_ms,
                        ev.left_ms,
                        ev.dwell_s,
                        status,
                    )
                    undo.append(self._t.visits, closed)
                else:
                    visit = replace(
                        self._t.visits[index], left_ms=ev.left_ms, dwell_s=ev.dwell_s, status=status
                    )
                    undo.replace(self._t.visits, index, visit)

        self._writes.append(write)

    def save_presence(self, store: str, device: str, state: DeviceVisitState | None) -> None:
        def write(undo: Undo) -> None:
            if state is None:
                undo.delete(self._t.presence, (store, device))
            else:
                undo.set(self._t.presence, (store, device), state)

        self._writes.append(write)


class MemoryRepository(Repository, LocationData):
    """Ingest's tables as Python objects; safe to share between threads."""

    def __init__(self) -> None:
        self._t = _Tables()

    # -- the write side -----------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[MemoryTransaction]:
        tx = MemoryTransaction(self._t)
        yield tx
        with self._t.lock:
            tx.commit()

    def add_dead_letter(
        self,
        received_ms: int,
        topic: str,
        payload: bytes,
        reason: str,
        original_bytes: int | None = None,
    ) -> None:
        size = len(payload) if original_bytes is None else original_bytes
        with self._t.lock:
            self._t.dead_letters.append(
                DeadLetter(self._t.new_id(), received_ms, topic, bytes(payload), reason, size)
            )

    def prune_dead_letters(self, older_than_ms: int) -> int:
        with self._t.lock:
            before = len(self._t.dead_letters)
            self._t.dead_letters[:] = [
                d for d in self._t.dead_letters if d.received_ms >= older_than_ms
            ]
            return before - len(self._t.dead_letters)

    def is_transient(self, error: BaseException) -> bool:
        """Memory does not go away: every error is the message's."""
        return False

    def save_gateway_config(
        self, store: str, gateway: str, revision: int, body: dict[str, Any]
    ) -> None:
        with self._t.lock:
            self._t.configs[(store, gateway)] = StoredGatewayConfig(revision, json_copy(body))

    def erase_device(self, device: str) -> None:
        with self._t.lock:
            self._t.visits[:] = [v for v in self._t.visits if v.device != device]
            self._t.sightings[:] = [s for s in self._t.sightings if s.device != device]
            for key in [k for k in self._t.presence if k[1] == device]:
                del self._t.presence[key]

    def prune_sightings(self, older_than_ms: int, batch: int = 20_000) -> int:
        with self._t.lock:
            before = len(self._t.sightings)
            self._t.sightings[:] = [
                s for s in self._t.sightings if s.window_start_ms >= older_than_ms
            ]
            return before - len(self._t.sightings)

    def scrub_deleted(self) -> bool:
        """Nothing is kept in files: deleted rows are gone with their objects."""
        return True

    def close(self) -> None:
        """Nothing to release; here so it stands where ``SqlRepository`` does."""

    # -- the read side ------------------------------------------------------------

    def load_presence(self) -> dict[tuple[str, str], DeviceVisitState]:
        with self._t.lock:
            return dict(self._t.presence)

    def highest_seqs(self) -> dict[tuple[str, str], int]:
        highest: dict[tuple[str, str], int] = {}
        with self._t.lock:
            for store, gateway, _epoch, seq in self._t.received:
                highest[(store, gateway)] = max(seq, highest.get((store, gateway), seq))
        return highest

    def sequence_heads(self) -> dict[tuple[str, str, int], int]:
        heads: dict[tuple[str, str, int], int] = {}
        with self._t.lock:
            for store, gateway, epoch, seq in self._t.received:
                key = (store, gateway, epoch)
                heads[key] = max(seq, heads.get(key, seq))
        return heads

    def presence_by_zone(self, store: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        with self._t.lock:
            for (st, _device), state in self._t.presence.items():
                if st == store:
                    counts[state.zone] = counts.get(state.zone, 0) + 1
        return counts

    def latest_event_ms(self, store: str) -> int | None:
        with self._t.lock:
            heard = [s.last_heard_ms for (st, _d), s in self._t.presence.items() if st == store]
            if not heard:
                heard = [r.sent_ms for (st, *_key), r in self._t.received.items() if st == store]
        return max(heard) if heard else None

    def device_presence(self, device: str) -> list[dict[str, Any]]:
        with self._t.lock:
            stays = sorted((st, s) for (st, d), s in self._t.presence.items() if d == device)
        return [
            {
                "store": store,
                "zone": s.zone,
                "entered_ms": s.entered_ms,
                "last_in_zone_ms": s.last_in_zone_ms,
                "last_heard_ms": s.last_heard_ms,
                "away_zone": s.away_zone,
                "away_since_ms": s.away_since_ms,
            }
            for store, s in stays
        ]

    def device_history(self, device: str) -> dict[str, Any]:
        with self._t.lock:
            visits = sorted(
                (v for v in self._t.visits if v.device == device), key=lambda v: v.entered_ms
            )
            sightings = sorted(
                (s for s in self._t.sightings if s.device == device),
                key=lambda s: s.window_start_ms,
            )
        return location_export(visits, sightings)

    def recent_visits(self, store: str, limit: int, zone: str | None) -> list[VisitRecord]:
        with self._t.lock:
            found = [
                v for v in self._t.visits if v.store == store and (zone is None or v.zone == zone)
            ]
        found.sort(key=lambda v: (v.entered_ms, v.id), reverse=True)
        return [
            VisitRecord(v.device, v.zone, v.entered_ms, v.left_ms, v.dwell_s, v.status)
            for v in found[: max(limit, 0)]
        ]

    def zone_summaries(self, store: str) -> list[ZoneSummary]:
        by_zone: dict[str, list[Visit]] = {}
        with self._t.lock:
            for v in self._t.visits:
                if v.store == store:
                    by_zone.setdefault(v.zone, []).append(v)
        summaries = []
        for zone, visits in by_zone.items():
            dwells = [v.dwell_s for v in visits if v.status == "visit" and v.dwell_s is not None]
            summaries.append(
                ZoneSummary(
                    zone=zone,
                    visits=sum(v.status == "visit" for v in visits),
                    pass_bys=sum(v.status == "pass_by" for v in visits),
                    open_visits=sum(v.status == "open" for v in visits),
                    mean_dwell_s=sum(dwells) / len(dwells) if dwells else None,
                )
            )
        return summaries

    def ingest_stats(self) -> IngestStats:
        with self._t.lock:
            per_epoch: dict[tuple[str, str, int], list[tuple[int, _Received]]] = {}
            for (store, gateway, epoch, seq), row in self._t.received.items():
                per_epoch.setdefault((store, gateway, epoch), []).append((seq, row))
            wills = self._wills_pending()
            dead = len(self._t.dead_letters)
        ingested = duplicates = gaps = 0
        for key, rows in per_epoch.items():
            ingested += len(rows)
            duplicates += sum(row.duplicates for _seq, row in rows)
            # Reserved for the live session's last will: not lost.
            gaps += sequence.missing(sorted(seq for seq, _row in rows), wills.get(key))
        return IngestStats(ingested, duplicates, dead, gaps)

    def _wills_pending(self) -> dict[tuple[str, str, int], int]:
        """Gateways whose latest status is a birth: its seq + 1 is their will's, not a gap."""
        pending = {}
        for (store, gateway), row in self._t.gateways.items():
            if row.state != "online" or row.status_seq is None:
                continue
            will = row.status_seq + 1
            if (store, gateway, row.status_epoch, will) not in self._t.received:
                pending[(store, gateway, row.status_epoch)] = will
        return pending

    def activity_counts(self, store: str) -> dict[str, int]:
        with self._t.lock:
            taps = sum(t.store == store for t in self._t.taps)
            events = [t.event for t in self._t.try_ons if t.store == store]
        return {
            "nfc_taps": taps,
            "try_ons_arrived": events.count("arrived"),
            "try_ons_departed": events.count("departed"),
        }

    def gateway_records(self, store: str) -> list[GatewayRecord]:
        with self._t.lock:
            return [
                GatewayRecord(
                    st,
                    gateway,
                    row.state,
                    row.session,
                    row.version,
                    row.received_ms,
                    json_copy(row.health) if row.health is not None else None,
                )
                for (st, gateway), row in self._t.gateways.items()
                if st == store
            ]

    def gateway_config(self, store: str, gateway: str) -> StoredGatewayConfig | None:
        with self._t.lock:
            found = self._t.configs.get((store, gateway))
        return None if found is None else StoredGatewayConfig(found.revision, json_copy(found.body))

    def received_keys(self, store: str) -> list[ReceivedKey]:
        with self._t.lock:
            keys = sorted((g, e, s) for (st, g, e, s) in self._t.received if st == store)
        return [ReceivedKey(store, gateway, seq, epoch) for gateway, epoch, seq in keys]

    def dead_letters(self, limit: int) -> list[DeadLetter]:
        with self._t.lock:
            return sorted(self._t.dead_letters, key=lambda d: d.id, reverse=True)[: max(limit, 0)]

    # -- for the in-memory analytics reads -----------------------------------------

    def visits_of(self, store: str) -> list[Visit]:
        with self._t.lock:
            return [v for v in self._t.visits if v.store == store]

    def presence_of(self, store: str) -> dict[str, DeviceVisitState]:
        with self._t.lock:
            return {d: s for (st, d), s in self._t.presence.items() if st == store}

    def taps_of(self, store: str) -> list[Tap]:
        with self._t.lock:
            return [t for t in self._t.taps if t.store == store]

    def try_ons_of(self, store: str) -> list[TryOnRecord]:
        with self._t.lock:
            return [t for t in self._t.try_ons if t.store == store]
