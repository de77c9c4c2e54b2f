"""SQLAlchemy storage of shoppers, their consent history and profile events.

Only a SHA-256 of a shopper's token is stored. Each phone's rotating-id
parameters (identity key, rotation exponent, beacon clock offset) are kept
beside it: the resolver needs all three. Consent changes are appended,
never updated, so the history of what a shopper allowed and when survives.
Erasing a shopper deletes all three kinds of rows in one transaction.
"""

from collections.abc import Iterable, Sequence

from sqlalchemy import (
    BigInteger,
    Boolean,
    Engine,
    Float,
    ForeignKey,
    Index,
    LargeBinary,
    SmallInteger,
    String,
    delete,
    select,
    text,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from omnizone.contract.eid import EidParams
from omnizone.server.adapters.db import Base, Id, Ident, in_chunks
from omnizone.server.domain.identity import (
    Consent,
    ConsentChange,
    ProfileEvent,
    Purpose,
    Shopper,
    current_consent,
)
from omnizone.server.service.ports.shoppers import ShopperStore

ShopperId = String(64)


class ShopperRow(Base):
    __tablename__ = "shoppers"
    __table_args__ = (Index("ix_shoppers_loyalty", "loyalty_id"),)

    id: Mapped[str] = mapped_column(ShopperId, primary_key=True)
    store: Mapped[str] = mapped_column(Ident)
    token_hash: Mapped[str] = mapped_column(String(64))
    eid_key: Mapped[bytes] = mapped_column(LargeBinary(16))
    created_ms: Mapped[int]
    loyalty_id: Mapped[str | None] = mapped_column(String(64))
    # Migration 0005 gives shoppers from before it random values; these
    # defaults only serve rows written without them (benchmark fixtures).
    eid_exponent: Mapped[int] = mapped_column(SmallInteger, server_default=text("10"))
    eid_clock_offset_s: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))


