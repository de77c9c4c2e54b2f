"""Stored alert rules and the alert log (issue 18 point 7; migration
``0011_alert_rules_and_stream``). The log is what ``omnizone report`` shows
as the alert history and what the signed webhook is fed from, so a change is
sent once even across a restart: a row is marked when the receiver took it."""

from collections.abc import Mapping, Sequence
from typing import Any, cast

from sqlalchemy import JSON, Engine, Float, Index, String, Table, delete, select, update
from sqlalchemy.orm import Mapped, mapped_column

from omnizone.server.adapters.db import Base
from omnizone.server.adapters.db_write import Id, Ident
from omnizone.server.domain.analytics.alerts import AlertLogEntry
from omnizone.server.service.ports.alerts import AlertStore, StoredAlertChange


class AlertRulesRow(Base):
    """A store's alert thresholds, as the API last saved them."""

    __tablename__ = "alert_rules"

    store: Mapped[str] = mapped_column(Ident, primary_key=True)
    rules: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_ms: Mapped[int]


class AlertLogRow(Base):
    """One alert raised or cleared."""

    __tablename__ = "alert_log"
    __table_args__ = (
        Index("ix_alert_log_store_at", "store", "at_ms"),
        {"sqlite_autoincrement": True},  # a row's id is its webhook delivery id: never reused
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    store: Mapped[str] = mapped_column(Ident)
    key: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(31))
    subject: Mapped[str] = mapped_column(String(255))
    severity: Mapped[str] = mapped_column(String(15))
    state: Mapped[str] = mapped_column(String(15))
    value: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    message: Mapped[str] = mapped_column(String(511))
    at_ms: Mapped[int]
    delivered_ms: Mapped[int | None]
    attempts: Mapped[int] = mapped_column(default=0)


_rules = cast(Table, AlertRulesRow.__table__)
_log = cast(Table, AlertLogRow.__table__)


def _change(row: Any) -> StoredAlertChange:
    entry = AlertLogEntry(
        row.key,
        row.kind,
        row.subject,
        row.severity,
        row.state,
        float(row.value),
        float(row.threshold),
        row.message,
        int(row.at_ms),
    )
    return StoredAlertChange(int(row.id), row.store, entry, row.delivered_ms, int(row.attempts))


class AlertRepository(AlertStore):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        Base.metadata.create_all(engine, tables=[_rules, _log])

    def rules(self, store: str) -> Mapping[str, object] | None:
        with self.engine.connect() as conn:
            found = conn.execute(select(_rules.c.rules).where(_rules.c.store == store)).scalar()
            return dict(found) if found is not None else None

    def save_rules(self, store: str, rules: Mapping[str, object], at_ms: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(_rules).where(_rules.c.store == store))
            conn.execute(_rules.insert().values(store=store, rules=dict(rules), updated_ms=at_ms))

    def append(self, store: str, entries: Sequence[AlertLogEntry]) -> list[int]:
        ids: list[int] = []
        with self.engine.begin() as conn:
            for e in entries:
                result = conn.execute(
                    _log.insert().values(
                        store=store,
                        key=e.key[:255],
                        kind=e.kind,
                        subject=e.subject[:255],
                        severity=e.severity,
                        state=e.state,
                        value=e.value,
                        threshold=e.threshold,
                        message=e.message[:511],
                        at_ms=e.at_ms,
                        attempts=0,
                    )
                )
                ids.append(int(cast(Any, result.inserted_primary_key)[0]))
        return ids

    def log(self, store: str, from_ms: int, to_ms: int) -> list[StoredAlertChange]:
        c = _log.c
        query = (
            select(_log)
            .where(c.store == store, c.at_ms >= from_ms, c.at_ms < to_ms)
            .order_by(c.at_ms, c.id)
        )
        with self.engine.connect() as conn:
            return [_change(row) for row in conn.execute(query)]

    def undelivered(self, limit: int, max_attempts: int) -> list[StoredAlertChange]:
        c = _log.c
        query = (
            select(_log)
            .where(c.delivered_ms.is_(None), c.attempts < max_attempts)
            .order_by(c.id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [_change(row) for row in conn.execute(query)]

    def mark(self, change_id: int, delivered_ms: int | None) -> None:
        c = _log.c
        values: dict[str, Any] = {"attempts": c.attempts + 1}
        if delivered_ms is not None:
            values["delivered_ms"] = delivered_ms
        with self.engine.begin() as conn:
            conn.execute(update(_log).where(c.id == change_id).values(**values))

    def prune(self, older_than_ms: int) -> int:
        with self.engine.begin() as conn:
            return int(conn.execute(delete(_log).where(_log.c.at_ms < older_than_ms)).rowcount)
