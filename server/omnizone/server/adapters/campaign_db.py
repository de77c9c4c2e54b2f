"""Campaigns, the decision log and store-visit counts in SQL (SQLAlchemy 2).

Campaigns are stored as their JSON model, so the API and the YAML files share
one shape (``omnizone.server.domain.offers.Campaign``), with the version the
server gives each one (``service.ports.campaigns``): ``revision`` goes up by
one with every save, in the same ``UPDATE`` that writes the campaign, so a
conditional save is a compare-and-set. Every decision the engine takes is
logged with its reason.
"""

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Engine,
    Index,
    Integer,
    String,
    Text,
    delete,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from omnizone.server.adapters.db import Base, in_chunks, within_range
from omnizone.server.domain.offers import Campaign, Decision, Outcome, SentOffer
from omnizone.server.service.ports.campaigns import (
    CampaignStore,
    LoggedDecision,
    RevisionMismatch,
    StoredCampaign,
    decisions_export,
)


class CampaignRow(Base):
    __tablename__ = "campaigns"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    store: Mapped[str] = mapped_column(String(64), index=True)
    body: Mapped[dict[str, object]] = mapped_column(JSON)
    updated_ms: Mapped[int] = mapped_column(BigInteger)
    #: 1 for a new campaign, +1 per save; rows from before revisions existed start at 1.
    revision: Mapped[int] = mapped_column(Integer, server_default=text("1"))


