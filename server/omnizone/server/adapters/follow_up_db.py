"""SQLAlchemy storage of follow-ups after the visit (``follow_ups``, migration
0012): scheduled when a visit ends, claimed when due, decided, delivered.

Durable and idempotent (docs/offers.md, "Follow-ups after the visit"):

- a follow-up's id is fixed by (campaign, store, shopper, visit), so a visit
  scheduled twice is one row;
- a runner *claims* due rows with a lease (``claimed_ms``); a row whose
  runner died (SIGKILL) is claimed again once the lease has run out;
- the decision is written together with the decision log's row, in one
  transaction, and only by the runner holding the claim: after a restart a
  decided follow-up is not decided again, so it is logged once;
- its offer's till code is fixed by the follow-up, and the offer is looked
  up by that code before it is stored, so a retry never stores a second one.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import JSON, Engine, Index, String, Table, delete, func, insert, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Mapped, mapped_column

from omnizone.server.adapters.campaign_db import DecisionRow
from omnizone.server.adapters.db import Base, in_chunks, within_range
from omnizone.server.adapters.db_write import Ident
from omnizone.server.adapters.offer_db import OfferRow
from omnizone.server.domain.offers import Decision, OfferDraft
from omnizone.server.domain.offers.follow_ups import FollowUpPlan
from omnizone.server.service.ports.follow_ups import (
    FollowUpRecord,
    FollowUpStorage,
    draft_from_json,
    draft_to_json,
)

__all__ = ["FollowUpRepository", "FollowUpRow"]


class FollowUpRow(Base):
    """One follow-up; ``status`` pending -> sending -> sent | held_out | not_sent | failed."""

    __tablename__ = "follow_ups"
    __table_args__ = (
        Index("ix_follow_ups_due", "status", "due_ms"),
        Index("ix_follow_ups_campaign", "campaign_id", "status"),
        Index("ix_follow_ups_shopper", "shopper_id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    store: Mapped[str] = mapped_column(Ident)
    campaign_id: Mapped[str] = mapped_column(Ident)
    shopper_id: Mapped[str] = mapped_column(String(64))
    visit_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    via: Mapped[str] = mapped_column(String(16))
    products: Mapped[list[str]] = mapped_column(JSON)
    zone: Mapped[str | None] = mapped_column(Ident, nullable=True)
    visit_started_ms: Mapped[int]
    trigger_ms: Mapped[int]
    due_ms: Mapped[int]
    status: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str | None] = mapped_column(String(32), nullable=True)
    reason: Mapped[str | None] = mapped_column(String(500), nullable=True)
    decided_ms: Mapped[int | None]
    code: Mapped[str | None] = mapped_column(String(80), nullable=True)
    draft: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # the offer decided
    offer_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    attempts: Mapped[int]
    claimed_ms: Mapped[int | None]
    created_ms: Mapped[int]
    done_ms: Mapped[int | None]


_t = cast(Table, FollowUpRow.__table__)
_decisions = cast(Table, DecisionRow.__table__)
OPEN = ("pending", "sending")


def _matched(result: Any) -> int:
    return int(cast(CursorResult[Any], result).rowcount)


def _record(row: Any) -> FollowUpRecord:
    return FollowUpRecord(
        plan=FollowUpPlan(
            follow_up_id=row.id,
            campaign_id=row.campaign_id,
            store=row.store,
            shopper_id=row.shopper_id,
            visit_id=row.visit_id,
            kind=row.kind,
            visit_started_ms=row.visit_started_ms,
            trigger_ms=row.trigger_ms,
            due_ms=row.due_ms,
            via=row.via,
            products=tuple(row.products or ()),
            zone=row.zone,
        ),
        status=row.status,
        outcome=row.outcome,
        reason=row.reason,
        decided_ms=row.decided_ms,
        code=row.code,
        draft=draft_from_json(row.draft) if row.draft else None,
        offer_id=row.offer_id,
        attempts=row.attempts,
        claimed_ms=row.claimed_ms,
        created_ms=row.created_ms,
        done_ms=row.done_ms,
    )


@dataclass(frozen=True, slots=True)
class _Claim:
    follow_up_id: str
    claimed_ms: int


class FollowUpRepository(FollowUpStorage):
    def __init__(self, engine: Engine, *, create: bool = True) -> None:
        self.engine = engine
        if create:
            Base.metadata.create_all(engine, tables=[_t])

    # -- scheduling ---------------------------------------------------------------------

    def schedule(self, plans: Sequence[FollowUpPlan], created_ms: int) -> int:
        """Insert the follow-ups not stored yet; how many were new."""
        if not plans:
            return 0
        ids = [p.follow_up_id for p in plans]
        with self.engine.begin() as conn:
            conn.execute(update(_t).where(_t.c.id == "").values(attempts=0))  # write lock first
            known = {
                r
                for chunk in in_chunks(ids)
                for r in conn.scalars(select(_t.c.id).where(_t.c.id.in_(chunk)))
            }
            new = [
                p
                for p in {p.follow_up_id: p for p in plans}.values()
                if p.follow_up_id not in known
            ]
            if new:
                conn.execute(
                    insert(_t),
                    [
                        {
                            "id": p.follow_up_id,
                            "store": p.store,
                            "campaign_id": p.campaign_id,
                            "shopper_id": p.shopper_id,
                            "visit_id": p.visit_id,
                            "kind": p.kind,
                            "via": p.via,
                            "products": list(p.products),
                            "zone": p.zone,
                            "visit_started_ms": p.visit_started_ms,
                            "trigger_ms": p.trigger_ms,
                            "due_ms": p.due_ms,
                            "status": "pending",
                            "outcome": None,
                            "reason": None,
                            "decided_ms": None,
                            "code": None,
                            "draft": None,
                            "offer_id": None,
                            "attempts": 0,
                            "claimed_ms": None,
                            "created_ms": created_ms,
                            "done_ms": None,
                        }
                        for p in new
                    ],
                )
        return len(new)

    # -- the runner -----------------------------------------------------------------------

    def claim_due(self, now_ms: int, lease_ms: int, limit: int) -> list[FollowUpRecord]:
        """Claim up to ``limit`` open follow-ups due by ``now_ms`` that no live
        runner holds (unclaimed, or claimed more than ``lease_ms`` ago)."""
        c = _t.c
        free = (c.claimed_ms.is_(None)) | (c.claimed_ms < now_ms - lease_ms)
        with self.engine.connect() as conn:
            ids = list(
                conn.scalars(
                    select(c.id)
                    .where(c.status.in_(OPEN), c.due_ms <= now_ms, free)
                    .order_by(c.due_ms, c.id)
                    .limit(limit)
                )
            )
        claimed = []
        with self.engine.begin() as conn:
            for follow_up in ids:
                done = conn.execute(
                    update(_t)
                    .where(c.id == follow_up, c.status.in_(OPEN), free)
                    .values(claimed_ms=now_ms, attempts=c.attempts + 1)
                )
                if _matched(done):
                    claimed.append(follow_up)
        return self._records(claimed)

    def _records(self, ids: Sequence[str]) -> list[FollowUpRecord]:
        rows: list[Any] = []
        with self.engine.connect() as conn:
            for chunk in in_chunks(list(ids)):
                rows += conn.execute(select(_t).where(_t.c.id.in_(chunk))).all()
        return sorted(
            (_record(r) for r in rows), key=lambda r: (r.plan.due_ms, r.plan.follow_up_id)
        )

    def record(self, follow_up_id: str) -> FollowUpRecord | None:
        found = self._records([follow_up_id])
        return found[0] if found else None

    def postpone(self, follow_up_id: str, claimed_ms: int, due_ms: int) -> bool:
        """Due again at ``due_ms`` (quiet hours), released; False: not ours any more."""
        c = _t.c
        with self.engine.begin() as conn:
            done = conn.execute(
                update(_t)
                .where(c.id == follow_up_id, c.status == "pending", c.claimed_ms == claimed_ms)
                .values(due_ms=due_ms, claimed_ms=None)
            )
        return _matched(done) > 0

    def decide(
        self,
        follow_up_id: str,
        claimed_ms: int,
        decision: Decision,
        *,
        status: str,
        draft: OfferDraft | None,
        log: bool,
        store: str,
        done_ms: int | None,
    ) -> bool:
        """Write the decision and (``log``) its decision-log row in one
        transaction, if the claim still holds; False: someone else has it."""
        c = _t.c
        with self.engine.begin() as conn:
            done = conn.execute(
                update(_t)
                .where(c.id == follow_up_id, c.status == "pending", c.claimed_ms == claimed_ms)
                .values(
                    status=status,
                    outcome=str(decision.outcome),
                    reason=decision.reason[:500],
                    decided_ms=decision.at_ms,
                    code=draft.coupon_code if draft else None,
                    draft=draft_to_json(draft) if draft else None,
                    done_ms=done_ms,
                )
            )
            if not _matched(done):
                return False
            if log:
                conn.execute(
                    insert(_decisions).values(
                        store=store,
                        campaign_id=decision.campaign_id,
                        shopper_id=decision.shopper_id,
                        outcome=str(decision.outcome),
                        reason=decision.reason,
                        trigger="visit_ended",
                        visit_id=decision.visit_id,
                        at_ms=decision.at_ms,
                    )
                )
        return True

    def finish(
        self, follow_up_id: str, claimed_ms: int, status: str, done_ms: int, offer_id: str | None
    ) -> bool:
        c = _t.c
        with self.engine.begin() as conn:
            done = conn.execute(
                update(_t)
                .where(c.id == follow_up_id, c.status == "sending", c.claimed_ms == claimed_ms)
                .values(status=status, done_ms=done_ms, offer_id=offer_id, claimed_ms=None)
            )
        return _matched(done) > 0

    def release(self, follow_up_id: str, claimed_ms: int) -> None:
        """Give the claim back (a delivery to retry at the next run)."""
        c = _t.c
        with self.engine.begin() as conn:
            conn.execute(
                update(_t)
                .where(c.id == follow_up_id, c.claimed_ms == claimed_ms)
                .values(claimed_ms=None)
            )

    def offer_with_code(self, code: str) -> str | None:
        with self.engine.connect() as conn:
            found = conn.scalar(select(OfferRow.offer_id).where(OfferRow.code == code))
        return str(found) if found is not None else None

    # -- the report ------------------------------------------------------------------------

    def of_campaign(
        self, campaign_id: str, *, from_ms: int | None = None, to_ms: int | None = None
    ) -> list[FollowUpRecord]:
        """The campaign's follow-ups scheduled within the range (visit end)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(_t)
                .where(
                    _t.c.campaign_id == campaign_id, *within_range(_t.c.trigger_ms, from_ms, to_ms)
                )
                .order_by(_t.c.trigger_ms, _t.c.id)
            ).all()
        return [_record(r) for r in rows]

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(_t.c.status, func.count()).group_by(_t.c.status))
            return {status: int(n) for status, n in rows}

    # -- the shopper's rights ----------------------------------------------------------------

    def erase_shopper(self, shopper_id: str) -> int:
        with self.engine.begin() as conn:
            return _matched(conn.execute(delete(_t).where(_t.c.shopper_id == shopper_id)))

    def export_shopper(self, shopper_id: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(_t).where(_t.c.shopper_id == shopper_id).order_by(_t.c.trigger_ms, _t.c.id)
            ).all()
        return [{k: getattr(r, k) for k in _EXPORTED} | {"follow_up_id": r.id} for r in rows]


_EXPORTED = tuple(c.name for c in _t.columns if c.name not in ("id", "shopper_id"))
