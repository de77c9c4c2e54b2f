"""The pure core: nearest-gateway placement and the visit state machine."""

from hypothesis import given, settings
from hypothesis import strategies as st

from omnizone.server.domain.nearest import Reading, assign_zone, prune
from omnizone.server.domain.visits import (
    DeviceVisitState,
    VisitClosed,
    VisitEvent,
    VisitOpened,
    VisitSettings,
    advance,
    expire,
    without_zones,
)

ZONES = {"gw-a": "a", "gw-b": "b", "gw-c": "c"}
S = VisitSettings(min_presence_s=10, exit_grace_s=8, device_timeout_s=30)


# -- nearest gateway -------------------------------------------------------------


def test_strongest_fresh_reading_wins() -> None:
    readings = {"gw-a": Reading(-70, 10_000), "gw-b": Reading(-60, 10_000)}
    assert assign_zone(readings, ZONES, now_ms=10_000, stale_ms=3000) == "b"


def test_stale_reading_is_ignored_however_loud() -> None:
    readings = {"gw-a": Reading(-40, 6_000), "gw-b": Reading(-80, 10_000)}
    assert assign_zone(readings, ZONES, now_ms=10_000, stale_ms=3000) == "b"
    assert assign_zone(readings, ZONES, now_ms=9_000, stale_ms=3000) == "a"


def test_nothing_fresh_places_nowhere() -> None:
    assert assign_zone({"gw-a": Reading(-50, 1_000)}, ZONES, now_ms=10_000, stale_ms=3000) is None
    assert assign_zone({}, ZONES, now_ms=10_000) is None


def test_unknown_gateway_is_ignored_and_ties_are_deterministic() -> None:
    readings = {
        "gw-x": Reading(-30, 10_000),
        "gw-c": Reading(-60, 10_000),
        "gw-b": Reading(-60, 10_000),
    }
    assert assign_zone(readings, ZONES, now_ms=10_000) == "b"


def test_prune_drops_only_stale() -> None:
    readings = {"gw-a": Reading(-40, 6_000), "gw-b": Reading(-80, 10_000)}
    assert prune(readings, 10_000, 3000) == {"gw-b": Reading(-80, 10_000)}


# -- visits ----------------------------------------------------------------------


def run(steps: list[tuple[str | None, int]]) -> tuple[DeviceVisitState | None, list[VisitEvent]]:
    state: DeviceVisitState | None = None
    events: list[VisitEvent] = []
    for zone, at in steps:
        state, new = advance(state, zone, at, S)
        events.extend(new)
    return state, events


def seconds(zone: str | None, start: int, end: int) -> list[tuple[str | None, int]]:
    return [(zone, t * 1000) for t in range(start, end + 1)]


def test_first_placement_opens_a_stay() -> None:
    state, events = run([("a", 1000)])
    assert events == [VisitOpened("a", 1000)]
    assert state is not None and state.zone == "a"


def test_unplaced_device_without_stay_stays_unknown() -> None:
    assert advance(None, None, 1000, S) == (None, [])


def test_short_absence_does_not_end_the_visit() -> None:
    state, events = run(seconds("a", 0, 20) + seconds("b", 21, 25) + seconds("a", 26, 40))
    assert events == [VisitOpened("a", 0)]
    assert state is not None and state.zone == "a" and state.entered_ms == 0


def test_leaving_for_grace_closes_at_last_seen_and_opens_backdated() -> None:
    _, events = run(seconds("a", 0, 20) + seconds("b", 21, 40))
    assert events == [
        VisitOpened("a", 0),
        VisitClosed("a", 0, 20_000, pass_by=False),
        VisitOpened("b", 21_000),
    ]
    closed = events[1]
    assert isinstance(closed, VisitClosed) and closed.dwell_s == 20.0


def test_short_stay_is_a_pass_by() -> None:
    _, events = run(seconds("a", 0, 5) + seconds("b", 6, 30))
    assert events[1] == VisitClosed("a", 0, 5000, pass_by=True)


def test_unplaced_for_grace_closes_without_opening() -> None:
    state, events = run(seconds("a", 0, 15) + seconds(None, 16, 23))
    assert state is None
    assert events[-1] == VisitClosed("a", 0, 15_000, pass_by=False)


def test_silence_longer_than_grace_splits_the_stay() -> None:
    _, events = run(seconds("a", 0, 15) + seconds("a", 30, 45))
    assert events == [
        VisitOpened("a", 0),
        VisitClosed("a", 0, 15_000, pass_by=False),
        VisitOpened("a", 30_000),
    ]


def test_late_step_is_ignored() -> None:
    state, _ = run(seconds("a", 0, 10))
    assert advance(state, "b", 5_000, S) == (state, [])


def test_expire_after_device_timeout_only() -> None:
    state, _ = run(seconds("a", 0, 12))
    assert expire(state, 12_000 + 29_999, S) == (state, [])
    gone, events = expire(state, 12_000 + 30_000, S)
    assert gone is None and events == [VisitClosed("a", 0, 12_000, pass_by=False)]
    assert expire(None, 0, S) == (None, [])


def test_a_layout_without_the_zone_closes_the_stay_at_last_seen() -> None:
    state, _ = run(seconds("a", 0, 12))
    assert without_zones(state, {"a", "b"}, S) == (state, [])
    gone, events = without_zones(state, {"b"}, S)
    assert gone is None and events == [VisitClosed("a", 0, 12_000, pass_by=False)]
    assert without_zones(None, {"b"}, S) == (None, [])


def test_a_layout_without_the_zone_a_device_is_heading_to_forgets_the_move() -> None:
    state, _ = run(seconds("a", 0, 12) + seconds("b", 13, 15))
    assert state is not None and state.away_zone == "b"
    kept, events = without_zones(state, {"a"}, S)
    assert events == [] and kept is not None and kept.zone == "a" and kept.away_zone is None
    assert kept.last_in_zone_ms == 12_000  # the grace still counts from the last time in "a"


steps_strategy = st.lists(
    st.tuples(st.sampled_from(["a", "b", "c", None]), st.integers(min_value=0, max_value=15_000)),
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(steps=steps_strategy, expire_after=st.integers(min_value=0, max_value=60_000))
def test_stays_never_overlap_and_dwell_is_never_negative(
    steps: list[tuple[str | None, int]], expire_after: int
) -> None:
    state: DeviceVisitState | None = None
    events: list[VisitEvent] = []
    at = 0
    for zone, delta in steps:
        at += delta
        state, new = advance(state, zone, at, S)
        events.extend(new)
    state, new = expire(state, at + expire_after, S)
    events.extend(new)

    open_zone: str | None = None
    last_left = -1
    for event in events:
        if isinstance(event, VisitOpened):
            assert open_zone is None, "a stay opened while another was open"
            assert event.entered_ms >= last_left, "stays overlap in time"
            open_zone = event.zone
        else:
            assert open_zone == event.zone, "closed a stay that was not open"
            assert event.left_ms >= event.entered_ms and event.dwell_s >= 0
            assert event.pass_by == (event.dwell_s < S.min_presence_s)
            open_zone, last_left = None, event.left_ms
    assert (state is None) == (open_zone is None)
