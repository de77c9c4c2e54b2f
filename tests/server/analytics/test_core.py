"""The pure analytics core: worked examples with hand-checked figures, and
properties over generated stays (hypothesis)."""

import itertools
from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from omnizone.server.domain.analytics import (
    HOUR_MS,
    ShopperEvents,
    StayRow,
    Stays,
    ZoneEvents,
    attribute,
    dwell,
    footfall,
    funnel,
    hour_buckets,
    local_midnights,
    nearest_exit,
    presence,
    purchase_windows,
    routes,
    split_trips,
    transitions,
    visit_counts,
)

ZONES = ["entrance", "denim", "shoes", "fitting", "checkout"]
ENTRANCE, DENIM, SHOES, FITTING, CHECKOUT = range(5)
T0 = 1_795_251_600_000  # 2026-11-21T09:00:00Z, 10:00 in Paris
S = 1000
GAP_MS = 30 * S


def stays_of(rows: Sequence[StayRow]) -> Stays:
    return Stays.from_rows(rows, ZONES)


def ints(values: Sequence[int]) -> np.ndarray:  # type: ignore[type-arg]
    return np.asarray(values, dtype=np.int64)


# A: entrance (pass-by) -> denim -> fitting -> checkout -> entrance, then back
#    two hours later for a second trip to shoes.
# B: entrance -> shoes (pass-by) -> denim -> leaves.
WORKED: list[StayRow] = [
    ("a", "entrance", T0, T0 + 5 * S, "pass_by"),
    ("a", "denim", T0 + 6 * S, T0 + 66 * S, "visit"),
    ("a", "fitting", T0 + 67 * S, T0 + 187 * S, "visit"),
    ("a", "checkout", T0 + 190 * S, T0 + 250 * S, "visit"),
    ("a", "entrance", T0 + 251 * S, T0 + 256 * S, "pass_by"),
    ("a", "entrance", T0 + 2 * HOUR_MS, T0 + 2 * HOUR_MS + 4 * S, "pass_by"),
    ("a", "shoes", T0 + 2 * HOUR_MS + 5 * S, T0 + 2 * HOUR_MS + 35 * S, "visit"),
    ("b", "entrance", T0 + 100 * S, T0 + 112 * S, "visit"),
    ("b", "shoes", T0 + 113 * S, T0 + 118 * S, "pass_by"),
    ("b", "denim", T0 + 119 * S, T0 + 139 * S, "visit"),
    ("b", "denim", T0 + 150 * S, T0 + 170 * S, "visit"),  # one stay split by a gap
]
DAY = (T0 - 10 * HOUR_MS, T0 + 14 * HOUR_MS)


def test_trips_split_on_a_gap_longer_than_the_device_timeout() -> None:
    stays = stays_of(WORKED)
    trips = split_trips(stays, GAP_MS)
    assert len(trips) == 3
    starts = sorted(zip(trips.start_ms.tolist(), trips.end_ms.tolist(), strict=True))
    assert starts == [
        (T0, T0 + 256 * S),
        (T0 + 100 * S, T0 + 170 * S),
        (T0 + 2 * HOUR_MS, T0 + 2 * HOUR_MS + 35 * S),
    ]
    # A gap of exactly the timeout is still one trip; one ms more is two.
    edge = [
        ("c", "denim", T0, T0 + S, "visit"),
        ("c", "shoes", T0 + S + GAP_MS, T0 + 9 * S, "visit"),
    ]
    assert len(split_trips(stays_of(edge), GAP_MS)) == 1
    assert len(split_trips(stays_of(edge), GAP_MS - 1)) == 2


def test_transitions_add_the_street_and_collapse_repeats() -> None:
    stays = stays_of(WORKED)
    trips = split_trips(stays, GAP_MS)
    matrix = transitions(stays, trips, len(ZONES), np.arange(len(trips))).matrix
    moves = {(i, j): int(matrix[i, j]) for i in range(6) for j in range(6) if matrix[i, j]}
    street, e, d, s, f, c = range(6)  # street is index 0, zone z is z + 1
    assert moves == {
        (street, e): 3,
        (e, d): 1,  # a
        (d, f): 1,
        (f, c): 1,
        (c, e): 1,
        (e, street): 1,
        (e, s): 2,  # b, and a's second trip
        (s, d): 1,  # b: denim twice in a row counts once
        (d, street): 1,
        (s, street): 1,
    }


