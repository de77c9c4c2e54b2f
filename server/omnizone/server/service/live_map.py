"""The live floor: one snapshot per tick of who is where, without saying who.

A snapshot has the shoppers per zone (open stays) and one anonymous dot per
shopper. A dot's label is a keyed hash (BLAKE2b, a random key per server
process, 4 bytes) of the device: stable while the process runs so the page
can move a dot rather than redraw it, meaningless to anyone else, and new
after a restart. Its position is the localizer's expected position (the grid
filter's posterior mean) when it has one, else a point inside the zone drawn
from the label, so it stays put while the shopper stays in the zone.

A snapshot also says how old its data is: ``received_ms`` is when the
server last took in a BLE message of the store, and the snapshot is
``stale`` when that is longer ago than the store's device timeout (or never,
since this server started: the open stays it shows are what the last run
left). The page then says "stale" instead of "live".

Every dot is one open stay, so the zone counts are the dots counted by the
zone each is *counted in*; a dot's position can lie outside that zone (the
filter moved on before the visit state machine's exit grace let the stay
change), and ``outside`` counts those so the page can say so.

Building one costs a copy of the visit states and one matrix product: the
WebSocket layer builds one per tick per store and sends the same text to
every dashboard.
"""

import hashlib
import json
import random
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from omnizone.contract.timefmt import wall_clock_ms
from omnizone.store import StorePlan
from omnizone.store.geometry import contains, random_point_in

#: ingest's ``live``: (device -> zone of its open stay, device -> (x, y) estimate)
LiveSource = Callable[[str], tuple[dict[str, str], dict[str, tuple[float, float]]]]


@dataclass(frozen=True, slots=True)
class Dot:
    label: str
    x: float
    y: float
    zone: str
    estimated: bool
    """True: the localizer's position; False: a stand-in point inside the zone."""


@dataclass(frozen=True, slots=True)
class LiveSnapshot:
    store: str
    seq: int
    built_ms: int
    """Wall clock when built: the page measures its lag from here."""
    at_ms: int | None
    """The store's event time (the newest BLE window end)."""
    build_ms: float
    zones: dict[str, int]
    dots: list[Dot]
    received_ms: int | None = None
    """Wall clock of the newest BLE message taken in; None: none since start."""
    stale_after_ms: int = 30_000
    outside: int = 0
    """Dots drawn outside the zone they are counted in."""

    @property
    def data_age_ms(self) -> int | None:
        return None if self.received_ms is None else max(0, self.built_ms - self.received_ms)

    @property
    def stale(self) -> bool:
        age = self.data_age_ms
        return age is None or age > self.stale_after_ms

    def to_json(self) -> str:
        """Compact: a dot is [label, x, y, zone index, estimated 0/1]."""
        index = {zone: i for i, zone in enumerate(self.zones)}
        return json.dumps(
            {
                "type": "snapshot",
                "store": self.store,
                "seq": self.seq,
                "built_ms": self.built_ms,
                "at_ms": self.at_ms,
                "build_ms": round(self.build_ms, 3),
                "received_ms": self.received_ms,
                "data_age_ms": self.data_age_ms,
                "stale": self.stale,
                "stale_after_ms": self.stale_after_ms,
                "outside": self.outside,
                "zones": self.zones,
                "dots": [
                    [d.label, round(d.x, 2), round(d.y, 2), index[d.zone], int(d.estimated)]
                    for d in self.dots
                ],
            },
            separators=(",", ":"),
        )


class LiveMap:
    def __init__(
        self,
        stores: Mapping[str, StorePlan],
        source: LiveSource,
        event_time: Callable[[str], int | None],
        *,
        key: bytes | None = None,
        clock_ms: Callable[[], int] = wall_clock_ms,
        received_ms: Callable[[str], int | None] | None = None,
    ) -> None:
        """``received_ms``: ingest's ``last_received_ms`` (the same clock as
        ``clock_ms``); without it every snapshot is stale."""
        self._stores = stores  # the running plans (RunningStores in the server), not a copy
        self._source = source
        self._event_time = event_time
        self._key = key if key is not None else secrets.token_bytes(16)
        self._clock_ms = clock_ms
        self._received_ms = received_ms
        self._seq: dict[str, int] = {}
        self._stand_ins: dict[str, dict[tuple[str, str], tuple[float, float]]] = {}

    @property
    def stores(self) -> Mapping[str, StorePlan]:
        return self._stores

    def label(self, device: str) -> str:
        """The anonymous, per-process label of a device."""
        return hashlib.blake2b(device.encode(), key=self._key, digest_size=4).hexdigest()

    def snapshot(self, store: str) -> LiveSnapshot:
        started = time.perf_counter()
        plan = self._stores[store]
        stays, positions = self._source(store)
        zones = {zone.id: 0 for zone in plan.zones}
        previous = self._stand_ins.get(store, {})
        stand_ins: dict[tuple[str, str], tuple[float, float]] = {}
        dots = []
        outside = 0
        for device, zone in stays.items():
            if zone not in zones:  # a stay from before a layout change
                continue
            zones[zone] += 1
            label = self.label(device)
            xy = positions.get(device)
            if xy is not None:
                dots.append(Dot(label, xy[0], xy[1], zone, True))
                outside += not contains(plan.zone(zone).polygon, xy)
                continue
            key = (label, zone)
            point = previous.get(key) or self._stand_in(plan, label, zone)
            stand_ins[key] = point
            dots.append(Dot(label, point[0], point[1], zone, False))
        self._stand_ins[store] = stand_ins  # only the shoppers still here
        dots.sort(key=lambda d: d.label)  # no order that hints at arrival
        seq = self._seq.get(store, 0) + 1
        self._seq[store] = seq
        return LiveSnapshot(
            store=store,
            seq=seq,
            built_ms=self._clock_ms(),
            at_ms=self._event_time(store),
            build_ms=(time.perf_counter() - started) * 1000,
            zones=zones,
            dots=dots,
            received_ms=self._received_ms(store) if self._received_ms is not None else None,
            stale_after_ms=round(plan.store.visits.device_timeout_s * 1000),
            outside=outside,
        )

    @staticmethod
    def _stand_in(plan: StorePlan, label: str, zone: str) -> tuple[float, float]:
        rng = random.Random(f"{label}:{zone}")
        return random_point_in(plan.zone(zone).polygon, rng, margin=0.3)
