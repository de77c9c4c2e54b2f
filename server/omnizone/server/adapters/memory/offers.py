"""Delivered offers in memory: the ``OfferStorage`` port.

Behaves as ``adapters.offer_db.OfferRepository``: each shopper's offers are
numbered 1, 2, 3… in the order stored; acks are cumulative and give the
newly acked offers a ``delivered`` receipt; a receipt keeps its first time;
a till code is unique and redeemed once; a push address is kept once, under
the shopper who saved it last.
"""

import threading
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from omnizone.server.adapters.memory.campaigns import within
from omnizone.server.adapters.memory.ingest import json_copy
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

#: Tries to give a batch codes no other offer holds, as the SQL store retries.
ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class _Cursor:
    last_seq: int
    acked_seq: int
    acked_ms: int | None


@dataclass(frozen=True, slots=True)
class StoredRedemption:
    offer_id: str
    code: str
    store: str
    redeemed_ms: int


@dataclass(frozen=True, slots=True)
class _Subscription:
    id: int
    shopper_id: str
    subscription: PushSubscription
    created_ms: int


@dataclass(frozen=True, slots=True)
class _Token:
    id: int
    shopper_id: str
    platform: NativePlatform
    token: str
    created_ms: int


class MemoryOfferStore(OfferStorage):
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._offers: dict[str, DeliveredOffer] = {}  # in the order stored
        self._codes: dict[str, str] = {}  # till code -> offer id
        self._cursors: dict[str, _Cursor] = {}
        self._receipts: dict[str, dict[ReceiptStatus, int]] = {}  # offer -> status -> at_ms
        self._redemptions: dict[str, StoredRedemption] = {}  # by offer id
        self._subscriptions: dict[str, _Subscription] = {}  # by endpoint
        self._tokens: dict[tuple[str, str], _Token] = {}  # by (platform, token)
        self._next_id = 0

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

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
        with self._lock:
            for attempt in range(ATTEMPTS):
                made = self._made(offers, created_ms, new_code)
                codes = [o.coupon_code for o in made]
                if len(set(codes)) == len(codes) and not set(codes) & set(self._codes):
                    break
                if attempt == ATTEMPTS - 1:
                    raise ValueError("the offers' till codes collide with stored ones")
            counts = Counter(new.shopper_id for new in offers)
            for shopper, n in counts.items():
                cursor = self._cursors.get(shopper, _Cursor(0, 0, None))
                self._cursors[shopper] = replace(cursor, last_seq=cursor.last_seq + n)
            for offer in made:
                self._offers[offer.offer_id] = offer
                self._codes[offer.coupon_code] = offer.offer_id
            return [_copy(o) for o in made]

    def _made(
        self, offers: Sequence[NewOffer], created_ms: int, new_code: Callable[[OfferDraft], str]
    ) -> list[DeliveredOffer]:
        """The batch as it would be stored: each shopper's next seqs, in order."""
        given: Counter[str] = Counter()
        made = []
        for new in offers:
            given[new.shopper_id] += 1
            last = self._cursors.get(new.shopper_id, _Cursor(0, 0, None)).last_seq
            draft = new.draft
            made.append(
                DeliveredOffer(
                    offer_id=str(uuid.uuid4()),
                    shopper_id=new.shopper_id,
                    seq=last + given[new.shopper_id],
                    store=draft.store,
                    campaign_id=draft.campaign_id,
                    title=draft.title,
                    body=draft.body,
                    coupon_code=new_code(draft),
                    expires_ms=draft.expires_ms,
                    created_ms=created_ms,
                    trigger=json_copy(dict(draft.trigger)),
                    image=draft.image,
                    product_gtin=draft.product_gtin,
                    trigger_published_ms=new.trigger_published_ms,
                )
            )
        return made

    def offers_after(self, shopper_id: str, after: int, limit: int) -> list[DeliveredOffer]:
        with self._lock:
            found = [o for o in self._offers.values() if o.shopper_id == shopper_id]
        found = sorted((o for o in found if o.seq > after), key=lambda o: o.seq)
        return [_copy(o) for o in found[: max(limit, 0)]]

    def inbox(self, shopper_id: str, after: int, limit: int) -> list[InboxOffer]:
        offers = self.offers_after(shopper_id, after, limit)
        with self._lock:
            return [
                InboxOffer(
                    o,
                    dict(self._receipts.get(o.offer_id, {})),
                    self._redemptions[o.offer_id].redeemed_ms
                    if o.offer_id in self._redemptions
                    else None,
                )
                for o in offers
            ]

    def offer_exists(self, offer_id: str) -> bool:
        with self._lock:
            return offer_id in self._offers

    def cursor(self, shopper_id: str) -> tuple[int, int]:
        with self._lock:
            found = self._cursors.get(shopper_id)
        return (found.last_seq, found.acked_seq) if found else (0, 0)

    # -- acks and receipts ------------------------------------------------------------

    def ack(self, shopper_id: str, seq: int, at_ms: int) -> int:
        return self.ack_many({shopper_id: seq}, at_ms).get(shopper_id, 0)

    def ack_many(self, acks: Mapping[str, int], at_ms: int) -> dict[str, int]:
        stored = {}
        with self._lock:
            for shopper_id, seq in acks.items():
                cursor = self._cursors.get(shopper_id)
                if cursor is None:
                    continue
                old = cursor.acked_seq
                new = next_ack(old, seq, cursor.last_seq)
                if new > old:
                    self._cursors[shopper_id] = replace(cursor, acked_seq=new, acked_ms=at_ms)
                    for offer in self._offers.values():
                        if offer.shopper_id == shopper_id and old < offer.seq <= new:
                            self._receipts.setdefault(offer.offer_id, {}).setdefault(
                                "delivered", at_ms
                            )
                stored[shopper_id] = new
        return stored

    def add_receipt(
        self, shopper_id: str, offer_id: str, status: ReceiptStatus, at_ms: int
    ) -> Receipt:
        with self._lock:
            offer = self._offers.get(offer_id)
            if offer is None or offer.shopper_id != shopper_id:
                raise OfferNotFound(f"no offer {offer_id!r} for this shopper")
            receipts = self._receipts.setdefault(offer_id, {})
            if status in receipts:
                return Receipt(offer_id, status, receipts[status], created=False)
            receipts[status] = at_ms
            return Receipt(offer_id, status, at_ms, created=True)

    def is_delivered(self, offer_id: str) -> bool:
        with self._lock:
            return "delivered" in self._receipts.get(offer_id, {})

    # -- redemption -------------------------------------------------------------------

    def redeem(self, store: str, code: str, at_ms: int) -> Redemption:
        with self._lock:
            offer_id = self._codes.get(code)
            offer = self._offers.get(offer_id) if offer_id is not None else None
            done = self._redemptions.get(offer.offer_id) if offer else None
            refused = refusal(
                found=offer is not None,
                redeemed_ms=done.redeemed_ms if done else None,
                expires_ms=offer.expires_ms if offer else 0,
                now=at_ms,
            )
            if refused is not None:
                raise RedemptionRefused(*refused)
            assert offer is not None
            self._redemptions[offer.offer_id] = StoredRedemption(offer.offer_id, code, store, at_ms)
            return Redemption(offer.offer_id, offer.campaign_id, store, code, at_ms)

    # -- push subscriptions and tokens ------------------------------------------------

    def save_push_subscription(
        self, shopper_id: str, subscription: PushSubscription, at_ms: int
    ) -> None:
        with self._lock:
            found = self._subscriptions.get(subscription.endpoint)
            key = found.id if found else self._new_id()
            self._subscriptions[subscription.endpoint] = _Subscription(
                key, shopper_id, subscription, at_ms
            )

    def push_subscriptions(self, shopper_id: str) -> list[PushSubscription]:
        with self._lock:
            mine = [s for s in self._subscriptions.values() if s.shopper_id == shopper_id]
        return [s.subscription for s in sorted(mine, key=lambda s: s.id)]

    def remove_push_subscription(self, endpoint: str, shopper_id: str | None = None) -> bool:
        with self._lock:
            found = self._subscriptions.get(endpoint)
            if found is None or (shopper_id is not None and found.shopper_id != shopper_id):
                return False
            del self._subscriptions[endpoint]
            return True

    def save_push_token(
        self, shopper_id: str, platform: NativePlatform, token: str, at_ms: int
    ) -> None:
        with self._lock:
            found = self._tokens.get((platform, token))
            key = found.id if found else self._new_id()
            self._tokens[(platform, token)] = _Token(key, shopper_id, platform, token, at_ms)

    def push_tokens(self, shopper_id: str, platform: NativePlatform) -> list[str]:
        with self._lock:
            mine = [
                t
                for t in self._tokens.values()
                if t.shopper_id == shopper_id and t.platform == platform
            ]
        return [t.token for t in sorted(mine, key=lambda t: t.id)]

    def remove_push_token(self, platform: NativePlatform, token: str) -> bool:
        with self._lock:
            return self._tokens.pop((platform, token), None) is not None

    # -- the campaign report and the shopper's rights ---------------------------------

    def campaign_counts(
        self, campaign_id: str, *, from_ms: int | None = None, to_ms: int | None = None
    ) -> dict[str, int]:
        counts: dict[str, int] = {}
        with self._lock:
            mine = [i for i, o in self._offers.items() if o.campaign_id == campaign_id]
            for offer_id in mine:
                for status, at_ms in self._receipts.get(offer_id, {}).items():
                    if within(at_ms, from_ms, to_ms):
                        counts[status] = counts.get(status, 0) + 1
            counts["redeemed"] = sum(
                offer_id in self._redemptions
                and within(self._redemptions[offer_id].redeemed_ms, from_ms, to_ms)
                for offer_id in mine
            )
        return counts

    def erase_shopper(self, shopper_id: str) -> int:
        with self._lock:
            mine = [i for i, o in self._offers.items() if o.shopper_id == shopper_id]
            removed = 0
            for offer_id in mine:
                removed += len(self._receipts.pop(offer_id, {}))
                removed += self._redemptions.pop(offer_id, None) is not None
            for offer_id in mine:
                offer = self._offers.pop(offer_id)
                self._codes.pop(offer.coupon_code, None)
            removed += len(mine)
            removed += self._cursors.pop(shopper_id, None) is not None
            for endpoint in [
                e for e, s in self._subscriptions.items() if s.shopper_id == shopper_id
            ]:
                del self._subscriptions[endpoint]
                removed += 1
            for key in [k for k, t in self._tokens.items() if t.shopper_id == shopper_id]:
                del self._tokens[key]
                removed += 1
            return removed

    def export_shopper(self, shopper_id: str) -> dict[str, Any]:
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
        with self._lock:
            subscriptions = [
                {"endpoint": s.subscription.endpoint, "created_ms": s.created_ms}
                for s in sorted(self._subscriptions.values(), key=lambda s: s.id)
                if s.shopper_id == shopper_id
            ]
            tokens = [
                {"platform": t.platform, "created_ms": t.created_ms}
                for t in sorted(self._tokens.values(), key=lambda t: t.id)
                if t.shopper_id == shopper_id
            ]
        return {
            "offers": offers,
            "last_seq": last_seq,
            "acked_seq": acked_seq,
            "push_subscriptions": subscriptions,
            "push_tokens": tokens,
        }

    # -- for the in-memory analytics reads ---------------------------------------------

    def redemptions_of(self, store: str) -> list[tuple[DeliveredOffer, StoredRedemption]]:
        """This store's redemptions with the offer each redeemed."""
        with self._lock:
            return [
                (self._offers[r.offer_id], r)
                for r in self._redemptions.values()
                if r.store == store and r.offer_id in self._offers
            ]


def _copy(offer: DeliveredOffer) -> DeliveredOffer:
    """As read back from a JSON column: the trigger is the caller's to change."""
    return replace(offer, trigger=json_copy(dict(offer.trigger)))
