"""Saved store layouts (versioned) and floor-plan images, in SQL.

A layout is a whole store plan (the ``omnizone.store.StorePlan`` shape, as
JSON) saved from the dashboard's editor; every save is a new version, none is
ever overwritten, so an earlier layout can be looked at or saved again. Floor
images are stored as bytes in the database (not on disk), so a server backed
by PostgreSQL keeps them with everything else.
"""

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Engine,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    func,
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from omnizone.server.adapters.db import Base, Id, Ident
from omnizone.server.service.ports.layouts import (
    FloorImage,
    LayoutStore,
    StoredLayout,
    VersionTaken,
)


class LayoutRow(Base):
    __tablename__ = "store_layouts"
    __table_args__ = (UniqueConstraint("store", "version", name="uq_layout_version"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    store: Mapped[str] = mapped_column(Ident)
    version: Mapped[int] = mapped_column(Integer)
    plan: Mapped[dict[str, Any]] = mapped_column(JSON)
    image_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    note: Mapped[str] = mapped_column(Text, default="")
    saved_ms: Mapped[int] = mapped_column(BigInteger)


class FloorImageRow(Base):
    __tablename__ = "floor_images"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    store: Mapped[str] = mapped_column(Ident, index=True)
    content_type: Mapped[str] = mapped_column(String(40))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    uploaded_ms: Mapped[int] = mapped_column(BigInteger)


TABLES = [Base.metadata.tables[t] for t in ("store_layouts", "floor_images")]


class LayoutRepository(LayoutStore):
    """The ``LayoutStore`` port over an SQLAlchemy engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        Base.metadata.create_all(engine, tables=TABLES)

    def save(
        self, store: str, plan: dict[str, Any], image_id: int | None, note: str, saved_ms: int
    ) -> StoredLayout:
        """Store as the next version of ``store``."""
        with Session(self.engine) as session:
            try:
                with session.begin():
                    newest = session.scalar(
                        select(func.max(LayoutRow.version)).where(LayoutRow.store == store)
                    )
                    version = (newest or 0) + 1
                    session.add(
                        LayoutRow(
                            store=store,
                            version=version,
                            plan=plan,
                            image_id=image_id,
                            note=note,
                            saved_ms=saved_ms,
                        )
                    )
            except IntegrityError:
                raise VersionTaken(f"layout version of {store!r} taken by another save") from None
        return StoredLayout(store, version, plan, image_id, note, saved_ms)

    def latest(self, store: str) -> StoredLayout | None:
        query = (
            select(LayoutRow)
            .where(LayoutRow.store == store)
            .order_by(LayoutRow.version.desc())
            .limit(1)
        )
        with Session(self.engine) as session:
            row = session.scalar(query)
            return None if row is None else _layout(row)

    def get(self, store: str, version: int) -> StoredLayout | None:
        query = select(LayoutRow).where(LayoutRow.store == store, LayoutRow.version == version)
        with Session(self.engine) as session:
            row = session.scalar(query)
            return None if row is None else _layout(row)

    def versions(self, store: str) -> list[StoredLayout]:
        """Every saved version, newest first."""
        query = select(LayoutRow).where(LayoutRow.store == store).order_by(LayoutRow.version.desc())
        with Session(self.engine) as session:
            return [_layout(row) for row in session.scalars(query)]

    def add_image(self, store: str, content_type: str, data: bytes, uploaded_ms: int) -> int:
        with Session(self.engine) as session, session.begin():
            row = FloorImageRow(
                store=store, content_type=content_type, data=data, uploaded_ms=uploaded_ms
            )
            session.add(row)
            session.flush()
            return row.id

    def image(self, store: str, image_id: int) -> FloorImage | None:
        with Session(self.engine) as session:
            row = session.get(FloorImageRow, image_id)
            if row is None or row.store != store:
                return None
            return FloorImage(row.id, row.store, row.content_type, row.data, row.uploaded_ms)


def _layout(row: LayoutRow) -> StoredLayout:
    return StoredLayout(row.store, row.version, row.plan, row.image_id, row.note, row.saved_ms)
