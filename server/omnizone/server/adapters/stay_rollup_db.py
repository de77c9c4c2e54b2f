"""Roll-up of the stays by hour (issue 18: every view within a second on a month).

Every analytics view starts from the stays of its range as numpy columns
(``domain.analytics.Stays``). Reading a month of them from SQL (865,000
rows) and building the columns row by row cost 2–3 s a view. Here each
*closed* UTC hour of a store is read once, stored as packed columns in
``stay_rollups`` (migration 0014) and kept decoded in memory; a range is then
the slices of its hours' columns, and only the hours not closed yet (the
last one or two) are read from the visits.

An hour is closed when the latest stay entry of the store is at least
``SETTLE_MS`` past its end and none of its stays is still open (an open
stay's end moves with its device). Rolled-up hours are checked on every read
by counting stays through the index on (store, entered_ms): one count over
all the range's closed hours when each is in memory, else one per hour. A
stay added late or deleted (an erasure) changes the count and the hour is
rebuilt. ``erase_device`` also drops every hour that names the device, so no
erased shopper id stays here.

The columns answered equal ``Stays.from_rows`` of the visits query, row for
row and in the same order (the query's ORDER BY, which the hours keep), so
every view computed from them equals the from-scratch computation
(tests/server/analytics/test_stay_rollup.py).
"""

import gc
import json
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import BigInteger, Engine, Integer, LargeBinary, Table, Text, delete, func, select
from sqlalchemy.orm import Mapped, mapped_column

from omnizone.server.adapters.db import Base, DevicePresenceRow, VisitRow
from omnizone.server.adapters.db_write import Ident
from omnizone.server.domain.analytics import STATUS_CODES, Stays

#: The roll-up's unit: one row per store and UTC hour.
HOUR_MS = 3_600_000
#: An hour is rolled up once the store's latest stay entry is this far past its end.
SETTLE_MS = 3_600_000
#: Decoded hours kept in memory (all stores): the longest range (92 days) and
#: the loyalty lookback (28 days) before it, of one store.
MEMORY_HOURS = 130 * 24
#: Device codes kept per store before they are started again.
MAX_CODES = 2_000_000

_visits = VisitRow.__table__
_presence = DevicePresenceRow.__table__


class StayRollupRow(Base):
    """One closed UTC hour of one store's stays, as packed columns."""

    __tablename__ = "stay_rollups"

    store: Mapped[str] = mapped_column(Ident, primary_key=True)
    hour_ms: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    rows: Mapped[int] = mapped_column(Integer)  # the stays counted when it was built
    devices: Mapped[str] = mapped_column(Text)  # JSON list: the device of code k
    zones: Mapped[str] = mapped_column(Text)  # JSON list: the zone id of code k
    columns: Mapped[bytes] = mapped_column(LargeBinary)  # _pack
    built_ms: Mapped[int] = mapped_column(BigInteger)  # the latest entry when built


_hours = cast(Table, StayRollupRow.__table__)


@dataclass(frozen=True, slots=True)
class _Hour:
    """One hour's stays in the visits query's order; codes into the lists."""

    rows: int
    devices: tuple[str, ...]
    zones: tuple[str, ...]
    device: NDArray[np.int32]
    zone: NDArray[np.int32]
    status: NDArray[np.int8]
    entered_ms: NDArray[np.int64]
    end_ms: NDArray[np.int64]


_NONE = np.zeros(0, dtype=np.int64)
_EMPTY = _Hour(0, (), (), _NONE.astype(np.int32), _NONE.astype(np.int32),
               _NONE.astype(np.int8), _NONE, _NONE)  # fmt: skip

#: One hour's rows in a read: (hour, store-wide code of each of its devices,
#: first row, end row).
_Part = tuple[_Hour, NDArray[np.int64], int, int]