class DecisionRow(Base):
    __tablename__ = "offer_decisions"
    __table_args__ = (
        Index("ix_decisions_campaign", "campaign_id", "outcome"),
        Index("ix_decisions_shopper", "shopper_id", "at_ms"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    store: Mapped[str] = mapped_column(String(64))
    campaign_id: Mapped[str] = mapped_column(String(64))
    shopper_id: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
    trigger: Mapped[str] = mapped_column(String(32))
    visit_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    at_ms: Mapped[int] = mapped_column(BigInteger)


class StoreVisitRow(Base):
    __tablename__ = "shopper_store_visits"

    shopper_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    store: Mapped[str] = mapped_column(String(64), primary_key=True)
    visits: Mapped[int] = mapped_column(Integer)
    last_ms: Mapped[int] = mapped_column(BigInteger)


TABLES = [Base.metadata.tables[t] for t in ("campaigns", "offer_decisions", "shopper_store_visits")]


_STORED = select(CampaignRow.body, CampaignRow.revision, CampaignRow.updated_ms)


def _stored(row: Any) -> StoredCampaign:
    body, revision, updated_ms = row
    return StoredCampaign(Campaign.model_validate(body), revision, updated_ms)


def _read(connection: Connection, campaign_id: str) -> StoredCampaign | None:
    row = connection.execute(_STORED.where(CampaignRow.id == campaign_id)).one_or_none()
    return None if row is None else _stored(row)


class CampaignRepository(CampaignStore):
    """The ``CampaignStore`` port over an SQLAlchemy engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        Base.metadata.create_all(engine, tables=TABLES)

    # -- campaigns --------------------------------------------------------------------

    def campaigns(self) -> list[Campaign]:
        with Session(self.engine) as session:
            rows = session.scalars(select(CampaignRow).order_by(CampaignRow.id))
            return [Campaign.model_validate(row.body) for row in rows]

    def stored_campaigns(self) -> list[StoredCampaign]:
        with self.engine.connect() as connection:
            rows = connection.execute(_STORED.order_by(CampaignRow.id))
            return [_stored(row) for row in rows]

    def stored_campaign(self, campaign_id: str) -> StoredCampaign | None:
        with self.engine.connect() as connection:
            return _read(connection, campaign_id)

    def has_campaign(self, campaign_id: str) -> bool:
        with Session(self.engine) as session:
            return session.get(CampaignRow, campaign_id) is not None

    def save_campaign(
        self, campaign: Campaign, at_ms: int, *, expected_revision: int | None = None
    ) -> StoredCampaign:
        """Store the campaign as its next revision and return that.

        ``expected_revision`` None: whatever is stored is replaced (or the
        campaign created at revision 1). A number: only if the stored campaign
        is at that revision, checked in the ``UPDATE … WHERE revision = …``
        that writes it, so two writers holding the same revision cannot both
        succeed; 0: only if no campaign has that id yet (the primary key
        decides). Otherwise ``RevisionMismatch``, and nothing is written."""
        values: dict[str, Any] = {
            "store": campaign.store,
            "body": campaign.model_dump(mode="json"),
            "updated_ms": at_ms,
        }
        for _attempt in range(3):
            try:
                with self.engine.begin() as connection:
                    if expected_revision != 0:
                        query = (
                            update(CampaignRow)
                            .where(CampaignRow.id == campaign.id)
                            .values(**values, revision=CampaignRow.revision + 1)
                        )
                        if expected_revision is not None:
                            query = query.where(CampaignRow.revision == expected_revision)
                        if connection.execute(query).rowcount == 1:
                            revision = connection.execute(
                                select(CampaignRow.revision).where(CampaignRow.id == campaign.id)
                            ).scalar_one()
                            return StoredCampaign(campaign, revision, at_ms)
                        if expected_revision is not None:
                            current = _read(connection, campaign.id)
                            raise RevisionMismatch(campaign.id, expected_revision, current)
                    connection.execute(
                        insert(CampaignRow).values(id=campaign.id, revision=1, **values)
                    )
                    return StoredCampaign(campaign, 1, at_ms)
            except IntegrityError:
                if expected_revision == 0:
                    current = self.stored_campaign(campaign.id)
                    raise RevisionMismatch(campaign.id, 0, current) from None
                # Another writer created the campaign between our UPDATE and
                # INSERT: the next attempt updates it.
        raise RuntimeError(f"campaign {campaign.id!r} could not be saved")

    # -- decisions --------------------------------------------------------------------

    def log_decisions(self, store: str, trigger: str, decisions: Iterable[Decision]) -> None:
        self.log_decision_batches([(store, trigger, decisions)])

    def log_decision_batches(self, batches: Iterable[tuple[str, str, Iterable[Decision]]]) -> None:
        """Many moments' decisions (store, trigger, decisions) in one transaction."""
        rows = [
            {
                "store": store,
                "campaign_id": d.campaign_id,
                "shopper_id": d.shopper_id,
                "outcome": str(d.outcome),
                "reason": d.reason,
                "trigger": trigger,
                "visit_id": d.visit_id,
                "at_ms": d.at_ms,
            }
            for store, trigger, decisions in batches
            for d in decisions
        ]
        if rows:
            with self.engine.begin() as connection:
                connection.execute(insert(DecisionRow), rows)

    def sent_to(self, shopper_id: str) -> list[SentOffer]:
        return self.sent_to_many([shopper_id]).get(shopper_id, [])

    def sent_to_many(self, shopper_ids: Sequence[str]) -> dict[str, list[SentOffer]]:
        """The offers sent to each shopper (the caps' history), in one query per chunk."""
        sent: dict[str, list[SentOffer]] = {}
        with Session(self.engine) as session:
            for chunk in in_chunks(shopper_ids):
                query = (
                    select(DecisionRow)
                    .where(
                        DecisionRow.shopper_id.in_(chunk),
                        DecisionRow.outcome == str(Outcome.SENT),
                    )
                    .order_by(DecisionRow.id)
                )
                for r in session.scalars(query):
                    sent.setdefault(r.shopper_id, []).append(
                        SentOffer(r.campaign_id, r.at_ms, r.visit_id)
                    )
        return sent

    def sent_by_campaign(self) -> dict[str, int]:
        query = (
            select(DecisionRow.campaign_id, func.count())
            .where(DecisionRow.outcome == str(Outcome.SENT))
            .group_by(DecisionRow.campaign_id)
        )
        with Session(self.engine) as session:
            return {campaign: int(n) for campaign, n in session.execute(query)}

    def decisions(
        self,
        *,
        store: str | None = None,
        campaign_id: str | None = None,
        shopper_id: str | None = None,
        limit: int = 1000,
    ) -> list[LoggedDecision]:
        query = select(DecisionRow).order_by(DecisionRow.at_ms.desc(), DecisionRow.id.desc())
        if store is not None:
            query = query.where(DecisionRow.store == store)
        if campaign_id is not None:
            query = query.where(DecisionRow.campaign_id == campaign_id)
        if shopper_id is not None:
            query = query.where(DecisionRow.shopper_id == shopper_id)
        with Session(self.engine) as session:
            return [
                LoggedDecision(
                    r.campaign_id,
                    r.shopper_id,
                    r.outcome,
                    r.reason,
                    r.trigger,
                    r.at_ms,
                    store=r.store,
                    visit_id=r.visit_id,
                )
                for r in session.scalars(query.limit(limit))
            ]

    def first_decisions(
        self,
        campaign_id: str,
        outcomes: Sequence[Outcome],
        *,
        from_ms: int | None = None,
        to_ms: int | None = None,
    ) -> dict[str, tuple[str, int]]:
        """Per shopper, the first decision of the campaign among ``outcomes``:
        (outcome, at_ms). A shopper is in one group: the earliest decision wins."""
        query = (
            select(DecisionRow.shopper_id, DecisionRow.outcome, DecisionRow.at_ms)
            .where(
                DecisionRow.campaign_id == campaign_id,
                DecisionRow.outcome.in_([str(o) for o in outcomes]),
                *within_range(DecisionRow.at_ms, from_ms, to_ms),
            )
            .order_by(DecisionRow.at_ms, DecisionRow.id)
        )
        first: dict[str, tuple[str, int]] = {}
        with Session(self.engine) as session:
            for shopper, outcome, at_ms in session.execute(query):
                first.setdefault(shopper, (outcome, at_ms))
        return first

    def outcome_counts(
        self, campaign_id: str, *, from_ms: int | None = None, to_ms: int | None = None
    ) -> dict[str, int]:
        """How often the campaign's trigger matched, by outcome."""
        query = (
            select(DecisionRow.outcome, func.count())
            .where(
                DecisionRow.campaign_id == campaign_id,
                *within_range(DecisionRow.at_ms, from_ms, to_ms),
            )
            .group_by(DecisionRow.outcome)
        )
        with Session(self.engine) as session:
            return {outcome: int(n) for outcome, n in session.execute(query)}

    # -- store visits -----------------------------------------------------------------

    def store_visit_counts(self, store: str, shopper_ids: Sequence[str]) -> dict[str, int]:
        """Store visits recorded so far per shopper (absent: none)."""
        counts: dict[str, int] = {}
        with Session(self.engine) as session:
            for chunk in in_chunks(shopper_ids):
                rows = session.execute(
                    select(StoreVisitRow.shopper_id, StoreVisitRow.visits).where(
                        StoreVisitRow.store == store, StoreVisitRow.shopper_id.in_(chunk)
                    )
                )
                counts.update({shopper: visits for shopper, visits in rows})
        return counts

    def record_store_visits(self, visits: Sequence[tuple[str, str, int]]) -> None:
        """New store visits (store, shopper, entered_ms), in one transaction."""
        with Session(self.engine) as session, session.begin():
            rows: dict[tuple[str, str], StoreVisitRow] = {}
            for store in {store for store, _shopper, _at in visits}:
                shoppers = sorted({sh for st, sh, _at in visits if st == store})
                for chunk in in_chunks(shoppers):
                    found = session.scalars(
                        select(StoreVisitRow).where(
                            StoreVisitRow.store == store, StoreVisitRow.shopper_id.in_(chunk)
                        )
                    )
                    rows.update({(r.store, r.shopper_id): r for r in found})
            for store, shopper_id, at_ms in visits:
                row = rows.get((store, shopper_id))
                if row is None:
                    row = StoreVisitRow(shopper_id=shopper_id, store=store, visits=0, last_ms=at_ms)
                    rows[(store, shopper_id)] = row
                    session.add(row)
                row.visits += 1
                row.last_ms = at_ms

    def erase_shopper(self, shopper_id: str) -> None:
        """Erasure: the decisions about a shopper go too (reports keep no trace of them)."""
        with Session(self.engine) as session, session.begin():
            session.execute(delete(DecisionRow).where(DecisionRow.shopper_id == shopper_id))
            session.execute(delete(StoreVisitRow).where(StoreVisitRow.shopper_id == shopper_id))

    def export_store_visits(self, shopper_id: str) -> list[dict[str, object]]:
        with Session(self.engine) as session:
            rows = session.scalars(
                select(StoreVisitRow)
                .where(StoreVisitRow.shopper_id == shopper_id)
                .order_by(StoreVisitRow.store)
            )
            return [{"store": r.store, "visits": r.visits, "last_ms": r.last_ms} for r in rows]

    def export_shopper(self, shopper_id: str) -> list[dict[str, object]]:
        return decisions_export(self.decisions(shopper_id=shopper_id, limit=100_000))
