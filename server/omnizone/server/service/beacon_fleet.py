"""The store's fixed beacons as the gateways hear them: last heard, signal,
battery, temperature and advertising count from Eddystone-TLM, and the
alerts of ``domain/beacons.py``.

Ingest hands over, after commit, every sighting of a store-file beacon
(``StorePlan.beacons``, matched by the key it advertises; never an address),
with the telemetry a gateway tied to it (``BleSighting.telemetry``); the
store's clock is ``clock`` (``IngestService.heard_span``: the first and the
newest window any of its gateways reported, whatever they heard). Kept in
memory: a restart starts the fleet view empty until the beacons are heard
again (about a second for the id, one TLM interval for the battery).
"""

import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from omnizone.contract import BeaconTelemetry, BleSighting
from omnizone.server.domain.beacons import BeaconAlert, BeaconRules, beacon_alerts, signal_drop_db
from omnizone.store import StorePlan

#: What the signal comparison looks back over, and readings kept per gateway.
HISTORY_MS = 30 * 60_000
MAX_PER_GATEWAY = 1800


@dataclass(frozen=True, slots=True)
class BeaconRow:
    """One beacon's row in the fleet view."""

    beacon: str
    device: str  # the id it advertises (iBeacon / Eddystone-UID key), never an address
    position: tuple[float, float]
    last_heard_ms: int | None
    silent_s: float | None  # store clock minus last heard
    gateways_hearing: int  # gateways that heard it in the last minute it was heard
    strongest_gateway: str | None
    rssi_dbm: float | None  # that gateway's latest window mean
    battery_mv: int | None
    temperature_c: float | None
    adv_count: int | None
    uptime_s: float | None
    telemetry_ms: int | None  # when its TLM was last heard
    drain_mv_per_day: float | None  # battery fall since first heard, when it fell
    drop_db: float | None  # recent signal against before (positive = quieter)
    alerts: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class BeaconFleetView:
    store: str
    clock_ms: int | None
    beacons: list[BeaconRow]
    alerts: list[BeaconAlert]


@dataclass(slots=True)
class _Beacon:
    heard: dict[str, deque[tuple[int, float]]] = field(default_factory=dict)
    last_heard_ms: int | None = None
    telemetry: BeaconTelemetry | None = None
    first_battery: tuple[int, int] | None = None  # (heard_ms, mV)


@dataclass(slots=True)
class _Store:
    plan: StorePlan
    by_device: dict[str, str]  # advertised key -> beacon id
    beacons: dict[str, _Beacon]
    watched_since_ms: int | None = None
    newest_ms: int = 0


class BeaconFleet:
    def __init__(
        self,
        stores: Mapping[str, StorePlan],
        *,
        rules: BeaconRules = BeaconRules(),
        clock: Callable[[str], tuple[int, int] | None] | None = None,
    ) -> None:
        """``clock(store)``: (first, newest) window the store's gateways
        reported; without it, the beacon sightings are the clock."""
        self.rules = rules
        self._clock = clock
        self._lock = threading.Lock()
        self._stores = {store: _state(plan, None) for store, plan in stores.items()}

    @property
    def stores(self) -> list[str]:
        return list(self._stores)

    def knows(self, store: str) -> bool:
        return store in self._stores

    def set_clock(self, clock: Callable[[str], tuple[int, int] | None]) -> None:
        self._clock = clock

    def replace_plan(self, plan: StorePlan) -> None:
        """A saved layout: beacons that kept their id and key keep their history."""
        with self._lock:
            self._stores[plan.id] = _state(plan, self._stores.get(plan.id))

    def observe(self, store: str, gateway: str, sightings: Sequence[BleSighting]) -> int:
        """Keep ``gateway``'s sightings of the store's fixed beacons; how many were."""
        with self._lock:
            state = self._stores.get(store)
            if state is None:
                return 0
            kept = 0
            for item in sightings:
                beacon = state.by_device.get(item.device)
                if beacon is None:
                    continue
                kept += 1
                at_ms = item.window_start_ms + item.window_ms
                entry = state.beacons[beacon]
                readings = entry.heard.setdefault(gateway, deque(maxlen=MAX_PER_GATEWAY))
                readings.append((at_ms, float(item.rssi_mean)))
                while readings and readings[0][0] < at_ms - HISTORY_MS:
                    readings.popleft()
                entry.last_heard_ms = max(entry.last_heard_ms or 0, at_ms)
                state.newest_ms = max(state.newest_ms, at_ms)
                if state.watched_since_ms is None:
                    state.watched_since_ms = at_ms
                tlm = item.telemetry
                if tlm is not None and (
                    entry.telemetry is None or tlm.heard_ms >= entry.telemetry.heard_ms
                ):
                    entry.telemetry = tlm
                    if tlm.battery_mv is not None and (
                        entry.first_battery is None
                        or tlm.battery_mv > entry.first_battery[1]  # a new cell
                    ):
                        entry.first_battery = (tlm.heard_ms, tlm.battery_mv)
            return kept

    def view(self, store: str) -> BeaconFleetView:
        with self._lock:
            state = self._stores[store]
            span = self._clock(store) if self._clock is not None else None
            clock = max(span[1], state.newest_ms) if span else state.newest_ms or None
            if span is not None:
                since = state.watched_since_ms
                state.watched_since_ms = span[0] if since is None else min(since, span[0])
            rows: list[BeaconRow] = []
            alerts: list[BeaconAlert] = []
            for beacon in state.plan.beacons:
                entry = state.beacons[beacon.id]
                row, standing = _row(
                    beacon.id,
                    beacon.device,
                    beacon.position,
                    entry,
                    clock,
                    state.watched_since_ms,
                    self.rules,
                )
                rows.append(row)
                alerts += standing
            return BeaconFleetView(store, clock, rows, alerts)


