"""The simulation loop: arrivals, walking, advertising, gateways, ground truth.

Each heard advert goes to the real gateway code as a bleak BLEDevice and an
AdvertisementData parsed from the raw advertising bytes the phone would send,
so decode, aggregation and the outbox run exactly as on a Raspberry Pi.
"""

import hashlib
import json
import random
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TextIO

import numpy as np
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData

from omnizone.contract import datetime_to_ms
from omnizone.contract.ids import eddystone_uid_parts, eid_key, ibeacon_parts
from omnizone.gateway.ble.adstructures import (
    eddystone_eid_payload,
    eddystone_tlm_payload,
    eddystone_uid_payload,
    ibeacon_payload,
    parse_ad_structures,
)
from omnizone.sim.phones import ListeningPhones, PhoneTransport, advertises, listens
from omnizone.sim.radio import receptions
from omnizone.sim.scenario import FixedBeaconTruth, PhoneMode, Scenario, ScenarioError
from omnizone.sim.shoppers import AppPhone, Shopper, TripPlanner
from omnizone.sim.street import Street
from omnizone.store import StorePlan
from omnizone.store.model import Beacon


def static_address(name: str) -> str:
    """A fixed random-static-style address (top bits 11) derived from ``name``,
    as a gateway's adapter keeps; it never leaves the gateway that hears it."""
    digest = hashlib.sha256(name.encode()).digest()
    address = bytes([0xC0 | (digest[0] & 0x3F)]) + digest[1:6]
    return ":".join(f"{b:02X}" for b in address)


def private_address(rng: random.Random) -> str:
    """A random resolvable-private-style BLE address (top bits 01), as phones use."""
    address = bytes([0x40 | rng.getrandbits(6)]) + rng.getrandbits(40).to_bytes(5, "big")
    return ":".join(f"{b:02X}" for b in address)


class SimClock:
    """Simulated epoch milliseconds; the gateways read time from here."""

    def __init__(self, start_ms: int) -> None:
        self.now_ms = start_ms

    @classmethod
    def starting_at(cls, start: datetime) -> "SimClock":
        return cls(datetime_to_ms(start))

    def __call__(self) -> int:
        return self.now_ms


class AdvertisementSink(Protocol):
    """What the simulator needs of a gateway: bleak's callback and a clock tick."""

    def on_advertisement(self, device: BLEDevice, advertisement: AdvertisementData) -> None: ...
    def tick(self) -> None: ...


@dataclass(slots=True)
class SimCounters:
    shoppers_arrived: int = 0
    shoppers_left: int = 0
    adverts_sent: int = 0
    adverts_heard: int = 0
    gateway_beacons_heard: int = 0  # one gateway's own advert heard by another
    fixed_beacon_adverts: int = 0  # id and TLM frames sent by the store's fixed beacons
    fixed_beacons_heard: int = 0
    fixed_beacon_tlm_sent: int = 0


