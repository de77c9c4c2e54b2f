"""SQLAlchemy storage, the write side: the tables, the engine, and what a
batch of gateway messages writes (``IngestTransaction``) with the few other writes
ingest and gateway admin make.

SQLite (the default, in WAL mode with foreign keys on) and PostgreSQL
(``postgresql+psycopg://``) are both supported through the same ORM models.
Every part's adapter declares its tables on this ``Base``. The reads live in
``db_read``; ``db.SqlRepository`` is both halves over one engine.
"""

import functools
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, Concatenate, ParamSpec, Self

from sqlalchemy import (
    JSON,
    BigInteger,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    and_,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql as postgresql_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from omnizone.broker.secrets import private_file
from omnizone.contract import (
    HealthMessage,
    NfcTap,
    RfidItem,
    RfidRead,
    StatusMessage,
    TryOn,
)
from omnizone.contract.timefmt import wall_clock_ms
from omnizone.server.adapters import sighting_partitions
from omnizone.server.adapters.sighting_partitions import day_name
from omnizone.server.domain.analytics.event_stream import OutboxEvent
from omnizone.server.domain.visits import DeviceVisitState, VisitClosed, VisitEvent, VisitOpened
from omnizone.server.service.ports.ingest import (
    IngestTransaction,
    IngestWrites,
    ReceivedKey,
    SightingFields,
    VisitStatus,
)

DEFAULT_DATABASE_URL = "sqlite:///omnizone.db"

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets BIGINT.
Id = BigInteger().with_variant(Integer(), "sqlite")
P = ParamSpec("P")
log = logging.getLogger(__name__)
Ident = String(63)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {int: BigInteger(), str: Text()}


class ReceivedMessage(Base):
    """One accepted gateway message; the unique key (store, gateway, outbox
    epoch, seq) is the de-duplication (migration 0005)."""

    __tablename__ = "received_messages"
    __table_args__ = (
        UniqueConstraint("store", "gateway", "epoch", "seq", name="uq_received_epoch_seq"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    store: Mapped[str] = mapped_column(Ident)
    gateway: Mapped[str] = mapped_column(Ident)
    epoch: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    seq: Mapped[int]
    kind: Mapped[str] = mapped_column(String(16))
    sent_ms: Mapped[int]
    received_ms: Mapped[int]
    items: Mapped[int] = mapped_column(Integer, default=0)
    duplicates: Mapped[int] = mapped_column(Integer, default=0)


class DeadLetterRow(Base):
    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    received_ms: Mapped[int]
    topic: Mapped[str]
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    reason: Mapped[str]
    # The size it arrived with; the payload is capped (migration 0005; None: older rows).
    original_bytes: Mapped[int | None] = mapped_column(Integer, nullable=True)


class BleSightingRow(Base):
    __tablename__ = "ble_sightings"
    # Only a time index, for retention (migration 0004): its inserts all land
    # at the end. A device index made of hundreds of rows per message, each
    # for another device, was the dearest part of ingest (migration 0003).
    __table_args__ = (Index("ix_ble_window_start", "window_start_ms"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("received_messages.id", ondelete="CASCADE"))
    store: Mapped[str] = mapped_column(Ident)
    gateway: Mapped[str] = mapped_column(Ident)
    device: Mapped[str] = mapped_column(String(128))
    window_start_ms: Mapped[int]
    window_ms: Mapped[int] = mapped_column(Integer)
    count: Mapped[int] = mapped_column(Integer)
    rssi_mean: Mapped[float] = mapped_column(Float)
    rssi_max: Mapped[float] = mapped_column(Float)
    tx_power: Mapped[int | None] = mapped_column(Integer)


#: The columns ``add_ble_sightings`` writes, in order (``id`` is the database's).
_SIGHTING_COLUMNS = (
    "message_id",
    "store",
    "gateway",
    "device",
    "window_start_ms",
    "window_ms",
    "count",
    "rssi_mean",
    "rssi_max",
    "tx_power",
)


class NfcTapRow(Base):
    __tablename__ = "nfc_taps"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("received_messages.id", ondelete="CASCADE"))
    store: Mapped[str] = mapped_column(Ident)
    gateway: Mapped[str] = mapped_column(Ident)
    tap_point: Mapped[str] = mapped_column(Ident)
    uid: Mapped[str] = mapped_column(String(20))
    at_ms: Mapped[int]
    ndef_uri: Mapped[str | None]
    tag_type: Mapped[str | None] = mapped_column(String(40))


class RfidReadRow(Base):
    __tablename__ = "rfid_reads"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("received_messages.id", ondelete="CASCADE"))
    store: Mapped[str] = mapped_column(Ident)
    gateway: Mapped[str] = mapped_column(Ident)
    reader: Mapped[str] = mapped_column(Ident)
    antenna: Mapped[int] = mapped_column(Integer)
    epc: Mapped[str] = mapped_column(String(64))
    rssi: Mapped[float] = mapped_column(Float)
    at_ms: Mapped[int]
    count: Mapped[int] = mapped_column(Integer)
    gtin: Mapped[str | None] = mapped_column(String(14))
    serial: Mapped[str | None] = mapped_column(String(20))


class TryOnRow(Base):
    """An item brought into or taken out of a fitting room."""

    __tablename__ = "try_ons"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("received_messages.id", ondelete="CASCADE"))
    store: Mapped[str] = mapped_column(Ident)
    gateway: Mapped[str] = mapped_column(Ident)
    reader: Mapped[str] = mapped_column(Ident)
    event: Mapped[str] = mapped_column(String(16))
    epc: Mapped[str] = mapped_column(String(64))
    gtin: Mapped[str | None] = mapped_column(String(14))
    serial: Mapped[str | None] = mapped_column(String(20))
    at_ms: Mapped[int]


class GatewayStatusRow(Base):
    """Latest birth/will and latest health report of each gateway."""

    __tablename__ = "gateway_status"

    store: Mapped[str] = mapped_column(Ident, primary_key=True)
    gateway: Mapped[str] = mapped_column(Ident, primary_key=True)
    state: Mapped[str | None] = mapped_column(String(16))
    status_seq: Mapped[int | None] = mapped_column(BigInteger)
    status_epoch: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    session: Mapped[int | None]
    version: Mapped[str | None] = mapped_column(String(64))
    status_ms: Mapped[int | None]
    health_ms: Mapped[int | None]
    health: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    received_ms: Mapped[int]


class GatewayConfigRow(Base):
    """The config the server last issued to a gateway (published retained)."""

    __tablename__ = "gateway_configs"

    store: Mapped[str] = mapped_column(Ident, primary_key=True)
    gateway: Mapped[str] = mapped_column(Ident, primary_key=True)
    revision: Mapped[int]
    body: Mapped[dict[str, Any]] = mapped_column(JSON)


class DevicePresenceRow(Base):
    """The open stay of each device: the visit state machine, persisted."""

    __tablename__ = "device_presence"
    __table_args__ = (Index("ix_presence_store_zone", "store", "zone"),)

    store: Mapped[str] = mapped_column(Ident, primary_key=True)
    device: Mapped[str] = mapped_column(String(128), primary_key=True)
    zone: Mapped[str] = mapped_column(Ident)
    entered_ms: Mapped[int]
    last_in_zone_ms: Mapped[int]
    last_heard_ms: Mapped[int]
    away_zone: Mapped[str | None] = mapped_column(Ident)
    away_since_ms: Mapped[int | None]


class VisitRow(Base):
    __tablename__ = "visits"
    __table_args__ = (
        Index("ix_visits_device_status", "store", "device", "status"),
        Index("ix_visits_zone_status", "store", "zone", "status"),
        Index("ix_visits_entered", "store", "entered_ms"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    store: Mapped[str] = mapped_column(Ident)
    device: Mapped[str] = mapped_column(String(128))
    zone: Mapped[str] = mapped_column(Ident)
    entered_ms: Mapped[int]
    left_ms: Mapped[int | None]
    dwell_s: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(8))


# -- engine -------------------------------------------------------------------


def make_engine(url: str = DEFAULT_DATABASE_URL) -> Engine:
    """An engine for SQLite (WAL, foreign keys, busy timeout) or PostgreSQL."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        # It holds every shopper's EID key: owner only. SQLite creates the
        # -wal and -shm files with the database file's mode.
        database = Path(parsed.database)
        private_file(database)
        for extra in ("-wal", "-shm", "-journal"):
            sidecar = database.with_name(database.name + extra)
            if sidecar.exists():
                sidecar.chmod(0o600)
    engine = create_engine(
        url,
        connect_args={
            "check_same_thread": False,
            "timeout": SQLITE_BUSY_TIMEOUT_S,
            "factory": _serialized_writers(parsed.database or ":memory:"),
        },
    )

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        # Deleted rows are overwritten with zeros, not left in free pages
        # (a shopper's erasure; docs/identity.md, "What erasure leaves behind").
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.close()

    return engine


#: How long a writer waits for SQLite's write lock (and for this process's
#: writer lock in front of it) before giving up.
SQLITE_BUSY_TIMEOUT_S = 30.0
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")
_WRITER_LOCKS: dict[str, threading.Lock] = {}
_WRITER_LOCKS_GUARD = threading.Lock()


def _serialized_writers(database: str) -> type[sqlite3.Connection]:
    """A SQLite connection class whose writers queue, within this process, on
    one lock per database file from their first write to their commit or
    rollback. SQLite lets one writer in at a time and makes the others poll
    (its busy handler sleeps 1, 2, 5 ... up to 100 ms between tries), so a
    writer could sleep for most of 100 ms after the lock was free: with the
    offer engine, the phones' acks and ingest all writing, a window's commit
    waited that way. A thread waiting on the lock here is woken as soon as
    it is released. Other processes still meet SQLite's own lock and busy
    timeout, as before; a writer that waited ``SQLITE_BUSY_TIMEOUT_S`` here
    goes on to SQLite's."""
    key = database if database == ":memory:" else str(Path(database).resolve())
    with _WRITER_LOCKS_GUARD:
        lock = _WRITER_LOCKS.setdefault(key, threading.Lock())

    class SerializedWriters(sqlite3.Connection):
        _holds = False

        def _before(self, statement: str) -> None:
            if not self._holds and statement.lstrip()[:7].upper().startswith(_WRITES):
                self._holds = lock.acquire(timeout=SQLITE_BUSY_TIMEOUT_S)

        def _after(self) -> None:
            if self._holds and not self.in_transaction:
                self._holds = False
                lock.release()

        def cursor(self, factory: Any = None) -> sqlite3.Cursor:  # type: ignore[override]
            return super().cursor(factory or _WriterCursor)

        def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
            return self.cursor().execute(sql, parameters)

        def executemany(self, sql: str, parameters: Any, /) -> sqlite3.Cursor:
            return self.cursor().executemany(sql, parameters)

        def commit(self) -> None:
            try:
                super().commit()
            finally:
                self._after()

        def rollback(self) -> None:
            try:
                super().rollback()
            finally:
                self._after()

        def close(self) -> None:
            try:
                super().close()
            finally:
                if self._holds:
                    self._holds = False
                    lock.release()

    return SerializedWriters


class _WriterCursor(sqlite3.Cursor):
    """Tells its ``SerializedWriters`` connection of each statement."""

    def execute(self, sql: str, parameters: Any = (), /) -> Self:
        connection: Any = self.connection
        connection._before(sql)
        try:
            return super().execute(sql, parameters)
        finally:
            connection._after()  # a write outside a transaction is done

    def executemany(self, sql: str, parameters: Any, /) -> Self:
        connection: Any = self.connection
        connection._before(sql)
        try:
            return super().executemany(sql, parameters)
        finally:
            connection._after()


def in_chunks(ids: Sequence[str], size: int = 500) -> Iterator[Sequence[str]]:
    """Slices for ``IN (...)`` lists, well under every database's parameter limit."""
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def create_schema(engine: Engine) -> None:
    Base.metadata.create_all(engine)


# -- the write side -----------------------------------------------------------


def _deferred(
    write: Callable[Concatenate["_SqlTransaction", P], None],
) -> Callable[Concatenate["_SqlTransaction", P], None]:
    """Queue the write until the message has been worked out, then run all
    writes in order just before the commit: SQLite's single write lock is then
    held for the writes alone, not for the localizer's arithmetic in between,
    and the offer engine and the phones' acks are not kept waiting."""

    def later(tx: "_SqlTransaction", /, *args: P.args, **kwargs: P.kwargs) -> None:
        tx._writes.append(functools.partial(write, tx, *args, **kwargs))

    return later


def outbox_values(events: Iterable[OutboxEvent], stored_ms: int) -> list[dict[str, Any]]:
    """Insert values of ``event_outbox`` rows (ingest's transaction, ``event_db.py``)."""
    return [
        {
            "store": e.store,
            "event": e.event,
            "at_ms": e.at_ms,
            "stored_ms": stored_ms,
            "device": e.device,
            "properties": dict(e.properties),
            "message_id": e.message_id,
        }
        for e in events
    ]


class EventOutboxRow(Base):
    """One event of the stream for other systems (issue 18 point 8,
    ``adapters/event_db.py``), written with the fact it tells of."""

    __tablename__ = "event_outbox"
    __table_args__ = (
        Index("ix_event_outbox_store_seq", "store", "seq"),
        Index("ix_event_outbox_stored", "stored_ms"),
        Index("ix_event_outbox_device", "device"),
        # never reuse a number (a cursor), even when the newest rows were pruned
        {"sqlite_autoincrement": True},
    )

    seq: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    store: Mapped[str] = mapped_column(Ident)
    event: Mapped[str] = mapped_column(String(31))
    at_ms: Mapped[int]
    stored_ms: Mapped[int]
    device: Mapped[str | None] = mapped_column(String(128))
    properties: Mapped[dict[str, Any]] = mapped_column(JSON)
    message_id: Mapped[str] = mapped_column(String(40), unique=True)


class _SqlTransaction(IngestTransaction):
    """The write side of a batch of messages, inside one session transaction.

    A batch costs a fixed number of round trips, not a few per message: the
    duplicate check of every message is one ``SELECT`` (``received_among``),
    the messages themselves one multi-row ``INSERT … RETURNING id``, the
    gateways' last-heard times one upsert, the sightings one ``COPY``."""

    def __init__(self, session: Session) -> None:
        self._s = session
        self._writes: list[Callable[[], None]] = []
        # What the batch leaves of each device's presence row (None: deleted),
        # its visit events in order, and its event-stream rows: each written
        # in a statement or two for the whole batch, not an ORM row at a time.
        self._presence: dict[tuple[str, str], DeviceVisitState | None] = {}
        self._visit_events: list[tuple[str, str, VisitEvent]] = []
        self._stream_events: list[OutboxEvent] = []
        # The messages of the batch, inserted together; their ids by key after.
        self._received: list[tuple[ReceivedKey, dict[str, Any]]] = []
        self._ids: dict[ReceivedKey, int] = {}
        self._current: ReceivedKey | None = None
        self._sightings: list[tuple[ReceivedKey, str, str, Sequence[SightingFields]]] = []
        self._touched: dict[tuple[str, str], int] = {}

    def write(self) -> None:
        """Run the queued writes, in the order they were asked for, then
        insert every message's sightings in one go."""
        if self._received:
            self._insert_received()
        if self._touched:
            self._touch_gateways()
        writes, self._writes = self._writes, []
        for write in writes:
            write()
        if self._visit_events:
            events, self._visit_events = self._visit_events, []
            self._write_visits(events)
        if self._presence:
            presence, self._presence = self._presence, {}
            self._write_presence(presence)
        if self._stream_events:
            stream, self._stream_events = self._stream_events, []
            self._insert_stream_events(stream)
        if self._sightings:
            pending, self._sightings = self._sightings, []
            self._insert_sightings(
                [
                    (
                        self._ids[key],
                        store,
                        gateway,
                        i.device,
                        i.window_start_ms,
                        i.window_ms,
                        i.count,
                        i.rssi_mean,
                        i.rssi_max,
                        i.tx_power,
                    )
                    for key, store, gateway, items in pending
                    for i in items
                ]
            )

    def received_before(self, key: ReceivedKey) -> bool:
        return key in self.received_among([key])

    def received_among(self, keys: Sequence[ReceivedKey]) -> set[ReceivedKey]:
        """The keys stored already, in one query: per gateway epoch, the seq
        range the batch spans (then filtered to the keys asked)."""
        wanted = set(keys)
        if not wanted:
            return set()
        spans: dict[tuple[str, str, int], tuple[int, int]] = {}
        for key in wanted:
            epoch = (key.store, key.gateway, key.epoch)
            low, high = spans.get(epoch, (key.seq, key.seq))
            spans[epoch] = (min(low, key.seq), max(high, key.seq))
        table = Base.metadata.tables[ReceivedMessage.__tablename__]
        found: set[ReceivedKey] = set()
        items = sorted(spans.items())
        for first in range(0, len(items), 200):
            rows = self._s.execute(
                select(table.c.store, table.c.gateway, table.c.seq, table.c.epoch).where(
                    or_(
                        *(
                            and_(
                                table.c.store == store,
                                table.c.gateway == gateway,
                                table.c.epoch == epoch,
                                table.c.seq.between(low, high),
                            )
                            for (store, gateway, epoch), (low, high) in items[first : first + 200]
                        )
                    )
                )
            )
            found.update(ReceivedKey(r[0], r[1], r[2], r[3]) for r in rows)
        return found & wanted

    @_deferred
    def count_duplicate(self, key: ReceivedKey) -> None:
        self._s.execute(
            update(ReceivedMessage)
            .where(
                ReceivedMessage.store == key.store,
                ReceivedMessage.gateway == key.gateway,
                ReceivedMessage.epoch == key.epoch,
                ReceivedMessage.seq == key.seq,
            )
            .values(duplicates=ReceivedMessage.duplicates + 1)
        )

    def record_received(
        self, key: ReceivedKey, kind: str, sent_ms: int, received_ms: int, items: int
    ) -> None:
        row = {
            "store": key.store,
            "gateway": key.gateway,
            "epoch": key.epoch,
            "seq": key.seq,
            "kind": kind,
            "sent_ms": sent_ms,
            "received_ms": received_ms,
            "items": items,
            "duplicates": 0,
        }
        self._received.append((key, row))
        self._current = key

    def _insert_received(self) -> None:
        """Every message of the batch in one multi-row insert per 500; the
        database's ids come back by key (the sightings and taps refer to them)."""
        table = Base.metadata.tables[ReceivedMessage.__tablename__]
        pending, self._received = self._received, []
        for first in range(0, len(pending), 500):
            rows = [row for _, row in pending[first : first + 500]]
            returned = self._s.execute(
                insert(table)
                .values(rows)
                .returning(table.c.id, table.c.store, table.c.gateway, table.c.seq, table.c.epoch)
            )
            for r in returned:
                self._ids[ReceivedKey(r[1], r[2], r[3], r[4])] = int(r[0])

    def _key(self) -> ReceivedKey:
        if self._current is None:
            raise RuntimeError("record_received must come before the message's items")
        return self._current

    def _mid_of(self, key: ReceivedKey) -> int:
        return self._ids[key]

    def add_ble_sightings(
        self, store: str, gateway: str, seq: int, items: Sequence[SightingFields]
    ) -> None:
        self._sightings.append((self._key(), store, gateway, list(items)))

    def _insert_sightings(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """The sightings of every message of the batch, in one statement.

        A BLE message holds hundreds of sightings, and SQLAlchemy's per-row
        parameter handling costs more than the insert: they go straight to
        the driver, by COPY on PostgreSQL (about half the time of
        executemany) and by the driver's executemany on SQLite. Other
        databases take Core executemany."""
        connection = self._s.connection()
        columns = ", ".join(_SIGHTING_COLUMNS)
        driver = connection.connection.driver_connection
        if connection.dialect.driver == "psycopg" and driver is not None:
            statement = f"COPY ble_sightings ({columns}) FROM STDIN"
            with driver.cursor() as cursor, cursor.copy(statement) as copy:
                for row in rows:
                    copy.write_row(row)
            return
        if connection.dialect.name == "sqlite" and driver is not None:
            marks = ", ".join("?" * len(_SIGHTING_COLUMNS))
            driver.executemany(f"INSERT INTO ble_sightings ({columns}) VALUES ({marks})", rows)
            return
        connection.execute(
            insert(Base.metadata.tables[BleSightingRow.__tablename__]),
            [dict(zip(_SIGHTING_COLUMNS, row, strict=True)) for row in rows],
        )

    def add_stream_events(self, events: Sequence[OutboxEvent]) -> None:
        self._stream_events.extend(events)

    def _insert_stream_events(self, events: Sequence[OutboxEvent]) -> None:
        """``event_outbox`` rows of the whole batch in one statement, in the
        order they were told; a message id already stored is skipped (the
        same fact told again)."""
        table = Base.metadata.tables["event_outbox"]
        rows = outbox_values(events, wall_clock_ms())
        self._s.connection().execute(self._dialect().insert(table).on_conflict_do_nothing(), rows)

    def _dialect(self) -> Any:
        """The dialect module whose ``insert`` has ON CONFLICT (SQLite or PostgreSQL)."""
        name = self._s.get_bind().dialect.name
        return sqlite_dialect if name == "sqlite" else postgresql_dialect

    def add_nfc_taps(self, store: str, gateway: str, seq: int, items: Sequence[NfcTap]) -> None:
        key, items = self._key(), list(items)
        self._writes.append(lambda: self._add_nfc_taps(key, store, gateway, items))

    def _add_nfc_taps(
        self, key: ReceivedKey, store: str, gateway: str, items: Sequence[NfcTap]
    ) -> None:
        mid = self._mid_of(key)
        self._s.add_all(
            NfcTapRow(
                message_id=mid,
                store=store,
                gateway=gateway,
                tap_point=i.tap_point,
                uid=i.uid,
                at_ms=i.at_ms,
                ndef_uri=i.ndef_uri,
                tag_type=i.tag_type,
            )
            for i in items
        )

    def add_rfid_reads(self, store: str, gateway: str, seq: int, items: Sequence[RfidItem]) -> None:
        key, items = self._key(), list(items)
        self._writes.append(lambda: self._add_rfid_reads(key, store, gateway, items))

    def _add_rfid_reads(
        self, key: ReceivedKey, store: str, gateway: str, items: Sequence[RfidItem]
    ) -> None:
        mid = self._mid_of(key)
        self._s.add_all(
            RfidReadRow(
                message_id=mid,
                store=store,
                gateway=gateway,
                reader=i.reader,
                antenna=i.antenna,
                epc=i.epc,
                rssi=i.rssi,
                at_ms=i.at_ms,
                count=i.count,
                gtin=i.gtin,
                serial=i.serial,
            )
            for i in items
            if isinstance(i, RfidRead)
        )
        self._s.add_all(
            TryOnRow(
                message_id=mid,
                store=store,
                gateway=gateway,
                reader=i.reader,
                event=i.event,
                epc=i.epc,
                gtin=i.gtin,
                serial=i.serial,
                at_ms=i.at_ms,
            )
            for i in items
            if isinstance(i, TryOn)
        )

    def _status_row(self, store: str, gateway: str, received_ms: int) -> GatewayStatusRow:
        row = self._s.get(GatewayStatusRow, (store, gateway))
        if row is None:
            row = GatewayStatusRow(store=store, gateway=gateway, received_ms=received_ms)
            self._s.add(row)
        row.received_ms = max(row.received_ms or 0, received_ms)
        return row

    def touch_gateway(self, store: str, gateway: str, received_ms: int) -> None:
        key = (store, gateway)
        self._touched[key] = max(self._touched.get(key, received_ms), received_ms)

    def _touch_gateways(self) -> None:
        """Every gateway the batch heard from: its last-heard time, one upsert
        (in key order, so two batches never lock the same rows the other way)."""
        touched, self._touched = self._touched, {}
        ordered = sorted(touched.items())
        dialect = self._s.get_bind().dialect.name
        if dialect not in ("postgresql", "sqlite"):
            for (store, gateway), ms in ordered:
                self._status_row(store, gateway, ms)
            return
        from sqlalchemy.dialects import postgresql, sqlite

        rows = [{"store": s, "gateway": g, "received_ms": ms} for (s, g), ms in ordered]
        make = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = make(Base.metadata.tables[GatewayStatusRow.__tablename__]).values(rows)
        newest: Any = (func.greatest if dialect == "postgresql" else func.max)(
            statement.excluded.received_ms, GatewayStatusRow.received_ms
        )
        self._s.execute(
            statement.on_conflict_do_update(
                index_elements=["store", "gateway"], set_={"received_ms": newest}
            )
        )

    @_deferred
    def record_status(self, message: StatusMessage, received_ms: int) -> None:
        row = self._status_row(message.store, message.gateway, received_ms)
        # A retained birth replayed after a newer will must not win: newest sent wins.
        if row.status_ms is None or message.sent_ms >= row.status_ms:
            row.state, row.session = message.state, message.session
            row.status_seq, row.status_epoch = message.seq, message.epoch
            row.version, row.status_ms = message.version, message.sent_ms

    @_deferred
    def record_health(self, message: HealthMessage, received_ms: int) -> None:
        row = self._status_row(message.store, message.gateway, received_ms)
        if row.health_ms is None or message.sent_ms >= row.health_ms:
            row.health_ms = message.sent_ms
            row.health = message.model_dump(mode="json")
            row.version = message.version

    def apply_visit_events(self, store: str, device: str, events: Sequence[VisitEvent]) -> None:
        self._visit_events.extend((store, device, ev) for ev in events)

    def _write_visits(self, events: Sequence[tuple[str, str, VisitEvent]]) -> None:
        """The batch's visit events: an opened visit is a new row; a closed one
        closes the open row of the same (store, device, zone, entered_ms),
        whether the batch opened it or an earlier one did, or is stored
        closed when there is none. One look-up of the open rows, one update
        and one insert for the whole batch."""
        table = Base.metadata.tables[VisitRow.__tablename__]
        new: list[dict[str, Any]] = []  # in the order of the events
        opened: dict[tuple[str, str, str, int], dict[str, Any]] = {}
        closing: list[tuple[tuple[str, str, str, int], dict[str, Any]]] = []
        for store, device, ev in events:
            key = (store, device, ev.zone, ev.entered_ms)
            if isinstance(ev, VisitOpened):
                row: dict[str, Any] = {
                    "store": store,
                    "device": device,
                    "zone": ev.zone,
                    "entered_ms": ev.entered_ms,
                    "left_ms": None,
                    "dwell_s": None,
                    "status": "open",
                }
                new.append(row)
                opened[key] = row
                continue
            assert isinstance(ev, VisitClosed)
            status: VisitStatus = "pass_by" if ev.pass_by else "visit"
            closed = {"left_ms": ev.left_ms, "dwell_s": ev.dwell_s, "status": status}
            if key in opened:  # opened in this batch: inserted closed
                opened.pop(key).update(closed)
                continue
            row = {"store": store, "device": device, "zone": ev.zone, "entered_ms": ev.entered_ms}
            row.update(closed)
            new.append(row)  # unless an open row is found below
            closing.append((key, row))
        connection = self._s.connection()
        if closing:
            stored: dict[tuple[str, str, str, int], list[int]] = {}
            by_store: dict[str, list[str]] = {}
            for (store, device, _zone, _entered), _row in closing:
                by_store.setdefault(store, []).append(device)
            for store, devices in by_store.items():
                for chunk in in_chunks(sorted(set(devices))):
                    found = connection.execute(
                        select(table.c.id, table.c.device, table.c.zone, table.c.entered_ms)
                        .where(
                            table.c.store == store,
                            table.c.status == "open",
                            table.c.device.in_(chunk),
                        )
                        .order_by(table.c.id)
                    )
                    for id_, device, zone, entered in found:
                        stored.setdefault((store, device, zone, entered), []).append(id_)
            updates, in_place = [], set()
            for key, row in closing:
                ids = stored.get(key)
                if ids:  # the open row of an earlier batch: closed in place
                    updates.append({"row_id": ids.pop(0), **{k: row[k] for k in _CLOSED}})
                    in_place.add(id(row))
            new = [row for row in new if id(row) not in in_place]
            if updates:
                connection.execute(
                    update(table)
                    .where(table.c.id == bindparam("row_id"))
                    .values({k: bindparam(k) for k in _CLOSED}),
                    updates,
                )
        if new:
            connection.execute(insert(table), new)

    def save_presence(self, store: str, device: str, state: DeviceVisitState | None) -> None:
        self._presence[(store, device)] = state

    def _write_presence(self, presence: Mapping[tuple[str, str], DeviceVisitState | None]) -> None:
        """Every presence row the batch rewrites: one upsert and one delete
        for them all (SQLite and PostgreSQL both have ON CONFLICT)."""
        table = Base.metadata.tables[DevicePresenceRow.__tablename__]
        connection = self._s.connection()
        gone = [{"s": s, "d": d} for (s, d), state in presence.items() if state is None]
        rows = [
            {
                "store": store,
                "device": device,
                "zone": state.zone,
                "entered_ms": state.entered_ms,
                "last_in_zone_ms": state.last_in_zone_ms,
                "last_heard_ms": state.last_heard_ms,
                "away_zone": state.away_zone,
                "away_since_ms": state.away_since_ms,
            }
            for (store, device), state in presence.items()
            if state is not None
        ]
        if gone:
            connection.execute(
                delete(table).where(
                    table.c.store == bindparam("s"), table.c.device == bindparam("d")
                ),
                gone,
            )
        if rows:
            upsert = self._dialect().insert(table)
            connection.execute(
                upsert.on_conflict_do_update(
                    index_elements=[table.c.store, table.c.device],
                    set_={name: upsert.excluded[name] for name in _PRESENCE_STATE},
                ),
                rows,
            )


#: The columns a closed visit sets, and those of a presence row's state.
_CLOSED = ("left_ms", "dwell_s", "status")
_PRESENCE_STATE = (
    "zone",
    "entered_ms",
    "last_in_zone_ms",
    "last_heard_ms",
    "away_zone",
    "away_since_ms",
)


class SqlIngestWriter(IngestWrites):
    """The write half of the ingest ``Repository`` over an SQLAlchemy engine:
    one transaction per batch of messages, dead letters, issued gateway configs, and
    the deletes of erasure and retention."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._checkpoints_stop = threading.Event()
        self._checkpointer: threading.Thread | None = None

    def start_background_checkpoints(self, interval_s: float = 0.25) -> None:
        """SQLite: copy the write-ahead log into the database from a thread of
        its own. Otherwise the commit that fills the log to 1,000 pages does it
        (and its fsync) itself, and a busy ingest pays that on every few
        messages. A passive checkpoint never blocks writers or readers; the
        automatic one stays as the safety net."""
        if self.engine.dialect.name != "sqlite" or self._checkpointer is not None:
            return

        def run() -> None:
            while not self._checkpoints_stop.wait(interval_s):
                try:
                    with self.engine.connect() as connection:
                        connection.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
                except Exception:  # the next round tries again
                    log.debug("background checkpoint failed", exc_info=True)

        self._checkpointer = threading.Thread(target=run, name="sqlite-checkpoint", daemon=True)
        self._checkpointer.start()

    def prepare_sighting_partitions(
        self, now_ms: int, ahead: int = sighting_partitions.DAYS_AHEAD
    ) -> int:
        """PostgreSQL with ``ble_sightings`` partitioned (migration 0015): make
        the partitions of today and the ``ahead`` days after it, each in its
        own transaction; how many were made. Otherwise nothing to do (0)."""
        made = 0
        with self.engine.connect() as connection:
            if not sighting_partitions.is_partitioned(connection):
                return 0
            existing = sighting_partitions.day_partitions(connection)
            connection.rollback()
            for day in sighting_partitions.days_to_make(now_ms, existing, ahead):
                try:
                    with connection.begin():
                        sighting_partitions.make_day(connection, day)
                    made += 1
                except DBAPIError as error:  # another server made it first, or a lock
                    sighting_partitions.failed(f"making {day_name(day)}", error)
        return made

    def prune_sightings(self, older_than_ms: int, batch: int = 20_000) -> int:
        """Delete raw sightings whose window started before ``older_than_ms``
        (the retention limit); returns how many were deleted.

        With day partitions (PostgreSQL, migration 0015) every day wholly
        before the limit is dropped, one transaction each; what is left
        before it (the boundary day, DEFAULT, a day whose drop lost its lock)
        is deleted a batch per transaction, so ingest is never kept waiting long."""
        deleted = 0
        with self.engine.connect() as connection:
            if sighting_partitions.is_partitioned(connection):
                days = sighting_partitions.day_partitions(connection)
                connection.rollback()
                for day in sighting_partitions.expired(days, older_than_ms):
                    try:
                        with connection.begin():
                            deleted += sighting_partitions.drop_day(connection, day)
                    except DBAPIError as error:  # the rows go by DELETE below
                        sighting_partitions.failed(f"dropping {day.name}", error)
        table = Base.metadata.tables[BleSightingRow.__tablename__]
        old = table.c.window_start_ms < older_than_ms
        while True:
            with self.engine.begin() as connection:
                oldest = select(table.c.id).where(old).limit(batch).scalar_subquery()
                # ``old`` again outside: PostgreSQL then looks only in the
                # partitions that can hold such rows.
                count = connection.execute(
                    delete(table).where(table.c.id.in_(oldest), old)
                ).rowcount
            deleted += count
            if count < batch:
                return deleted

    def close(self) -> None:
        self._checkpoints_stop.set()
        if self._checkpointer is not None:
            self._checkpointer.join(5)
            self._checkpointer = None
        self.engine.dispose()

    @contextmanager
    def transaction(self) -> Iterator[_SqlTransaction]:
        """One transaction for a batch of messages: their writes run just
        before the one commit."""
        with Session(self.engine) as session, session.begin():
            tx = _SqlTransaction(session)
            yield tx
            tx.write()

    def add_dead_letter(
        self,
        received_ms: int,
        topic: str,
        payload: bytes,
        reason: str,
        original_bytes: int | None = None,
    ) -> None:
        with Session(self.engine) as session, session.begin():
            session.add(
                DeadLetterRow(
                    received_ms=received_ms,
                    topic=topic,
                    payload=payload,
                    reason=reason,
                    original_bytes=len(payload) if original_bytes is None else original_bytes,
                )
            )

    def prune_dead_letters(self, older_than_ms: int) -> int:
        """Delete dead letters received before ``older_than_ms`` (their retention)."""
        with self.engine.begin() as connection:
            table = Base.metadata.tables[DeadLetterRow.__tablename__]
            result = connection.execute(delete(table).where(table.c.received_ms < older_than_ms))
            return int(result.rowcount)

    def is_transient(self, error: BaseException) -> bool:
        if isinstance(error, OperationalError | InterfaceError):
            return True
        return isinstance(error, DBAPIError) and error.connection_invalidated

    def save_gateway_config(
        self, store: str, gateway: str, revision: int, body: dict[str, Any]
    ) -> None:
        with Session(self.engine) as session, session.begin():
            row = session.get(GatewayConfigRow, (store, gateway))
            if row is None:
                session.add(
                    GatewayConfigRow(store=store, gateway=gateway, revision=revision, body=body)
                )
            else:
                row.revision, row.body = revision, body

    def scrub_deleted(self) -> bool:
        """After an erasure: on SQLite, copy the whole write-ahead log into the
        database and truncate it (``wal_checkpoint(TRUNCATE)``), so the old
        page versions that still held the deleted rows are gone from the
        ``-wal`` file; with ``secure_delete`` on, the database file holds
        zeros where they were. True when the checkpoint completed. Other
        databases: nothing to do here (PostgreSQL's dead tuples are left to
        VACUUM; see docs/identity.md)."""
        if self.engine.dialect.name != "sqlite":
            return True
        for attempt in range(20):  # about 4 s in all
            with self.engine.connect() as connection:
                row = connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()
            if row[0] == 0:  # not busy: every frame copied and the log truncated
                return True
            time.sleep(0.02 * (attempt + 1))
        log.warning("the write-ahead log could not be truncated after an erasure (readers busy)")
        return False

    def erase_device(self, device: str) -> None:
        """Delete every location fact about one device (a shopper's erasure)."""
        with Session(self.engine) as session, session.begin():
            for table in (VisitRow, BleSightingRow, DevicePresenceRow):
                session.execute(delete(table).where(table.device == device))
