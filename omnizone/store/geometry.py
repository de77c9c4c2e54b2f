"""Plain-Python plane geometry over the floor plan (metres); no numpy so a
gateway can load a store file too."""

import itertools
import math
import random
from collections.abc import Sequence

Point = tuple[float, float]
Polygon = Sequence[Point]

_EPS = 1e-9


def signed_area(polygon: Polygon) -> float:
    total = 0.0
    for (x1, y1), (x2, y2) in _edges(polygon):
        total += x1 * y2 - x2 * y1
    return total / 2


def area(polygon: Polygon) -> float:
    return abs(signed_area(polygon))


def centroid(polygon: Polygon) -> Point:
    a = signed_area(polygon)
    if abs(a) < _EPS:
        xs, ys = zip(*polygon, strict=True)
        return (sum(xs) / len(xs), sum(ys) / len(ys))
    cx = cy = 0.0
    for (x1, y1), (x2, y2) in _edges(polygon):
        cross = x1 * y2 - x2 * y1
        cx += (x1 + x2) * cross
        cy += (y1 + y2) * cross
    return (cx / (6 * a), cy / (6 * a))


def contains(polygon: Polygon, point: Point) -> bool:
    """Ray casting; points on the boundary count as inside."""
    x, y = point
    inside = False
    for (x1, y1), (x2, y2) in _edges(polygon):
        if _on_segment((x1, y1), (x2, y2), point):
            return True
        if (y1 > y) != (y2 > y):
            x_cross = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
            if x < x_cross:
                inside = not inside
    return inside


def distance(polygon: Polygon, point: Point) -> float:
    """How far a point is from a polygon (0 inside or on the boundary)."""
    if contains(polygon, point):
        return 0.0
    return min(_distance_to_segment(a, b, point) for a, b in _edges(polygon))


def bounding_box(polygon: Polygon) -> tuple[float, float, float, float]:
    xs = [p[0] for p in polygon]
    ys = [p[1] for p in polygon]
    return min(xs), min(ys), max(xs), max(ys)


def random_point_in(polygon: Polygon, rng: random.Random, margin: float = 0.0) -> Point:
    """Rejection sampling; `margin` keeps the point away from the walls."""
    x0, y0, x1, y1 = bounding_box(polygon)
    for _ in range(10_000):
        p = (rng.uniform(x0 + margin, x1 - margin), rng.uniform(y0 + margin, y1 - margin))
        if contains(polygon, p) and (
            margin == 0 or all(_distance_to_segment(a, b, p) >= margin for a, b in _edges(polygon))
        ):
            return p
    return centroid(polygon)


def shared_boundary(a: Polygon, b: Polygon) -> tuple[Point, Point] | None:
    """The longest stretch of boundary two polygons have in common, if any."""
    best: tuple[Point, Point] | None = None
    best_length = 0.0
    for p1, p2 in _edges(a):
        for q1, q2 in _edges(b):
            overlap = _collinear_overlap(p1, p2, q1, q2)
            if overlap is not None:
                length = math.dist(*overlap)
                if length > best_length:
                    best, best_length = overlap, length
    return best


def segments_intersect_properly(polygon: Polygon) -> bool:
    """True when two non-adjacent edges cross (a self-intersecting outline)."""
    edges = list(_edges(polygon))
    n = len(edges)
    for i in range(n):
        for j in range(i + 1, n):
            if j == i + 1 or (i == 0 and j == n - 1):
                continue
            if _proper_cross(*edges[i], *edges[j]):
                return True
    return False


def _edges(polygon: Polygon) -> list[tuple[Point, Point]]:
    pts = list(polygon)
    return [(pts[i], pts[(i + 1) % len(pts)]) for i in range(len(pts))]


def _cross(o: Point, a: Point, b: Point) -> float:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def _on_segment(a: Point, b: Point, p: Point) -> bool:
    if abs(_cross(a, b, p)) > 1e-7:
        return False
    return (
        min(a[0], b[0]) - _EPS <= p[0] <= max(a[0], b[0]) + _EPS
        and min(a[1], b[1]) - _EPS <= p[1] <= max(a[1], b[1]) + _EPS
    )


