"""The floor heatmap's table (``ports.heatmap``, migration 0013):
per store and 0.5 m cell, the shopper-seconds of presence in each hour
(``span_h`` 1) and, summed, in each UTC day (``span_h`` 24, written with the
hours). A range reads the days it covers whole and the hours at its ends: a
month is about 30 x 2,400 day rows at most instead of 720 x 2,400 hour rows.
Aggregates only: no device or shopper column, so nothing here is about one
shopper. On SQLite the table is WITHOUT ROWID: the key holds the rows, one
range scan reads them."""

from collections.abc import Mapping
from typing import cast

from sqlalchemy import (
    BigInteger,
    Connection,
    Engine,
    Float,
    Integer,
    SmallInteger,
    Table,
    and_,
    func,
    or_,
    select,
)
from sqlalchemy.orm import Mapped, mapped_column

from omnizone.server.adapters.db import Base
from omnizone.server.adapters.db_write import Ident
from omnizone.server.service.ports.heatmap import Cell, FloorCells

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


class FloorCellRow(Base):
    """Shopper-seconds in one 0.5 m floor cell during one hour or one UTC day."""

    __tablename__ = "floor_cells"
    __table_args__ = {"sqlite_with_rowid": False}  # noqa: RUF012 (SQLAlchemy's own dict)

    store: Mapped[str] = mapped_column(Ident, primary_key=True)
    span_h: Mapped[int] = mapped_column(SmallInteger, primary_key=True)  # 1: an hour, 24: a day
    start_ms: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    ix: Mapped[int] = mapped_column(Integer, primary_key=True)
    iy: Mapped[int] = mapped_column(Integer, primary_key=True)
    seconds: Mapped[float] = mapped_column(Float)


_cells = cast(Table, FloorCellRow.__table__)


class FloorCellRepository(FloorCells):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        Base.metadata.create_all(engine, tables=[_cells])

    def add_cells(self, store: str, hours: Mapping[int, Mapping[Cell, float]]) -> None:
        days: dict[int, dict[Cell, float]] = {}
        for hour, cells in hours.items():
            into = days.setdefault(hour - hour % DAY_MS, {})
            for cell, s in cells.items():
                into[cell] = into.get(cell, 0.0) + s
        with self.engine.begin() as conn:
            for hour, cells in hours.items():
                _add(conn, store, 1, hour, cells)
            for day, cells in days.items():
                _add(conn, store, 24, day, cells)

    def cells(self, store: str, from_ms: int, to_ms: int) -> list[tuple[int, int, float]]:
        """Hours starting in [from_ms, to_ms): the whole UTC days among them
        from the day rows, the rest from the hour rows. One range scan each."""
        c = _cells.c
        first_day = -(-from_ms // DAY_MS) * DAY_MS
        last_day = to_ms - to_ms % DAY_MS
        hour_rows = and_(c.span_h == 1, c.start_ms >= from_ms, c.start_ms < to_ms)
        if first_day < last_day:
            hour_rows = or_(
                and_(c.span_h == 1, c.start_ms >= from_ms, c.start_ms < first_day),
                and_(c.span_h == 1, c.start_ms >= last_day, c.start_ms < to_ms),
                and_(c.span_h == 24, c.start_ms >= first_day, c.start_ms < last_day),
            )
        query = (
            select(c.ix, c.iy, func.sum(c.seconds))
            .where(c.store == store, hour_rows)
            .group_by(c.ix, c.iy)
        )
        with self.engine.connect() as conn:
            return [(int(x), int(y), float(s)) for x, y, s in conn.execute(query).cursor.fetchall()]

    def hours(self, store: str) -> tuple[int | None, int | None]:
        c = _cells.c
        with self.engine.connect() as conn:
            row = conn.execute(
                select(func.min(c.start_ms), func.max(c.start_ms)).where(
                    c.store == store, c.span_h == 1
                )
            ).one()
        return (row[0], row[1])


def _add(
    conn: Connection, store: str, span_h: int, start: int, cells: Mapping[Cell, float]
) -> None:
    """Add to the rows of one hour or day: those there are read, deleted and
    written again with the new seconds added (portable, no upsert dialect)."""
    if not cells:
        return
    c = _cells.c
    where = and_(c.store == store, c.span_h == span_h, c.start_ms == start)
    merged = {(x, y): s for x, y, s in conn.execute(select(c.ix, c.iy, c.seconds).where(where))}
    if merged:
        conn.execute(_cells.delete().where(where))
    for cell, s in cells.items():
        merged[cell] = merged.get(cell, 0.0) + s
    conn.execute(
        _cells.insert(),
        [
            {"store": store, "span_h": span_h, "start_ms": start, "ix": x, "iy": y, "seconds": s}
            for (x, y), s in merged.items()
        ],
    )
