"""Follow-ups after the visit: the port (``adapters.follow_up_db`` implements it)."""

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from omnizone.server.domain.offers import Decision, OfferDraft
from omnizone.server.domain.offers.follow_ups import FollowUpPlan

__all__ = ["FollowUpRecord", "FollowUpStorage", "draft_from_json", "draft_to_json"]


@dataclass(frozen=True, slots=True)
class FollowUpRecord:
    plan: FollowUpPlan
    status: str  # pending, sending, sent, held_out, not_sent, failed
    outcome: str | None = None
    reason: str | None = None
    decided_ms: int | None = None
    code: str | None = None
    draft: OfferDraft | None = None
    offer_id: str | None = None
    attempts: int = 0
    claimed_ms: int | None = None
    created_ms: int = 0
    done_ms: int | None = None


def draft_to_json(draft: OfferDraft) -> dict[str, Any]:
    out = asdict(draft)
    out["trigger"] = dict(draft.trigger)
    return out


def draft_from_json(data: Mapping[str, Any]) -> OfferDraft:
    return OfferDraft(**{**data, "trigger": dict(data.get("trigger") or {})})


class FollowUpStorage(Protocol):
    def schedule(self, plans: Sequence[FollowUpPlan], created_ms: int) -> int: ...

    def claim_due(self, now_ms: int, lease_ms: int, limit: int) -> list[FollowUpRecord]: ...

    def record(self, follow_up_id: str) -> FollowUpRecord | None: ...

    def postpone(self, follow_up_id: str, claimed_ms: int, due_ms: int) -> bool: ...

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
    ) -> bool: ...

    def finish(
        self, follow_up_id: str, claimed_ms: int, status: str, done_ms: int, offer_id: str | None
    ) -> bool: ...

    def release(self, follow_up_id: str, claimed_ms: int) -> None: ...

    def offer_with_code(self, code: str) -> str | None: ...

    def of_campaign(
        self, campaign_id: str, *, from_ms: int | None = None, to_ms: int | None = None
    ) -> list[FollowUpRecord]: ...

    def counts(self) -> dict[str, int]: ...

    def erase_shopper(self, shopper_id: str) -> int: ...

    def export_shopper(self, shopper_id: str) -> list[dict[str, Any]]: ...