def _row(
    beacon: str,
    device: str,
    position: tuple[float, float],
    entry: _Beacon,
    clock: int | None,
    watched_since_ms: int | None,
    rules: BeaconRules,
) -> tuple[BeaconRow, list[BeaconAlert]]:
    last = entry.last_heard_ms
    recent_from = (clock if clock is not None else last or 0) - rules.recent_ms
    drop = signal_drop_db(entry.heard, recent_from, rules.min_samples)
    tlm = entry.telemetry
    alerts = beacon_alerts(
        beacon,
        now_ms=clock,
        last_heard_ms=last,
        watched_since_ms=watched_since_ms,
        battery_mv=tlm.battery_mv if tlm else None,
        drop_db=drop,
        rules=rules,
    )
    hearing: dict[str, float] = {}
    if last is not None:
        for gateway, readings in entry.heard.items():
            if readings and readings[-1][0] >= last - 60_000:
                hearing[gateway] = readings[-1][1]
    strongest = max(hearing, key=lambda g: hearing[g]) if hearing else None
    drain = None
    if tlm is not None and tlm.battery_mv is not None and entry.first_battery is not None:
        first_ms, first_mv = entry.first_battery
        days = (tlm.heard_ms - first_ms) / 86_400_000
        if days > 0 and first_mv > tlm.battery_mv:
            drain = round((first_mv - tlm.battery_mv) / days, 1)
    return (
        BeaconRow(
            beacon=beacon,
            device=device,
            position=position,
            last_heard_ms=last,
            silent_s=round((clock - last) / 1000, 1) if clock is not None and last else None,
            gateways_hearing=len(hearing),
            strongest_gateway=strongest,
            rssi_dbm=round(hearing[strongest], 2) if strongest else None,
            battery_mv=tlm.battery_mv if tlm else None,
            temperature_c=tlm.temperature_c if tlm else None,
            adv_count=tlm.adv_count if tlm else None,
            uptime_s=tlm.uptime_s if tlm else None,
            telemetry_ms=tlm.heard_ms if tlm else None,
            drain_mv_per_day=drain,
            drop_db=round(drop, 2) if drop is not None else None,
            alerts=tuple(a.kind for a in alerts),
        ),
        alerts,
    )


def _state(plan: StorePlan, before: _Store | None) -> _Store:
    kept = before.beacons if before is not None else {}
    old = {b.id: b.device for b in before.plan.beacons} if before is not None else {}
    beacons = {
        b.id: kept[b.id] if b.id in kept and old.get(b.id) == b.device else _Beacon()
        for b in plan.beacons
    }
    return _Store(
        plan=plan,
        by_device={b.device: b.id for b in plan.beacons},
        beacons=beacons,
        watched_since_ms=before.watched_since_ms if before is not None else None,
        newest_ms=before.newest_ms if before is not None else 0,
    )
