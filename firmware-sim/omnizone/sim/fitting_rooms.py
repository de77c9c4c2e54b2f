"""Fitting rooms in the simulator: each RFID reader of the store file becomes an
emulated UHF reader on a pseudo-terminal, read by the real gateway driver of
its gateway. Shoppers who enter a fitting room bring garments (SGTIN-96 tags)
into the reader's field and take them out again when they leave.

The driver runs in real time against the pty while timestamps come from the
simulated clock, so run the simulation paced (a few times real time at most)
when try-ons matter.
"""

import json
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TextIO

from omnizone.gateway.node import GatewayNode
from omnizone.gateway.rfid.epc import encode_sgtin96, sgtin_from_gtin
from omnizone.gateway.rfid.reader import RfidReader
from omnizone.gateway.rfid.settings import RfidReaderSettings
from omnizone.sim.devices.uhf_reader import EmulatedUhfReader, SerialNoise
from omnizone.sim.engine import Simulation
from omnizone.store import StorePlan

# (GTIN, company prefix length): a small catalogue of what hangs in the store.
CATALOGUE: tuple[tuple[str, int], ...] = (
    ("80614141123458", 7),
    ("09506000134352", 7),
    ("00614141999996", 7),
    ("04012345123456", 7),
    ("05012345678900", 7),
)


@dataclass
class _Room:
    zone: str
    gateway: str
    emulator: EmulatedUhfReader
    driver: RfidReader
    inside: dict[str, list[str]] = field(default_factory=dict)  # shopper -> epcs (hex)


# Faster than this, the driver's real-time inventory rounds are too sparse in
# simulated time for the fitting-room rules.
MAX_SPEED = 20.0


def fitting_rooms_possible(speed: float | None) -> bool:
    return speed is not None and speed <= MAX_SPEED


class FittingRooms:
    def __init__(
        self,
        store: StorePlan,
        nodes: Mapping[str, GatewayNode],
        *,
        seed: int = 0,
        noise: SerialNoise = SerialNoise(),
        try_ons: TextIO | None = None,
        settings_overrides: Mapping[str, object] | None = None,
    ) -> None:
        self._rng = random.Random(seed)
        self._serial = 1000
        self._log = try_ons
        self.rooms: dict[str, _Room] = {}
        for reader in store.rfid_readers:
            if reader.gateway not in nodes:
                continue
            emulator = EmulatedUhfReader(noise=noise, seed=seed, round_s=0.005)
            settings = RfidReaderSettings(
                id=reader.id,
                port="/dev/null",  # replaced by the pty once the emulator runs
                antennas=list(range(1, reader.antennas + 1)),
                **dict(settings_overrides or {}),
            )
            self.rooms[reader.id] = _Room(
                reader.zone, reader.gateway, emulator, RfidReader(settings, nodes[reader.gateway])
            )

    def start(self) -> None:
        for room in self.rooms.values():
            room.emulator.start()
            room.driver.settings = room.driver.settings.model_copy(
                update={"port": room.emulator.port}
            )
            room.driver.start()

    def stop(self) -> None:
        for room in self.rooms.values():
            room.driver.stop()
            room.emulator.stop()

    def observe(self, simulation: Simulation) -> None:
        """After each step: garments follow their shoppers in and out."""
        for reader_id, room in self.rooms.items():
            present = {
                s.id
                for s in simulation.shoppers
                if simulation.store.zone_at(s.position) == room.zone
            }
            for shopper in present - room.inside.keys():
                epcs = [self._garment() for _ in range(self._rng.randint(1, 3))]
                room.inside[shopper] = epcs
                for epc in epcs:
                    room.emulator.put_tag(epc, rssi_dbm=self._rng.uniform(-62, -48))
                self._record(simulation, shopper, reader_id, "arrived", epcs)
            for shopper in room.inside.keys() - present:
                epcs = room.inside.pop(shopper)
                for epc in epcs:
                    room.emulator.remove_tag(epc)
                self._record(simulation, shopper, reader_id, "departed", epcs)

    def _garment(self) -> str:
        gtin, prefix_length = self._rng.choice(CATALOGUE)
        self._serial += 1
        return encode_sgtin96(sgtin_from_gtin(gtin, prefix_length, self._serial)).hex()

    def _record(
        self, simulation: Simulation, shopper: str, reader: str, event: str, epcs: list[str]
    ) -> None:
        if self._log is None:
            return
        for epc in epcs:
            row = {
                "t_ms": simulation.clock.now_ms,
                "shopper": shopper,
                "reader": reader,
                "event": event,
                "epc": epc,
            }
            self._log.write(json.dumps(row) + "\n")
