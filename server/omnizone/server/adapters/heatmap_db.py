"""The floor heatmap's table (``ports.heatmap``, migration 0010_floor_cells):
per store, hour and 0.5 m cell, the shopper-seconds of presence. Aggregates
only: no device or shopper column, so nothing here is about one shopper."""

from collections.abc import Mapping
from typing import cast

from sqlalchemy import BigInteger, Engine, Float, Integer, Table, and_, func, select
from sqlalchemy.orm import Mapped, mapped_column

from omnizone.server.adapters.db import Base
from omnizone.server.adapters.db_write import Ident
from omnizone.server.service.ports.heatmap import Cell, FloorCells


class FloorCellRow(Base):
    """Shopper-seconds in one 0.5 m floor cell during one hour."""

    __tablename__ = "floor_cells"

    store: Mapped[str] = mapped_column(Ident, primary_key=True)
    hour_ms: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    ix: Mapped[int] = mapped_column(Integer, primary_key=True)
    iy: Mapped[int] = mapped_column(Integer, primary_key=True)
    seconds: Mapped[float] = mapped_column(Float)


_cells = cast(Table, FloorCellRow.__table__)


class FloorCellRepository(FloorCells):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        Base.metadata.create_all(engine, tables=[_cells])

    def add_cells(self, store: str, hours: Mapping[int, Mapping[Cell, float]]) -> None:
        c = _cells.c
        with self.engine.begin() as conn:
            for hour, cells in hours.items():
                if not cells:
                    continue
                where = and_(c.store == store, c.hour_ms == hour)
                before = {
                    (x, y): s
                    for x, y, s in conn.execute(select(c.ix, c.iy, c.seconds).where(where))
                }
                if before:  # every row of the hour was read: all are rewritten
                    conn.execute(_cells.delete().where(where))
                merged = dict(before)
                for cell, s in cells.items():
                    merged[cell] = merged.get(cell, 0.0) + s
                conn.execute(
                    _cells.insert(),
                    [
                        {"store": store, "hour_ms": hour, "ix": x, "iy": y, "seconds": s}
                        for (x, y), s in merged.items()
                    ],
                )

    def cells(self, store: str, from_ms: int, to_ms: int) -> list[tuple[int, int, float]]:
        """A range scan of the primary key (store, hour_ms, ...)."""
        c = _cells.c
        query = (
            select(c.ix, c.iy, func.sum(c.seconds))
            .where(c.store == store, c.hour_ms >= from_ms, c.hour_ms < to_ms)
            .group_by(c.ix, c.iy)
        )
        with self.engine.connect() as conn:
            return [(int(x), int(y), float(s)) for x, y, s in conn.execute(query).cursor.fetchall()]

    def hours(self, store: str) -> tuple[int | None, int | None]:
        c = _cells.c
        with self.engine.connect() as conn:
            row = conn.execute(
                select(func.min(c.hour_ms), func.max(c.hour_ms)).where(c.store == store)
            ).one()
        return (row[0], row[1])
