"""The pure core of issue 18: the noise tests of the period comparison, staff
detection (long days, back office, registered) and the loyalty bins."""

import numpy as np
import pytest

from omnizone.server.domain.analytics import DAY_MS, HOUR_MS, Stays, split_trips
from omnizone.server.domain.analytics.compare import Figure, difference, dwell_moments
from omnizone.server.domain.analytics.headline import shoppers_at, usual_shoppers
from omnizone.server.domain.analytics.loyalty import bin_labels, is_shopper_id, loyalty
from omnizone.server.domain.analytics.staff import detect_staff

ZONES = ["entrance", "sales", "back"]


def stays(*rows: tuple[str, str, int, int]) -> Stays:
    return Stays.from_rows([(d, z, a, b, "visit") for d, z, a, b in rows], ZONES)


def test_a_count_difference_is_noise_below_two_standard_errors() -> None:
    assert difference(Figure(100, "count"), Figure(115, "count")).within_noise is True
    big = difference(Figure(100, "count"), Figure(160, "count"))
    assert big.within_noise is False and big.note.startswith("up, beyond noise")
    assert (
        difference(Figure(None, "count"), Figure(3, "count")).note == "no data in one of the ranges"
    )
    assert difference(Figure(1.0), Figure(2.0)).within_noise is None


def test_rates_and_means_use_their_own_tests() -> None:
    # 30 % of 1000 against 35 % of 1000: z = 2.4, beyond noise; of 100 each it is noise.
    assert difference(Figure(0.30, "rate", 1000), Figure(0.35, "rate", 1000)).within_noise is False
    assert difference(Figure(0.30, "rate", 100), Figure(0.35, "rate", 100)).within_noise is True
    # means 60 s and 66 s, sd 30 s: n = 400 each gives z = 2.8, n = 25 gives 0.7
    assert (
        difference(Figure(60, "mean", 400, 30), Figure(66, "mean", 400, 30)).within_noise is False
    )
    assert difference(Figure(60, "mean", 25, 30), Figure(66, "mean", 25, 30)).within_noise is True


def test_dwell_moments_per_zone() -> None:
    s = stays(("a", "sales", 0, 10_000), ("b", "sales", 0, 30_000), ("c", "entrance", 0, 5_000))
    n, mean, sd = dwell_moments(s, 3, 0, 1, 0)
    assert n.tolist() == [1, 2, 0]
    assert mean[1] == pytest.approx(20.0) and sd[1] == pytest.approx(np.std([10, 30], ddof=1))
    assert np.isnan(mean[2])


def test_staff_are_found_by_long_days_or_the_back_office_and_shoppers_are_not() -> None:
    rows = []
    for day in range(4):
        base = day * DAY_MS + 8 * HOUR_MS
        rows.append(("clerk", "sales", base, base + 9 * HOUR_MS))
        rows.append(("regular", "sales", base, base + HOUR_MS))  # an hour a day: a shopper
    rows.append(("stocker", "back", 3 * DAY_MS, 3 * DAY_MS + 120_000))
    midnights = np.arange(0, 5 * DAY_MS, DAY_MS, dtype=np.int64)
    found = detect_staff(stays(*rows), midnights, [2], registered={"badge-7"})
    assert [(s.device, s.reason) for s in found] == [
        ("badge-7", "registered"),
        ("clerk", "long daily presence"),
        ("stocker", "back office"),
    ]
    assert found[1].long_days == 4 and found[1].mean_daily_hours == 9.0


def test_new_repeat_frequency_and_recency() -> None:
    s = stays(
        ("ann", "sales", 10 * DAY_MS, 10 * DAY_MS + 60_000),
        ("ann", "sales", 11 * DAY_MS, 11 * DAY_MS + 60_000),
        ("bob", "sales", 10 * DAY_MS, 10 * DAY_MS + 60_000),
        ("eid:ab12", "sales", 10 * DAY_MS, 10 * DAY_MS + 60_000),  # not a shopper id
    )
    trips = split_trips(s, 30_000)
    found = loyalty(s, trips, 10 * DAY_MS, 12 * DAY_MS, {"bob": 7 * DAY_MS})
    assert (found.shoppers, found.new, found.repeat, found.trips) == (2, 1, 1, 3)
    assert found.frequency == [1, 1, 0, 0, 0]
    assert found.recency == [0, 1, 0, 0, 0] and found.median_days_since_previous == 3.0
    assert not is_shopper_id("eid:ab12") and is_shopper_id("3f2a")
    assert bin_labels((1, 2, 3, 4, 6), "") == ["1", "2", "3", "4-5", "6+"]
    assert bin_labels((0, 1, 7), "d") == ["0-1 d", "1-7 d", "7+ d"]


def test_shoppers_now_and_the_usual_count() -> None:
    week = 7 * DAY_MS
    now = 3 * week + 15 * HOUR_MS
    a = stays(("x", "sales", now - 60_000, now + 60_000), ("y", "sales", now - 1, now))
    assert shoppers_at(a, now) == 2
    older = stays(("z", "sales", now - week - 1, now - week + 1))
    empty = stays()
    assert usual_shoppers([(empty, now - 2 * week), (older, now - week)]) == (1.0, [1])
