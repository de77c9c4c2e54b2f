"""Shopper behaviour: arrive at the entrance, visit a few zones along the floor
plan (through the passages between touching zones), browse, maybe pay, leave.

A shopper is a queue of legs (walk to a point, then pause); moving is plain
geometry, all randomness comes from the scenario's seeded generator.
"""

import itertools
import math
import random
from collections import deque
from dataclasses import dataclass, field

from omnizone.contract.eid import EidParams
from omnizone.sim.scenario import PhoneMode, ShopperBehaviour
from omnizone.store import StorePlan, ZoneKind, geometry
from omnizone.store.geometry import Point


@dataclass(frozen=True, slots=True)
class AppPhone:
    """A phone with the shopper app: registered with the server (which knows
    ``shopper_id`` and ``eid``), it advertises a rotating ephemeral id, on its
    own period and boundaries, from a new private address each period."""

    shopper_id: str
    eid: EidParams
    token: str | None = None  # the app's bearer token (for its offer inbox)

    @property
    def eid_key(self) -> bytes:
        return self.eid.key

    @property
    def rotation_s(self) -> int:
        return self.eid.rotation_s


@dataclass(frozen=True, slots=True)
class Leg:
    target: Point
    speed_mps: float
    pause_ms: int


@dataclass(slots=True)
class Shopper:
    id: str
    ephemeral_id: bytes
    phone_address: str  # private BLE address: seen by radios, never published; an app
    # phone draws a new one with each new ephemeral id, so the two change together
    position: Point
    legs: deque[Leg]
    next_advert_ms: int
    pause_left_ms: int = 0
    gone: bool = False
    planned_zones: list[str] = field(default_factory=list)
    app: AppPhone | None = None  # None: a phone without the app (a fixed anonymous id)
    phone_mode: PhoneMode = "advertise"  # issue 15: listen-only phones send no adverts

    def advance(self, dt_ms: int) -> None:
        """Move along the legs for dt_ms; mark gone when the last leg is done."""
        budget = dt_ms / 1000
        while budget > 1e-9 and not self.gone:
            if self.pause_left_ms > 0:
                used = min(self.pause_left_ms / 1000, budget)
                self.pause_left_ms -= round(used * 1000)
                budget -= used
                continue
            if not self.legs:
                self.gone = True
                return
            leg = self.legs[0]
            distance = math.dist(self.position, leg.target)
            reach = leg.speed_mps * budget
            if reach >= distance:
                self.position = leg.target
                budget -= distance / leg.speed_mps
                self.pause_left_ms = leg.pause_ms
                self.legs.popleft()
            else:
                f = reach / distance
                x, y = self.position
                self.position = (x + (leg.target[0] - x) * f, y + (leg.target[1] - y) * f)
                budget = 0


