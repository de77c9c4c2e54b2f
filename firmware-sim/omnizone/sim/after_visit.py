"""What simulated shoppers do after the visit: the app reads its inbox (a
follow-up arrives there, and by Web Push), and some shoppers buy later,
online (the web shop posts the purchase to the profile webhook) or back in
the store (the till redeems the follow-up's code, then posts the purchase),
as ``shopper_apps`` does for the till in the store.

Everything goes through the public API. The choices are seeded per shopper,
and every one of them is kept (``truth``), so a test can hold the server's
campaign report against what the simulated shoppers did. The effect of a
follow-up is a parameter (``buy_if_followed_up`` against ``buy_otherwise``):
lift measured here checks the server's arithmetic, not shoppers.
"""

import json
import random
from dataclasses import dataclass, field
from typing import Any

import httpx

from omnizone.sim.shopper_apps import SIGNATURE_HEADER, sign

__all__ = ["AfterVisit", "LaterPurchase"]

HOUR_MS = 3_600_000


@dataclass(frozen=True, slots=True)
class LaterPurchase:
    """One purchase a simulated shopper made after the visit."""

    shopper_id: str
    gtin: str
    amount: float
    at_ms: int
    channel: str  # "online" or "pos"
    follow_up: str | None  # the follow-up's campaign, when the app had one
    redeemed: bool  # the till took the follow-up's code


@dataclass
class AfterVisit:
    """The shoppers' apps, web shop and till after the visit, over one API client."""

    client: httpx.Client
    store: str
    pos_key: str
    webhook_secret: str
    seed: int
    buy_if_followed_up: float = 0.5
    buy_otherwise: float = 0.2
    online_share: float = 0.5
    within_hours: int = 48
    truth: list[LaterPurchase] = field(default_factory=list)
    follow_ups_seen: dict[str, str] = field(default_factory=dict)  # shopper -> campaign

    def _rng(self, *parts: object) -> random.Random:
        return random.Random(":".join(str(p) for p in (self.seed, "after-visit", *parts)))

    def read_inbox(self, shopper_id: str, token: str) -> dict[str, Any] | None:
        """The app's inbox: the follow-up it got after the visit, if any (opened)."""
        bearer = {"Authorization": f"Bearer {token}"}
        answer = self.client.get("/api/v1/me/offers", headers=bearer)
        answer.raise_for_status()
        follow_ups = [o for o in answer.json() if o["trigger"].get("event") == "visit_ended"]
        if not follow_ups:
            return None
        offer: dict[str, Any] = follow_ups[-1]
        self.follow_ups_seen[shopper_id] = str(offer["campaign_id"])
        done = self.client.post(
            f"/api/v1/me/offers/{offer['offer_id']}/receipts",
            json={"status": "opened"},
            headers=bearer,
        )
        done.raise_for_status()
        return offer

    def live_on(
        self,
        shopper_id: str,
        token: str,
        gtin: str,
        price: float,
        from_ms: int,
        *,
        key: str | None = None,
    ) -> LaterPurchase | None:
        """After ``from_ms``: read the inbox, then perhaps buy ``gtin`` (the
        item of the visit) within ``within_hours``, online or in the store.
        ``key`` (default: the shopper id) seeds the shopper's choices."""
        offer = self.read_inbox(shopper_id, token)
        rng = self._rng(key or shopper_id)
        chance = self.buy_if_followed_up if offer is not None else self.buy_otherwise
        if rng.random() >= chance:
            return None
        online = rng.random() < self.online_share
        at_ms = from_ms + rng.randint(1, self.within_hours) * HOUR_MS
        redeemed = False
        if not online and offer is not None:
            done = self.client.post(
                f"/api/v1/stores/{self.store}/redemptions",
                json={"code": offer["coupon_code"]},
                headers={"X-API-Key": self.pos_key},
            )
            redeemed = done.status_code == 201
        channel = "online" if online else "pos"
        self._purchase(shopper_id, gtin, price, at_ms, channel)
        bought = LaterPurchase(
            shopper_id,
            gtin,
            price,
            at_ms,
            channel,
            offer["campaign_id"] if offer is not None else None,
            redeemed,
        )
        self.truth.append(bought)
        return bought

    def _purchase(self, shopper_id: str, gtin: str, price: float, at_ms: int, channel: str) -> None:
        event = {"type": "purchase", "gtin": gtin, "channel": channel, "at_ms": at_ms}
        body = json.dumps({"shopper_id": shopper_id, "events": [{**event, "amount": price}]})
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self.webhook_secret.encode(), body.encode()),
        }
        done = self.client.post("/api/v1/webhooks/profile", content=body.encode(), headers=headers)
        done.raise_for_status()
