"""Passers-by (issue 18, point 4): people walking past the store front who
never come in, with the ground truth of how many passed and how many came
in per store-local hour. ``Simulation`` drives it when the scenario's
``street.passers_by_per_minute`` is above 0.

Their draws come from streams of their own, so a scenario's shoppers hear
the same world with or without them.
"""

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from numpy.typing import NDArray

from omnizone.contract.ids import eid_key
from omnizone.gateway.ble.adstructures import eddystone_eid_payload, parse_ad_structures
from omnizone.sim.radio import receptions
from omnizone.sim.scenario import Scenario
from omnizone.store import StorePlan
from omnizone.store.geometry import Point

HOUR_MS = 3_600_000

Sink = Callable[[BLEDevice, AdvertisementData], None]


@dataclass(slots=True)
class _Passer:
    start: Point
    direction: Point  # unit vector along the street
    length_m: float
    speed_mps: float
    started_ms: int
    payload: bytes
    address: str
    next_advert_ms: int
    last_hour: int | None = None  # the latest hour it was counted in (truth)

    def walked_m(self, now_ms: int) -> float:
        return (now_ms - self.started_ms) / 1000 * self.speed_mps

    def position(self, now_ms: int) -> Point:
        d = min(self.walked_m(now_ms), self.length_m)
        return (self.start[0] + self.direction[0] * d, self.start[1] + self.direction[1] * d)


@dataclass(frozen=True, slots=True)
class StreetHour:
    """Ground truth of one store-local hour at the street front."""

    hour_ms: int
    passed: int  # passers-by walking along the street front during the hour (never entered)
    entered: int  # shoppers who came in from the street in the hour


class Street:
    def __init__(
        self,
        scenario: Scenario,
        store: StorePlan,
        street_edge: tuple[Point, Point],
        start_ms: int,
        address: Callable[[random.Random], str],
    ) -> None:
        self._behaviour = scenario.street
        self._radio = scenario.radio
        self._advert_interval_ms = scenario.shoppers.advert_interval_ms
        self._rng = random.Random(f"{scenario.seed}:passers-by")
        self._np_rng = np.random.default_rng([scenario.seed, 0x57EE7])
        self._address = address
        self._zone = ZoneInfo(store.store.timezone)
        (x1, y1), (x2, y2) = street_edge
        length = math.dist(street_edge[0], street_edge[1]) or 1.0
        ux, uy = (x2 - x1) / length, (y2 - y1) / length
        mid = ((x1 + x2) / 2, (y1 + y2) / 2)
        floor = store.store.floor
        # the normal pointing away from the floor's middle: the street side
        nx, ny = -uy, ux
        if (floor.width_m / 2 - mid[0]) * nx + (floor.depth_m / 2 - mid[1]) * ny > 0:
            nx, ny = -nx, -ny
        half = max(floor.width_m, floor.depth_m) + self._behaviour.beyond_m
        pavement = self._behaviour.pavement_m
        self._a = (mid[0] - ux * half + nx * pavement, mid[1] - uy * half + ny * pavement)
        self._b = (mid[0] + ux * half + nx * pavement, mid[1] + uy * half + ny * pavement)
        self._walking: list[_Passer] = []
        self._passed: dict[int, int] = {}
        self._entered: dict[int, int] = {}
        rate = self._behaviour.passers_by_per_minute
        self._next_ms = start_ms + self._gap_ms() if rate > 0 else None
        self.adverts_heard = 0
        self.passers_by = 0
        #: The device key each passer-by's phone advertised (truth: the server
        #: must never store one of these).
        self.advertised: list[str] = []

    @property
    def walking(self) -> int:
        return len(self._walking)

    def entered(self, at_ms: int) -> None:
        """A shopper came in from the street (the simulation's arrivals)."""
        hour = self.hour_of(at_ms)
        self._entered[hour] = self._entered.get(hour, 0) + 1

    def truth(self) -> list[StreetHour]:
        hours = sorted(set(self._passed) | set(self._entered))
        return [StreetHour(h, self._passed.get(h, 0), self._entered.get(h, 0)) for h in hours]

    def hour_of(self, at_ms: int) -> int:
        offset = datetime.fromtimestamp(at_ms / 1000, self._zone).utcoffset()
        off = 0 if offset is None else round(offset.total_seconds() * 1000)
        return (at_ms + off) // HOUR_MS * HOUR_MS - off

    def step(
        self,
        now_ms: int,
        end_ms: int,
        gateways_xy: NDArray[np.float64],
        power: NDArray[np.float64],
        exponent: NDArray[np.float64],
        sinks: Sequence[Sink],
    ) -> None:
        while self._next_ms is not None and self._next_ms <= now_ms and now_ms < end_ms:
            self._arrive(self._next_ms)
            self._next_ms += self._gap_ms()
        self._walking = [p for p in self._walking if p.walked_m(now_ms) < p.length_m]
        hour = self.hour_of(now_ms)
        for p in self._walking:  # one walking across an hour's edge is in both hours
            if p.last_hour != hour:
                p.last_hour = hour
                self._passed[hour] = self._passed.get(hour, 0) + 1
        sending = [p for p in self._walking if p.next_advert_ms <= now_ms]
        if not sending or not sinks:
            return
        for p in sending:
            p.next_advert_ms += self._advert_interval_ms + self._rng.randrange(11)
        xy = np.array([p.position(now_ms) for p in sending], dtype=np.float64)
        rssi, heard = receptions(xy, gateways_xy, self._radio, self._np_rng, power, exponent)
        for i, g in zip(*np.nonzero(heard), strict=True):
            p = sending[i]
            advert = parse_ad_structures(p.payload, round(float(rssi[i, g])))
            sinks[g](BLEDevice(p.address, None, None), advert)
            self.adverts_heard += 1

    def _gap_ms(self) -> int:
        return max(1, round(self._rng.expovariate(self._behaviour.passers_by_per_minute / 60_000)))

    def _arrive(self, at_ms: int) -> None:
        forward = self._rng.random() < 0.5
        start, end = (self._a, self._b) if forward else (self._b, self._a)
        length = math.dist(start, end)
        direction = ((end[0] - start[0]) / length, (end[1] - start[1]) / length)
        speed = self._behaviour.walking_speed_mps * self._rng.uniform(0.8, 1.2)
        ephemeral = self._rng.getrandbits(64).to_bytes(8, "big")
        self._walking.append(
            _Passer(
                start=start,
                direction=direction,
                length_m=length,
                speed_mps=speed,
                started_ms=at_ms,
                payload=eddystone_eid_payload(ephemeral, -20),
                address=self._address(self._rng),
                next_advert_ms=at_ms + self._rng.randrange(self._advert_interval_ms),
            )
        )
        self.passers_by += 1
        self.advertised.append(eid_key(ephemeral))
