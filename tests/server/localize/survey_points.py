"""Where a surveyor stood in the example store's tests: random points that
fall inside a zone, shared by the ``omnizone calibrate`` tests."""

import numpy as np

from omnizone.store import StorePlan
from omnizone.store.geometry import contains


def points_in_zones(
    plan: StorePlan, rng: np.random.Generator, count: int = 900
) -> tuple[np.ndarray, list[str]]:
    """``count`` points drawn over the 30 × 20 m floor, kept when inside a
    zone, with each point's zone id."""
    places, zones = [], []
    while len(places) < count:
        p = rng.uniform((0, 0), (30, 20))
        zone = next((z.id for z in plan.zones if contains(z.polygon, (p[0], p[1]))), None)
        if zone is not None:
            places.append(p)
            zones.append(zone)
    return np.array(places), zones
