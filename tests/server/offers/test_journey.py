"""Placements become moments: entering the store, entering and leaving zones,
and each dwell threshold once per stay."""

from hypothesis import given
from hypothesis import strategies as st

from omnizone.server.domain.offers.journey import Journey, follow


def kinds(moments: list) -> list[str]:  # type: ignore[type-arg]
    return [m.kind for m in moments]


def test_a_trip_in_moments() -> None:
    journey, moments = follow(None, "entrance", 1_000)
    assert kinds(moments) == ["store_entered", "zone_entered"]
    assert journey == Journey(1_000, "entrance", 1_000)
    journey, moments = follow(journey, "entrance", 2_000, [30])
    assert moments == []
    journey, moments = follow(journey, "denim", 5_000, [30])
    assert kinds(moments) == ["zone_left", "zone_entered"]
    assert [m.zone for m in moments] == ["entrance", "denim"]
    journey, moments = follow(journey, "denim", 34_000, [30, 60])
    assert kinds(moments) == []  # 29 s: not yet
    journey, moments = follow(journey, "denim", 35_000, [30, 60])
    assert kinds(moments) == ["dwell"] and moments[0].dwell_s == 30
    journey, moments = follow(journey, "denim", 36_000, [30, 60])
    assert moments == []  # once per threshold
    assert journey is not None and journey.visit_id == "1000"
    journey, moments = follow(journey, None, 40_000)
    assert journey is None and kinds(moments) == ["zone_left"]


@given(
    st.lists(st.tuples(st.sampled_from([None, "a", "b", "c"]), st.integers(0, 5_000)), max_size=60),
    st.lists(st.integers(1, 120), max_size=3),
)
def test_dwell_fires_at_most_once_per_threshold_per_stay(
    steps: list[tuple[str | None, int]], thresholds: list[int]
) -> None:
    journey = None
    at = 0
    fired: dict[tuple[int | None, str], int] = {}
    for zone, gap in steps:
        at += gap
        before = journey
        journey, moments = follow(journey, zone, at, thresholds)
        for m in moments:
            if m.kind == "dwell":
                assert before is not None and m.zone == before.zone
                key = (before.zone_entered_ms, m.zone or "")
                fired[key] = fired.get(key, 0) + 1
        if zone is None:
            assert journey is None
        else:
            assert journey is not None and journey.zone == zone
    assert all(n <= len(set(thresholds)) for n in fired.values())
