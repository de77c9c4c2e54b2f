"""Debounce properties: one tap per presentation, nothing lost, nothing invented."""

import itertools

from hypothesis import given
from hypothesis import strategies as st

from omnizone.gateway.nfc.taps import TagRead, TapDebouncer, debounce, read_problem

T0 = 1_767_225_600_000
UIDS = [bytes.fromhex(h) for h in ("04a1b2c3d4e5f6", "02fe0102030405a7", "deadbeef")]

gaps = st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=40)
debounces = st.integers(min_value=0, max_value=5_000)


def reads_at(uid: bytes, offsets: list[int]) -> list[TagRead]:
    times, now = [], T0
    for gap in offsets:
        now += gap
        times.append(now)
    return [TagRead(uid, t, "https://shop.example/app/p/1", "Type2Tag") for t in times]


@given(gaps, debounces)
def test_a_tag_held_or_bouncing_within_the_debounce_is_one_tap(offsets: list[int], ms: int) -> None:
    close = [min(gap, max(ms - 1, 0)) for gap in offsets]
    taps = debounce("shelf-1", ms, reads_at(UIDS[0], close))
    if ms == 0:
        assert len(taps) == len(close)
    else:
        assert len(taps) == 1
        assert taps[0].at_ms == T0 + close[0]


@given(gaps, debounces)
def test_reads_further_apart_than_the_debounce_are_all_taps(offsets: list[int], ms: int) -> None:
    apart = [ms + gap for gap in offsets]
    taps = debounce("shelf-1", ms, reads_at(UIDS[0], apart))
    assert len(taps) == len(apart)


@given(st.lists(st.tuples(st.sampled_from(UIDS), st.integers(0, 3_000)), max_size=60), debounces)
def test_taps_are_a_subsequence_and_per_tag_at_least_the_debounce_apart(
    events: list[tuple[bytes, int]], ms: int
) -> None:
    now, reads = T0, []
    for uid, gap in events:
        now += gap
        reads.append(TagRead(uid, now))
    debouncer = TapDebouncer("kiosk-1", ms)
    taps = [tap for read in reads if (tap := debouncer.offer(read)) is not None]
    assert debouncer.taps + debouncer.debounced == len(reads)
    assert len(taps) == debouncer.taps
    remaining = iter([(r.uid.hex(), r.at_ms) for r in reads])
    assert all((tap.uid, tap.at_ms) in remaining for tap in taps)  # in order, from the input
    for uid in UIDS:
        mine = [r for r in reads if r.uid == uid]
        times = [t.at_ms for t in taps if t.uid == uid.hex()]
        if mine:
            assert times[0] == mine[0].at_ms  # a tag's first read always counts
        assert all(b - a >= ms for a, b in itertools.pairwise(times))


@given(st.lists(st.tuples(st.sampled_from(UIDS), st.integers(0, 3_000)), max_size=60), debounces)
def test_tags_do_not_debounce_each_other(events: list[tuple[bytes, int]], ms: int) -> None:
    now, reads = T0, []
    for uid, gap in events:
        now += gap
        reads.append(TagRead(uid, now))
    together = debounce("shelf-1", ms, reads)
    for uid in UIDS:
        alone = debounce("shelf-1", ms, [r for r in reads if r.uid == uid])
        assert [t for t in together if t.uid == uid.hex()] == alone


def test_a_tag_lying_on_the_reader_is_debounced_from_when_it_leaves() -> None:
    debouncer = TapDebouncer("shelf-1", 2_000)
    uid = UIDS[1]
    assert debouncer.offer(TagRead(uid, T0)) is not None
    debouncer.left(uid, T0 + 10_000)  # held for ten seconds
    assert debouncer.offer(TagRead(uid, T0 + 11_000)) is None  # picked up and put back
    assert debouncer.offer(TagRead(uid, T0 + 13_500)) is not None


def test_a_tap_carries_the_contract_fields() -> None:
    tap = TapDebouncer("shelf-1", 500).offer(
        TagRead(bytes.fromhex("04A1B2C3D4E5F6"), T0, "https://shop.example/app/p/1", "Type2Tag")
    )
    assert tap is not None
    assert (tap.tap_point, tap.uid, tap.at_ms) == ("shelf-1", "04a1b2c3d4e5f6", T0)
    assert (tap.ndef_uri, tap.tag_type) == ("https://shop.example/app/p/1", "Type2Tag")


def test_a_clock_stepping_back_does_not_silence_a_tag() -> None:
    debouncer = TapDebouncer("shelf-1", 2_000)
    assert debouncer.offer(TagRead(UIDS[0], T0 + 3_600_000)) is not None
    assert debouncer.offer(TagRead(UIDS[0], T0)) is not None  # NTP stepped an hour back


def test_a_new_debounce_applies_to_the_next_read() -> None:
    debouncer = TapDebouncer("shelf-1", 5_000)
    assert debouncer.offer(TagRead(UIDS[0], T0)) is not None
    debouncer.set_debounce(1_000)
    assert debouncer.offer(TagRead(UIDS[0], T0 + 1_500)) is not None


def test_memory_is_bounded_by_the_tags_of_one_debounce_period() -> None:
    debouncer = TapDebouncer("kiosk-1", 1_000)
    for i in range(10_000):
        debouncer.offer(TagRead(i.to_bytes(4, "big"), T0 + i * 100))
    assert len(debouncer._last_seen) <= 64 + 11


def test_reads_the_contract_cannot_carry_are_named() -> None:
    assert read_problem(TagRead(b"\x01\x02\x03", T0)) == "uid of 3 bytes (expected 4 to 10)"
    assert "URI of 3000" in str(read_problem(TagRead(UIDS[2], T0, "https://x/" + "a" * 2990)))
    assert read_problem(TagRead(UIDS[2], T0, "https://x/", "Type2Tag")) is None