class StayRollup:
    """The stays of a store and range as columns, closed hours from the roll-up."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        Base.metadata.create_all(engine, tables=[_hours])
        #: Decoded hours, least recently used first, with their devices' codes.
        self._memory: OrderedDict[tuple[str, int], tuple[_Hour, NDArray[np.int64]]] = OrderedDict()
        #: Per store, a code for every device of the hours held (and the names by code).
        self._codes: dict[str, dict[str, int]] = {}
        self._names: dict[str, list[str]] = {}
        self._pending: list[tuple[int, _Hour]] = []  # built, not written yet
        self._lock = threading.Lock()
        self.built = 0  # hours rolled up by this process (the bench reports it)

    # -- the reads -------------------------------------------------------------------

    def stays(
        self,
        store: str,
        from_ms: int,
        to_ms: int,
        zones: Sequence[str],
        exclude: Sequence[str] = (),
    ) -> Stays:
        """``Stays.from_rows(stays_query(...), zones)``, closed hours from the roll-up."""
        with self._lock:
            parts = self._parts(store, from_ms, to_ms)
            names = self._names.get(store, [])
            codes = self._codes.get(store, {})
            left_out = [codes[d] for d in set(exclude) if d in codes]
            return _assemble(parts, names, zones, left_out)

    def last_entries(self, store: str, from_ms: int, to_ms: int) -> dict[str, int]:
        """Per device, its latest stay entry in [from_ms, to_ms) (any zone)."""
        with self._lock:
            parts = self._parts(store, from_ms, to_ms)
            names = self._names.get(store, [])
            latest = np.full(len(names), -1, dtype=np.int64)
            for hour, codes, a, b in parts:
                np.maximum.at(latest, codes[hour.device[a:b]], hour.entered_ms[a:b])
            seen = np.flatnonzero(latest >= 0)
            return {
                names[k]: at for k, at in zip(seen.tolist(), latest[seen].tolist(), strict=True)
            }

    def roll_up(self, store: str, from_ms: int, to_ms: int) -> int:
        """Build (or check) every closed hour in the range now, as a read would
        lazily; returns the hours rolled up afresh."""
        before = self.built
        with self._lock:
            self._parts(store, from_ms, to_ms)
        return self.built - before

    def erase_device(self, device: str) -> int:
        """Erasure: drop every rolled-up hour that names ``device`` (rebuilt on
        the next read from what the visits still hold)."""
        needle = json.dumps(device)
        with self._lock:
            with self.engine.begin() as conn:
                found = conn.execute(
                    select(_hours.c.store, _hours.c.hour_ms).where(
                        _hours.c.devices.contains(needle)
                    )
                ).all()
                for store, hour_ms in found:
                    conn.execute(
                        delete(_hours).where(_hours.c.store == store, _hours.c.hour_ms == hour_ms)
                    )
            for key in [k for k, (d, _c) in self._memory.items() if device in d.devices]:
                del self._memory[key]
            for store, names in self._names.items():
                code = self._codes[store].pop(device, None)
                if code is not None:
                    names[code] = ""  # the code is no hour's any more
        return len(found)

    def forget(self) -> None:
        """Drop the decoded hours held in memory (the stored roll-up stays)."""
        with self._lock:
            self._memory.clear()
            self._codes.clear()
            self._names.clear()

    # -- the roll-up (under the lock) --------------------------------------------------

    def _parts(self, store: str, from_ms: int, to_ms: int) -> list[_Part]:
        """The range's rows hour by hour: closed hours from memory, the table or
        the visits (then stored), the others read from the visits."""
        parts: list[_Part] = []
        if to_ms <= from_ms:
            return parts
        v = _visits.c
        with self.engine.connect() as conn, _no_gc():
            latest = conn.scalar(select(func.max(v.entered_ms)).where(v.store == store))
            hours = range(from_ms // HOUR_MS * HOUR_MS, to_ms, HOUR_MS)
            closed = [] if latest is None else [
                h for h in hours if int(latest) >= h + HOUR_MS + SETTLE_MS
            ]  # fmt: skip
            # Closed hours come first; when every one is in memory, one count
            # over them all checks them at once, else one count per hour.
            held = [self._memory.get((store, h)) for h in closed]
            if closed and all(h is not None for h in held):
                total = _count(conn, store, closed[0], closed[-1] + HOUR_MS)
                if total != sum(h[0].rows for h in held if h is not None):
                    held = self._closed_hours(conn, store, closed, int(latest))
            elif closed:
                held = self._closed_hours(conn, store, closed, int(latest))
            for k, hour_ms in enumerate(hours):
                lo, hi = max(from_ms, hour_ms), min(to_ms, hour_ms + HOUR_MS)
                found = held[k] if k < len(held) else None
                if found is None:  # not closed, or an open stay in it
                    hour = _to_hour(conn.execute(stays_query(store, lo, hi)).cursor.fetchall())
                    parts.append((hour, self._code(store, hour), 0, hour.rows))
                    continue
                hour, codes = found
                a, b = np.searchsorted(hour.entered_ms, [lo, hi], side="left")
                parts.append((hour, codes, int(a), int(b)))
        return parts

    def _code(self, store: str, hour: _Hour) -> NDArray[np.int64]:
        codes = self._codes.setdefault(store, {})
        names = self._names.setdefault(store, [])
        if len(codes) > MAX_CODES:  # a long-running server: start the store's codes again
            codes.clear()
            names.clear()
            for key in [k for k in self._memory if k[0] == store]:
                del self._memory[key]
        out = np.empty(len(hour.devices), dtype=np.int64)
        for i, name in enumerate(hour.devices):
            code = codes.get(name)
            if code is None:
                code = codes[name] = len(names)
                names.append(name)
            out[i] = code
        return out

    def _closed_hours(
        self, conn: Any, store: str, closed: list[int], latest: int
    ) -> list[tuple[_Hour, NDArray[np.int64]] | None]:
        """Each closed hour (consecutive starts) from memory, the table or the
        visits (then stored), after checking its count; None for an hour that
        holds an open stay."""
        v, r = _visits.c, _hours.c
        lo, hi = closed[0], closed[-1] + HOUR_MS
        hour_of = v.entered_ms // HOUR_MS
        counts = {
            int(h) * HOUR_MS: int(n)
            for h, n in conn.execute(
                select(hour_of, func.count())
                .where(v.store == store, v.entered_ms >= lo, v.entered_ms < hi)
                .group_by(hour_of)
            ).all()
        }
        out: list[tuple[_Hour, NDArray[np.int64]] | None] = []
        stored: dict[int, Any] | None = None
        for hour_ms in closed:
            count = counts.get(hour_ms, 0)
            key = (store, hour_ms)
            held = self._memory.get(key)
            if held is None or held[0].rows != count:
                if count == 0:
                    hour: _Hour | None = _EMPTY
                else:
                    if stored is None:  # the table's hours of the range, at once
                        stored = {
                            int(row[0]): row
                            for row in conn.execute(
                                select(r.hour_ms, r.rows, r.devices, r.zones, r.columns).where(
                                    r.store == store, r.hour_ms >= lo, r.hour_ms < hi
                                )
                            ).all()
                        }
                    row = stored.get(hour_ms)
                    if row is not None and int(row[1]) == count:
                        hour = _unpack(count, row[2], row[3], row[4])
                    else:
                        rows = conn.execute(
                            stays_query(store, hour_ms, hour_ms + HOUR_MS)
                        ).cursor.fetchall()
                        hour = None if any(x[4] == "open" for x in rows) else _to_hour(rows)
                        if hour is not None:
                            self._pending.append((hour_ms, hour))
                if hour is None:
                    out.append(None)
                    continue
                held = (hour, self._code(store, hour))
                self._memory[key] = held
            self._memory.move_to_end(key)
            out.append(held)
        while len(self._memory) > MEMORY_HOURS:
            self._memory.popitem(last=False)
        if self._pending:
            self._store(store, latest)
        return out

    def _store(self, store: str, latest: int) -> None:
        """Write the hours just built, in one transaction."""
        r = _hours.c
        pending, self._pending = self._pending, []
        with self.engine.begin() as write:
            write.execute(
                delete(_hours).where(
                    r.store == store, r.hour_ms.in_([hour_ms for hour_ms, _h in pending])
                )
            )
            write.execute(
                _hours.insert(),
                [
                    {
                        "store": store,
                        "hour_ms": hour_ms,
                        "rows": hour.rows,
                        "devices": json.dumps(hour.devices),
                        "zones": json.dumps(hour.zones),
                        "columns": _pack(hour),
                        "built_ms": latest,
                    }
                    for hour_ms, hour in pending
                ],
            )
        self.built += len(pending)


def _count(conn: Any, store: str, from_ms: int, to_ms: int) -> int:
    v = _visits.c
    query = (
        select(func.count())
        .select_from(_visits)
        .where(v.store == store, v.entered_ms >= from_ms, v.entered_ms < to_ms)
    )
    return int(conn.scalar(query))


@contextmanager
def _no_gc() -> Iterator[None]:
    """No cyclic collection while a hour's rows are turned into columns: the
    rows are tens of thousands of fresh tuples, and a collection in the middle
    walks every object of the process (it doubled a hour's conversion)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def stays_query(
    store: str, from_ms: int, to_ms: int, exclude: Sequence[str] = (), zones: Sequence[str] = ()
) -> Any:
    """Stays that entered in [from_ms, to_ms) (``zones``: only those, when
    given), as (device, zone, entered_ms,
    end_ms, status), in the order of the index on (store, entered_ms, zone,
    status, left_ms, device). An open stay ends, for now, where its device
    was last placed in the zone; one whose device has no such presence any
    more (an interrupted run) ends where it began."""
    v, p = _visits.c, _presence.c
    last_placed = (
        select(p.last_in_zone_ms)
        .where(
            p.store == v.store,
            p.device == v.device,
            p.zone == v.zone,
            p.entered_ms == v.entered_ms,
        )
        .scalar_subquery()
    )
    end = func.coalesce(v.left_ms, last_placed, v.entered_ms)
    query = select(v.device, v.zone, v.entered_ms, end, v.status).where(
        v.store == store, v.entered_ms >= from_ms, v.entered_ms < to_ms
    )
    if exclude:
        query = query.where(v.device.not_in(list(exclude)))
    if zones:
        query = query.where(v.zone.in_(list(zones)))
    return query.order_by(v.entered_ms, v.zone, v.status, v.left_ms, v.device)


