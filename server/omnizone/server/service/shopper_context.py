"""A shopper's offer context from their consent, profile and loyalty id, shared
by the offer engine (a crowd at once) and the follow-ups (one shopper)."""

from omnizone.server.domain.identity import (
    Consent,
    ProfileSummary,
    may_send_offer,
    may_store_location,
)
from omnizone.server.domain.offers import Purchase, ShopperContext


def shopper_context(
    shopper_id: str,
    consent: Consent | None,
    profile: ProfileSummary | None,
    loyalty_id: str | None,
) -> ShopperContext:
    """No consent: no offers, no location; no profile: an empty cart, wishlist
    and purchase history."""
    return ShopperContext(
        shopper_id=shopper_id,
        consent_offers=consent is not None and may_send_offer(consent),
        consent_location=consent is not None and may_store_location(consent),
        cart=frozenset(profile.cart) if profile else frozenset(),
        wishlist=frozenset(profile.wishlist) if profile else frozenset(),
        purchases=tuple(
            Purchase(p.gtin, p.amount or 0.0, p.at_ms, p.channel) for p in profile.purchases
        )
        if profile
        else (),
        loyalty_id=loyalty_id,
    )
