"""Plane geometry of the floor plan: small exact cases plus a few properties."""

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omnizone.store import geometry as geo

SQUARE = [(0.0, 0.0), (10.0, 0.0), (10.0, 10.0), (0.0, 10.0)]
# An L: the square minus its top-right quarter.
L_SHAPE = [(0.0, 0.0), (10.0, 0.0), (10.0, 5.0), (5.0, 5.0), (5.0, 10.0), (0.0, 10.0)]


def _shift(polygon: list[tuple[float, float]], dx: float, dy: float) -> list[tuple[float, float]]:
    return [(x + dx, y + dy) for x, y in polygon]


def test_area_and_orientation() -> None:
    assert geo.area(SQUARE) == 100
    assert geo.signed_area(SQUARE) == 100  # counter-clockwise
    assert geo.signed_area(SQUARE[::-1]) == -100
    assert geo.area(L_SHAPE) == 75
    assert geo.area([(0, 0), (4, 0), (0, 3)]) == 6
    assert geo.area([(0, 0), (1, 1), (2, 2)]) == 0  # collinear


def test_centroid() -> None:
    assert geo.centroid(SQUARE) == pytest.approx((5, 5))
    assert geo.centroid([(0, 0), (3, 0), (0, 3)]) == pytest.approx((1, 1))
    assert geo.centroid([(0, 0), (1, 1), (2, 2)]) == pytest.approx((1, 1))  # degenerate


@pytest.mark.parametrize(
    ("point", "inside"),
    [
        ((5, 5), True),
        ((0, 0), True),  # corner
        ((10, 5), True),  # on an edge
        ((2, 8), True),
        ((7, 7), False),  # in the L's missing quarter
        ((5, 7.5), True),  # on the inner edge
        ((-0.001, 5), False),
        ((11, 5), False),
        ((5, 10.5), False),
    ],
)
def test_contains_counts_the_boundary_as_inside(point: tuple[float, float], inside: bool) -> None:
    assert geo.contains(L_SHAPE, point) is inside


def test_contains_strictly_excludes_the_boundary() -> None:
    assert geo.contains_strictly(SQUARE, (5, 5))
    assert not geo.contains_strictly(SQUARE, (0, 5))
    assert not geo.contains_strictly(SQUARE, (10, 10))
    assert not geo.contains_strictly(SQUARE, (11, 5))


def test_bounding_box() -> None:
    assert geo.bounding_box(L_SHAPE) == (0, 0, 10, 10)


def test_shared_boundary_is_the_common_stretch_of_wall() -> None:
    right = _shift(SQUARE, 10, 0)
    assert geo.shared_boundary(SQUARE, right) == ((10, 0), (10, 10))
    # Half a wall: a shorter box to the right.
    short = [(10.0, 2.0), (14.0, 2.0), (14.0, 6.0), (10.0, 6.0)]
    start, end = geo.shared_boundary(SQUARE, short) or ((0, 0), (0, 0))
    assert {start, end} == {(10, 2), (10, 6)}


def test_corner_contact_and_distant_shapes_share_no_boundary() -> None:
    assert geo.shared_boundary(SQUARE, _shift(SQUARE, 10, 10)) is None
    assert geo.shared_boundary(SQUARE, _shift(SQUARE, 20, 0)) is None
    # Parallel but not on the same line.
    assert geo.shared_boundary(SQUARE, _shift(SQUARE, 10.5, 0)) is None


def test_shared_boundary_is_symmetric_in_length() -> None:
    other = [(10.0, -5.0), (20.0, -5.0), (20.0, 4.0), (10.0, 4.0)]
    ab, ba = geo.shared_boundary(SQUARE, other), geo.shared_boundary(other, SQUARE)
    assert ab is not None and ba is not None
    assert math.dist(*ab) == pytest.approx(math.dist(*ba)) == pytest.approx(4)


