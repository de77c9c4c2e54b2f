"""The retail insight views' own reads (``ports.insight``): shoppers' last
entry before a range, and the registered staff devices (``staff_devices``,
migration 0009)."""

from typing import cast

from sqlalchemy import Engine, String, Table, delete, func, select
from sqlalchemy.orm import Mapped, mapped_column

from omnizone.server.adapters.db import Base, VisitRow
from omnizone.server.adapters.db_write import Ident
from omnizone.server.adapters.stay_rollup_db import StayRollup
from omnizone.server.service.ports.insight import InsightReads

_visits = VisitRow.__table__


class StaffDeviceRow(Base):
    """A device staff marked as a colleague's: left out of every shopper figure."""

    __tablename__ = "staff_devices"

    store: Mapped[str] = mapped_column(Ident, primary_key=True)
    device: Mapped[str] = mapped_column(String(128), primary_key=True)
    label: Mapped[str] = mapped_column(Ident)
    registered_ms: Mapped[int]


_staff = cast(Table, StaffDeviceRow.__table__)


class InsightRepository(InsightReads):
    def __init__(self, engine: Engine, days: StayRollup | None = None) -> None:
        """``days``: the analytics' daily roll-up (``stay_rollup_db``), which
        ``last_entries`` then reads closed days from."""
        self.engine = engine
        self._days = days
        Base.metadata.create_all(engine, tables=[_staff])

    def last_entries(self, store: str, from_ms: int, to_ms: int) -> dict[str, int]:
        """A range scan of ``ix_visits_analytics`` (store, entered_ms, ..., device),
        or the same from the daily roll-up."""
        if self._days is not None:
            return self._days.last_entries(store, from_ms, to_ms)
        v = _visits.c
        query = (
            select(v.device, func.max(v.entered_ms))
            .where(v.store == store, v.entered_ms >= from_ms, v.entered_ms < to_ms)
            .group_by(v.device)
        )
        with self.engine.connect() as conn:
            return {d: int(at) for d, at in conn.execute(query).cursor.fetchall()}

    def staff_devices(self, store: str) -> dict[str, str]:
        s = _staff.c
        with self.engine.connect() as conn:
            rows = conn.execute(select(s.device, s.label).where(s.store == store))
            return {d: label for d, label in rows}

    def register_staff(self, store: str, device: str, label: str, at_ms: int) -> None:
        s = _staff.c
        with self.engine.begin() as conn:
            conn.execute(delete(_staff).where(s.store == store, s.device == device))
            conn.execute(
                _staff.insert().values(store=store, device=device, label=label, registered_ms=at_ms)
            )

    def remove_staff(self, store: str, device: str) -> bool:
        s = _staff.c
        with self.engine.begin() as conn:
            result = conn.execute(delete(_staff).where(s.store == store, s.device == device))
            return bool(result.rowcount)

    def device_staff(self, device: str) -> list[dict[str, object]]:
        """The staff registrations of ``device`` (a shopper's export: a phone
        marked as a colleague's is information about its owner)."""
        s = _staff.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(s.store, s.label, s.registered_ms).where(s.device == device)
            ).mappings()
            return [dict(row) for row in rows]

    def erase_device(self, device: str) -> int:
        """Erasure: the device's staff registrations in every store."""
        with self.engine.begin() as conn:
            return int(conn.execute(delete(_staff).where(_staff.c.device == device)).rowcount)
