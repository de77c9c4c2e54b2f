"""The rotating ephemeral id: phone and server must derive the same bytes."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from omnizone.contract.eid import (
    eid_device_key,
    eid_for,
    eid_for_counter,
    new_identity_key,
    rotation_counter,
    rotation_period_s,
)
from omnizone.contract.ids import check_device_key

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z, a multiple of 900 s
KEY = bytes(range(16))


def test_known_vector_matches_openssl() -> None:
    # { printf 'omnizone-eid'; printf '\x00\x1d\xf6\x40'; } |
    #   openssl dgst -sha256 -mac HMAC -macopt hexkey:000102030405060708090a0b0c0d0e0f
    # -> 06eb9dd089fe0959d2c9ad16...  (counter 1963584 = 0x001df640)
    assert rotation_counter(T0, 900) == 1_963_584
    assert eid_for(KEY, T0, 900).hex() == "06eb9dd089fe0959"
    assert eid_device_key(KEY, T0, 900) == "eid:06eb9dd089fe0959"


def test_the_id_holds_for_a_period_and_then_changes() -> None:
    first = eid_for(KEY, T0, 900)
    assert eid_for(KEY, T0 + 899_999, 900) == first
    assert eid_for(KEY, T0 + 900_000, 900) != first
    assert eid_for(KEY, T0 + 900_000, 900) == eid_for_counter(KEY, 1_963_585)


def test_device_key_passes_the_contract() -> None:
    assert check_device_key(eid_device_key(new_identity_key(), T0, 60)).startswith("eid:")


def test_rotation_exponent_is_a_power_of_two() -> None:
    assert rotation_period_s(0) == 1
    assert rotation_period_s(10) == 1024
    with pytest.raises(ValueError, match=r"rotation exponent must be 0\.\.15, got 16"):
        rotation_period_s(16)


@pytest.mark.parametrize(
    ("key", "at_ms", "rotation_s", "message"),
    [
        (b"short", T0, 900, "an identity key is 16 bytes, got 5"),
        (KEY, T0, 0, "rotation period must be at least 1 s, got 0"),
        (KEY, -1, 900, "time must be epoch milliseconds >= 0, got -1"),
        (KEY, 2**32 * 1000, 1, "beyond the 32-bit rotation counter"),
    ],
)
def test_bad_input_says_what_is_wrong(
    key: bytes, at_ms: int, rotation_s: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        eid_for(key, at_ms, rotation_s)


@given(
    key=st.binary(min_size=16, max_size=16),
    at_ms=st.integers(min_value=946_684_800_000, max_value=4_102_444_800_000),
    rotation_s=st.integers(min_value=1, max_value=86_400),
)
def test_every_time_in_a_period_gives_the_same_8_bytes(
    key: bytes, at_ms: int, rotation_s: int
) -> None:
    eid = eid_for(key, at_ms, rotation_s)
    assert len(eid) == 8
    start = at_ms - at_ms % (rotation_s * 1000)
    assert eid_for(key, start, rotation_s) == eid
    assert eid_for(key, start + rotation_s * 1000 - 1, rotation_s) == eid
