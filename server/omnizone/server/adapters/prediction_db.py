"""The predictions' reads (``service/ports/predictions.py``) over the shared
database: SQLAlchemy Core, plain tuples, no table of their own."""

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Engine, Table, func, select

from omnizone.server.adapters.db import VisitRow, in_chunks
from omnizone.server.adapters.shopper_db import ConsentRow, ProfileEventRow, ShopperRow
from omnizone.server.domain.identity import Purpose
from omnizone.server.service.ports.predictions import PredictionReads

_shoppers = cast(Table, ShopperRow.__table__)
_consents = cast(Table, ConsentRow.__table__)
_events = cast(Table, ProfileEventRow.__table__)


class PredictionRepository(PredictionReads):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def consented_shoppers(self, store: str) -> list[str]:
        c, s = _consents.c, _shoppers.c
        query = (
            select(c.shopper_id, c.granted)
            .join(_shoppers, s.id == c.shopper_id)
            .where(s.store == store, c.purpose == Purpose.PERSONALIZED_OFFERS.value)
            .order_by(c.id)
        )
        latest: dict[str, bool] = {}
        with self.engine.connect() as conn:
            for shopper, granted in conn.execute(query):
                latest[shopper] = bool(granted)  # the latest change wins
        return sorted(s for s, granted in latest.items() if granted)

    def entry_bins(
        self, store: str, from_ms: int, to_ms: int, bin_ms: int, exclude: Sequence[str]
    ) -> list[tuple[str, int, int]]:
        v = cast(Table, VisitRow.__table__).c
        bin_index = ((v.entered_ms - from_ms) // bin_ms).label("bin")
        query: Any = (
            select(v.zone, bin_index, func.count())
            .where(v.store == store, v.entered_ms >= from_ms, v.entered_ms < to_ms)
            .group_by(v.zone, bin_index)
        )
        if exclude:
            query = query.where(v.device.not_in(list(exclude)))
        with self.engine.connect() as conn:
            return [(z, int(b), int(n)) for z, b, n in conn.execute(query)]

    def profile_rows(
        self, shoppers: Sequence[str], from_ms: int, to_ms: int
    ) -> list[tuple[str, str, str, int]]:
        e = _events.c
        out: list[tuple[str, str, str, int]] = []
        with self.engine.connect() as conn:
            for chunk in in_chunks(shoppers):
                query: Any = select(e.shopper_id, e.type, e.gtin, e.at_ms).where(
                    e.shopper_id.in_(chunk), e.at_ms >= from_ms, e.at_ms < to_ms
                )
                out += conn.execute(query).cursor.fetchall()  # the driver's tuples
        return out
