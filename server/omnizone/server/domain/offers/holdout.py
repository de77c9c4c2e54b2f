"""Stable pseudo-random draws: holdout membership."""

import hashlib

__all__ = ["holdout_draw", "in_holdout"]


def holdout_draw(campaign_id: str, shopper_id: str) -> float:
    """A uniform number in [0, 1) fixed for (campaign, shopper): the first 64
    bits of SHA-256("campaign:shopper")."""
    digest = hashlib.sha256(f"{campaign_id}:{shopper_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def in_holdout(campaign_id: str, shopper_id: str, fraction: float) -> bool:
    return holdout_draw(campaign_id, shopper_id) < fraction
