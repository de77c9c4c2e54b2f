"""The shopper app's rotating ephemeral id, shared by the phone and the server.

A shopper's phone must be recognisable to the server yet meaningless to
anyone else listening in the store, so it never advertises a fixed id. At
registration the server hands the app a random 16-byte identity key; from
then on both sides derive the same 8-byte ephemeral id (EID) for each
rotation period::

    counter = floor(t_seconds / rotation_s)            # UTC epoch time
    eid     = HMAC-SHA256(identity_key, b"omnizone-eid" || counter as 4 bytes, big-endian)[:8]

The phone advertises ``eid`` in an Eddystone-EID frame and a gateway reports it
as the device key ``eid:<16 hex>``; only the server, which knows every key,
can map it back to the device (``omnizone.server.domain.identity.EidResolver``).

This is Eddystone-EID *style*, not the Eddystone-EID specification: the spec
derives a temporary key from the identity key with AES-128-ECB and then
encrypts the masked counter with it, and counts beacon time since
registration. Here one HMAC-SHA256 over the epoch-time counter does both,
from the standard library only (phones and gateways need no AES library).
The rotation period may be any number of seconds; the spec's rotation
exponent ``k`` is the period ``2**k`` (``rotation_period_s``). See
docs/identity.md.
"""

import hmac
import secrets

from omnizone.contract.ids import eid_key

IDENTITY_KEY_BYTES = 16
EID_BYTES = 8
EID_LABEL = b"omnizone-eid"
MAX_ROTATION_EXPONENT = 15  # as in Eddystone-EID: 1 s to about 9 hours


def new_identity_key() -> bytes:
    """A fresh per-device identity key, handed to the app once at registration."""
    return secrets.token_bytes(IDENTITY_KEY_BYTES)


def rotation_period_s(exponent: int) -> int:
    """The period of the Eddystone rotation exponent ``k``: ``2**k`` seconds."""
    if not 0 <= exponent <= MAX_ROTATION_EXPONENT:
        raise ValueError(f"rotation exponent must be 0..{MAX_ROTATION_EXPONENT}, got {exponent}")
    return 1 << exponent


def rotation_counter(at_ms: int, rotation_s: int) -> int:
    """The rotation period that ``at_ms`` (UTC epoch ms) falls in."""
    if rotation_s < 1:
        raise ValueError(f"rotation period must be at least 1 s, got {rotation_s}")
    if at_ms < 0:
        raise ValueError(f"time must be epoch milliseconds >= 0, got {at_ms}")
    counter = at_ms // (rotation_s * 1000)
    if counter >= 2**32:
        raise ValueError(f"time {at_ms} ms is beyond the 32-bit rotation counter")
    return counter


def eid_for_counter(key: bytes, counter: int) -> bytes:
    """The 8-byte ephemeral id of ``key`` in rotation period ``counter``."""
    if len(key) != IDENTITY_KEY_BYTES:
        raise ValueError(f"an identity key is {IDENTITY_KEY_BYTES} bytes, got {len(key)}")
    if not 0 <= counter < 2**32:
        raise ValueError(f"rotation counter must fit in 4 bytes, got {counter}")
    return hmac.digest(key, EID_LABEL + counter.to_bytes(4, "big"), "sha256")[:EID_BYTES]


def eid_for(key: bytes, at_ms: int, rotation_s: int) -> bytes:
    """The 8-byte ephemeral id ``key`` advertises at ``at_ms``."""
    return eid_for_counter(key, rotation_counter(at_ms, rotation_s))


def eid_device_key(key: bytes, at_ms: int, rotation_s: int) -> str:
    """The device key a gateway reports for that advert: ``eid:<16 hex>``."""
    return eid_key(eid_for(key, at_ms, rotation_s))
