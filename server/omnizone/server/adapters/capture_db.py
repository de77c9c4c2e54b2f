"""Passer-by counts per store and hour (``ports.passers_by``, table
``passers_by``, migration 0010): a number, no device column at all."""

from typing import cast

from sqlalchemy import BigInteger, Engine, Integer, Table, delete, select
from sqlalchemy.orm import Mapped, mapped_column

from omnizone.server.adapters.db import Base
from omnizone.server.adapters.db_write import Ident
from omnizone.server.service.ports.passers_by import PassersByCounts


class PassersByRow(Base):
    """Distinct phones a street-front gateway heard in one store-local hour
    that were not consented shoppers: counted, never identified."""

    __tablename__ = "passers_by"

    store: Mapped[str] = mapped_column(Ident, primary_key=True)
    hour_ms: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    passers_by: Mapped[int] = mapped_column(Integer)
    updated_ms: Mapped[int] = mapped_column(BigInteger)


_table = cast(Table, PassersByRow.__table__)


class PassersByRepository(PassersByCounts):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        Base.metadata.create_all(engine, tables=[_table])

    def save_count(self, store: str, hour_ms: int, passers_by: int, updated_ms: int) -> None:
        c = _table.c
        with self.engine.begin() as conn:
            conn.execute(delete(_table).where(c.store == store, c.hour_ms == hour_ms))
            conn.execute(
                _table.insert().values(
                    store=store, hour_ms=hour_ms, passers_by=passers_by, updated_ms=updated_ms
                )
            )

    def count(self, store: str, hour_ms: int) -> int | None:
        c = _table.c
        with self.engine.connect() as conn:
            found = conn.execute(
                select(c.passers_by).where(c.store == store, c.hour_ms == hour_ms)
            ).scalar()
        return None if found is None else int(found)

    def counts(self, store: str, from_ms: int, to_ms: int) -> dict[int, int]:
        c = _table.c
        query = select(c.hour_ms, c.passers_by).where(
            c.store == store, c.hour_ms >= from_ms, c.hour_ms < to_ms
        )
        with self.engine.connect() as conn:
            return {int(h): int(n) for h, n in conn.execute(query)}
