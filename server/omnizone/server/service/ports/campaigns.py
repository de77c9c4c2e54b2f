"""Campaigns, the decision log and store-visit counts: the records and the port.

A campaign is stored with its version: ``revision`` starts at 1 and goes up by
one with every save; a save can be conditional on the revision the writer had
read (compare-and-set), which is what the API's ``If-Match`` rests on. Every
decision the engine takes is logged with its reason: that log is what the
campaign report and "why did (not) this shopper get an offer?" read.
Implemented by ``adapters.campaign_db.CampaignRepository`` and
``adapters.memory.MemoryCampaignStore``.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from omnizone.server.domain.offers import Campaign, Decision, Outcome, SentOffer


@dataclass(frozen=True, slots=True)
class LoggedDecision:
    campaign_id: str
    shopper_id: str
    outcome: str
    reason: str
    trigger: str
    at_ms: int
    store: str | None = None
    visit_id: str | None = None  # the store visit the decision was made in, if any


def decisions_export(decisions: Iterable[LoggedDecision]) -> list[dict[str, object]]:
    """The ``offer_decisions`` section of a shopper's export, one shape
    whichever storage holds the log."""
    return [
        {
            "campaign_id": d.campaign_id,
            "outcome": d.outcome,
            "reason": d.reason,
            "trigger": d.trigger,
            "at_ms": d.at_ms,
            "store": d.store,
            "visit_id": d.visit_id,
        }
        for d in decisions
    ]


@dataclass(frozen=True, slots=True)
class StoredCampaign:
    """A campaign with its version: ``revision`` (1, 2, … one per save) and
    when it was last saved."""

    campaign: Campaign
    revision: int
    updated_ms: int


class RevisionMismatch(Exception):
    """A conditional save found the campaign at another revision than expected
    (``current``), or absent (``current`` is None), or present when it was to
    be created (``expected`` 0); nothing was written."""

    def __init__(self, campaign_id: str, expected: int, current: StoredCampaign | None) -> None:
        found = f"revision {current.revision}" if current else "no such campaign"
        super().__init__(f"campaign {campaign_id!r}: expected revision {expected}, found {found}")
        self.campaign_id = campaign_id
        self.expected = expected
        self.current = current


class DecisionReads(Protocol):
    """What the campaign report reads of the decision log."""

    def first_decisions(
        self,
        campaign_id: str,
        outcomes: Sequence[Outcome],
        *,
        from_ms: int | None = None,
        to_ms: int | None = None,
    ) -> dict[str, tuple[str, int]]:
        """Per shopper, the first decision of the campaign among ``outcomes``:
        (outcome, at_ms), the earliest (then the first logged) winning. With a
        range, only decisions with ``from_ms <= at_ms < to_ms`` count."""
        ...

    def outcome_counts(
        self, campaign_id: str, *, from_ms: int | None = None, to_ms: int | None = None
    ) -> dict[str, int]:
        """How often the campaign's trigger matched, by outcome (within the
        range ``from_ms <= at_ms < to_ms`` when given)."""
        ...


class CampaignStore(DecisionReads, Protocol):
    """Everything the offer engine keeps: campaigns, decisions, store visits."""

    # -- campaigns --------------------------------------------------------------------
    def campaigns(self) -> list[Campaign]:
        """Every campaign, by id."""
        ...

    def stored_campaigns(self) -> list[StoredCampaign]:
        """Every campaign with its revision, by id."""
        ...

    def stored_campaign(self, campaign_id: str) -> StoredCampaign | None: ...

    def has_campaign(self, campaign_id: str) -> bool: ...

    def save_campaign(
        self, campaign: Campaign, at_ms: int, *, expected_revision: int | None = None
    ) -> StoredCampaign:
        """Store as the next revision. ``expected_revision`` None: whatever is
        stored; 0: only if absent; n: only if stored at n. Otherwise
        ``RevisionMismatch`` and nothing is written."""
        ...

    # -- decisions --------------------------------------------------------------------
    def log_decisions(self, store: str, trigger: str, decisions: Iterable[Decision]) -> None: ...

    def log_decision_batches(self, batches: Iterable[tuple[str, str, Iterable[Decision]]]) -> None:
        """Many moments' decisions (store, trigger, decisions) at once."""
        ...

    def sent_to(self, shopper_id: str) -> list[SentOffer]: ...

    def sent_to_many(self, shopper_ids: Sequence[str]) -> dict[str, list[SentOffer]]:
        """The offers sent to each shopper, as logged; shoppers with none are absent."""
        ...

    def sent_by_campaign(self) -> dict[str, int]: ...

    def decisions(
        self,
        *,
        store: str | None = None,
        campaign_id: str | None = None,
        shopper_id: str | None = None,
        limit: int = 1000,
    ) -> list[LoggedDecision]:
        """The decision log, newest first."""
        ...

    # -- store visits -----------------------------------------------------------------
    def store_visit_counts(self, store: str, shopper_ids: Sequence[str]) -> dict[str, int]:
        """Store visits recorded so far per shopper (absent: none)."""
        ...

    def record_store_visits(self, visits: Sequence[tuple[str, str, int]]) -> None:
        """New store visits (store, shopper, entered_ms)."""
        ...

    # -- the shopper's rights ---------------------------------------------------------
    def erase_shopper(self, shopper_id: str) -> None: ...

    def export_shopper(self, shopper_id: str) -> list[dict[str, object]]: ...

    def export_store_visits(self, shopper_id: str) -> list[dict[str, object]]:
        """The shopper's store-visit counts: ``store``, ``visits``, ``last_ms``, by store."""
        ...