class ConsentRow(Base):
    """One change of one purpose; the latest row per purpose is the current choice."""

    __tablename__ = "shopper_consents"
    __table_args__ = (Index("ix_consents_shopper", "shopper_id", "id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    shopper_id: Mapped[str] = mapped_column(
        ShopperId, ForeignKey("shoppers.id", ondelete="CASCADE")
    )
    purpose: Mapped[str] = mapped_column(String(32))
    granted: Mapped[bool] = mapped_column(Boolean)
    changed_ms: Mapped[int]


class ProfileEventRow(Base):
    __tablename__ = "profile_events"
    __table_args__ = (Index("ix_profile_events_shopper", "shopper_id", "at_ms"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    shopper_id: Mapped[str] = mapped_column(
        ShopperId, ForeignKey("shoppers.id", ondelete="CASCADE")
    )
    type: Mapped[str] = mapped_column(String(16))
    gtin: Mapped[str] = mapped_column(String(14))
    channel: Mapped[str] = mapped_column(String(8))
    amount: Mapped[float | None] = mapped_column(Float)
    at_ms: Mapped[int]


TABLES = [
    Base.metadata.tables[row.__tablename__] for row in (ShopperRow, ConsentRow, ProfileEventRow)
]


def _shopper(row: ShopperRow) -> Shopper:
    return Shopper(
        id=row.id,
        store=row.store,
        token_hash=row.token_hash,
        eid_key=bytes(row.eid_key),
        created_ms=row.created_ms,
        loyalty_id=row.loyalty_id,
        eid_exponent=row.eid_exponent,
        eid_clock_offset_s=row.eid_clock_offset_s,
    )


class ShopperRepository(ShopperStore):
    """The ``ShopperStore`` port over an SQLAlchemy engine (shared with ingest)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        Base.metadata.create_all(engine, tables=TABLES)

    def add_shopper(self, shopper: Shopper) -> None:
        with Session(self.engine) as session, session.begin():
            session.add(
                ShopperRow(
                    id=shopper.id,
                    store=shopper.store,
                    token_hash=shopper.token_hash,
                    eid_key=shopper.eid_key,
                    created_ms=shopper.created_ms,
                    loyalty_id=shopper.loyalty_id,
                    eid_exponent=shopper.eid_exponent,
                    eid_clock_offset_s=shopper.eid_clock_offset_s,
                )
            )

    def shopper(self, shopper_id: str) -> Shopper | None:
        with Session(self.engine) as session:
            row = session.get(ShopperRow, shopper_id)
            return None if row is None else _shopper(row)

    def shoppers_with_loyalty(self, loyalty_id: str) -> list[str]:
        with Session(self.engine) as session:
            found = session.scalars(
                select(ShopperRow.id).where(ShopperRow.loyalty_id == loyalty_id)
            )
            return sorted(found)

    def set_loyalty(self, shopper_id: str, loyalty_id: str) -> bool:
        with Session(self.engine) as session, session.begin():
            result = session.execute(
                update(ShopperRow).where(ShopperRow.id == shopper_id).values(loyalty_id=loyalty_id)
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def devices(self) -> dict[str, EidParams]:
        with Session(self.engine) as session:
            rows = session.execute(
                select(
                    ShopperRow.id,
                    ShopperRow.eid_key,
                    ShopperRow.eid_exponent,
                    ShopperRow.eid_clock_offset_s,
                )
            )
            return {
                shopper_id: EidParams(bytes(key), exponent, offset)
                for shopper_id, key, exponent, offset in rows
            }

    def add_consent_changes(self, shopper_id: str, changes: Sequence[ConsentChange]) -> None:
        with Session(self.engine) as session, session.begin():
            session.add_all(
                ConsentRow(
                    shopper_id=shopper_id,
                    purpose=c.purpose.value,
                    granted=c.granted,
                    changed_ms=c.changed_ms,
                )
                for c in changes
            )

    def consent_history(self, shopper_id: str) -> list[ConsentChange]:
        """Oldest first."""
        with Session(self.engine) as session:
            rows = session.scalars(
                select(ConsentRow)
                .where(ConsentRow.shopper_id == shopper_id)
                .order_by(ConsentRow.id)
            )
            return [ConsentChange(Purpose(r.purpose), r.granted, r.changed_ms) for r in rows]

    def current_consents(self) -> dict[str, Consent]:
        """Every shopper's current consent (defaults for those who never chose)."""
        with Session(self.engine) as session:
            shoppers = session.scalars(select(ShopperRow.id)).all()
            rows = session.execute(
                select(
                    ConsentRow.shopper_id,
                    ConsentRow.purpose,
                    ConsentRow.granted,
                    ConsentRow.changed_ms,
                ).order_by(ConsentRow.id)
            ).all()
        history: dict[str, list[ConsentChange]] = {s: [] for s in shoppers}
        for shopper_id, purpose, granted, changed_ms in rows:
            history.setdefault(shopper_id, []).append(
                ConsentChange(Purpose(purpose), granted, changed_ms)
            )
        return {s: current_consent(changes) for s, changes in history.items()}

    def add_profile_events(
        self, shopper_ids: Iterable[str], events: Sequence[ProfileEvent]
    ) -> None:
        """The same events for each shopper, in one transaction."""
        with Session(self.engine) as session, session.begin():
            session.add_all(
                ProfileEventRow(
                    shopper_id=shopper_id,
                    type=e.type,
                    gtin=e.gtin,
                    channel=e.channel,
                    amount=e.amount,
                    at_ms=e.at_ms,
                )
                for shopper_id in shopper_ids
                for e in events
            )

    def profile_events(self, shopper_id: str) -> list[ProfileEvent]:
        """In the order they were received."""
        return self.profile_events_of([shopper_id]).get(shopper_id, [])

    def profile_events_of(self, shopper_ids: Sequence[str]) -> dict[str, list[ProfileEvent]]:
        """Each shopper's events in the order received; shoppers without any are absent."""
        found: dict[str, list[ProfileEvent]] = {}
        with Session(self.engine) as session:
            for chunk in in_chunks(shopper_ids):
                rows = session.scalars(
                    select(ProfileEventRow)
                    .where(ProfileEventRow.shopper_id.in_(chunk))
                    .order_by(ProfileEventRow.id)
                )
                for r in rows:
                    found.setdefault(r.shopper_id, []).append(
                        ProfileEvent(
                            type=r.type,  # type: ignore[arg-type]  # written from the Literal
                            gtin=r.gtin,
                            channel=r.channel,  # type: ignore[arg-type]
                            at_ms=r.at_ms,
                            amount=r.amount,
                        )
                    )
        return found

    def loyalty_ids(self, shopper_ids: Sequence[str]) -> dict[str, str | None]:
        found: dict[str, str | None] = {}
        with Session(self.engine) as session:
            for chunk in in_chunks(shopper_ids):
                rows = session.execute(
                    select(ShopperRow.id, ShopperRow.loyalty_id).where(ShopperRow.id.in_(chunk))
                )
                found.update({shopper: loyalty for shopper, loyalty in rows})
        return found

    def erase(self, shopper_id: str) -> bool:
        """Delete every row about the shopper; False if there was none."""
        with Session(self.engine) as session, session.begin():
            session.execute(delete(ProfileEventRow).where(ProfileEventRow.shopper_id == shopper_id))
            session.execute(delete(ConsentRow).where(ConsentRow.shopper_id == shopper_id))
            result = session.execute(delete(ShopperRow).where(ShopperRow.id == shopper_id))
            return bool(result.rowcount)  # type: ignore[attr-defined]
