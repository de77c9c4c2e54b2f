"""Lift over the holdout: Newcombe's hybrid score interval against the paper's
worked examples, and its general properties."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from omnizone.server.domain.offers import campaign_lift, wilson_interval

# Newcombe (1998), Statistics in Medicine 17:873-890, Table II, method 10.
NEWCOMBE_EXAMPLES = [
    ((56, 70), (48, 80), (0.0524, 0.3339)),
    ((9, 10), (3, 10), (0.1705, 0.8090)),
    ((6, 7), (2, 7), (0.0582, 0.8062)),
    ((5, 56), (0, 29), (-0.0381, 0.1926)),
    ((0, 10), (0, 20), (-0.1611, 0.2775)),
    ((10, 10), (0, 20), (0.6791, 1.0)),
]


@pytest.mark.parametrize(("treated", "control", "interval"), NEWCOMBE_EXAMPLES)
def test_matches_newcombe_worked_examples(
    treated: tuple[int, int], control: tuple[int, int], interval: tuple[float, float]
) -> None:
    (x1, n1), (x2, n2) = treated, control
    lift = campaign_lift(n1, x1, n2, x2)
    assert lift.absolute == pytest.approx(x1 / n1 - x2 / n2)
    assert lift.absolute_low == pytest.approx(interval[0], abs=5e-5)
    assert lift.absolute_high == pytest.approx(interval[1], abs=5e-5)
    assert lift.method == "newcombe-wilson"


def test_wilson_interval_matches_newcombe_single_rate_examples() -> None:
    # Newcombe (1998), "Two-sided confidence intervals for the single proportion".
    assert wilson_interval(81, 263) == pytest.approx((0.2553, 0.3662), abs=5e-5)
    assert wilson_interval(15, 148) == pytest.approx((0.0624, 0.1605), abs=5e-5)
    none_of_20 = wilson_interval(0, 20)
    assert none_of_20[0] == 0.0 and none_of_20[1] == pytest.approx(0.1611, abs=5e-5)
    all_of_20 = wilson_interval(20, 20)
    assert all_of_20[0] == pytest.approx(0.8389, abs=5e-5) and all_of_20[1] == 1.0


def test_relative_lift() -> None:
    lift = campaign_lift(1000, 60, 200, 8)
    assert lift.treated_rate == pytest.approx(0.06)
    assert lift.control_rate == pytest.approx(0.04)
    assert lift.relative == pytest.approx(0.5)


def test_zero_counts_do_not_divide_by_zero() -> None:
    no_control = campaign_lift(100, 5, 0, 0)
    assert no_control.treated_rate == pytest.approx(0.05)
    assert no_control.control_rate is None
    assert no_control.absolute is None and no_control.absolute_low is None
    assert no_control.relative is None
    nothing = campaign_lift(0, 0, 0, 0)
    assert (nothing.treated_rate, nothing.control_rate, nothing.absolute) == (None, None, None)
    no_control_conversions = campaign_lift(100, 5, 50, 0)
    assert no_control_conversions.absolute == pytest.approx(0.05)
    assert no_control_conversions.relative is None  # undefined over a zero rate
    assert no_control_conversions.absolute_low is not None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((10, 11, 10, 1), "treated conversions"),
        ((10, 1, 10, 11), "control conversions"),
        ((-1, 0, 10, 1), "negative"),
        ((10, 1, 10, -1), "negative"),
    ],
)
def test_bad_counts_are_refused(args: tuple[int, int, int, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        campaign_lift(*args)


@pytest.mark.parametrize("confidence", [0.0, 1.0, 95.0, -0.5])
def test_confidence_must_be_a_probability(confidence: float) -> None:
    with pytest.raises(ValueError, match="confidence"):
        campaign_lift(10, 1, 10, 1, confidence)


@st.composite
def groups(draw: st.DrawFn) -> tuple[int, int, int, int]:
    n1 = draw(st.integers(1, 5000))
    n2 = draw(st.integers(1, 5000))
    return n1, draw(st.integers(0, n1)), n2, draw(st.integers(0, n2))


@given(groups(), st.floats(0.5, 0.999))
def test_interval_holds_the_estimate_and_stays_in_range(
    counts: tuple[int, int, int, int], confidence: float
) -> None:
    lift = campaign_lift(*counts, confidence=confidence)
    assert lift.absolute is not None
    assert lift.absolute_low is not None and lift.absolute_high is not None
    assert -1.0 <= lift.absolute_low <= lift.absolute + 1e-12
    assert lift.absolute - 1e-12 <= lift.absolute_high <= 1.0


@given(groups())
def test_swapping_groups_mirrors_the_interval(counts: tuple[int, int, int, int]) -> None:
    n1, x1, n2, x2 = counts
    forward = campaign_lift(n1, x1, n2, x2)
    backward = campaign_lift(n2, x2, n1, x1)
    assert forward.absolute_low == pytest.approx(-(backward.absolute_high or 0.0), abs=1e-12)
    assert forward.absolute_high == pytest.approx(-(backward.absolute_low or 0.0), abs=1e-12)


@given(groups())
def test_higher_confidence_gives_a_wider_interval(counts: tuple[int, int, int, int]) -> None:
    narrow = campaign_lift(*counts, confidence=0.8)
    wide = campaign_lift(*counts, confidence=0.99)
    assert narrow.absolute_low is not None and wide.absolute_low is not None
    assert narrow.absolute_high is not None and wide.absolute_high is not None
    assert wide.absolute_low <= narrow.absolute_low + 1e-12
    assert wide.absolute_high >= narrow.absolute_high - 1e-12