@pytest.mark.parametrize(
    ("other", "overlap"),
    [
        (_shift(SQUARE, 10, 0), False),  # side by side
        (_shift(SQUARE, 10, 10), False),  # corner to corner
        (_shift(SQUARE, 30, 0), False),  # far apart
        (_shift(SQUARE, 5, 5), True),  # a corner inside
        (SQUARE, True),  # the same zone twice
        ([(2.0, 2.0), (4.0, 2.0), (4.0, 4.0), (2.0, 4.0)], True),  # fully inside
        ([(-5.0, 4.0), (15.0, 4.0), (15.0, 6.0), (-5.0, 6.0)], True),  # a cross: edges cross
        ([(6.0, 6.0), (10.0, 6.0), (10.0, 10.0), (6.0, 10.0)], False),  # fills the L's notch
    ],
    ids=["side", "corner", "apart", "corner-inside", "same", "inside", "cross", "notch"],
)
def test_interiors_overlap(other: list[tuple[float, float]], overlap: bool) -> None:
    base = L_SHAPE if other[0] == (6.0, 6.0) else SQUARE
    assert geo.interiors_overlap(base, other) is overlap
    assert geo.interiors_overlap(other, base) is overlap


def test_interiors_overlap_sees_a_strip_overlap_between_aligned_rectangles() -> None:
    denim = [(8.0, 0.0), (20.0, 0.0), (20.0, 10.0), (8.0, 10.0)]
    assert geo.interiors_overlap(SQUARE, denim)


def test_self_crossing_outline_is_detected() -> None:
    assert geo.segments_intersect_properly([(0, 0), (10, 10), (10, 0), (0, 6)])
    assert not geo.segments_intersect_properly(SQUARE)
    assert not geo.segments_intersect_properly(L_SHAPE)


def test_random_point_in_keeps_its_margin_from_the_walls() -> None:
    rng = random.Random(7)
    for _ in range(50):
        x, y = geo.random_point_in(L_SHAPE, rng, margin=1.0)
        assert geo.contains(L_SHAPE, (x, y))
        assert 1 <= x <= 9 and 1 <= y <= 9
        assert math.dist((x, y), (5, 5)) >= 1, "too close to the L's inner corner"


def test_random_point_in_is_reproducible_with_a_seed() -> None:
    a = [geo.random_point_in(L_SHAPE, random.Random(3)) for _ in range(3)]
    b = [geo.random_point_in(L_SHAPE, random.Random(3)) for _ in range(3)]
    assert a == b


coordinates = st.floats(min_value=-1000, max_value=1000, allow_nan=False)
sizes = st.floats(min_value=0.5, max_value=200, allow_nan=False)


@settings(max_examples=100, deadline=None)
@given(
    x=coordinates, y=coordinates, w=sizes, h=sizes, notch=st.floats(0.1, 0.9), seed=st.integers()
)
def test_random_point_in_returns_a_point_the_polygon_contains(
    x: float, y: float, w: float, h: float, notch: float, seed: int
) -> None:
    # An L of any size and position: the rectangle minus a top-right block.
    polygon = [
        (x, y),
        (x + w, y),
        (x + w, y + h * notch),
        (x + w * notch, y + h * notch),
        (x + w * notch, y + h),
        (x, y + h),
    ]
    point = geo.random_point_in(polygon, random.Random(seed))
    assert geo.contains(polygon, point)


@settings(max_examples=100, deadline=None)
@given(
    points=st.lists(
        st.tuples(st.floats(0, 50, allow_nan=False), st.floats(0, 50, allow_nan=False)),
        min_size=3,
        max_size=8,
    ),
    seed=st.integers(),
)
def test_random_point_in_any_outline_is_inside_or_the_centroid(
    points: list[tuple[float, float]], seed: int
) -> None:
    """For arbitrary (even degenerate) outlines, the sample is inside or, after
    giving up, the centroid — never an exception."""
    point = geo.random_point_in(points, random.Random(seed))
    assert geo.contains(points, point) or point == pytest.approx(geo.centroid(points))
