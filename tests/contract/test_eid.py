"""The rotating ephemeral id is the published Eddystone-EID: phone, server and
any standard resolver must derive the same bytes, on each phone's own clock."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from omnizone.contract.eid import (
    BEACON_CLOCK,
    EidParams,
    eid_at_beacon_time,
    eid_device_key,
    eid_for,
    new_eid_params,
    new_identity_key,
    rotation_period_s,
    temporary_key,
)
from omnizone.contract.ids import check_device_key

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
KEY = bytes(range(16))
PHONE = EidParams(KEY, exponent=10, clock_offset_s=1_000_000)

# Eddystone-EID vectors (identity key, K, beacon time -> EID) that an independent
# resolver (github.com/miek/eddystone-resolver, test_eddystone_crypto.py) checks its
# AES implementation against: temporary-key roll-over (65536), the last second of the
# 32-bit clock, and K from 2 to 15.
SPEC_VECTORS = [
    ("a2c873f26ebae374d9f7efbcd922ca1c", 9, 1258098495, "ca8db2444f89ec78"),
    ("6e93678f9afa8214a4a4eadefa6743cd", 13, 2569247988, "3deb9e6836f38314"),
    ("e2d10c4ec66c53750fba51597193de2f", 9, 65536, "9d8ba7d1bd78b089"),
    ("ff13b262328beea97ac45aa14ac85c56", 15, 4294967295, "a760539518d97522"),
    ("ef7593a5192c81eb79c0ee7c35d7440a", 2, 3721760299, "eef8baae2fd4b815"),
    ("38a24ddc7ef73348035bef16d1931352", 6, 3897629132, "ff3713dab2b86c72"),
    ("3c3f34117c7e49d984528d3ffa9adae3", 9, 1141546105, "55d55138cdcebf08"),
]


@pytest.mark.parametrize(("key", "exponent", "beacon_time", "eid"), SPEC_VECTORS)
def test_the_published_eddystone_eid_vectors(
    key: str, exponent: int, beacon_time: int, eid: str
) -> None:
    assert eid_at_beacon_time(bytes.fromhex(key), exponent, beacon_time).hex() == eid


def test_known_vector_matches_openssl() -> None:
    # beacon time 1767225600 + 1000000 = 1768225600 = 0x6964fb40; K = 10 clears it to 0x6964f800
    # printf '\0\0\0\0\0\0\0\0\0\0\0\xff\0\0\x69\x64' |
    #   openssl enc -aes-128-ecb -nopad -K 000102030405060708090a0b0c0d0e0f | xxd -p
    # -> 93fc53b7c676fd5c475bc36fe81de810 (the temporary key)
    # printf '\0\0\0\0\0\0\0\0\0\0\0\x0a\x69\x64\xf8\x00' |
    #   openssl enc -aes-128-ecb -nopad -K 93fc53b7c676fd5c475bc36fe81de810 | xxd -p
    # -> cfc67b3eb1700c97...
    assert PHONE.beacon_time(T0) == 0x6964FB40
    assert temporary_key(KEY, PHONE.beacon_time(T0)).hex() == "93fc53b7c676fd5c475bc36fe81de810"
    assert eid_for(PHONE, T0).hex() == "cfc67b3eb1700c97"
    assert eid_device_key(PHONE, T0) == "eid:cfc67b3eb1700c97"


def test_the_id_holds_for_its_own_period_and_then_changes() -> None:
    period = PHONE.period(T0)
    assert (period.start_ms, period.end_ms) == (T0 - 832_000, T0 + 192_000)
    assert PHONE.eid(period.start_ms) == PHONE.eid(period.end_ms - 1) == period.eid
    assert PHONE.eid(period.start_ms - 1) != period.eid
    assert PHONE.eid(period.end_ms) != period.eid
    assert PHONE.eid(period.end_ms) == eid_at_beacon_time(KEY, 10, 0x6964F800 + 1024)


def test_two_phones_rotate_on_boundaries_of_their_own() -> None:
    other = EidParams(KEY, exponent=10, clock_offset_s=1_000_500)
    assert PHONE.period(T0).start_ms != other.period(T0).start_ms
    assert PHONE.period(T0).start_ms % 1_024_000 != other.period(T0).start_ms % 1_024_000
    ids = [PHONE.eid(T0 + n * 1_024_000) for n in range(8)]
    assert len(set(ids)) == 8  # the same phone, never the same id twice in a row


def test_new_phones_draw_their_own_exponent_clock_and_key() -> None:
    phones = [new_eid_params(8, 10) for _ in range(200)]
    assert {p.exponent for p in phones} == {8, 9, 10}
    assert len({p.clock_offset_s for p in phones}) == 200
    assert len({p.key for p in phones}) == 200
    assert len({p.period(T0).start_ms for p in phones}) > 150
    with pytest.raises(ValueError, match=r"rotation exponents 10\.\.8 are an empty range"):
        new_eid_params(10, 8)


def test_periods_lists_what_the_phone_advertises() -> None:
    listed = list(PHONE.periods(T0, T0 + 5_000_000))
    assert listed[0].start_ms <= T0 < listed[0].end_ms and listed[-1].end_ms >= T0 + 5_000_000
    assert len(listed) == 6
    for period in listed:
        assert PHONE.period(period.start_ms) == period
    assert list(PHONE.periods(T0, T0)) == []


def test_periods_cross_the_temporary_key_roll_over() -> None:
    """Every 65536 s of beacon time the temporary key changes; the listing follows."""
    phone = EidParams(KEY, exponent=8, clock_offset_s=(65536 - T0 // 1000) % BEACON_CLOCK - 512)
    listed = list(phone.periods(T0, T0 + 1_024_000))
    assert [phone.beacon_time(p.start_ms) % 65536 for p in listed] == [65024, 65280, 0, 256]
    assert all(phone.eid(p.start_ms) == p.eid for p in listed)


def test_the_beacon_clock_wraps_on_a_period_boundary() -> None:
    phone = EidParams(KEY, exponent=4, clock_offset_s=BEACON_CLOCK - T0 // 1000)
    assert phone.beacon_time(T0) == 0
    assert phone.period(T0 - 1).end_ms == T0 == phone.period(T0).start_ms
    assert phone.eid(T0 - 1) == eid_at_beacon_time(KEY, 4, BEACON_CLOCK - 16)


def test_device_key_passes_the_contract() -> None:
    phone = EidParams(new_identity_key(), 6, 0)
    assert check_device_key(eid_device_key(phone, T0)).startswith("eid:")


def test_rotation_exponent_is_a_power_of_two() -> None:
    assert rotation_period_s(0) == 1
    assert rotation_period_s(10) == 1024
    assert PHONE.rotation_s == 1024
    with pytest.raises(ValueError, match=r"rotation exponent must be 0\.\.15, got 16"):
        rotation_period_s(16)


@pytest.mark.parametrize(
    ("key", "exponent", "offset", "message"),
    [
        (b"short", 10, 0, "an identity key is 16 bytes, got 5"),
        (KEY, 16, 0, r"rotation exponent must be 0\.\.15, got 16"),
        (KEY, 10, -1, r"clock offset must be 0\.\.2\*\*32-1 s, got -1"),
        (KEY, 10, BEACON_CLOCK, "clock offset must be"),
    ],
)
def test_bad_parameters_say_what_is_wrong(
    key: bytes, exponent: int, offset: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        EidParams(key, exponent, offset)


def test_bad_times_say_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="time must be epoch milliseconds >= 0, got -1"):
        eid_for(PHONE, -1)
    with pytest.raises(ValueError, match="beacon time must fit in 32 bits"):
        eid_at_beacon_time(KEY, 10, BEACON_CLOCK)


@given(
    key=st.binary(min_size=16, max_size=16),
    exponent=st.integers(min_value=0, max_value=15),
    offset=st.integers(min_value=0, max_value=BEACON_CLOCK - 1),
    at_ms=st.integers(min_value=946_684_800_000, max_value=4_102_444_800_000),
)
def test_every_time_in_a_period_gives_the_same_8_bytes(
    key: bytes, exponent: int, offset: int, at_ms: int
) -> None:
    phone = EidParams(key, exponent, offset)
    period = phone.period(at_ms)
    assert len(period.eid) == 8 and period.eid == phone.eid(at_ms)
    assert period.start_ms <= at_ms < period.end_ms
    assert period.end_ms - period.start_ms == phone.rotation_s * 1000
    assert phone.eid(period.start_ms) == phone.eid(period.end_ms - 1) == period.eid
    assert phone.beacon_time(period.start_ms) % phone.rotation_s == 0
