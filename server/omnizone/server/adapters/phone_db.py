"""The phone-sightings port in SQL (issue 15): two tables on the server's engine.

``phone_sightings`` holds what a phone heard of the store's fixed beacons,
one row per (window, beacon); ``phone_batches`` the batches applied, with the
answer given, so a resend is answered the same and applied once (the primary
key makes two racing resends one). Made by migration 0008."""

import json
from typing import Any

from sqlalchemy import BigInteger, Engine, Float, Integer, String, Text, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from omnizone.server.adapters.db import Base, Id, Ident
from omnizone.server.service.ports.phones import PhoneSightingRow, PhoneSightingStore


class PhoneSightingDbRow(Base):
    __tablename__ = "phone_sightings"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    store: Mapped[str] = mapped_column(Ident)
    device: Mapped[str] = mapped_column(String(128), index=True)
    beacon: Mapped[str] = mapped_column(Ident)
    window_start_ms: Mapped[int] = mapped_column(BigInteger, index=True)
    window_ms: Mapped[int] = mapped_column(Integer)
    rssi_mean: Mapped[float] = mapped_column(Float)
    count: Mapped[int] = mapped_column(Integer)


class PhoneBatchRow(Base):
    __tablename__ = "phone_batches"

    device: Mapped[str] = mapped_column(String(128), primary_key=True)
    batch: Mapped[str] = mapped_column(String(64), primary_key=True)
    received_ms: Mapped[int] = mapped_column(BigInteger, index=True)
    answer: Mapped[str] = mapped_column(Text)


TABLES = [Base.metadata.tables[t] for t in ("phone_sightings", "phone_batches")]


class PhoneSightingRepository(PhoneSightingStore):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        Base.metadata.create_all(engine, tables=TABLES)

    def applied(self, device: str, batch: str) -> dict[str, Any] | None:
        with Session(self.engine) as session:
            answer = session.scalar(
                select(PhoneBatchRow.answer).where(
                    PhoneBatchRow.device == device, PhoneBatchRow.batch == batch
                )
            )
        return None if answer is None else dict(json.loads(answer))

    def apply(
        self,
        device: str,
        batch: str,
        received_ms: int,
        rows: list[PhoneSightingRow],
        answer: dict[str, Any],
    ) -> bool:
        try:
            with Session(self.engine) as session, session.begin():
                session.add(
                    PhoneBatchRow(
                        device=device,
                        batch=batch,
                        received_ms=received_ms,
                        answer=json.dumps(answer),
                    )
                )
                session.flush()  # the batch's key first: a second resend stops here
                session.add_all(
                    PhoneSightingDbRow(
                        store=r.store,
                        device=r.device,
                        beacon=r.beacon,
                        window_start_ms=r.window_start_ms,
                        window_ms=r.window_ms,
                        rssi_mean=r.rssi_mean,
                        count=r.count,
                    )
                    for r in rows
                )
        except IntegrityError:
            return False
        return True

    def device_sightings(self, device: str) -> list[dict[str, Any]]:
        with Session(self.engine) as session:
            rows = session.scalars(
                select(PhoneSightingDbRow)
                .where(PhoneSightingDbRow.device == device)
                .order_by(PhoneSightingDbRow.window_start_ms, PhoneSightingDbRow.beacon)
            ).all()
            return [
                {
                    "store": r.store,
                    "beacon": r.beacon,
                    "window_start_ms": r.window_start_ms,
                    "window_ms": r.window_ms,
                    "rssi_mean": r.rssi_mean,
                    "count": r.count,
                }
                for r in rows
            ]

    def device_batches(self, device: str) -> list[dict[str, Any]]:
        with Session(self.engine) as session:
            rows = session.scalars(
                select(PhoneBatchRow)
                .where(PhoneBatchRow.device == device)
                .order_by(PhoneBatchRow.received_ms, PhoneBatchRow.batch)
            ).all()
            return [
                {"batch": r.batch, "received_ms": r.received_ms, "answer": json.loads(r.answer)}
                for r in rows
            ]

    def erase_device(self, device: str) -> int:
        with Session(self.engine) as session, session.begin():
            gone = session.execute(
                delete(PhoneSightingDbRow).where(PhoneSightingDbRow.device == device)
            ).rowcount  # type: ignore[attr-defined]
            gone += session.execute(
                delete(PhoneBatchRow).where(PhoneBatchRow.device == device)
            ).rowcount  # type: ignore[attr-defined]
        return int(gone)

    def prune(self, before_ms: int) -> int:
        with Session(self.engine) as session, session.begin():
            gone = session.execute(
                delete(PhoneSightingDbRow).where(PhoneSightingDbRow.window_start_ms < before_ms)
            ).rowcount  # type: ignore[attr-defined]
            gone += session.execute(
                delete(PhoneBatchRow).where(PhoneBatchRow.received_ms < before_ms)
            ).rowcount  # type: ignore[attr-defined]
        return int(gone)
