"""Coupon codes: what the till redeems, one per offer, starting with the campaign's code.

A campaign's ``coupon_code`` (docs/offers.md) is either a template with one
``{code}`` placeholder (``SPRING-SALE-{code}``) or a fixed code
(``VIP-2025``). Every delivered offer carries a code of its own, so that a
redemption at the till is attributed to exactly one offer: a template's
placeholder is filled in, a fixed code gets a unique part appended, and an
offer without a code gets ``OZ-`` and a unique part. The unique part always
comes from ``unique_code``, the one generator.
"""

import base64
import hashlib

__all__ = [
    "CODE_ALPHABET",
    "CODE_LENGTH",
    "PLACEHOLDER",
    "normalize_code",
    "till_code",
    "unique_code",
]

PLACEHOLDER = "{code}"
#: Crockford base32 without I, L, O, U: read aloud or typed at a till without mix-ups.
CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_LENGTH = 8
#: The head of the code of an offer whose campaign has no coupon code.
NO_CAMPAIGN_CODE = "OZ"
_CROCKFORD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", CODE_ALPHABET)


def unique_code(*parts: str | int) -> str:
    """8 characters derived from ``parts`` with SHA-256: the same parts always
    give the same code, different parts different codes except with
    negligible probability (the store still enforces uniqueness)."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return base64.b32encode(digest[:5]).decode().translate(_CROCKFORD)


def normalize_code(code: str) -> str:
    """Codes are compared as typed at a till: case and surrounding spaces ignored."""
    return code.strip().upper()


def till_code(coupon_code: str | None, unique: str) -> str:
    """The code one offer is redeemed with; it starts with the campaign's code.

    ``SPRING-SALE-{code}`` gives ``SPRING-SALE-<unique>``, ``VIP-2025`` gives
    ``VIP-2025-<unique>``, no code gives ``OZ-<unique>``.
    """
    head = normalize_code(coupon_code or "")
    if not head:
        return f"{NO_CAMPAIGN_CODE}-{unique}"
    if PLACEHOLDER.upper() in head:
        return head.replace(PLACEHOLDER.upper(), unique, 1)
    return f"{head}-{unique}"