def _proper_cross(a: Point, b: Point, c: Point, d: Point) -> bool:
    d1, d2 = _cross(c, d, a), _cross(c, d, b)
    d3, d4 = _cross(a, b, c), _cross(a, b, d)
    return ((d1 > _EPS and d2 < -_EPS) or (d1 < -_EPS and d2 > _EPS)) and (
        (d3 > _EPS and d4 < -_EPS) or (d3 < -_EPS and d4 > _EPS)
    )


def _distance_to_segment(a: Point, b: Point, p: Point) -> float:
    ax, ay = a
    dx, dy = b[0] - ax, b[1] - ay
    length2 = dx * dx + dy * dy
    if length2 < _EPS:
        return math.dist(a, p)
    t = max(0.0, min(1.0, ((p[0] - ax) * dx + (p[1] - ay) * dy) / length2))
    return math.dist((ax + t * dx, ay + t * dy), p)


def _collinear_overlap(p1: Point, p2: Point, q1: Point, q2: Point) -> tuple[Point, Point] | None:
    if abs(_cross(p1, p2, q1)) > 1e-7 or abs(_cross(p1, p2, q2)) > 1e-7:
        return None
    dx, dy = p2[0] - p1[0], p2[1] - p1[1]
    length2 = dx * dx + dy * dy
    if length2 < _EPS:
        return None

    def along(p: Point) -> float:
        return ((p[0] - p1[0]) * dx + (p[1] - p1[1]) * dy) / length2

    lo = max(0.0, min(along(q1), along(q2)))
    hi = min(1.0, max(along(q1), along(q2)))
    if hi - lo <= _EPS:
        return None
    return (p1[0] + lo * dx, p1[1] + lo * dy), (p1[0] + hi * dx, p1[1] + hi * dy)


def contains_strictly(polygon: Polygon, point: Point) -> bool:
    """Inside and not on the boundary."""
    return contains(polygon, point) and not any(
        _on_segment(a, b, point) for a, b in _edges(polygon)
    )


def interiors_overlap(a: Polygon, b: Polygon) -> bool:
    """Two zones overlap when their interiors share any area; merely touching is fine.

    Each edge of one outline is cut where it meets the other outline; if the
    middle of any piece lies strictly inside the other polygon, they overlap.
    The centroid check catches identical or nested outlines.
    """
    for inner, outer in ((a, b), (b, a)):
        if contains_strictly(outer, centroid(inner)):
            return True
        for p1, p2 in _edges(inner):
            cuts = {0.0, 1.0}
            for q1, q2 in _edges(outer):
                cuts.update(_meeting_points(p1, p2, q1, q2))
            ordered = sorted(cuts)
            for t0, t1 in itertools.pairwise(ordered):
                if t1 - t0 < 1e-9:
                    continue
                t = (t0 + t1) / 2
                middle = (p1[0] + (p2[0] - p1[0]) * t, p1[1] + (p2[1] - p1[1]) * t)
                if contains_strictly(outer, middle):
                    return True
    return False


def _meeting_points(p1: Point, p2: Point, q1: Point, q2: Point) -> list[float]:
    """Where along p1→p2 (0..1) the segment q1→q2 touches or crosses it."""
    dx, dy = p2[0] - p1[0], p2[1] - p1[1]
    ex, ey = q2[0] - q1[0], q2[1] - q1[1]
    denominator = dx * ey - dy * ex
    length2 = dx * dx + dy * dy
    if length2 < _EPS:
        return []
    if abs(denominator) < 1e-12:  # parallel: only collinear overlaps matter
        if abs(_cross(p1, p2, q1)) > 1e-7:
            return []
        return [
            t
            for q in (q1, q2)
            if 0.0 <= (t := ((q[0] - p1[0]) * dx + (q[1] - p1[1]) * dy) / length2) <= 1.0
        ]
    t = ((q1[0] - p1[0]) * ey - (q1[1] - p1[1]) * ex) / denominator
    u = ((q1[0] - p1[0]) * dy - (q1[1] - p1[1]) * dx) / denominator
    if -_EPS <= t <= 1 + _EPS and -_EPS <= u <= 1 + _EPS:
        return [min(1.0, max(0.0, t))]
    return []
