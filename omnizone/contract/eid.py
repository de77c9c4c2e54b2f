"""The shopper app's rotating ephemeral id: Eddystone-EID, shared by phone and server.

A shopper's phone must be recognisable to the server yet meaningless to
anyone else listening in the store, so it never advertises a fixed id. At
registration the server gives the app three things, which it keeps:

- a random 16-byte **identity key**;
- a **rotation exponent** ``K``: the id changes every ``2**K`` seconds;
- a **clock offset**: the phone's *beacon time* is
  ``(floor(unix seconds) + offset) mod 2**32``, so each phone's periods start
  at its own moments, not on one boundary shared by every phone.

The id itself is the published Eddystone-EID computation
(github.com/google/eddystone, ``eddystone-eid/eid-computation.md``), so any
standard resolver given the key, ``K`` and the beacon time resolves it::

    tk  = AES-128(identity key, 0x00*11 | 0xFF | 0x00 0x00 | top 16 bits of beacon time)
    eid = AES-128(tk, 0x00*11 | K | beacon time with its K low bits cleared (4 bytes))[:8]

The phone advertises ``eid`` in an Eddystone-EID frame and a gateway reports it
as the device key ``eid:<16 hex>``; only the server, which holds every key,
maps it back to the device (``omnizone.server.domain.identity.EidResolver``).
Because ``2**K`` divides ``2**32``, a period never straddles the wrap of the
beacon clock. See docs/identity.md.
"""

import secrets
from collections.abc import Iterator
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes

from omnizone.contract.ids import eid_key

IDENTITY_KEY_BYTES = 16
EID_BYTES = 8
MAX_ROTATION_EXPONENT = 15  # as in Eddystone-EID: 1 s to about 9 hours
BEACON_CLOCK = 2**32  # the beacon time is a 32-bit seconds counter
_SALT = 0xFF  # byte 11 of the temporary key's input


def new_identity_key() -> bytes:
    """A fresh per-device identity key, handed to the app once at registration."""
    return secrets.token_bytes(IDENTITY_KEY_BYTES)


def rotation_period_s(exponent: int) -> int:
    """The period of the Eddystone rotation exponent ``k``: ``2**k`` seconds."""
    _check_exponent(exponent)
    return 1 << exponent


def _check_exponent(exponent: int) -> None:
    if not 0 <= exponent <= MAX_ROTATION_EXPONENT:
        raise ValueError(f"rotation exponent must be 0..{MAX_ROTATION_EXPONENT}, got {exponent}")


def _check_key(key: bytes) -> None:
    if len(key) != IDENTITY_KEY_BYTES:
        raise ValueError(f"an identity key is {IDENTITY_KEY_BYTES} bytes, got {len(key)}")


def _check_beacon_time(beacon_time_s: int) -> None:
    if not 0 <= beacon_time_s < BEACON_CLOCK:
        raise ValueError(f"beacon time must fit in 32 bits, got {beacon_time_s}")


def _aes_ecb(key: bytes) -> CipherContext:
    # One block per input and no chaining: ECB is exactly the spec's AES-128 of a block.
    return Cipher(algorithms.AES128(key), modes.ECB()).encryptor()


def _temporary_key_block(beacon_time_s: int) -> bytes:
    return bytes(11) + bytes([_SALT]) + bytes(2) + (beacon_time_s >> 16).to_bytes(2, "big")


def _eid_block(exponent: int, beacon_time_s: int) -> bytes:
    quantum = beacon_time_s >> exponent << exponent
    return bytes(11) + bytes([exponent]) + quantum.to_bytes(4, "big")


def temporary_key(key: bytes, beacon_time_s: int) -> bytes:
    """The spec's temporary key: it changes every 65,536 s of beacon time."""
    _check_key(key)
    _check_beacon_time(beacon_time_s)
    return _aes_ecb(key).update(_temporary_key_block(beacon_time_s))


def eid_at_beacon_time(key: bytes, exponent: int, beacon_time_s: int) -> bytes:
    """The 8-byte Eddystone-EID of ``key`` with rotation exponent ``exponent``
    at ``beacon_time_s`` (the phone's own 32-bit seconds counter)."""
    _check_exponent(exponent)
    tk = temporary_key(key, beacon_time_s)
    return _aes_ecb(tk).update(_eid_block(exponent, beacon_time_s))[:EID_BYTES]


@dataclass(frozen=True, slots=True)
class EidPeriod:
    """One rotation period of a phone, in UTC epoch milliseconds: ``[start, end)``."""

    start_ms: int
    end_ms: int
    eid: bytes


