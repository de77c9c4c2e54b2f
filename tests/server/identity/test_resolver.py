"""Rotating ids resolve to their device in their own period plus the skew, and
only then; replays later or from a second store are recognised as such."""

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omnizone.contract.eid import EidParams, eid_device_key
from omnizone.server.domain.identity import EidPolicy, EidResolver, Replay

T0 = 1_767_225_600_000
PERIOD_MS = 1_024_000
SKEW_MS = 30_000
# Both phones' periods start at T0: offset = -T0 mod 2**10 in beacon seconds.
ALIGNED = (-(T0 // 1000)) % 1024
KEY_A = bytes(range(16))
KEY_B = bytes(range(16, 32))
A = EidParams(KEY_A, 10, ALIGNED)
B = EidParams(KEY_B, 10, ALIGNED + 724)


def resolver(**devices: EidParams) -> EidResolver:
    return EidResolver(devices, skew_s=30)


def test_the_phones_of_these_tests_start_a_period_at_t0() -> None:
    assert A.period(T0).start_ms == T0 and B.period(T0).start_ms == T0 - 724_000


@pytest.mark.parametrize(
    ("heard_at", "resolves"),
    [
        (T0 - SKEW_MS, True),  # a phone clock up to the skew ahead
        (T0 + 1000, True),
        (T0 + PERIOD_MS + SKEW_MS - 1, True),  # ... or behind
        (T0 - SKEW_MS - 1, False),
        (T0 + PERIOD_MS + SKEW_MS, False),  # replayed after its period ended
        (T0 + 2 * PERIOD_MS, False),
    ],
)
def test_an_id_resolves_in_its_own_period_plus_the_skew(heard_at: int, resolves: bool) -> None:
    r = resolver(a=A, b=B)
    sighting = eid_device_key(A, T0)
    assert r.resolve(sighting, heard_at) == ("a" if resolves else None)
    assert r.resolve(eid_device_key(B, T0), T0 + 1000) == "b"


@pytest.mark.parametrize("advertised_period", [-1, 1])
def test_the_neighbouring_periods_ids_are_recognised_as_replays(advertised_period: int) -> None:
    r = resolver(a=A)
    sighting = eid_device_key(A, T0 + advertised_period * PERIOD_MS + 5000)
    assert r.resolve(sighting, T0 + PERIOD_MS // 2) is None
    assert r.identify(sighting, T0 + PERIOD_MS // 2, "paris") == Replay("a", "out_of_period")


@pytest.mark.parametrize("advertised_period", [-3, -2, 2, 3])
def test_other_periods_are_refused(advertised_period: int) -> None:
    r = resolver(a=A)
    sighting = eid_device_key(A, T0 + advertised_period * PERIOD_MS)
    assert r.resolve(sighting, T0) is None
    assert r.identify(sighting, T0, "paris") is None  # too old to tell from noise


def test_zero_skew_takes_only_the_current_period() -> None:
    r = EidResolver({"a": A}, skew_s=0)
    assert r.resolve(eid_device_key(A, T0), T0 + 5) == "a"
    assert r.resolve(eid_device_key(A, T0 + PERIOD_MS), T0 + 5) is None
    assert r.resolve(eid_device_key(A, T0), T0 - 1) is None


def test_unknown_ids_and_other_device_keys_resolve_to_nothing() -> None:
    r = resolver(a=A)
    assert r.resolve(eid_device_key(B, T0), T0) is None
    assert r.resolve("eid:0011223344556677", T0) is None
    assert r.resolve("ibeacon:e2c56db5-dffb-48d2-b060-d0f5a71096e0:0:0", T0) is None
    assert r.resolve("eid:XYZ", T0) is None
    assert r.resolve(eid_device_key(A, T0), -5) is None


def test_it_follows_time_forward_and_back_across_many_periods() -> None:
    r = resolver(a=A)
    times = [T0 + p * PERIOD_MS + 10 for p in (0, 1, 5, 6, 2, 40, 0)]
    for at_ms in times:
        assert r.resolve(eid_device_key(A, at_ms), at_ms) == "a"


def test_each_phone_resolves_on_its_own_boundaries() -> None:
    """A's period ends at T0 + 1024 s, B's at T0 + 300 s: each id stops
    resolving at its own phone's boundary plus the skew, not at a shared one."""
    r = resolver(a=A, b=B)
    a_id, b_id = eid_device_key(A, T0), eid_device_key(B, T0)
    b_end = B.period(T0).end_ms
    assert b_end == T0 + 300_000
    assert r.resolve(b_id, b_end + SKEW_MS - 1) == "b"
    assert r.resolve(b_id, b_end + SKEW_MS) is None
    assert r.resolve(a_id, b_end + SKEW_MS) == "a"
    assert r.resolve(eid_device_key(B, b_end), b_end + SKEW_MS) == "b"


def test_an_id_belongs_to_the_first_store_that_resolves_it_for_its_period() -> None:
    r = resolver(a=A)
    now = eid_device_key(A, T0)
    assert r.identify(now, T0 + 1000, "paris-rivoli") == "a"
    assert r.identify(now, T0 + 2000, "paris-rivoli") == "a"  # any gateway of the store
    assert r.identify(now, T0 + 3000, "lyon-part-dieu") == Replay("a", "other_store")
    assert r.identify(now, T0 + 4000, "paris-rivoli") == "a"
    # the next period's id is free again: the shopper walked over to Lyon
    later = T0 + PERIOD_MS + 60_000
    assert r.identify(eid_device_key(A, later), later, "lyon-part-dieu") == "a"
    assert r.identify(eid_device_key(A, later), later + 1, "paris-rivoli") == Replay(
        "a", "other_store"
    )


def test_a_store_bound_in_the_skew_holds_for_the_whole_period() -> None:
    r = resolver(a=A)
    early = eid_device_key(A, T0)
    assert r.identify(early, T0 - SKEW_MS, "lyon-part-dieu") == "a"
    assert r.identify(early, T0 + 500_000, "paris-rivoli") == Replay("a", "other_store")


def test_devices_added_and_removed_take_effect_at_once() -> None:
    r = resolver(a=A)
    b_now = eid_device_key(B, T0)
    assert r.resolve(b_now, T0) is None  # tables for this time are built now
    r.update("b", B)
    assert r.resolve(b_now, T0) == "b"
    assert len(r) == 2
    r.update("a", None)
    assert r.resolve(eid_device_key(A, T0), T0) is None
    r.update("b", A)  # re-keyed: the old key no longer answers
    assert r.resolve(b_now, T0) is None
    assert r.resolve(eid_device_key(A, T0), T0) == "b"


def test_a_forgotten_device_leaves_no_store_binding() -> None:
    r = resolver(a=A)
    sighting = eid_device_key(A, T0)
    assert r.identify(sighting, T0, "paris-rivoli") == "a"
    r.update("a", None)
    r.update("a", A)  # registered again (a test double of an erased, re-added device)
    assert r.identify(sighting, T0 + 1, "lyon-part-dieu") == "a"


def test_an_id_two_devices_share_resolves_to_neither_until_one_leaves() -> None:
    r = resolver(a=A, twin=A)
    sighting = eid_device_key(A, T0)
    assert r.resolve(sighting, T0) is None
    r.update("twin", None)
    assert r.resolve(sighting, T0) == "a"
    r.update("twin", A)
    assert r.resolve(sighting, T0) is None


def test_bad_devices_and_skews_are_refused() -> None:
    with pytest.raises(ValueError, match="a device id must not be empty"):
        EidResolver({"": A})
    with pytest.raises(ValueError, match="EID clock skew must be 0 to 300 s, got -1"):
        EidResolver({}, skew_s=-1)
    with pytest.raises(ValueError, match="an identity key is 16 bytes, got 4"):
        EidParams(b"1234", 10, 0)


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ({"max_exponent": 17}, r"powers of two from 16 s to 2048 s.*got 256 s to 131072 s"),
        ({"min_exponent": 11, "max_exponent": 10}, "shortest first"),
        ({"min_exponent": 3}, "from 16 s"),
        ({"skew_s": 128}, r"less than half the shortest rotation period \(256 s\), got 128 s"),
    ],
)
def test_the_policy_is_bounded(policy: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EidPolicy(**policy)


def test_the_policy_hands_out_periods_in_its_range() -> None:
    policy = EidPolicy(min_exponent=5, max_exponent=6, skew_s=10)
    assert {policy.new_params().rotation_s for _ in range(100)} == {32, 64}


@settings(max_examples=20, deadline=None)
@given(seed=st.binary(min_size=8, max_size=8), at_s=st.integers(10**9, 3 * 10**9))
def test_a_thousand_devices_never_collide_around_a_time(seed: bytes, at_s: int) -> None:
    def params(i: int) -> EidParams:
        digest = hashlib.sha256(seed + i.to_bytes(4, "big")).digest()
        return EidParams(digest[:16], 8 + digest[16] % 3, int.from_bytes(digest[17:21], "big"))

    devices = {f"d{i}": params(i) for i in range(1000)}
    at_ms = at_s * 1000
    sightings = {device: eid_device_key(p, at_ms) for device, p in devices.items()}
    assert len(set(sightings.values())) == 1000
    r = EidResolver(devices)
    assert all(r.resolve(sighting, at_ms) == device for device, sighting in sightings.items())


def test_a_store_binding_is_remembered_for_an_hour_after_its_period() -> None:
    """Bindings are dropped an hour after their period ended, so memory stays
    bounded; a gateway backlog older than that binds afresh."""
    r = resolver(a=A)
    first = eid_device_key(A, T0)
    assert r.identify(first, T0, "paris-rivoli") == "a"
    half_hour = T0 + 1_800_000
    assert r.identify(eid_device_key(A, half_hour), half_hour, "paris-rivoli") == "a"
    assert r.identify(first, T0 + 1000, "lyon-part-dieu") == Replay("a", "other_store")
    two_hours = T0 + 7_200_000
    assert r.identify(eid_device_key(A, two_hours), two_hours, "paris-rivoli") == "a"
    assert r.identify(first, T0 + 1000, "lyon-part-dieu") == "a"