def _codes(values: Sequence[Any]) -> tuple[tuple[Any, ...], NDArray[np.int32]]:
    """(distinct values in order of first appearance, code per value)."""
    index: dict[Any, int] = {}
    code = index.setdefault
    codes = np.array([code(x, len(index)) for x in values], dtype=np.int32)
    return tuple(index), codes


def _to_hour(rows: Sequence[Sequence[Any]]) -> _Hour:
    n = len(rows)
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return _Hour(0, (), (), empty.astype(np.int32), empty.astype(np.int32),
                    empty.astype(np.int8), empty, empty)  # fmt: skip
    device, zone, entered, end, status = zip(*rows, strict=True)
    devices, device_codes = _codes(device)
    zones, zone_codes = _codes(zone)
    statuses, status_codes = _codes(status)
    to_status = np.asarray([STATUS_CODES[s] for s in statuses], dtype=np.int8)
    return _Hour(
        rows=n,
        devices=devices,
        zones=zones,
        device=device_codes,
        zone=zone_codes,
        status=to_status[status_codes],
        entered_ms=np.asarray(entered, dtype=np.int64),
        end_ms=np.asarray(end, dtype=np.int64),
    )


def _pack(hour: _Hour) -> bytes:
    return b"".join(
        a.tobytes() for a in (hour.entered_ms, hour.end_ms, hour.device, hour.zone, hour.status)
    )


