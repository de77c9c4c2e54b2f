"""Offers across a chain's nodes: a worker stores them, any API node shows them.

The worker that decides an offer stores it in PostgreSQL first (its per-shopper
``seq``), then publishes it on ``OFFER_SUBJECT``. Every API node subscribes and
hands it to the shopper's live WebSockets it holds (``OfferDelivery.hand_to_live``).
Core NATS is at most once: a live phone that misses one fills the gap from the
database with the next offer, and a phone that reconnects resumes from its
acknowledged ``seq``, so the database, not NATS, is what keeps an offer.
"""

import dataclasses
import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

from omnizone.server.adapters.nats_link import NatsLink
from omnizone.server.service.delivery import DeliveredOffer

log = logging.getLogger(__name__)

OFFER_SUBJECT = "omnizone.chain.offers"


def encode_offers(offers: Sequence[DeliveredOffer]) -> bytes:
    return json.dumps([dataclasses.asdict(o) for o in offers], default=str).encode()


def decode_offers(payload: bytes) -> list[DeliveredOffer]:
    """The offers of one message; a malformed one is logged and skipped."""
    raw: Any = json.loads(payload)
    out: list[DeliveredOffer] = []
    for item in raw if isinstance(raw, list) else []:
        try:
            out.append(DeliveredOffer(**item))
        except TypeError as error:
            log.warning("offer relay: skipped a malformed offer: %s", error)
    return out


class NatsOfferFanout:
    """Worker side: publish stored offers for the API nodes (any thread)."""

    def __init__(self, link: NatsLink, subject: str = OFFER_SUBJECT) -> None:
        self._link = link
        self._subject = subject
        self.published = 0

    def __call__(self, offers: Sequence[DeliveredOffer]) -> None:
        if offers:
            self._link.publish_threadsafe(self._subject, encode_offers(offers))
            self.published += len(offers)


class NatsOfferRelay:
    """API side: offers from the workers to this node's live sessions."""

    def __init__(
        self,
        link: NatsLink,
        hand_to_live: Callable[[DeliveredOffer], int],
        subject: str = OFFER_SUBJECT,
    ) -> None:
        self._link = link
        self._hand = hand_to_live
        self._subject = subject
        self.received = 0
        self.handed = 0

    def start(self) -> None:
        self._link.run(self._subscribe(), 30.0)

    async def _subscribe(self) -> None:
        async def on_message(msg: Any) -> None:
            try:
                offers = decode_offers(msg.data)
            except ValueError as error:
                log.warning("offer relay: not JSON: %s", error)
                return
            for offer in offers:
                self.received += 1
                self.handed += self._hand(offer)

        await self._link.client.subscribe(self._subject, cb=on_message)
        await self._link.client.flush()