class TripPlanner:
    def __init__(self, store: StorePlan, behaviour: ShopperBehaviour, rng: random.Random) -> None:
        self.store = store
        self.behaviour = behaviour
        self.rng = rng
        entrances = store.entrances or [store.zones[0].id]
        self.entrance = entrances[0]
        self.street_edge = _street_edge(store, self.entrance)
        self.browsable = [
            z.id for z in store.zones if z.kind in (ZoneKind.SALES, ZoneKind.FITTING_ROOM)
        ]
        self.checkouts = [z.id for z in store.zones if z.kind is ZoneKind.CHECKOUT]

    def spawn_point(self) -> Point:
        (x1, y1), (x2, y2) = self.street_edge
        t = self.rng.uniform(0.2, 0.8)
        return (x1 + (x2 - x1) * t, y1 + (y2 - y1) * t)

    def plan(self, start: Point, elapsed_s: float = 0.0) -> tuple[deque[Leg], list[str]]:
        """``elapsed_s``: time since the run began, for the scenario's attraction changes."""
        b = self.behaviour
        lo, hi = b.zones_per_trip
        weights = [
            b.weight_of(
                z,
                b.fitting_room_weight if self.store.zone(z).kind is ZoneKind.FITTING_ROOM else 1.0,
                elapsed_s,
            )
            for z in self.browsable
        ]
        count = min(self.rng.randint(lo, hi), sum(1 for w in weights if w > 0))
        chosen: list[str] = []
        while len(chosen) < count:
            pick = self.rng.choices(self.browsable, weights)[0]
            if pick not in chosen:
                chosen.append(pick)
        if self.checkouts and self.rng.random() < b.checkout_probability:
            chosen.append(self.rng.choice(self.checkouts))
        legs: deque[Leg] = deque()
        here = self.entrance
        position = start
        legs.append(Leg(self._inside(here), b.walking_speed_mps, 0))
        for zone in chosen:
            position = self._walk(legs, here, zone)
            here = zone
            position = self._browse(legs, zone, position)
        self._walk(legs, here, self.entrance)
        legs.append(Leg(self.spawn_point(), b.walking_speed_mps, 0))
        return legs, chosen

    def _walk(self, legs: deque[Leg], origin: str, destination: str) -> Point:
        route = _route(self.store.adjacency, origin, destination)
        position = legs[-1].target if legs else self._inside(origin)
        for a, b in itertools.pairwise(route):
            (x1, y1), (x2, y2) = self.store.passages[(a, b)]
            length = math.dist((x1, y1), (x2, y2))
            margin = min(0.4, length / 4) / length
            t = self.rng.uniform(margin, 1 - margin)
            door = (x1 + (x2 - x1) * t, y1 + (y2 - y1) * t)
            legs.append(Leg(door, self.behaviour.walking_speed_mps, 0))
            # one step through the doorway, so the shopper is clearly inside
            position = self._inside(b, near=door)
            legs.append(Leg(position, self.behaviour.walking_speed_mps, 0))
        return position

    def _browse(self, legs: deque[Leg], zone: str, position: Point) -> Point:
        kind = self.store.zone(zone).kind
        mean = (
            self.behaviour.fitting_room_dwell_mean_s
            if kind is ZoneKind.FITTING_ROOM
            else self.behaviour.dwell_mean_s
        )
        remaining = self.rng.gammavariate(2.0, mean / 2.0)
        while remaining > 1:
            target = self._inside(zone)
            walk = math.dist(position, target) / self.behaviour.browsing_speed_mps
            pause = min(max(remaining - walk, 0.0), self.rng.uniform(5, 25))
            legs.append(Leg(target, self.behaviour.browsing_speed_mps, round(pause * 1000)))
            remaining -= walk + pause
            position = target
        return position

    def _inside(self, zone: str, near: Point | None = None) -> Point:
        polygon = self.store.zone(zone).polygon
        if near is None:
            return geometry.random_point_in(polygon, self.rng, margin=0.5)
        # a point 1 m into the zone from `near`, towards the zone's centroid
        cx, cy = geometry.centroid(polygon)
        d = math.dist(near, (cx, cy)) or 1.0
        step = min(1.0, d)
        p = (near[0] + (cx - near[0]) * step / d, near[1] + (cy - near[1]) * step / d)
        return p if geometry.contains(polygon, p) else (cx, cy)


def _route(adjacency: dict[str, list[str]], origin: str, destination: str) -> list[str]:
    """Fewest zones from origin to destination (breadth-first)."""
    previous: dict[str, str | None] = {origin: None}
    queue = deque([origin])
    while queue:
        zone = queue.popleft()
        if zone == destination:
            break
        for nxt in adjacency[zone]:
            if nxt not in previous:
                previous[nxt] = zone
                queue.append(nxt)
    if destination not in previous:
        raise ValueError(f"no passage leads from zone {origin!r} to {destination!r}")
    route = [destination]
    while (step := previous[route[-1]]) is not None:
        route.append(step)
    return route[::-1]


def _street_edge(store: StorePlan, entrance: str) -> tuple[Point, Point]:
    """The entrance's edge on the outer wall (where people come in from the street)."""
    floor = store.store.floor
    polygon = list(store.zone(entrance).polygon)
    for a, b in zip(polygon, polygon[1:] + polygon[:1], strict=True):
        for axis, bound in ((1, 0.0), (0, 0.0), (1, floor.depth_m), (0, floor.width_m)):
            if math.isclose(a[axis], bound) and math.isclose(b[axis], bound):
                return a, b
    c = geometry.centroid(polygon)
    return c, c
