"""Campaigns, the decision log and store visits in memory: the ``CampaignStore`` port.

Behaves as ``adapters.campaign_db.CampaignRepository``: campaigns are kept
as their JSON model and come back validated from it; a conditional save is
a compare-and-set on the revision, under one lock.
"""

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from omnizone.server.adapters.memory.ingest import json_copy
from omnizone.server.domain.offers import Campaign, Decision, Outcome, SentOffer
from omnizone.server.service.ports.campaigns import (
    CampaignStore,
    LoggedDecision,
    RevisionMismatch,
    StoredCampaign,
    decisions_export,
)


@dataclass(frozen=True, slots=True)
class _Campaign:
    body: dict[str, object]
    revision: int
    updated_ms: int

    def stored(self) -> StoredCampaign:
        return StoredCampaign(Campaign.model_validate(self.body), self.revision, self.updated_ms)


@dataclass(frozen=True, slots=True)
class LogRow:
    """One logged decision, as the decision log's table holds it."""

    id: int
    store: str
    campaign_id: str
    shopper_id: str
    outcome: str
    reason: str
    trigger: str
    visit_id: str | None
    at_ms: int


class MemoryCampaignStore(CampaignStore):
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._campaigns: dict[str, _Campaign] = {}
        self._log: list[LogRow] = []
        self._next_id = 0
        self._visits: dict[tuple[str, str], tuple[int, int]] = {}  # (store, shopper) -> (n, last)

    # -- campaigns --------------------------------------------------------------------

    def campaigns(self) -> list[Campaign]:
        return [s.campaign for s in self.stored_campaigns()]

    def stored_campaigns(self) -> list[StoredCampaign]:
        with self._lock:
            rows = [self._campaigns[i] for i in sorted(self._campaigns)]
        return [row.stored() for row in rows]

    def stored_campaign(self, campaign_id: str) -> StoredCampaign | None:
        with self._lock:
            row = self._campaigns.get(campaign_id)
        return None if row is None else row.stored()

    def has_campaign(self, campaign_id: str) -> bool:
        with self._lock:
            return campaign_id in self._campaigns

    def save_campaign(
        self, campaign: Campaign, at_ms: int, *, expected_revision: int | None = None
    ) -> StoredCampaign:
        body = json_copy(campaign.model_dump(mode="json"))
        with self._lock:
            current = self._campaigns.get(campaign.id)
            if expected_revision is not None:
                at = 0 if current is None else current.revision
                if at != expected_revision:
                    stored = None if current is None else current.stored()
                    raise RevisionMismatch(campaign.id, expected_revision, stored)
            revision = 1 if current is None else current.revision + 1
            self._campaigns[campaign.id] = _Campaign(body, revision, at_ms)
        return StoredCampaign(campaign, revision, at_ms)

    # -- decisions --------------------------------------------------------------------

    def log_decisions(self, store: str, trigger: str, decisions: Iterable[Decision]) -> None:
        self.log_decision_batches([(store, trigger, decisions)])

    def log_decision_batches(self, batches: Iterable[tuple[str, str, Iterable[Decision]]]) -> None:
        with self._lock:
            for store, trigger, decisions in batches:
                for d in decisions:
                    self._next_id += 1
                    self._log.append(
                        LogRow(
                            self._next_id,
                            store,
                            d.campaign_id,
                            d.shopper_id,
                            str(d.outcome),
                            d.reason,
                            trigger,
                            d.visit_id,
                            d.at_ms,
                        )
                    )

    def sent_to(self, shopper_id: str) -> list[SentOffer]:
        return self.sent_to_many([shopper_id]).get(shopper_id, [])

    def sent_to_many(self, shopper_ids: Sequence[str]) -> dict[str, list[SentOffer]]:
        wanted = set(shopper_ids)
        sent: dict[str, list[SentOffer]] = {}
        for r in self.log_rows():
            if r.shopper_id in wanted and r.outcome == str(Outcome.SENT):
                sent.setdefault(r.shopper_id, []).append(
                    SentOffer(r.campaign_id, r.at_ms, r.visit_id)
                )
        return sent

    def sent_by_campaign(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in self.log_rows():
            if r.outcome == str(Outcome.SENT):
                counts[r.campaign_id] = counts.get(r.campaign_id, 0) + 1
        return counts

    def decisions(
        self,
        *,
        store: str | None = None,
        campaign_id: str | None = None,
        shopper_id: str | None = None,
        limit: int = 1000,
    ) -> list[LoggedDecision]:
        rows = [
            r
            for r in self.log_rows()
            if (store is None or r.store == store)
            and (campaign_id is None or r.campaign_id == campaign_id)
            and (shopper_id is None or r.shopper_id == shopper_id)
        ]
        rows.sort(key=lambda r: (r.at_ms, r.id), reverse=True)
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
            for r in rows[: max(limit, 0)]
        ]

    def first_decisions(
        self,
        campaign_id: str,
        outcomes: Sequence[Outcome],
        *,
        from_ms: int | None = None,
        to_ms: int | None = None,
    ) -> dict[str, tuple[str, int]]:
        among = {str(o) for o in outcomes}
        rows = [
            r
            for r in self.log_rows()
            if r.campaign_id == campaign_id
            and r.outcome in among
            and within(r.at_ms, from_ms, to_ms)
        ]
        rows.sort(key=lambda r: (r.at_ms, r.id))
        first: dict[str, tuple[str, int]] = {}
        for r in rows:
            first.setdefault(r.shopper_id, (r.outcome, r.at_ms))
        return first

    def outcome_counts(
        self, campaign_id: str, *, from_ms: int | None = None, to_ms: int | None = None
    ) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in self.log_rows():
            if r.campaign_id == campaign_id and within(r.at_ms, from_ms, to_ms):
                counts[r.outcome] = counts.get(r.outcome, 0) + 1
        return counts

    def log_rows(self) -> list[LogRow]:
        """The whole log in the order written (also what the in-memory analytics read)."""
        with self._lock:
            return list(self._log)

    # -- store visits -----------------------------------------------------------------

    def store_visit_counts(self, store: str, shopper_ids: Sequence[str]) -> dict[str, int]:
        with self._lock:
            return {
                shopper: self._visits[(store, shopper)][0]
                for shopper in shopper_ids
                if (store, shopper) in self._visits
            }

    def record_store_visits(self, visits: Sequence[tuple[str, str, int]]) -> None:
        with self._lock:
            for store, shopper_id, at_ms in visits:
                count, _last = self._visits.get((store, shopper_id), (0, at_ms))
                self._visits[(store, shopper_id)] = (count + 1, at_ms)

    # -- the shopper's rights ---------------------------------------------------------

    def erase_shopper(self, shopper_id: str) -> None:
        with self._lock:
            self._log[:] = [r for r in self._log if r.shopper_id != shopper_id]
            for key in [k for k in self._visits if k[1] == shopper_id]:
                del self._visits[key]

    def export_store_visits(self, shopper_id: str) -> list[dict[str, object]]:
        with self._lock:
            mine = sorted((st, v) for (st, sh), v in self._visits.items() if sh == shopper_id)
        return [{"store": st, "visits": n, "last_ms": last} for st, (n, last) in mine]

    def export_shopper(self, shopper_id: str) -> list[dict[str, object]]:
        return decisions_export(self.decisions(shopper_id=shopper_id, limit=100_000))


def within(at_ms: int, from_ms: int | None, to_ms: int | None) -> bool:
    """``from_ms <= at_ms < to_ms``, a bound that is None being no bound (as the SQL reads)."""
    return (from_ms is None or at_ms >= from_ms) and (to_ms is None or at_ms < to_ms)
