"""SQLAlchemy storage of delivered offers: per-shopper sequence, acks, receipts,
redemptions and the push subscriptions/tokens of the shopper's phone.

Every write transaction starts with a write (an UPDATE or DELETE, even one
that matches nothing), so SQLite takes its write lock before reading and a
concurrent writer waits on the busy timeout instead of failing the upgrade.
PostgreSQL gets row locks from the same statements; the rare unique-key race
there (two first offers of a shopper, two redemptions of one code) is retried
or reported as what it is.
"""

import logging
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar, cast

from sqlalchemy import (
    JSON,
    Engine,
    ForeignKey,
    Index,
    String,
    Table,
    UniqueConstraint,
    bindparam,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import CursorResult, Result
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from omnizone.server.adapters.db import Base, Id, Ident, in_chunks, within_range
from omnizone.server.domain.offers import OfferDraft
from omnizone.server.service.delivery import (
    DeliveredOffer,
    InboxOffer,
    NativePlatform,
    NewOffer,
    OfferNotFound,
    PushSubscription,
    Receipt,
    ReceiptStatus,
    Redemption,
    RedemptionRefused,
    next_ack,
    refusal,
)
from omnizone.server.service.ports.offers import OfferStorage

T = TypeVar("T")
ATTEMPTS = 5


class OfferRow(Base):
    """One offer as delivered; ``seq`` counts 1, 2, 3... per shopper."""

    __tablename__ = "offers"
    __table_args__ = (
        UniqueConstraint("shopper_id", "seq", name="uq_offer_shopper_seq"),
        Index("ix_offer_store_campaign", "store", "campaign_id"),
    )

    offer_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    shopper_id: Mapped[str]
    seq: Mapped[int]
    store: Mapped[str] = mapped_column(Ident)
    campaign_id: Mapped[str] = mapped_column(Ident)
    code: Mapped[str] = mapped_column(String(80), unique=True)
    # title, body, image, product_gtin, coupon_code, expires_ms, trigger
    content: Mapped[dict[str, Any]] = mapped_column(JSON)
    expires_ms: Mapped[int]
    created_ms: Mapped[int]
    # When the gateway published the sighting that made the trigger true.
    trigger_published_ms: Mapped[int | None]


class OfferCursorRow(Base):
    """Per shopper: the last seq handed out and the cumulative ack."""

    __tablename__ = "offer_cursors"

    shopper_id: Mapped[str] = mapped_column(primary_key=True)
    last_seq: Mapped[int]
    acked_seq: Mapped[int]
    acked_ms: Mapped[int | None]


class OfferReceiptRow(Base):
    __tablename__ = "offer_receipts"
    __table_args__ = (UniqueConstraint("offer_id", "status", name="uq_receipt_status"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    offer_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("offers.offer_id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(16))
    at_ms: Mapped[int]


class RedemptionRow(Base):
    __tablename__ = "offer_redemptions"

    offer_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("offers.offer_id", ondelete="CASCADE"), primary_key=True
    )
    code: Mapped[str] = mapped_column(String(80), unique=True)
    store: Mapped[str] = mapped_column(Ident)
    redeemed_ms: Mapped[int]


class PushSubscriptionRow(Base):
    """A browser's Web Push subscription; the endpoint identifies it."""

    __tablename__ = "push_subscriptions"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    shopper_id: Mapped[str] = mapped_column(index=True)
    endpoint: Mapped[str] = mapped_column(String(2048), unique=True)
    p256dh: Mapped[str] = mapped_column(String(128))
    auth: Mapped[str] = mapped_column(String(64))
    created_ms: Mapped[int]


class PushTokenRow(Base):
    """An FCM registration token or APNs device token of the shopper's app."""

    __tablename__ = "push_tokens"
    __table_args__ = (UniqueConstraint("platform", "token", name="uq_push_token"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    shopper_id: Mapped[str] = mapped_column(index=True)
    platform: Mapped[str] = mapped_column(String(8))
    token: Mapped[str] = mapped_column(String(4096))
    created_ms: Mapped[int]


TABLES: list[Table] = [
    cast(Table, model.__table__)
    for model in (
        OfferRow,
        OfferCursorRow,
        OfferReceiptRow,
        RedemptionRow,
        PushSubscriptionRow,
        PushTokenRow,
    )
]


def _rows(result: Result[Any]) -> int:
    """Rows an UPDATE or DELETE matched."""
    return int(cast(CursorResult[Any], result).rowcount)


def _ack_one(session: Session, shopper_id: str, seq: int, at_ms: int) -> int:
    row = session.get_one(OfferCursorRow, shopper_id)
    old = row.acked_seq
    new = next_ack(old, seq, row.last_seq)
    if new > old:
        row.acked_seq, row.acked_ms = new, at_ms
        newly = session.scalars(
            select(OfferRow.offer_id).where(
                OfferRow.shopper_id == shopper_id,
                OfferRow.seq > old,
                OfferRow.seq <= new,
                ~select(OfferReceiptRow.id)
                .where(
                    OfferReceiptRow.offer_id == OfferRow.offer_id,
                    OfferReceiptRow.status == "delivered",
                )
                .exists(),
            )
        ).all()
        session.add_all(OfferReceiptRow(offer_id=i, status="delivered", at_ms=at_ms) for i in newly)
    return new


#: SQLSTATEs of a transaction the server aborted and that may simply be run again.
log = logging.getLogger(__name__)

RETRY_SQLSTATES = frozenset({"40P01", "40001"})  # deadlock detected, serialization failure


def _sqlstate(error: DBAPIError) -> str | None:
    state = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
    return state if isinstance(state, str) else None


def _aborted_by_the_server(error: DBAPIError) -> bool:
    return _sqlstate(error) in RETRY_SQLSTATES


def _bump_cursors(session: Session, counts: Mapping[str, int]) -> dict[str, int]:
    """Move each shopper's last seq on by their offers in the batch (the UPDATE
    write-locks the cursor rows); the new last seq per shopper. A shopper's
    first offer creates the cursor; two publishers creating the same one at
    once collide on its primary key, and the loser's transaction is retried."""
    cursors = Base.metadata.tables[OfferCursorRow.__tablename__]
    shoppers = sorted(counts)
    if shoppers:
        session.connection().execute(
            update(cursors)
            .where(cursors.c.shopper_id == bindparam("sid"))
            .values(last_seq=cursors.c.last_seq + bindparam("n")),
            [{"sid": shopper, "n": counts[shopper]} for shopper in shoppers],
        )
    last: dict[str, int] = {}
    for chunk in in_chunks(shoppers):
        found = session.execute(
            select(OfferCursorRow.shopper_id, OfferCursorRow.last_seq).where(
                OfferCursorRow.shopper_id.in_(chunk)
            )
        )
        last.update({shopper: seq for shopper, seq in found})
    new = [shopper for shopper in shoppers if shopper not in last]
    if new:
        session.connection().execute(
            insert(cursors),
            [
                {"shopper_id": s, "last_seq": counts[s], "acked_seq": 0, "acked_ms": None}
                for s in new
            ],
        )
        last.update({s: counts[s] for s in new})
    return last


def _offer_row(new: NewOffer, seq: int, created_ms: int, code: str) -> "OfferRow":
    draft = new.draft
    content: dict[str, Any] = {
        "title": draft.title,
        "body": draft.body,
        "image": draft.image,
        "product_gtin": draft.product_gtin,
        "coupon_code": draft.coupon_code,
        "expires_ms": draft.expires_ms,
        "trigger": dict(draft.trigger),
    }
    return OfferRow(
        offer_id=str(uuid.uuid4()),
        shopper_id=new.shopper_id,
        seq=seq,
        store=draft.store,
        campaign_id=draft.campaign_id,
        code=code,
        content=content,
        expires_ms=draft.expires_ms,
        created_ms=created_ms,
        trigger_published_ms=new.trigger_published_ms,
    )


def _offer(row: OfferRow) -> DeliveredOffer:
    c = row.content
    return DeliveredOffer(
        offer_id=row.offer_id,
        shopper_id=row.shopper_id,
        seq=row.seq,
        store=row.store,
        campaign_id=row.campaign_id,
        title=c["title"],
        body=c["body"],
        coupon_code=row.code,
        expires_ms=row.expires_ms,
        created_ms=row.created_ms,
        trigger=c.get("trigger") or {},
        image=c.get("image"),
        product_gtin=c.get("product_gtin"),
        trigger_published_ms=row.trigger_published_ms,
    )


class OfferRepository(OfferStorage):
    """The ``OfferStorage`` port over any engine made by ``db.make_engine``."""

    def __init__(self, engine: Engine, *, create: bool = True) -> None:
        self.engine = engine
        if create:
            Base.metadata.create_all(engine, tables=TABLES)

    # -- helpers ----------------------------------------------------------------------

    def _write(self, work: Callable[[Session], T], *, retry_integrity: bool = True) -> T:
        """Run ``work`` in its own transaction, retrying a lost unique-key race
        and a transaction PostgreSQL chose to abort (a deadlock between two
        publishers, a serialization failure): the whole transaction was
        rolled back, so running it again stores everything once."""
        for attempt in range(ATTEMPTS):
            try:
                with Session(self.engine) as session, session.begin():
                    return work(session)
            except IntegrityError:
                if not retry_integrity or attempt == ATTEMPTS - 1:
                    raise
            except DBAPIError as error:
                if not _aborted_by_the_server(error) or attempt == ATTEMPTS - 1:
                    raise
                log.warning("offer write aborted by the database (%s); retrying", _sqlstate(error))
        raise AssertionError("unreachable")

    @staticmethod
    def _lock_cursor(session: Session, shopper_id: str) -> bool:
        """Write-lock the shopper's cursor row; False when it does not exist yet."""
        done = session.execute(
            update(OfferCursorRow)
            .where(OfferCursorRow.shopper_id == shopper_id)
            .values(acked_seq=OfferCursorRow.acked_seq)
        )
        return _rows(done) > 0

    # -- offers -----------------------------------------------------------------------

    def add_offer(
        self,
        shopper_id: str,
        draft: OfferDraft,
        *,
        created_ms: int,
        trigger_published_ms: int | None,
        new_code: Callable[[], str],
    ) -> DeliveredOffer:
        """Store the offer with the shopper's next seq, in one transaction."""
        return self.add_offers(
            [NewOffer(shopper_id, draft, trigger_published_ms)],
            created_ms=created_ms,
            new_code=lambda _draft: new_code(),
        )[0]

    def add_offers(
        self,
        offers: Sequence[NewOffer],
        *,
        created_ms: int,
        new_code: Callable[[OfferDraft], str],
    ) -> list[DeliveredOffer]:
        """Store offers, each with its shopper's next seq, in one transaction."""

        def work(session: Session) -> list[DeliveredOffer]:
            counts = Counter(new.shopper_id for new in offers)
            last = _bump_cursors(session, counts)
            given: Counter[str] = Counter()
            rows = []
            for new in offers:  # each shopper's new seqs, in the batch's order
                given[new.shopper_id] += 1
                seq = last[new.shopper_id] - counts[new.shopper_id] + given[new.shopper_id]
                rows.append(_offer_row(new, seq, created_ms, new_code(new.draft)))
            session.add_all(rows)
            session.flush()
            return [_offer(row) for row in rows]

        return self._write(work)  # a code collision or first-offer race: try again

    def offers_after(self, shopper_id: str, after: int, limit: int) -> list[DeliveredOffer]:
        with Session(self.engine) as session:
            rows = session.scalars(
                select(OfferRow)
                .where(OfferRow.shopper_id == shopper_id, OfferRow.seq > after)
                .order_by(OfferRow.seq)
                .limit(limit)
            )
            return [_offer(row) for row in rows]

    def inbox(self, shopper_id: str, after: int, limit: int) -> list[InboxOffer]:
        offers = self.offers_after(shopper_id, after, limit)
        ids = [o.offer_id for o in offers]
        receipts: dict[str, dict[ReceiptStatus, int]] = {i: {} for i in ids}
        redeemed: dict[str, int] = {}
        if ids:
            with Session(self.engine) as session:
                for r in session.scalars(
                    select(OfferReceiptRow).where(OfferReceiptRow.offer_id.in_(ids))
                ):
                    receipts[r.offer_id][r.status] = r.at_ms  # type: ignore[index]
                for d in session.scalars(
                    select(RedemptionRow).where(RedemptionRow.offer_id.in_(ids))
                ):
                    redeemed[d.offer_id] = d.redeemed_ms
        return [InboxOffer(o, receipts[o.offer_id], redeemed.get(o.offer_id)) for o in offers]

    def offer_exists(self, offer_id: str) -> bool:
        with Session(self.engine) as session:
            return session.get(OfferRow, offer_id) is not None

    def cursor(self, shopper_id: str) -> tuple[int, int]:
        with Session(self.engine) as session:
            row = session.get(OfferCursorRow, shopper_id)
            return (row.last_seq, row.acked_seq) if row else (0, 0)

    # -- acks and receipts ------------------------------------------------------------

    def ack(self, shopper_id: str, seq: int, at_ms: int) -> int:
        """Move the cumulative ack; newly acked offers get a ``delivered`` receipt."""
        return self.ack_many({shopper_id: seq}, at_ms).get(shopper_id, 0)

    def ack_many(self, acks: Mapping[str, int], at_ms: int) -> dict[str, int]:
        """Many shoppers' cumulative acks in one transaction: the ack now stored
        per shopper (unknown shoppers are left out)."""

        def work(session: Session) -> dict[str, int]:
            stored = {}
            for shopper_id, seq in acks.items():
                if self._lock_cursor(session, shopper_id):
                    stored[shopper_id] = _ack_one(session, shopper_id, seq, at_ms)
            return stored

        return self._write(work)

    def add_receipt(
        self, shopper_id: str, offer_id: str, status: ReceiptStatus, at_ms: int
    ) -> Receipt:
        """Idempotent: a status already recorded keeps its first time."""

        def work(session: Session) -> Receipt:
            self._lock_cursor(session, shopper_id)
            offer = session.get(OfferRow, offer_id)
            if offer is None or offer.shopper_id != shopper_id:
                raise OfferNotFound(f"no offer {offer_id!r} for this shopper")
            found = session.scalars(
                select(OfferReceiptRow).where(
                    OfferReceiptRow.offer_id == offer_id, OfferReceiptRow.status == status
                )
            ).first()
            if found is not None:
                return Receipt(offer_id, status, found.at_ms, created=False)
            session.add(OfferReceiptRow(offer_id=offer_id, status=status, at_ms=at_ms))
            session.flush()
            return Receipt(offer_id, status, at_ms, created=True)

        return self._write(work)

    def is_delivered(self, offer_id: str) -> bool:
        with Session(self.engine) as session:
            return (
                session.scalars(
                    select(OfferReceiptRow.id).where(
                        OfferReceiptRow.offer_id == offer_id,
                        OfferReceiptRow.status == "delivered",
                    )
                ).first()
                is not None
            )

    # -- redemption -------------------------------------------------------------------

    def redeem(self, store: str, code: str, at_ms: int) -> Redemption:
        """Redeem ``code`` (already normalized); ``RedemptionRefused`` says why not."""

        def work(session: Session) -> Redemption:
            session.execute(  # the write lock first (see the module docstring)
                update(RedemptionRow)
                .where(RedemptionRow.code == code)
                .values(store=RedemptionRow.store)
            )
            offer = session.scalars(select(OfferRow).where(OfferRow.code == code)).first()
            done = session.get(RedemptionRow, offer.offer_id) if offer else None
            refused = refusal(
                found=offer is not None,
                redeemed_ms=done.redeemed_ms if done else None,
                expires_ms=offer.expires_ms if offer else 0,
                now=at_ms,
            )
            if refused is not None:
                raise RedemptionRefused(*refused)
            assert offer is not None
            session.add(
                RedemptionRow(offer_id=offer.offer_id, code=code, store=store, redeemed_ms=at_ms)
            )
            session.flush()
            return Redemption(offer.offer_id, offer.campaign_id, store, code, at_ms)

        try:
            return self._write(work, retry_integrity=False)
        except IntegrityError:  # a second till won the race for the same code
            raise RedemptionRefused("already_redeemed", "this code was just redeemed") from None

    # -- push subscriptions and tokens ------------------------------------------------

    def save_push_subscription(
        self, shopper_id: str, subscription: PushSubscription, at_ms: int
    ) -> None:
        """Upsert by endpoint: a browser that re-subscribes keeps one row."""

        def work(session: Session) -> None:
            moved = session.execute(
                update(PushSubscriptionRow)
                .where(PushSubscriptionRow.endpoint == subscription.endpoint)
                .values(
                    shopper_id=shopper_id,
                    p256dh=subscription.p256dh,
                    auth=subscription.auth,
                    created_ms=at_ms,
                )
            )
            if not _rows(moved):
                session.add(
                    PushSubscriptionRow(
                        shopper_id=shopper_id,
                        endpoint=subscription.endpoint,
                        p256dh=subscription.p256dh,
                        auth=subscription.auth,
                        created_ms=at_ms,
                    )
                )

        self._write(work)

    def push_subscriptions(self, shopper_id: str) -> list[PushSubscription]:
        with Session(self.engine) as session:
            return [
                PushSubscription(r.endpoint, r.p256dh, r.auth)
                for r in session.scalars(
                    select(PushSubscriptionRow)
                    .where(PushSubscriptionRow.shopper_id == shopper_id)
                    .order_by(PushSubscriptionRow.id)
                )
            ]

    def remove_push_subscription(self, endpoint: str, shopper_id: str | None = None) -> bool:
        query = delete(PushSubscriptionRow).where(PushSubscriptionRow.endpoint == endpoint)
        if shopper_id is not None:
            query = query.where(PushSubscriptionRow.shopper_id == shopper_id)
        return self._write(lambda s: _rows(s.execute(query)) > 0)

    def save_push_token(
        self, shopper_id: str, platform: NativePlatform, token: str, at_ms: int
    ) -> None:
        def work(session: Session) -> None:
            moved = session.execute(
                update(PushTokenRow)
                .where(PushTokenRow.platform == platform, PushTokenRow.token == token)
                .values(shopper_id=shopper_id, created_ms=at_ms)
            )
            if not _rows(moved):
                session.add(
                    PushTokenRow(
                        shopper_id=shopper_id, platform=platform, token=token, created_ms=at_ms
                    )
                )

        self._write(work)

    def push_tokens(self, shopper_id: str, platform: NativePlatform) -> list[str]:
        with Session(self.engine) as session:
            return list(
                session.scalars(
                    select(PushTokenRow.token)
                    .where(PushTokenRow.shopper_id == shopper_id, PushTokenRow.platform == platform)
                    .order_by(PushTokenRow.id)
                )
            )

    def remove_push_token(self, platform: NativePlatform, token: str) -> bool:
        query = delete(PushTokenRow).where(
            PushTokenRow.platform == platform, PushTokenRow.token == token
        )
        return self._write(lambda s: _rows(s.execute(query)) > 0)

    # -- the shopper's rights ---------------------------------------------------------

    def campaign_counts(
        self, campaign_id: str, *, from_ms: int | None = None, to_ms: int | None = None
    ) -> dict[str, int]:
        """Offers of a campaign by receipt status, and how many were redeemed;
        with a range, the receipts and redemptions made within it."""
        receipts = (
            select(OfferReceiptRow.status, func.count())
            .join(OfferRow, OfferRow.offer_id == OfferReceiptRow.offer_id)
            .where(
                OfferRow.campaign_id == campaign_id,
                *within_range(OfferReceiptRow.at_ms, from_ms, to_ms),
            )
            .group_by(OfferReceiptRow.status)
        )
        redeemed = (
            select(func.count())
            .select_from(RedemptionRow)
            .join(OfferRow, OfferRow.offer_id == RedemptionRow.offer_id)
            .where(
                OfferRow.campaign_id == campaign_id,
                *within_range(RedemptionRow.redeemed_ms, from_ms, to_ms),
            )
        )
        with Session(self.engine) as session:
            counts = {status: int(n) for status, n in session.execute(receipts)}
            counts["redeemed"] = int(session.scalar(redeemed) or 0)
        return counts

    def erase_shopper(self, shopper_id: str) -> int:
        """Delete every offer, receipt, redemption, cursor and push address; rows deleted."""

        def work(session: Session) -> int:
            offers = select(OfferRow.offer_id).where(OfferRow.shopper_id == shopper_id)
            statements: Iterable[Any] = (
                delete(OfferReceiptRow).where(OfferReceiptRow.offer_id.in_(offers)),
                delete(RedemptionRow).where(RedemptionRow.offer_id.in_(offers)),
                delete(OfferRow).where(OfferRow.shopper_id == shopper_id),
                delete(OfferCursorRow).where(OfferCursorRow.shopper_id == shopper_id),
                delete(PushSubscriptionRow).where(PushSubscriptionRow.shopper_id == shopper_id),
                delete(PushTokenRow).where(PushTokenRow.shopper_id == shopper_id),
            )
            return sum(_rows(session.execute(s)) for s in statements)

        return self._write(work)

    def export_shopper(self, shopper_id: str) -> dict[str, Any]:
        """Everything stored here about the shopper, as JSON-ready data."""
        last_seq, acked_seq = self.cursor(shopper_id)
        offers = []
        for item in self.inbox(shopper_id, 0, 1_000_000):
            entry = item.offer.wire()
            entry["trigger_published_ms"] = item.offer.trigger_published_ms
            entry["receipts"] = [
                {"status": status, "at_ms": at} for status, at in sorted(item.receipts.items())
            ]
            entry["redeemed_ms"] = item.redeemed_ms
            offers.append(entry)
        with Session(self.engine) as session:
            subscriptions = [
                {"endpoint": r.endpoint, "created_ms": r.created_ms}
                for r in session.scalars(
                    select(PushSubscriptionRow).where(PushSubscriptionRow.shopper_id == shopper_id)
                )
            ]
            tokens = [
                {"platform": r.platform, "created_ms": r.created_ms}
                for r in session.scalars(
                    select(PushTokenRow).where(PushTokenRow.shopper_id == shopper_id)
                )
            ]
        return {
            "offers": offers,
            "last_seq": last_seq,
            "acked_seq": acked_seq,
            "push_subscriptions": subscriptions,
            "push_tokens": tokens,
        }
