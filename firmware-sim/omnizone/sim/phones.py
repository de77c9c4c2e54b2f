"""Phones that listen (issue 15): the simulated shoppers' phones ranging the
store's fixed beacons and reporting them through the public API, as the
reference client (``omnizone.contract.phone_client``) does.

Phone-like on purpose: a listening phone hears every beacon advert through the
same radio model as the gateways (log-distance path loss, shadowing, loss),
averages a window's adverts, hands windows to its client, and the client's
batches reach the server only ``upload_delay_ms`` after they are cut. An app
may be suspended (``suspend_per_hour``): it then ranges and sends nothing
until the OS wakes it for the region exit, when it sends what it buffered and
the exit. A phone reports region entry when its shopper arrives and region
exit ``region_exit_delay_ms`` after the shopper left.
"""

import random
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from omnizone.contract.phone_client import PhoneBeaconClient, Post
from omnizone.sim.radio import receptions
from omnizone.sim.scenario import PhoneMode, Scenario
from omnizone.sim.shoppers import Shopper
from omnizone.store import StorePlan

#: The transport of one shopper's phone (None: this phone has no way to the server).
PhoneTransport = Callable[[Shopper], Post | None]


@dataclass(slots=True)
class _Phone:
    shopper: Shopper
    client: PhoneBeaconClient
    sums: dict[int, list[float]] = field(default_factory=dict)  # beacon index -> heard dBm
    send_at_ms: int | None = None
    suspended: bool = False
    exit_at_ms: int | None = None  # the OS noticed the exit at; None: still inside


@dataclass(slots=True)
class PhoneCounters:
    listening: int = 0
    windows: int = 0
    batches_sent: int = 0
    suspended: int = 0
    region_events: int = 0


def listens(mode: PhoneMode) -> bool:
    return mode in ("listen", "both")


def advertises(mode: PhoneMode) -> bool:
    return mode in ("advertise", "both")


class ListeningPhones:
    """Every listening phone of a simulation; ``Simulation`` drives it."""

    def __init__(
        self, scenario: Scenario, store: StorePlan, transport: PhoneTransport, start_ms: int
    ) -> None:
        self._behaviour = scenario.phones
        self._radio = scenario.radio
        self._store = store
        self._transport = transport
        self._window_ms = scenario.window_ms
        self._keys = [b.device for b in store.beacons]
        self._xy = np.array([b.position for b in store.beacons], dtype=np.float64).reshape(-1, 2)
        self._power = np.array([b.tx_power for b in store.beacons], dtype=np.float64)
        # streams of their own: the world's draws stay the same with or without listening
        self._rng = np.random.default_rng([scenario.seed, 0x115])
        self._delays = random.Random(f"{scenario.seed}:phone-uploads")
        self._phones: dict[str, _Phone] = {}
        self._next_advert_ms = start_ms
        self._window_start = start_ms - start_ms % self._window_ms
        self.counters = PhoneCounters()

    def arrive(self, shopper: Shopper, now: int) -> None:
        """A shopper walks in: a listening phone enters the store's region."""
        if not listens(shopper.phone_mode) or not self._keys:
            return
        post = self._transport(shopper)
        if post is None:
            return
        count = [0]

        def batch_id() -> str:
            count[0] += 1
            return f"{shopper.id}-{count[0]:06d}"

        client = PhoneBeaconClient(
            self._store.id, post, batch_windows=self._behaviour.batch_windows, new_id=batch_id
        )
        phone = _Phone(shopper, client)
        self._phones[shopper.id] = phone
        self.counters.listening += 1
        client.region("enter", now)
        self.counters.region_events += 1
        self._schedule(phone, now)

    def step(self, now: int) -> None:
        active = [
            p
            for p in self._phones.values()
            if not p.suspended and p.exit_at_ms is None and not p.shopper.gone
        ]
        if now >= self._next_advert_ms:  # every beacon advertises once
            self._next_advert_ms += self._behaviour.beacon_interval_ms
            self._hear(active)
        while now - self._window_start >= self._window_ms:
            self._close_window(active)
            self._window_start += self._window_ms
        for phone in list(self._phones.values()):
            if phone.shopper.gone and phone.exit_at_ms is None:
                phone.exit_at_ms = now + self._behaviour.region_exit_delay_ms
            if phone.exit_at_ms is not None and now >= phone.exit_at_ms:
                phone.suspended = False  # the OS wakes the app for the exit
                phone.client.cut()
                phone.client.region("exit", now - self._behaviour.region_exit_delay_ms)
                self.counters.region_events += 1
                phone.client.flush()
                del self._phones[phone.shopper.id]
                continue
            if not phone.suspended and phone.send_at_ms is not None and now >= phone.send_at_ms:
                phone.send_at_ms = None
                sent = phone.client.pending
                phone.client.flush()
                self.counters.batches_sent += sent - phone.client.pending
                self._schedule(phone, now)

    def _hear(self, active: list[_Phone]) -> None:
        if not active:
            return
        xy = np.array([p.shopper.position for p in active], dtype=np.float64)
        rssi, heard = receptions(xy, self._xy, self._radio, self._rng, self._power, None)
        for i, b in zip(*np.nonzero(heard), strict=True):
            active[i].sums.setdefault(int(b), []).append(float(round(float(rssi[i, b]))))

    def _close_window(self, active: list[_Phone]) -> None:
        suspend = self._behaviour.suspend_per_hour * self._window_ms / 3_600_000
        for phone in active:
            heard = {
                self._keys[b]: (round(sum(v) / len(v), 2), len(v)) for b, v in phone.sums.items()
            }
            phone.sums = {}
            phone.client.window(self._window_start, heard)
            self.counters.windows += 1
            self._schedule(phone, self._window_start + self._window_ms)
            if suspend > 0 and self._delays.random() < suspend:
                phone.suspended = True
                self.counters.suspended += 1

    def _schedule(self, phone: _Phone, now: int) -> None:
        if phone.send_at_ms is None and phone.client.pending:
            low, high = self._behaviour.upload_delay_ms
            phone.send_at_ms = now + self._delays.randint(low, max(low, high))
