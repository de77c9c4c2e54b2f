"""Stable pseudo-random draws: holdout membership and unique coupon codes."""

import base64
import hashlib

__all__ = ["holdout_draw", "in_holdout", "unique_code"]


def holdout_draw(campaign_id: str, shopper_id: str) -> float:
    """A uniform number in [0, 1) fixed for (campaign, shopper): the first 64
    bits of SHA-256("campaign:shopper")."""
    digest = hashlib.sha256(f"{campaign_id}:{shopper_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def in_holdout(campaign_id: str, shopper_id: str, fraction: float) -> bool:
    return holdout_draw(campaign_id, shopper_id) < fraction


_CROCKFORD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", "0123456789ABCDEFGHJKMNPQRSTVWXYZ")


def unique_code(*parts: str | int) -> str:
    """8 characters (Crockford base32, no I/L/O/U) derived from the decision's inputs."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return base64.b32encode(digest[:5]).decode().translate(_CROCKFORD)
