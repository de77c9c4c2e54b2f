"""Fitting-room rules: arrive when steady, depart after a quiet period."""

from hypothesis import given, settings
from hypothesis import strategies as st

from omnizone.contract import RfidItem, RfidRead, TryOn
from omnizone.gateway.rfid.fitting_room import FittingRoom, FittingRoomRules, TagSeen

T0 = 1_700_000_000_000
SHIRT = "3074257bf7194e4000001a85"  # SGTIN 0614141.812345.6789
OTHER = "e2801160600002054c2a5b7c"  # not an SGTIN
RULES = FittingRoomRules(arrive_reads=3, arrive_within_ms=2_000, depart_after_ms=10_000)


def read(epc: str, at: int, rssi: float = -50.0, antenna: int = 1) -> TagSeen:
    return TagSeen(epc, antenna, rssi, T0 + at)


def try_ons(items: list[RfidItem]) -> list[TryOn]:
    return [i for i in items if isinstance(i, TryOn)]


def test_arrives_only_when_steady() -> None:
    room = FittingRoom("fr1", RULES)
    assert room.observe(read(SHIRT, 0)) == []
    assert room.observe(read(SHIRT, 1_500)) == []
    assert try_ons(room.observe(read(SHIRT, 3_000))) == []  # the read at 0 is too old
    (arrived,) = try_ons(room.observe(read(SHIRT, 3_100)))
    assert arrived == TryOn(
        reader="fr1",
        event="arrived",
        epc=SHIRT,
        gtin="80614141123458",
        serial="6789",
        at_ms=T0 + 3_100,
    )
    assert room.present == {SHIRT}


def test_departs_after_quiet_period_at_last_read() -> None:
    room = FittingRoom("fr1", RULES)
    for t in (0, 100, 200):
        room.observe(read(SHIRT, t))
    assert try_ons(room.advance(T0 + 10_199)) == []
    (departed,) = try_ons(room.advance(T0 + 10_200))
    assert departed.event == "departed" and departed.at_ms == T0 + 200
    assert room.present == frozenset()
    assert try_ons(room.advance(T0 + 50_000)) == []


def test_passer_by_never_arrives_and_is_forgotten() -> None:
    room = FittingRoom("fr1", RULES)
    room.observe(read(OTHER, 0))
    room.observe(read(OTHER, 1_000))
    assert try_ons(room.advance(T0 + 60_000)) == []
    assert not room._tags  # nothing kept for it


def test_window_reads_aggregate_per_antenna_and_epc() -> None:
    room = FittingRoom("fr1", FittingRoomRules(arrive_reads=100, window_ms=1_000))
    start = 1_000 - T0 % 1_000  # the first window boundary after T0
    room.observe(read(SHIRT, start + 10, -40, antenna=1))
    room.observe(read(SHIRT, start + 20, -50, antenna=1))
    room.observe(read(SHIRT, start + 30, -60, antenna=2))
    room.observe(read(OTHER, start + 40, -70, antenna=1))
    assert room.advance(T0 + start + 999) == []
    reads = [i for i in room.advance(T0 + start + 1_000) if isinstance(i, RfidRead)]
    assert [(r.antenna, r.epc, r.count, r.rssi, r.at_ms - T0) for r in reads] == [
        (1, SHIRT, 2, -45.0, start + 10),
        (2, SHIRT, 1, -60.0, start + 30),
        (1, OTHER, 1, -70.0, start + 40),
    ]
    assert reads[0].gtin == "80614141123458" and reads[2].gtin is None


def test_a_read_in_the_next_window_closes_the_last() -> None:
    room = FittingRoom("fr1", FittingRoomRules(arrive_reads=100, window_ms=1_000))
    room.observe(read(SHIRT, 0))
    items = room.observe(read(SHIRT, 5_000))
    assert [i.count for i in items if isinstance(i, RfidRead)] == [1]
    room.observe(read(SHIRT, 10))  # its window is gone
    assert room.late_reads == 1


def test_reads_can_be_switched_off_and_rules_changed_live() -> None:
    room = FittingRoom("fr1", RULES)
    room.observe(read(SHIRT, 0))
    items = room.set_rules(FittingRoomRules(arrive_reads=1, publish_reads=False), T0 + 1)
    assert [i.count for i in items if isinstance(i, RfidRead)] == [1]  # open window closed
    assert [i.event for i in try_ons(room.observe(read(SHIRT, 2)))] == ["arrived"]
    assert [i for i in room.advance(T0 + 100_000) if isinstance(i, RfidRead)] == []


# --- properties --------------------------------------------------------------------

EPCS = [SHIRT, OTHER, "30340000000000000000002a"]
rules_st = st.builds(
    FittingRoomRules,
    arrive_reads=st.integers(1, 5),
    arrive_within_ms=st.integers(100, 5_000),
    depart_after_ms=st.integers(500, 20_000),
    window_ms=st.integers(100, 10_000),
)
steps_st = st.lists(
    st.tuples(st.sampled_from(["read", "advance"]), st.integers(0, 2), st.integers(0, 15_000)),
    max_size=80,
)


def run(
    rules: FittingRoomRules, steps: list[tuple[str, int, int]]
) -> tuple[FittingRoom, list[TryOn]]:
    room = FittingRoom("fr1", rules)
    now = T0
    events: list[TryOn] = []
    for op, tag, dt in steps:
        now += dt
        if op == "read":
            events += try_ons(room.observe(TagSeen(EPCS[tag], 1, -50.0, now)))
        else:
            events += try_ons(room.advance(now))
    return room, events


@settings(max_examples=300)
@given(rules_st, steps_st)
def test_arrivals_and_departures_alternate_per_tag(
    rules: FittingRoomRules, steps: list[tuple[str, int, int]]
) -> None:
    room, events = run(rules, steps)
    for epc in EPCS:
        sequence = [e.event for e in events if e.epc == epc]
        # never departs without having arrived; never arrives twice in a row
        assert sequence == ["arrived", "departed"] * (len(sequence) // 2) + (
            ["arrived"] if len(sequence) % 2 else []
        )
        assert (epc in room.present) == (len(sequence) % 2 == 1)


@settings(max_examples=300)
@given(
    rules_st,
    st.data(),
    st.lists(st.tuples(st.integers(1, 2), st.integers(0, 15_000)), max_size=60),
)
def test_a_tag_read_continuously_never_departs(
    rules: FittingRoomRules, data: st.DataObject, noise: list[tuple[int, int]]
) -> None:
    """Reads never further apart than the quiet period, with other tags and
    clock ticks interleaved anywhere in between."""
    gaps = data.draw(st.lists(st.integers(0, rules.depart_after_ms - 1), min_size=1, max_size=60))
    room = FittingRoom("fr1", rules)
    now = T0
    events: list[TryOn] = []
    noise_iter = iter(noise)
    for gap in gaps:
        target = now + gap
        for tag, offset in noise_iter:  # other traffic before this read, never past it
            t = min(now + offset, target)
            events += try_ons(room.observe(TagSeen(EPCS[tag], 1, -60.0, t)))
            events += try_ons(room.advance(t))
            now = t
            break
        now = target
        events += try_ons(room.observe(TagSeen(SHIRT, 1, -50.0, now)))
        events += try_ons(room.advance(now))
    events += try_ons(room.advance(now + rules.depart_after_ms - 1))
    assert [e.event for e in events if e.epc == SHIRT and e.event == "departed"] == []
