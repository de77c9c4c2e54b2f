"""Rotating ids resolve to their device within the skew tolerance, and only then."""

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omnizone.contract.eid import eid_device_key
from omnizone.server.domain.identity import EidResolver

T0 = 1_767_225_600_000
PERIOD_MS = 900_000
KEY_A = bytes(range(16))
KEY_B = bytes(range(16, 32))


def resolver(**keys: bytes) -> EidResolver:
    return EidResolver(keys, 900, skew_periods=1)


@pytest.mark.parametrize("advertised_period", [-1, 0, 1])
def test_current_previous_and_next_period_resolve(advertised_period: int) -> None:
    r = resolver(a=KEY_A, b=KEY_B)
    sighting = eid_device_key(KEY_A, T0 + advertised_period * PERIOD_MS, 900)
    assert r.resolve(sighting, T0 + 1000) == "a"
    assert r.resolve(eid_device_key(KEY_B, T0, 900), T0 + 1000) == "b"


@pytest.mark.parametrize("advertised_period", [-3, -2, 2, 3])
def test_other_periods_are_refused(advertised_period: int) -> None:
    r = resolver(a=KEY_A)
    sighting = eid_device_key(KEY_A, T0 + advertised_period * PERIOD_MS, 900)
    assert r.resolve(sighting, T0) is None


def test_zero_skew_takes_only_the_current_period() -> None:
    r = EidResolver({"a": KEY_A}, 900, skew_periods=0)
    assert r.resolve(eid_device_key(KEY_A, T0, 900), T0 + 5) == "a"
    assert r.resolve(eid_device_key(KEY_A, T0 + PERIOD_MS, 900), T0 + 5) is None


def test_unknown_ids_and_other_device_keys_resolve_to_nothing() -> None:
    r = resolver(a=KEY_A)
    assert r.resolve(eid_device_key(KEY_B, T0, 900), T0) is None
    assert r.resolve("eid:0011223344556677", T0) is None
    assert r.resolve("ibeacon:e2c56db5-dffb-48d2-b060-d0f5a71096e0:0:0", T0) is None
    assert r.resolve("eid:XYZ", T0) is None
    assert r.resolve(eid_device_key(KEY_A, T0, 900), -5) is None


def test_it_follows_time_forward_and_back_across_many_periods() -> None:
    r = resolver(a=KEY_A)
    times = [T0 + p * PERIOD_MS + 10 for p in (0, 1, 5, 6, 2, 40, 0)]
    for at_ms in times:
        assert r.resolve(eid_device_key(KEY_A, at_ms, 900), at_ms) == "a"


def test_devices_added_and_removed_take_effect_at_once() -> None:
    r = resolver(a=KEY_A)
    b_now = eid_device_key(KEY_B, T0, 900)
    assert r.resolve(b_now, T0) is None  # tables for this period are built now
    r.update("b", KEY_B)
    assert r.resolve(b_now, T0) == "b"
    assert len(r) == 2
    r.update("a", None)
    assert r.resolve(eid_device_key(KEY_A, T0, 900), T0) is None
    r.update("b", KEY_A)  # re-keyed: the old key no longer answers
    assert r.resolve(b_now, T0) is None
    assert r.resolve(eid_device_key(KEY_A, T0, 900), T0) == "b"


def test_an_id_two_devices_share_resolves_to_neither_until_one_leaves() -> None:
    r = resolver(a=KEY_A, twin=KEY_A)
    sighting = eid_device_key(KEY_A, T0, 900)
    assert r.resolve(sighting, T0) is None
    r.update("twin", None)
    assert r.resolve(sighting, T0) == "a"
    r.update("twin", KEY_A)
    assert r.resolve(sighting, T0) is None


def test_bad_keys_are_refused_with_the_device_named() -> None:
    with pytest.raises(ValueError, match=r"identity key of device 'x' is 4 bytes, not 16"):
        EidResolver({"x": b"1234"}, 900)
    with pytest.raises(ValueError, match="rotation period must be at least 1 s"):
        EidResolver({}, 0)


@settings(max_examples=20, deadline=None)
@given(seed=st.binary(min_size=8, max_size=8), period=st.integers(0, 2**31))
def test_a_thousand_devices_never_collide_within_a_period(seed: bytes, period: int) -> None:
    keys = {f"d{i}": hashlib.sha256(seed + i.to_bytes(4, "big")).digest()[:16] for i in range(1000)}
    at_ms = period * PERIOD_MS
    sightings = {device: eid_device_key(key, at_ms, 900) for device, key in keys.items()}
    assert len(set(sightings.values())) == 1000
    r = EidResolver(keys, 900)
    assert all(r.resolve(sighting, at_ms) == device for device, sighting in sightings.items())
