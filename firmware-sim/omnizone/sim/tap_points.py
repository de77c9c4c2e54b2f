"""NFC tap points in the simulator: each tap point of the store file gets an
emulated card on nfcpy's own UDP link, read by the real gateway NFC driver.
A shopper who enters the tap point's zone may hold their phone to it.

Taps happen in real time on the link (presenting a card takes a few hundred
milliseconds), so they run on one worker thread per tap point and the store
should run paced; a tap point busy with one shopper skips the next.
"""

import json
import queue
import random
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TextIO

from omnizone.gateway.nfc.reader import NfcReader
from omnizone.gateway.nfc.settings import NfcReaderSettings
from omnizone.gateway.node import GatewayNode
from omnizone.sim.devices.nfc_tag import EmulatedType3Tag, NfcTagEmulator, random_phone_uid
from omnizone.sim.engine import Simulation
from omnizone.store import StorePlan

# A shopper holds the phone to the reader until it beeps (the driver has read
# it), giving up after this long in real time.
MAX_HOLD_S = 5.0


@dataclass
class _TapPoint:
    zone: str
    emulator: NfcTagEmulator
    reader: NfcReader
    requests: "queue.SimpleQueue[tuple[str, bytes] | None]" = field(
        default_factory=queue.SimpleQueue
    )
    busy: threading.Event = field(default_factory=threading.Event)
    seen: set[str] = field(default_factory=set)  # shoppers in the zone now
    worker: threading.Thread | None = None


class TapPoints:
    def __init__(
        self,
        store: StorePlan,
        nodes: Mapping[str, GatewayNode],
        *,
        tap_probability: float = 0.5,
        seed: int = 0,
        taps: TextIO | None = None,
    ) -> None:
        self._rng = random.Random(seed)
        self._probability = tap_probability
        self._log = taps
        self._log_lock = threading.Lock()
        self.points: dict[str, _TapPoint] = {}
        for point in store.nfc_tap_points:
            if point.gateway not in nodes:
                continue
            emulator = NfcTagEmulator()
            settings = NfcReaderSettings(tap_point=point.id, device=emulator.device)
            self.points[point.id] = _TapPoint(
                point.zone, emulator, NfcReader(nodes[point.gateway], settings)
            )

    def start(self) -> None:
        for point_id, point in self.points.items():
            point.reader.start()
            point.worker = threading.Thread(
                target=self._serve, args=(point_id, point), name=f"taps-{point_id}", daemon=True
            )
            point.worker.start()

    def stop(self) -> None:
        for point in self.points.values():
            point.requests.put(None)
        for point in self.points.values():
            if point.worker is not None:
                point.worker.join(timeout=10)
            point.reader.stop()
            point.emulator.close()

    def observe(self, simulation: Simulation) -> None:
        """After each step: shoppers who just walked into a tap point's zone may tap."""
        for point_id, point in self.points.items():
            here = {
                s.id
                for s in simulation.shoppers
                if simulation.store.zone_at(s.position) == point.zone
            }
            for shopper in sorted(here - point.seen):
                if self._rng.random() < self._probability and not point.busy.is_set():
                    point.busy.set()
                    uid = random_phone_uid()
                    point.requests.put((shopper, uid))
                    self._record(simulation.clock.now_ms, shopper, point_id, uid)
            point.seen = here

    def _serve(self, point_id: str, point: _TapPoint) -> None:
        while (request := point.requests.get()) is not None:
            _shopper, uid = request
            try:
                before = point.reader.counters()["reads"]
                point.emulator.present(EmulatedType3Tag(uid))
                deadline = time.monotonic() + MAX_HOLD_S
                while point.reader.counters()["reads"] == before and time.monotonic() < deadline:
                    time.sleep(0.01)
                point.emulator.remove()
            finally:
                point.busy.clear()

    def _record(self, t_ms: int, shopper: str, point: str, uid: bytes) -> None:
        if self._log is None:
            return
        with self._log_lock:
            row = {"t_ms": t_ms, "shopper": shopper, "tap_point": point, "uid": uid.hex()}
            self._log.write(json.dumps(row) + "\n")