class Simulation:
    def __init__(
        self,
        scenario: Scenario,
        store: StorePlan,
        gateways: Mapping[str, AdvertisementSink],
        clock: SimClock | None = None,
        ground_truth: TextIO | None = None,
        observers: Sequence[Callable[["Simulation"], None]] = (),
        app_phones: Sequence[AppPhone] = (),
        arrivals: Sequence[Callable[[Shopper], None]] = (),
        phone_transport: PhoneTransport | None = None,
    ) -> None:
        """``app_phones``: phones registered with the server; the first shoppers
        to arrive carry them (and advertise their rotating ids), later ones
        carry phones without the app. ``arrivals`` are told of each new shopper.
        ``phone_transport``: how a listening phone reaches the server (the
        public API, or a direct hand-off in evaluations); each shopper's phone
        mode is drawn from ``scenario.phones.modes`` (issue 15)."""
        self.scenario = scenario
        self.store = store
        self.clock = clock or SimClock.starting_at(scenario.start)
        self.start_ms = self.clock.now_ms
        self.end_ms = self.start_ms + round(scenario.duration_s * 1000)
        self.ground_truth = ground_truth
        self.observers = list(observers)  # emulated hardware reacting to shoppers
        self.counters = SimCounters()
        self.shoppers: list[Shopper] = []
        self._rng = random.Random(scenario.seed)
        # A stream of its own: app phones' new addresses leave the world's draws unchanged.
        self._address_rng = random.Random(f"{scenario.seed}:ble-addresses")
        self._np_rng = np.random.default_rng(scenario.seed)
        self._planner = TripPlanner(store, scenario.shoppers, self._rng)
        self._gateway_ids = [g.id for g in store.gateways if g.ble and g.id in gateways]
        self._sinks = [gateways[g] for g in self._gateway_ids]
        positions = {g.id: g.position for g in store.gateways}
        self._gateway_xy = np.array([positions[g] for g in self._gateway_ids], dtype=np.float64)
        unknown = sorted(set(scenario.radio.gateways) - {g.id for g in store.gateways})
        if unknown:
            raise ScenarioError(f"radio.gateways.{unknown[0]}: not a gateway of store {store.id!r}")
        browsable = set(self._planner.browsable)
        for k, change in enumerate(scenario.shoppers.attraction):
            if change.zone not in browsable:
                raise ScenarioError(
                    f"shoppers.attraction.{k}.zone: {change.zone!r} is not a sales zone or"
                    f" fitting room of store {store.id!r} ({', '.join(sorted(browsable))})"
                )
        # Each receiving gateway's hidden true radio (the server must fit it).
        self._power, self._exponent = scenario.radio.per_gateway(self._gateway_ids)
        # The gateways' own adverts draw from a stream of their own, so a
        # scenario's shoppers hear the same world with or without them.
        self._beacon_rng = np.random.default_rng([scenario.seed, 0xBEAC])
        gateway_of = {g.id: g for g in store.gateways}
        self._beacon_payloads = [
            eddystone_uid_payload(*eddystone_uid_parts(store.gateway_beacon(gateway_of[g])), -20)
            for g in self._gateway_ids
        ]
        self._beacon_addresses = [static_address(f"{store.id}:{g}") for g in self._gateway_ids]
        self._next_beacon_ms = self.start_ms
        self._fixed = [
            _FixedBeacon.of(b, store.id, scenario.fixed_beacons.beacons.get(b.id))
            for b in store.beacons
            if _id_frame(b) is not None
        ]
        unknown_beacons = sorted(
            set(scenario.fixed_beacons.beacons) - {b.id for b in store.beacons}
        )
        if unknown_beacons:
            raise ScenarioError(
                f"fixed_beacons.beacons.{unknown_beacons[0]}: not a beacon of store {store.id!r}"
            )
        self._fixed_rng = np.random.default_rng([scenario.seed, 0xF1BE])
        self._next_fixed_ms = self.start_ms
        self._payloads: dict[str, bytes] = {}
        self._advertised: dict[str, bytes] = {}  # shopper -> ephemeral id in the payload
        self._app_phones = list(reversed(app_phones))
        # A stream of its own: the phones' modes leave the world's draws unchanged.
        self._mode_rng = random.Random(f"{scenario.seed}:phone-modes")
        modes = scenario.phones.modes
        self._modes: list[PhoneMode] = [m for m, share in modes.items() if share > 0]
        self._mode_weights = [modes[m] for m in self._modes]
        self.listening = (
            ListeningPhones(scenario, store, phone_transport, self.start_ms)
            if phone_transport is not None and any(listens(m) for m in self._modes)
            else None
        )
        self.arrivals = list(arrivals)
        self._next_arrival_ms = self.start_ms + self._arrival_gap_ms()
        self._next_truth_ms = self.start_ms
        # Passers-by at the street front, and the truth of who passed and who came in.
        self.street = Street(
            scenario, store, self._planner.street_edge, self.start_ms, private_address
        )
        self._hear_calls = [s.on_advertisement for s in self._sinks]
        for _ in range(scenario.shoppers.initial_shoppers):
            self._arrive()

    @property
    def finished(self) -> bool:
        return self.clock.now_ms >= self.end_ms

    def step(self) -> None:
        tick = self.scenario.tick_ms
        self.clock.now_ms += tick
        now = self.clock.now_ms
        while self._next_arrival_ms <= now and now < self.end_ms:
            self._arrive()
            self._next_arrival_ms += self._arrival_gap_ms()
        for shopper in self.shoppers:
            shopper.advance(tick)
        for shopper in self.shoppers:
            if shopper.gone:
                self.counters.shoppers_left += 1
                self._payloads.pop(shopper.id, None)
                self._advertised.pop(shopper.id, None)
        self.shoppers = [s for s in self.shoppers if not s.gone]
        self._advertise(now)
        if self.scenario.street.passers_by_per_minute > 0:
            self.street.step(
                now, self.end_ms, self._gateway_xy, self._power, self._exponent, self._hear_calls
            )
        self._advertise_gateways(now)
        self._advertise_fixed_beacons(now)

        if self.listening is not None:
            self.listening.step(now)
        for observe in self.observers:
            observe(self)
        for sink in self._sinks:
            sink.tick()
        if now >= self._next_truth_ms:
            self._write_truth(now)
            self._next_truth_ms += self.scenario.ground_truth_interval_ms

    def run(self, on_step: Callable[["Simulation"], None] | None = None) -> None:
        while not self.finished:
            self.step()
            if on_step is not None:
                on_step(self)

    def close_windows(self) -> None:
        """Let the gateways close their last aggregation window."""
        self.clock.now_ms += self.scenario.window_ms
        for sink in self._sinks:
            sink.tick()

    def add_walker(self, app: AppPhone, position: tuple[float, float]) -> Shopper:
        """A person the caller steers (a guided survey's staff phone): no
        planned trip, legs given by the caller, advertising like any app phone."""
        self.counters.shoppers_arrived += 1
        ephemeral = app.eid.eid(self.clock.now_ms)
        walker = Shopper(
            id=f"walker-{self.counters.shoppers_arrived:05d}",
            ephemeral_id=ephemeral,
            phone_address=private_address(self._address_rng),
            position=position,
            legs=deque(),
            next_advert_ms=self.clock.now_ms,
            app=app,
        )
        self._payloads[walker.id] = eddystone_eid_payload(ephemeral, -20)
        self._advertised[walker.id] = ephemeral
        self.shoppers.append(walker)
        return walker

    def device_of(self, shopper: Shopper) -> str:
        """The device as the server knows it: the registered app's shopper id,
        or the fixed ephemeral id of a phone without the app."""
        if shopper.app is not None:
            return shopper.app.shopper_id
        return eid_key(shopper.ephemeral_id)

    # -- internals --------------------------------------------------------------

    def _arrival_gap_ms(self) -> int:
        rate = self.scenario.shoppers.arrivals_per_minute
        if rate <= 0:
            return 10**15
        return max(1, round(self._rng.expovariate(rate / 60_000)))

    def _arrive(self) -> None:
        behaviour = self.scenario.shoppers
        if len(self.shoppers) >= behaviour.max_shoppers:
            return
        self.counters.shoppers_arrived += 1
        number = self.counters.shoppers_arrived
        start = self._planner.spawn_point()
        legs, zones = self._planner.plan(start, (self.clock.now_ms - self.start_ms) / 1000)
        ephemeral = self._rng.getrandbits(64).to_bytes(8, "big")
        shopper = Shopper(
            id=f"shopper-{number:05d}",
            ephemeral_id=ephemeral,
            phone_address=private_address(self._rng),
            position=start,
            legs=legs,
            next_advert_ms=self.clock.now_ms + self._rng.randrange(behaviour.advert_interval_ms),
            planned_zones=zones,
            app=self._app_phones.pop() if self._app_phones else None,
        )
        self._payloads[shopper.id] = eddystone_eid_payload(ephemeral, -20)
        self._advertised[shopper.id] = ephemeral
        if self._modes:
            shopper.phone_mode = self._mode_rng.choices(self._modes, self._mode_weights)[0]
        self.shoppers.append(shopper)
        self.street.entered(self.clock.now_ms)
        if self.listening is not None:
            self.listening.arrive(shopper, self.clock.now_ms)
        for tell in self.arrivals:
            tell(shopper)

    def _advertise(self, now: int) -> None:
        interval = self.scenario.shoppers.advert_interval_ms
        sending = [s for s in self.shoppers if s.next_advert_ms <= now]
        if not sending or not self._sinks:
            return
        for shopper in sending:
            # BLE adds a 0-10 ms random delay to every advertising event.
            shopper.next_advert_ms += interval + self._rng.randrange(11)
        # A listen-only phone (a backgrounded iPhone) sends nothing a gateway
        # can identify; it is drawn all the same, so the world stays the same.
        xy_all = np.array([s.position for s in sending], dtype=np.float64)
        quiet = [not advertises(s.phone_mode) for s in sending]
        rssi, heard = receptions(
            xy_all, self._gateway_xy, self.scenario.radio, self._np_rng, self._power, self._exponent
        )
        if any(quiet):
            heard[np.array(quiet, dtype=bool)] = False
        self.counters.adverts_sent += len(sending)
        for shopper in sending:
            if shopper.app is not None:
                self._rotate(shopper, now)
        for i, g in zip(*np.nonzero(heard), strict=True):
            shopper = sending[i]
            device = BLEDevice(shopper.phone_address, None, None)
            advert = parse_ad_structures(self._payloads[shopper.id], round(float(rssi[i, g])))
            self._sinks[g].on_advertisement(device, advert)
            self.counters.adverts_heard += 1

    def _advertise_gateways(self, now: int) -> None:
        """Every gateway's own adapter advertises its fixed beacon; the others
        hear it through their hidden true radio, like a phone's advert."""
        interval = self.scenario.radio.gateway_beacon_interval_ms
        if interval <= 0 or len(self._sinks) < 2 or now < self._next_beacon_ms:
            return
        self._next_beacon_ms += interval
        rssi, heard = receptions(
            self._gateway_xy,
            self._gateway_xy,
            self.scenario.radio,
            self._beacon_rng,
            self._power,
            self._exponent,
        )
        np.fill_diagonal(heard, False)  # an adapter does not hear itself
        for sender, receiver in zip(*np.nonzero(heard), strict=True):
            device = BLEDevice(self._beacon_addresses[sender], None, None)
            advert = parse_ad_structures(
                self._beacon_payloads[sender], round(float(rssi[sender, receiver]))
            )
            self._sinks[receiver].on_advertisement(device, advert)
            self.counters.gateway_beacons_heard += 1

    def fixed_beacon_state(self, beacon: str) -> dict[str, float | int | bool | None]:
        """A fixed beacon's hidden truth now (tests compare the server with it)."""
        for fixed in self._fixed:
            if fixed.beacon.id == beacon:
                return {
                    "battery_mv": fixed.battery_mv(self.clock.now_ms - self.start_ms),
                    "adv_count": fixed.adv_count,
                    "alive": self._alive(fixed, self.clock.now_ms),
                }
        raise KeyError(beacon)

    def _alive(self, fixed: "_FixedBeacon", now: int) -> bool:
        elapsed = now - self.start_ms
        if fixed.truth.dies_at_s is not None and elapsed >= fixed.truth.dies_at_s * 1000:
            return False
        battery = fixed.battery_mv(elapsed)
        return battery is None or battery >= self.scenario.fixed_beacons.dead_below_mv

    def _advertise_fixed_beacons(self, now: int) -> None:
        """The store's fixed beacons: the id frame, and every ``tlm_every``-th
        advert their Eddystone-TLM from the same address, heard through each
        gateway's hidden radio with the beacon's own offset."""
        settings = self.scenario.fixed_beacons
        if settings.interval_ms <= 0 or not self._fixed or not self._sinks:
            return
        if now < self._next_fixed_ms:
            return
        self._next_fixed_ms += settings.interval_ms
        elapsed = now - self.start_ms
        for fixed in self._fixed:
            if not self._alive(fixed, now):
                continue
            fixed.adv_count += 1
            if fixed.adv_count % settings.tlm_every == 0:
                payload = eddystone_tlm_payload(
                    fixed.battery_mv(elapsed),
                    fixed.truth.temperature_c,
                    fixed.adv_count,
                    elapsed / 1000 + fixed.uptime_at_start_s,
                )
                self.counters.fixed_beacon_tlm_sent += 1
            else:
                payload = fixed.id_frame
            self.counters.fixed_beacon_adverts += 1
            rssi, heard = receptions(
                np.array([fixed.beacon.position], dtype=np.float64),
                self._gateway_xy,
                self.scenario.radio,
                self._fixed_rng,
                self._power + fixed.truth.power_offset_db,
                self._exponent,
            )
            device = BLEDevice(fixed.address, None, None)
            for g in np.nonzero(heard[0])[0]:
                advert = parse_ad_structures(payload, round(float(rssi[0, g])))
                self._sinks[g].on_advertisement(device, advert)
                self.counters.fixed_beacons_heard += 1

    def _rotate(self, shopper: Shopper, now: int) -> None:
        """An app phone advertises the ephemeral id of its current period, and
        with each new id a new private address: an observer who could follow
        the address across the change would link the two ids (Eddystone-EID
        asks beacons to rotate their address with the id)."""
        assert shopper.app is not None
        ephemeral = shopper.app.eid.eid(now)
        if self._advertised.get(shopper.id) != ephemeral:
            self._advertised[shopper.id] = ephemeral
            self._payloads[shopper.id] = eddystone_eid_payload(ephemeral, -20)
            shopper.phone_address = private_address(self._address_rng)

    def _write_truth(self, now: int) -> None:
        if self.ground_truth is None:
            return
        for shopper in self.shoppers:
            x, y = shopper.position
            self.ground_truth.write(
                json.dumps(
                    {
                        "t_ms": now,
                        "shopper": shopper.id,
                        "device": self.device_of(shopper),
                        "zone": self.store.zone_at(shopper.position),
                        "x": round(x, 2),
                        "y": round(y, 2),
                    }
                )
                + "\n"
            )