@dataclass(frozen=True, slots=True)
class EidParams:
    """What a phone and the server share about its rotating id, fixed at registration."""

    key: bytes
    exponent: int
    """K: the id changes every ``2**K`` seconds."""
    clock_offset_s: int
    """Beacon time = ``(floor(unix seconds) + clock_offset_s) mod 2**32``."""

    def __post_init__(self) -> None:
        _check_key(self.key)
        _check_exponent(self.exponent)
        if not 0 <= self.clock_offset_s < BEACON_CLOCK:
            raise ValueError(f"clock offset must be 0..2**32-1 s, got {self.clock_offset_s}")

    @property
    def rotation_s(self) -> int:
        return 1 << self.exponent

    def beacon_time(self, at_ms: int) -> int:
        """The phone's beacon time at ``at_ms`` (UTC epoch milliseconds)."""
        if at_ms < 0:
            raise ValueError(f"time must be epoch milliseconds >= 0, got {at_ms}")
        return (at_ms // 1000 + self.clock_offset_s) % BEACON_CLOCK

    def period_start_ms(self, at_ms: int) -> int:
        """When the period that ``at_ms`` falls in began."""
        second = at_ms // 1000
        return (second - self.beacon_time(at_ms) % self.rotation_s) * 1000

    def period(self, at_ms: int) -> EidPeriod:
        """The period ``at_ms`` falls in, with the id advertised during it."""
        start_ms = self.period_start_ms(at_ms)
        return EidPeriod(start_ms, start_ms + self.rotation_s * 1000, self.eid(at_ms))

    def eid(self, at_ms: int) -> bytes:
        """The 8-byte ephemeral id the phone advertises at ``at_ms``."""
        return eid_at_beacon_time(self.key, self.exponent, self.beacon_time(at_ms))

    def device_key(self, at_ms: int) -> str:
        """The device key a gateway reports for that advert: ``eid:<16 hex>``."""
        return eid_key(self.eid(at_ms))

    def periods(self, from_ms: int, to_ms: int) -> Iterator[EidPeriod]:
        """Every period that overlaps ``[from_ms, to_ms)``, oldest first."""
        return EidSchedule(self).periods(from_ms, to_ms)


class EidSchedule:
    """One phone's ids period after period, keeping its AES key schedules: the
    identity key's, and the temporary key's until it rolls over (every 65,536 s
    of beacon time). The server's resolver keeps one per phone, so tabling
    10,000 phones' next ids costs no key setup. Not thread-safe."""

    def __init__(self, params: EidParams) -> None:
        self.params = params
        self._identity = _aes_ecb(params.key)
        self._temporary: tuple[int, CipherContext] | None = None

    def periods(self, from_ms: int, to_ms: int) -> Iterator[EidPeriod]:
        """Every period that overlaps ``[from_ms, to_ms)``, oldest first."""
        if to_ms <= from_ms:
            return
        p = self.params
        period_ms = p.rotation_s * 1000
        start_ms = p.period_start_ms(max(from_ms, 0))
        while start_ms < to_ms:
            beacon = p.beacon_time(start_ms)
            temporary = self._temporary
            if temporary is None or temporary[0] != beacon >> 16:
                tk = self._identity.update(_temporary_key_block(beacon))
                temporary = self._temporary = (beacon >> 16, _aes_ecb(tk))
            eid = temporary[1].update(_eid_block(p.exponent, beacon))[:EID_BYTES]
            yield EidPeriod(start_ms, start_ms + period_ms, eid)
            start_ms += period_ms


def new_eid_params(min_exponent: int, max_exponent: int) -> EidParams:
    """A new phone's parameters: a fresh key, ``K`` drawn from
    ``min_exponent..max_exponent`` and a random beacon clock, so no two
    phones share rotation boundaries by design."""
    _check_exponent(min_exponent)
    _check_exponent(max_exponent)
    if min_exponent > max_exponent:
        raise ValueError(f"rotation exponents {min_exponent}..{max_exponent} are an empty range")
    exponent = min_exponent + secrets.randbelow(max_exponent - min_exponent + 1)
    return EidParams(new_identity_key(), exponent, secrets.randbelow(BEACON_CLOCK))


def eid_for(params: EidParams, at_ms: int) -> bytes:
    """The 8-byte ephemeral id ``params``' phone advertises at ``at_ms``."""
    return params.eid(at_ms)


def eid_device_key(params: EidParams, at_ms: int) -> str:
    """The device key a gateway reports for that advert: ``eid:<16 hex>``."""
    return params.device_key(at_ms)
