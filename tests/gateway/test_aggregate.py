"""Per-device aggregation over epoch-aligned windows."""

import pytest

from omnizone.contract import BleSighting
from omnizone.gateway.ble.aggregate import WindowAggregator

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z, a multiple of every window below
A = "eid:0011223344556677"
B = "ibeacon:e2c56db5-dffb-48d2-b060-d0f5a71096e0:0:0"


def _by_device(batch: list[BleSighting]) -> dict[str, BleSighting]:
    return {s.device: s for s in batch}


def test_count_mean_and_max_per_device_per_window() -> None:
    agg = WindowAggregator(1000)
    agg.add(A, -70, None, T0 + 10)
    agg.add(A, -60, -59, T0 + 500)
    agg.add(A, -65, None, T0 + 999)
    agg.add(B, -80, -59, T0 + 20)
    agg.tick(T0 + 1000)
    [batch] = agg.drain()
    got = _by_device(batch)
    assert got[A] == BleSighting(
        device=A,
        window_start_ms=T0,
        window_ms=1000,
        count=3,
        rssi_mean=-65,
        rssi_max=-60,
        tx_power=-59,
    )
    assert (got[B].count, got[B].rssi_mean, got[B].rssi_max, got[B].tx_power) == (1, -80, -80, -59)


def test_mean_is_rounded_to_hundredths() -> None:
    agg = WindowAggregator(1000)
    for rssi in (-70, -71, -71):
        agg.add(A, rssi, None, T0)
    agg.tick(T0 + 1000)
    [[sighting]] = agg.drain()
    assert sighting.rssi_mean == -70.67


def test_tx_power_is_the_last_one_heard_and_none_when_never_known() -> None:
    agg = WindowAggregator(1000)
    agg.add(A, -70, -59, T0)
    agg.add(A, -70, -61, T0 + 1)
    agg.add(A, -70, None, T0 + 2)
    agg.add(B, -70, None, T0 + 3)
    agg.tick(T0 + 1000)
    got = _by_device(agg.drain()[0])
    assert got[A].tx_power == -61
    assert got[B].tx_power is None


@pytest.mark.parametrize("window_ms", [100, 250, 1000, 5000])
def test_windows_are_aligned_to_epoch_multiples(window_ms: int) -> None:
    agg = WindowAggregator(window_ms)
    first = T0 + 3 * window_ms + window_ms // 3  # somewhere inside a window
    agg.add(A, -70, None, first)
    agg.tick(first + window_ms)
    [[sighting]] = agg.drain()
    assert sighting.window_start_ms == T0 + 3 * window_ms
    assert sighting.window_start_ms % window_ms == 0
    assert sighting.window_ms == window_ms


def test_two_aggregators_close_the_same_windows() -> None:
    """Gateways started at different moments still compare like with like."""
    early, late = WindowAggregator(1000), WindowAggregator(1000)
    early.add(A, -70, None, T0 + 100)
    early.add(A, -70, None, T0 + 1300)
    late.add(A, -60, None, T0 + 1700)
    for agg in (early, late):
        agg.tick(T0 + 2000)
    starts = [[s.window_start_ms for batch in agg.drain() for s in batch] for agg in (early, late)]
    assert starts == [[T0, T0 + 1000], [T0 + 1000]]


def test_an_advert_in_a_later_window_closes_the_current_one() -> None:
    agg = WindowAggregator(1000)
    agg.add(A, -70, None, T0 + 10)
    agg.add(B, -75, None, T0 + 1010)
    closed = agg.drain()
    assert [[s.device for s in batch] for batch in closed] == [[A]]
    agg.tick(T0 + 2000)
    assert [[s.device for s in batch] for batch in agg.drain()] == [[B]]


def test_windows_with_silence_between_them_are_not_invented() -> None:
    agg = WindowAggregator(1000)
    agg.add(A, -70, None, T0)
    agg.add(A, -70, None, T0 + 5500)
    agg.tick(T0 + 6000)
    assert [batch[0].window_start_ms for batch in agg.drain()] == [T0, T0 + 5000]


def test_tick_closes_the_window_only_once_its_end_has_passed() -> None:
    agg = WindowAggregator(1000)
    agg.add(A, -70, None, T0 + 200)
    agg.tick(T0 + 999)
    assert agg.drain() == []
    agg.tick(T0 + 1000)
    assert len(agg.drain()) == 1
    agg.tick(T0 + 5000)  # nothing open: nothing to close
    assert agg.drain() == []


def test_drain_empties_and_returns_windows_oldest_first() -> None:
    agg = WindowAggregator(1000)
    for k in range(3):
        agg.add(A, -70 - k, None, T0 + k * 1000)
    agg.tick(T0 + 3000)
    closed = agg.drain()
    assert [batch[0].window_start_ms for batch in closed] == [T0, T0 + 1000, T0 + 2000]
    assert all(batch for batch in closed)
    assert agg.drain() == []


def test_late_adverts_are_counted_not_aggregated() -> None:
    agg = WindowAggregator(1000)
    agg.add(A, -70, None, T0 + 1500)
    agg.add(A, -20, None, T0 + 900)  # stamped in an earlier window (clock stepped back)
    agg.add(B, -20, None, T0 + 10)
    assert agg.late_adverts == 2
    agg.tick(T0 + 2000)
    [[sighting]] = agg.drain()
    assert (sighting.device, sighting.count, sighting.rssi_max) == (A, 1, -70)


def test_an_advert_for_a_window_already_closed_by_tick_is_late() -> None:
    agg = WindowAggregator(1000)
    agg.add(A, -70, None, T0 + 100)
    agg.tick(T0 + 1000)
    agg.add(A, -60, None, T0 + 900)  # e.g. a scanner callback that ran after the tick
    agg.tick(T0 + 2000)
    windows = [(s.device, s.window_start_ms) for batch in agg.drain() for s in batch]
    assert windows == [(A, T0)]
    assert agg.late_adverts == 1


def test_an_impossible_rssi_does_not_wedge_the_aggregator() -> None:
    agg = WindowAggregator(1000)
    agg.add(A, 127, None, T0 + 100)
    agg.add(B, -70, None, T0 + 200)
    agg.tick(T0 + 1000)
    agg.add(B, -71, None, T0 + 1100)
    agg.tick(T0 + 2000)
    devices = [[s.device for s in batch] for batch in agg.drain()]
    assert devices == [[B], [B]]
