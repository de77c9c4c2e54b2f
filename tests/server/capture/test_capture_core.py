"""Issue 18, point 4, the pure part and the counter: the capture figures per
hour, store-local hours, the salted digest, and the passer-by counter's
rules (one count per phone and hour, nothing kept but the count, the hour
before last forgotten, late windows dropped, a restart adds to the count)."""

import numpy as np
import pytest

from omnizone.server.adapters.memory.passers_by import MemoryPassersBy
from omnizone.server.domain.analytics.capture import (
    capture,
    entrants_per_hour,
    hour_start,
    passer_digest,
)
from omnizone.server.service.passers_by import PasserByCounter
from omnizone.store import StorePlan

H = 3_600_000
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z, 01:00 in Paris


def test_capture_rate_per_hour_and_over_the_counted_hours() -> None:
    buckets = np.array([T0, T0 + H, T0 + 2 * H], dtype=np.int64)
    starts = np.array([T0 - 1, T0, T0 + 10, T0 + H + 5, T0 + 3 * H], dtype=np.int64)
    entrants = entrants_per_hour(starts, buckets)
    assert entrants.tolist() == [2, 1, 0]  # before and after the buckets: nobody
    found = capture(buckets, entrants, {T0: 6, T0 + H: 0})
    first, second, third = found.hours
    assert (first.street, first.capture_rate, first.entrants_per_passer_by) == (8, 0.25, 2 / 6)
    assert (second.capture_rate, second.entrants_per_passer_by) == (1.0, None)
    assert not third.counted and third.capture_rate is None
    assert (found.entrants, found.passers_by) == (3, 6)
    assert found.capture_rate == pytest.approx(3 / 9)
    assert capture(buckets, entrants, {}).capture_rate is None  # nothing counted: no rate


def test_hours_are_store_local_also_at_half_hour_offsets() -> None:
    assert hour_start(T0 + 1234, "Europe/Paris") == T0
    # Kolkata is UTC+5:30: its hours begin at half past in UTC.
    assert hour_start(T0 + 1234, "Asia/Kolkata") == T0 - H // 2
    assert hour_start(T0 + H // 2, "Asia/Kolkata") == T0 + H // 2


def test_the_digest_depends_on_the_salt() -> None:
    a, b = b"a" * 16, b"b" * 16
    key = "eid:0011223344556677"
    assert passer_digest(a, key) == passer_digest(a, key)
    assert passer_digest(a, key) != passer_digest(b, key)
    assert len(passer_digest(a, key)) == 8


def _counter(plan: StorePlan) -> tuple[PasserByCounter, MemoryPassersBy, list[bytes]]:
    counts = MemoryPassersBy()
    salts: list[bytes] = []

    def salt() -> bytes:
        salts.append(bytes([len(salts)]) * 16)
        return salts[-1]

    return PasserByCounter({plan.id: plan}, counts, salt=salt), counts, salts


def test_a_phone_counts_once_per_hour_and_only_the_count_is_kept(plan: StorePlan) -> None:
    counter, counts, salts = _counter(plan)
    store = plan.id
    a, b = "eid:00000000000000aa", "eid:00000000000000bb"
    counter.hear(store, [(T0 + 1000, a), (T0 + 2000, a), (T0 + 3000, b)], T0 + 3000)
    counter.hear(store, [(T0 + 4000, a)], T0 + 4000)  # again, or a redelivered batch
    assert counts.counts(store, 0, 2**62) == {T0: 2}
    counter.hear(store, [(T0 + H + 1, a)], T0 + H + 1)
    assert counts.counts(store, 0, 2**62) == {T0: 2, T0 + H: 1}
    assert len(salts) == 2  # a salt of its own for each hour
    # A late window of the hour before still counts; that hour is still open.
    counter.hear(store, [(T0 + 5000, "eid:00000000000000cc")], T0 + H + 2)
    assert counts.count(store, T0) == 3
    # A third hour closes the first: its salt and digests are gone, and a
    # window of it that arrives now is dropped, not counted.
    counter.hear(store, [(T0 + 2 * H, b)], T0 + 2 * H)
    assert counter.open_hours(store) == [T0 + H, T0 + 2 * H]
    counter.hear(store, [(T0 + 6000, "eid:00000000000000dd")], T0 + 2 * H + 1)
    assert counts.count(store, T0) == 3 and counter.counters.late == 1
    stored = repr(counts.__dict__)
    assert "00000000000000" not in stored  # no key, no digest: numbers


def test_an_hour_the_gateway_reported_without_a_passer_by_counts_zero(plan: StorePlan) -> None:
    counter, counts, _ = _counter(plan)
    counter.hear(plan.id, [], T0 + 10)
    assert counts.counts(plan.id, 0, 2**62) == {T0: 0}


def test_after_a_restart_the_hour_goes_on_from_its_stored_count(plan: StorePlan) -> None:
    counts = MemoryPassersBy()
    counts.save_count(plan.id, T0, 7, T0)
    counter = PasserByCounter({plan.id: plan}, counts)
    counter.hear(plan.id, [(T0 + 10, "eid:00000000000000aa")], T0 + 10)
    assert counts.count(plan.id, T0) == 8