def _id_frame(beacon: Beacon) -> bytes | None:
    """The advertising payload of a fixed beacon's id frame (iBeacon or
    Eddystone-UID; other kinds are not simulated)."""
    kind = beacon.device.split(":", 1)[0]
    if kind == "ibeacon":
        return ibeacon_payload(*ibeacon_parts(beacon.device), beacon.tx_power)
    if kind == "eddystone-uid":
        namespace, instance = eddystone_uid_parts(beacon.device)
        return eddystone_uid_payload(namespace, instance, max(-127, beacon.tx_power + 41))
    return None


@dataclass(slots=True)
class _FixedBeacon:
    beacon: Beacon
    truth: FixedBeaconTruth
    address: str
    id_frame: bytes
    adv_count: int = 0
    uptime_at_start_s: float = 86_400.0  # installed a day before the simulation starts

    @classmethod
    def of(cls, beacon: Beacon, store: str, truth: FixedBeaconTruth | None) -> "_FixedBeacon":
        frame = _id_frame(beacon)
        assert frame is not None
        return cls(
            beacon,
            truth or FixedBeaconTruth(),
            static_address(f"{store}:beacon:{beacon.id}"),
            frame,
        )

    def battery_mv(self, elapsed_ms: int) -> int | None:
        if self.truth.battery_mv == 0:
            return None  # mains powered
        drained = self.truth.drain_mv_per_hour * elapsed_ms / 3_600_000
        return max(0, round(self.truth.battery_mv - drained))