def test_routes_keep_visits_in_order_and_drop_pass_bys() -> None:
    stays = stays_of(WORKED)
    trips = split_trips(stays, GAP_MS)
    found = routes(stays, trips, np.arange(len(trips)), limit=10)
    assert found.trips == 3 and found.distinct == 3
    assert sorted(found.ranked) == sorted(
        [((DENIM, FITTING, CHECKOUT), 1), ((ENTRANCE, DENIM), 1), ((SHOES,), 1)]
    )
    only_pass_bys = stays_of([("x", "entrance", T0, T0 + S, "pass_by")])
    none = routes(only_pass_bys, split_trips(only_pass_bys, GAP_MS), ints([0]), limit=10)
    assert none.ranked == [((), 1)]


def test_presence_clips_to_the_range_and_splits_over_hours() -> None:
    # 30 min either side of 10:00 UTC, in a range that starts 10 min after it began.
    rows = [("a", "denim", T0 + 30 * 60 * S, T0 + 90 * 60 * S, "visit")]
    start, end = T0 + 40 * 60 * S, T0 + 3 * HOUR_MS
    buckets = hour_buckets(start, end, "Europe/Paris")
    assert buckets.tolist() == [T0, T0 + HOUR_MS, T0 + 2 * HOUR_MS]
    found = presence(stays_of(rows), len(ZONES), start, end, buckets, HOUR_MS)
    assert found.total_s[DENIM] == 50 * 60
    assert found.matrix_s[DENIM].tolist() == [20 * 60, 30 * 60, 0]


def test_dwell_bins_lower_edge_inclusive_and_open_last_bin() -> None:
    rows = [
        ("a", "denim", T0, T0 + 15 * S, "visit"),  # exactly 15 s: second bin
        ("b", "denim", T0, T0 + 14_999, "visit"),
        ("c", "denim", T0, T0 + 3 * HOUR_MS, "visit"),  # last bin
        ("d", "denim", T0, T0 + 5 * S, "pass_by"),  # not a visit
        ("e", "denim", T0, T0 + 50 * S, "open"),  # not closed
    ]
    found = dwell(stays_of(rows), len(ZONES), *DAY, bins_s=(0, 15, 30, 1200))
    assert found.counts[DENIM].tolist() == [1, 1, 0, 1]
    assert found.visits[DENIM] == 3
    assert found.median_s[DENIM] == 15
    assert np.isnan(found.mean_s[SHOES])


