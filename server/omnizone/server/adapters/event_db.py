"""The event stream's outbox and webhook subscriptions (issue 18 point 8;
migration ``0011_alert_rules_and_stream``).

Every stream event is a row of ``event_outbox``, written in the same
transaction as the fact it tells of (a stay, a tap, a try-on; an offer right
after it is stored), numbered by the table's sequence: that number is the
event's cursor, so a consumer resumes after any event, of any kind, however
late it was written. Rows are kept for ``event_outbox_days`` (the resume
window) and go with a shopper's erasure (``device``). A subscription is a
URL, the events it wants and how far it has been sent (``cursor``)."""

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import JSON, Engine, String, Table, delete, func, select, update
from sqlalchemy.orm import Mapped, mapped_column

from omnizone.server.adapters.db import Base
from omnizone.server.adapters.db_write import EventOutboxRow, Ident, outbox_values
from omnizone.server.domain.analytics.event_stream import OutboxEvent, StoredEvent
from omnizone.server.service.ports.events import EventOutbox, Subscription


class EventSubscriptionRow(Base):
    __tablename__ = "event_subscriptions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    store: Mapped[str] = mapped_column(Ident)
    url: Mapped[str] = mapped_column(String(2048))
    events: Mapped[list[str]] = mapped_column(JSON)
    cursor: Mapped[int]
    created_ms: Mapped[int]
    delivered: Mapped[int] = mapped_column(default=0)
    failures: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(String(255))


_outbox = cast(Table, EventOutboxRow.__table__)
_subs = cast(Table, EventSubscriptionRow.__table__)


def _sub(row: Any) -> Subscription:
    return Subscription(
        row.id,
        row.store,
        row.url,
        tuple(row.events),
        int(row.cursor),
        int(row.created_ms),
        int(row.delivered),
        int(row.failures),
        row.last_error,
    )


class EventRepository(EventOutbox):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        Base.metadata.create_all(engine, tables=[_outbox, _subs])

    def add(self, events: Sequence[OutboxEvent], stored_ms: int) -> None:
        if not events:
            return
        with self.engine.begin() as conn:
            # a message id already there (the same offer told twice) is not told again
            ids = [e.message_id for e in events]
            seen = set(
                conn.execute(select(_outbox.c.message_id).where(_outbox.c.message_id.in_(ids)))
                .scalars()
                .all()
            )
            fresh = [e for e in events if e.message_id not in seen]
            if fresh:
                conn.execute(_outbox.insert(), outbox_values(fresh, stored_ms))

    def after(
        self, store: str, after_seq: int, limit: int, stored_before_ms: int | None = None
    ) -> list[StoredEvent]:
        c = _outbox.c
        query = select(_outbox).where(c.store == store, c.seq > after_seq)
        if stored_before_ms is not None:
            query = query.where(c.stored_ms < stored_before_ms)
        query = query.order_by(c.seq).limit(limit)
        with self.engine.connect() as conn:
            return [
                StoredEvent(
                    int(r.seq),
                    r.store,
                    r.event,
                    int(r.at_ms),
                    r.device,
                    dict(r.properties),
                    r.message_id,
                )
                for r in conn.execute(query)
            ]

    def last_seq(self, store: str) -> int:
        with self.engine.connect() as conn:
            found = conn.execute(
                select(func.max(_outbox.c.seq)).where(_outbox.c.store == store)
            ).scalar()
            return int(found or 0)

    def prune(self, older_than_ms: int) -> int:
        with self.engine.begin() as conn:
            result = conn.execute(delete(_outbox).where(_outbox.c.stored_ms < older_than_ms))
            return int(result.rowcount)

    def erase_device(self, device: str) -> int:
        with self.engine.begin() as conn:
            return int(conn.execute(delete(_outbox).where(_outbox.c.device == device)).rowcount)

    def device_events(self, device: str) -> list[dict[str, object]]:
        """The device's stream events (a shopper's export, ``stream_events``)."""
        c = _outbox.c
        query = select(
            c.seq, c.store, c.event, c.at_ms, c.stored_ms, c.properties, c.message_id
        ).where(c.device == device)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query.order_by(c.seq)).mappings()]

    def offer_facts(self, offer_id: str) -> tuple[str, str, str] | None:
        """(store, shopper id, campaign id) of a stored offer."""
        offers = Base.metadata.tables.get("offers")
        if offers is None:
            return None
        c = offers.c
        with self.engine.connect() as conn:
            row = conn.execute(
                select(c.store, c.shopper_id, c.campaign_id).where(c.offer_id == offer_id)
            ).first()
            return (str(row[0]), str(row[1]), str(row[2])) if row is not None else None

    # -- subscriptions ------------------------------------------------------------------

    def add_subscription(self, sub: Subscription) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                _subs.insert().values(
                    id=sub.id,
                    store=sub.store,
                    url=sub.url,
                    events=list(sub.events),
                    cursor=sub.cursor,
                    created_ms=sub.created_ms,
                    delivered=0,
                    failures=0,
                )
            )

    def subscriptions(self, store: str | None = None) -> list[Subscription]:
        query = select(_subs).order_by(_subs.c.created_ms, _subs.c.id)
        if store is not None:
            query = query.where(_subs.c.store == store)
        with self.engine.connect() as conn:
            return [_sub(r) for r in conn.execute(query)]

    def remove_subscription(self, store: str, sub_id: str) -> bool:
        with self.engine.begin() as conn:
            result = conn.execute(delete(_subs).where(_subs.c.store == store, _subs.c.id == sub_id))
            return bool(result.rowcount)

    def advance(self, sub_id: str, cursor: int, delivered: int) -> None:
        c = _subs.c
        with self.engine.begin() as conn:
            conn.execute(
                update(_subs)
                .where(c.id == sub_id)
                .values(cursor=cursor, delivered=c.delivered + delivered, last_error=None)
            )

    def failed(self, sub_id: str, error: str) -> None:
        c = _subs.c
        with self.engine.begin() as conn:
            conn.execute(
                update(_subs)
                .where(c.id == sub_id)
                .values(failures=c.failures + 1, last_error=error[:255])
            )