def _unpack(rows: int, devices: str, zones: str, blob: bytes) -> _Hour:
    out: list[Any] = []
    at = 0
    for dtype in (np.int64, np.int64, np.int32, np.int32, np.int8):
        size = rows * np.dtype(dtype).itemsize
        out.append(np.frombuffer(blob, dtype=dtype, count=rows, offset=at))
        at += size
    entered, end, device, zone, status = out
    return _Hour(rows, tuple(json.loads(devices)), tuple(json.loads(zones)),
                device, zone, status, entered, end)  # fmt: skip


def _assemble(
    parts: list[_Part], names: Sequence[str], zones: Sequence[str], left_out: Sequence[int]
) -> Stays:
    """The parts' rows, in order, as ``Stays.from_rows`` would build them:
    rows of zones not in ``zones`` and of the ``left_out`` device codes
    dropped, devices numbered by first appearance, every end at least its entry."""
    zone_index = {z: i for i, z in enumerate(zones)}
    device_parts: list[NDArray[np.int64]] = []
    zone_parts: list[NDArray[np.int64]] = []
    status_parts: list[NDArray[np.int8]] = []
    entered_parts: list[NDArray[np.int64]] = []
    end_parts: list[NDArray[np.int64]] = []
    for hour, codes, a, b in parts:
        if b <= a:
            continue
        to_plan = np.asarray([zone_index.get(z, -1) for z in hour.zones], np.int64)
        device_parts.append(codes[hour.device[a:b]])
        zone_parts.append(to_plan[hour.zone[a:b]])
        status_parts.append(hour.status[a:b])
        entered_parts.append(hour.entered_ms[a:b])
        end_parts.append(hour.end_ms[a:b])
    if not device_parts:
        empty = np.zeros(0, dtype=np.int64)
        return Stays(empty, empty, empty, empty, empty, ())
    device = np.concatenate(device_parts)
    zone = np.concatenate(zone_parts)
    keep = zone >= 0
    if left_out:
        keep &= ~np.isin(device, np.asarray(left_out, dtype=np.int64))
    everything = bool(keep.all())

    def kept(values: list[Any]) -> NDArray[np.int64]:
        joined = np.concatenate(values).astype(np.int64, copy=False)
        return joined if everything else joined[keep]

    device = device if everything else device[keep]
    entered = kept(entered_parts)
    # Renumber the devices by first appearance among the rows kept.
    first = np.full(len(names), device.size, dtype=np.int64)
    np.minimum.at(first, device, np.arange(device.size, dtype=np.int64))
    present = np.flatnonzero(first < device.size)
    by_first = present[np.argsort(first[present], kind="stable")]
    rank = np.zeros(len(names), dtype=np.int64)
    rank[by_first] = np.arange(by_first.size, dtype=np.int64)
    return Stays(
        device=rank[device],
        zone=zone if everything else zone[keep],
        entered_ms=entered,
        end_ms=np.maximum(entered, kept(end_parts)),
        status=kept(status_parts),
        devices=tuple([names[k] for k in by_first.tolist()]),
    )