def test_footfall_and_visit_counts_by_entry_hour_and_status() -> None:
    stays = stays_of(WORKED)
    buckets = hour_buckets(*DAY, "Europe/Paris")
    counts = footfall(stays, len(ZONES), *DAY, buckets, HOUR_MS)
    first = int((T0 - buckets[0]) // HOUR_MS)
    assert counts[ENTRANCE, first] == 3 and counts[ENTRANCE, first + 2] == 1
    assert counts.sum() == len(WORKED)
    found = visit_counts(stays, len(ZONES), *DAY)
    assert found.visits.tolist() == [1, 3, 1, 1, 1]
    assert found.pass_bys.tolist() == [3, 0, 1, 0, 0]
    assert found.mean_dwell_s[DENIM] == (60 + 20 + 20) / 3


def test_hour_buckets_follow_local_hours_across_a_dst_change() -> None:
    # Paris leaves summer time on 2026-10-25 at 03:00 local (01:00Z).
    start = round(datetime(2026, 10, 24, 22, tzinfo=UTC).timestamp() * 1000)  # 00:00 local
    buckets = hour_buckets(start + 17 * 60 * S, start + 5 * HOUR_MS, "Europe/Paris")
    assert buckets[0] == start and np.all(np.diff(buckets) == HOUR_MS)
    midnights = local_midnights(start, start + 30 * HOUR_MS, "Europe/Paris")
    assert np.diff(midnights).tolist()[0] == 25 * HOUR_MS  # the long day


def test_a_try_on_goes_to_whoever_walked_in_last() -> None:
    rows = [
        ("a", "fitting", T0, T0 + 300 * S, "visit"),
        ("b", "fitting", T0 + 100 * S, T0 + 200 * S, "visit"),
        ("c", "denim", T0, T0 + 300 * S, "visit"),
    ]
    stays = stays_of(rows)
    events = ZoneEvents(
        zone=ints([FITTING, FITTING, FITTING, FITTING]),
        at_ms=ints([T0 + 50 * S, T0 + 105 * S, T0 + 250 * S, T0 + 400 * S]),
    )
    # b's entry was noticed 2 s late: a try-on within the slack before it is b's too.
    late = ZoneEvents(zone=ints([FITTING]), at_ms=ints([T0 + 98 * S]))
    assert attribute(stays, events, 8 * S).tolist() == [0, 1, 0, -1]
    assert attribute(stays, late, 8 * S).tolist() == [1]


def test_a_very_long_stay_is_still_found() -> None:
    rows = [("a", "fitting", T0, T0 + 5 * HOUR_MS, "open"), ("b", "fitting", T0, T0 + S, "visit")]
    events = ZoneEvents(zone=ints([FITTING]), at_ms=ints([T0 + 4 * HOUR_MS]))
    assert attribute(stays_of(rows), events, 0).tolist() == [0]


def test_purchase_window_ends_at_local_midnight_or_the_next_trip() -> None:
    rows = [
        ("a", "denim", T0, T0 + 60 * S, "visit"),
        ("a", "denim", T0 + 3 * HOUR_MS, T0 + 3 * HOUR_MS + 60 * S, "visit"),
        ("b", "denim", T0, T0 + 60 * S, "visit"),
    ]
    stays = stays_of(rows)
    trips = split_trips(stays, GAP_MS)
    midnights = local_midnights(T0 - HOUR_MS * 24, T0 + HOUR_MS * 48, "Europe/Paris")
    paris_midnight = T0 + 14 * HOUR_MS  # 2026-11-22T00:00+01:00
    assert purchase_windows(trips, midnights).tolist() == [
        T0 + 3 * HOUR_MS,
        paris_midnight,
        paris_midnight,
    ]


def test_the_funnel_on_a_worked_example() -> None:
    stays = stays_of(WORKED)
    trips = split_trips(stays, GAP_MS)
    a, b = stays.devices.index("a"), stays.devices.index("b")
    midnights = local_midnights(DAY[0], DAY[1] + 24 * HOUR_MS, "Europe/Paris")
    found = funnel(
        stays,
        trips,
        np.arange(len(trips)),
        [DENIM, SHOES, FITTING, CHECKOUT],
        taps=ZoneEvents(ints([SHOES]), ints([T0 + 115 * S])),  # b, passing by
        app_taps=ShopperEvents(ints([]), ints([])),
        try_ons=ZoneEvents(
            ints([FITTING, FITTING]),
            ints([T0 + 70 * S, T0 + 72 * S]),
            ("09506000134352", "09506000134369"),
        ),
        purchases=ShopperEvents(
            ints([a, b]),
            ints([T0 + 240 * S, T0 + 5 * HOUR_MS]),  # a at the till; b online, tonight
            ("09506000134352", "09506000134383"),
        ),
        slack_ms=8 * S,
        midnights=midnights,
        from_ms=DAY[0],
        to_ms=DAY[1],
    )
    assert found.steps == [
        ("store_visit", 3, 2),
        ("zone_visit", 3, 2),
        ("engaged", 2, 2),  # a's first trip (try-ons), b (tap)
        ("purchase", 2, 2),
    ]
    assert found.purchased_trips == 2
    assert (found.try_on_events, found.try_on_unattributed) == (2, 0)
    assert (found.try_on_pairs, found.try_on_purchased, found.try_on_shoppers) == (2, 1, 1)


# -- properties -------------------------------------------------------------------------------


@st.composite
def store_days(draw: st.DrawFn) -> list[StayRow]:
    """Devices walking from zone to zone with gaps, some long enough to end a trip."""
    rows: list[StayRow] = []
    for device in range(draw(st.integers(0, 6))):
        t = T0 + draw(st.integers(0, 3600)) * S
        for _ in range(draw(st.integers(1, 12))):
            zone = draw(st.sampled_from(ZONES))
            length = draw(st.integers(0, 400)) * S
            status = draw(st.sampled_from(["visit", "pass_by", "open"]))
            rows.append((f"d{device}", zone, t, t + length, status))
            t += length + draw(st.sampled_from([0, 1, 5, 29, 31, 120, 3600])) * S
    return rows


@settings(max_examples=150, deadline=None)
@given(store_days())
def test_transitions_count_every_move_and_conserve_flow(rows: list[StayRow]) -> None:
    stays = stays_of(rows)
    trips = split_trips(stays, GAP_MS)
    matrix = transitions(stays, trips, len(ZONES), np.arange(len(trips))).matrix
    # Expected moves per trip: its collapsed zone sequence plus the street at both ends.
    expected = 0
    trip_of = trips.of_stay()
    for t in range(len(trips)):
        members = sorted(np.flatnonzero(trip_of == t), key=lambda i: stays.entered_ms[i])
        zones = [int(stays.zone[i]) for i in members]
        collapsed = [z for k, z in enumerate(zones) if k == 0 or z != zones[k - 1]]
        expected += len(collapsed) + 1
    assert matrix.sum() == expected
    assert np.all(np.diag(matrix) == 0)
    assert np.array_equal(matrix.sum(axis=0), matrix.sum(axis=1))  # in = out, street too
    assert matrix[0].sum() == len(trips)


@settings(max_examples=150, deadline=None)
@given(store_days(), st.integers(1, 5))
def test_routes_account_for_every_trip(rows: list[StayRow], limit: int) -> None:
    stays = stays_of(rows)
    trips = split_trips(stays, GAP_MS)
    found = routes(stays, trips, np.arange(len(trips)), limit=len(rows) + 1)
    assert sum(n for _, n in found.ranked) == len(trips) == found.trips
    assert all(a != b for route, _ in found.ranked for a, b in itertools.pairwise(route))
    top = routes(stays, trips, np.arange(len(trips)), limit=limit).ranked
    assert top == found.ranked[:limit]


@settings(max_examples=150, deadline=None)
@given(store_days(), st.integers(-3600, 3600), st.integers(1, 4 * 3600))
def test_presence_rows_add_up_to_the_clipped_stays(
    rows: list[StayRow], offset_s: int, length_s: int
) -> None:
    stays = stays_of(rows)
    start = T0 + offset_s * S
    end = start + length_s * S
    buckets = hour_buckets(start, end, "Europe/Paris")
    found = presence(stays, len(ZONES), start, end, buckets, HOUR_MS)
    expected = np.zeros(len(ZONES))
    for _d, zone, entered, left, _s in rows:
        expected[ZONES.index(zone)] += max(0, min(left, end) - max(entered, start)) / 1000
    assert np.allclose(found.total_s, expected)
    assert np.allclose(found.matrix_s.sum(axis=1), found.total_s)
    assert np.all(found.matrix_s <= HOUR_MS / 1000 * max(1, len(rows)) + 1e-9)


@settings(max_examples=150, deadline=None)
@given(store_days())
def test_dwell_counts_and_footfall_count_each_stay_once(rows: list[StayRow]) -> None:
    stays = stays_of(rows)
    found = dwell(stays, len(ZONES), *DAY)
    visits = [r for r in rows if r[4] == "visit" and DAY[0] <= r[2] < DAY[1]]
    assert found.counts.sum() == found.visits.sum() == len(visits)
    buckets = hour_buckets(*DAY, "Europe/Paris")
    assert footfall(stays, len(ZONES), *DAY, buckets, HOUR_MS).sum() == sum(
        1 for r in rows if DAY[0] <= r[2] < DAY[1]
    )


@settings(max_examples=150, deadline=None)
@given(
    store_days(),
    st.lists(st.tuples(st.sampled_from(range(5)), st.integers(0, 9000)), max_size=8),
    st.lists(st.tuples(st.integers(0, 6), st.integers(0, 9000)), max_size=8),
)
def test_funnel_steps_never_increase(
    rows: list[StayRow], zone_events: list[tuple[int, int]], bought: list[tuple[int, int]]
) -> None:
    stays = stays_of(rows)
    trips = split_trips(stays, GAP_MS)
    devices = len(stays.devices)
    buys = [(d, t) for d, t in bought if d < devices]
    gtins = tuple("0950600013435" + str(z) for z, _ in zone_events)
    found = funnel(
        stays,
        trips,
        np.arange(len(trips)),
        [DENIM, SHOES, FITTING, CHECKOUT],
        taps=ZoneEvents(
            ints([z for z, _ in zone_events]), ints([T0 + t * S for _, t in zone_events])
        ),
        app_taps=ShopperEvents(ints([]), ints([])),
        try_ons=ZoneEvents(
            ints([z for z, _ in zone_events]), ints([T0 + t * S for _, t in zone_events]), gtins
        ),
        purchases=ShopperEvents(
            ints([d for d, _ in buys]), ints([T0 + t * S for _, t in buys]), ("x",) * len(buys)
        ),
        slack_ms=8 * S,
        midnights=local_midnights(*DAY, "Europe/Paris"),
        from_ms=DAY[0],
        to_ms=DAY[1],
    )
    counts = [n for _, n, _ in found.steps]
    shoppers = [n for _, _, n in found.steps]
    assert counts == sorted(counts, reverse=True) and counts[0] == len(trips)
    assert shoppers == sorted(shoppers, reverse=True)
    assert all(s <= n for n, s in zip(counts, shoppers, strict=True))
    assert found.purchased_trips >= counts[-1]
    assert found.try_on_purchased <= found.try_on_pairs
    assert found.try_on_unattributed <= found.try_on_events == len(zone_events)


def test_exits_are_credited_to_the_exit_zone() -> None:
    """A trip whose last stay is denim (the walk out through the entrance was
    shorter than the exit grace) leaves denim -> entrance -> street; one that
    ends in the entrance is left as it is. Flow stays conserved."""
    rows: list[StayRow] = [
        ("a", "entrance", T0, T0 + 5 * S, "pass_by"),
        ("a", "denim", T0 + 5 * S, T0 + 90 * S, "visit"),
        ("b", "entrance", T0, T0 + 5 * S, "pass_by"),
        ("b", "shoes", T0 + 5 * S, T0 + 90 * S, "visit"),
        ("b", "entrance", T0 + 90 * S, T0 + 100 * S, "visit"),
    ]
    stays = stays_of(rows)
    trips = split_trips(stays, GAP_MS)
    exit_via = nearest_exit([(0, 0), (1, 0), (2, 0), (3, 0), (4, 0)], [ENTRANCE])
    assert exit_via.tolist() == [ENTRANCE] * 5
    found = transitions(stays, trips, len(ZONES), np.arange(len(trips)), exit_via)
    street, e, d, s_ = 0, ENTRANCE + 1, DENIM + 1, SHOES + 1
    assert found.inferred_exits == 1
    assert found.matrix[d, e] == 1 and found.matrix[d, street] == 0
    assert found.matrix[e, street] == 2 and found.matrix[:, street].sum() == 2
    assert found.matrix[s_, e] == 1
    assert np.array_equal(found.matrix.sum(axis=0), found.matrix.sum(axis=1))
    plain = transitions(stays, trips, len(ZONES), np.arange(len(trips)))
    assert plain.inferred_exits == 0 and plain.matrix[d, street] == 1
    assert nearest_exit([(0, 0), (5, 0)], []).tolist() == [-1, -1]
