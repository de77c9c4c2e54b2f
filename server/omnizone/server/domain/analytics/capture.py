"""Capture rate (issue 18, point 4): of the people in front of the store in an
hour, the share who came in. Pure functions: no framework, no clock, no salt.

- **Entrants** of an hour: store trips of consented shoppers (location
  analytics) that began in that hour, from the stored stays.
- **Passers-by** of an hour: the distinct phones a street-front gateway heard
  in that hour that are *not* such shoppers, counted at ingest without
  keeping any id (``passer_digest``; ``service/passers_by.py``): only the
  count per hour is stored.

The two sets are disjoint by construction, so the street traffic is their
sum and ``capture_rate = entrants / (entrants + passers_by)``, in [0, 1];
``entrants_per_passer_by`` is the plain ratio. A phone that is not a
consented shopper and walks in is counted as a passer-by, never as an
entrant (it is not followed inside): the rate is then low by that share.
"""

import hashlib
from dataclasses import dataclass

import numpy as np

from .stays import Ints
from .timeline import HOUR_MS, _offset_ms

#: Bytes of a passer-by's digest: enough that two phones of one hour collide
#: with odds of about n² / 2⁶⁵, too few to be worth keeping.
DIGEST_BYTES = 8


def passer_digest(salt: bytes, key: str) -> bytes:
    """The hour's keyed digest of what a phone advertised (or of the shopper
    it resolved to). With the salt gone, nothing links it to the key, to
    another hour or to another store."""
    return hashlib.blake2b(key.encode(), key=salt, digest_size=DIGEST_BYTES).digest()


def hour_start(at_ms: int, timezone: str) -> int:
    """The store-local hour boundary at or before ``at_ms`` (the same grid as
    ``hour_buckets``)."""
    offset = _offset_ms(at_ms, timezone)
    return (at_ms + offset) // HOUR_MS * HOUR_MS - offset


def entrants_per_hour(starts_ms: Ints, buckets: Ints, bucket_ms: int = HOUR_MS) -> Ints:
    """How many trips (given by their start) began in each bucket ``[b, b + bucket_ms)``."""
    if buckets.size == 0:
        return np.zeros(0, dtype=np.int64)
    index = (np.asarray(starts_ms, dtype=np.int64) - buckets[0]) // bucket_ms
    inside = (index >= 0) & (index < buckets.size)
    return np.bincount(index[inside], minlength=buckets.size).astype(np.int64)


@dataclass(frozen=True, slots=True)
class CaptureHour:
    hour_ms: int
    entrants: int
    passers_by: int
    counted: bool  # False: no passer-by count stored for this hour (not heard, or no gateway)

    @property
    def street(self) -> int:
        return self.entrants + self.passers_by

    @property
    def capture_rate(self) -> float | None:
        return self.entrants / self.street if self.counted and self.street else None

    @property
    def entrants_per_passer_by(self) -> float | None:
        return self.entrants / self.passers_by if self.counted and self.passers_by else None


@dataclass(frozen=True, slots=True)
class Capture:
    hours: list[CaptureHour]

    @property
    def entrants(self) -> int:
        """Entrants of the hours that have a passer-by count (like with like)."""
        return sum(h.entrants for h in self.hours if h.counted)

    @property
    def passers_by(self) -> int:
        return sum(h.passers_by for h in self.hours if h.counted)

    @property
    def capture_rate(self) -> float | None:
        street = self.entrants + self.passers_by
        return self.entrants / street if street else None


def capture(buckets: Ints, entrants: Ints, passers_by: dict[int, int]) -> Capture:
    """Per hour bucket: its entrants and its stored passer-by count
    (``passers_by``: hour start -> count; an hour absent was not counted)."""
    return Capture(
        [
            CaptureHour(int(b), int(n), int(passers_by.get(int(b), 0)), int(b) in passers_by)
            for b, n in zip(buckets.tolist(), entrants.tolist(), strict=True)
        ]
    )
