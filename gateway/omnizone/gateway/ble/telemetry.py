"""Tie a fixed beacon's Eddystone-TLM frames to the beacon they describe.

A TLM frame names no beacon: a beacon interleaves it with its id frame
(Eddystone-UID, iBeacon or AltBeacon), and the only thing the two frames
share is the advertiser's address. So the gateway remembers, in memory only,
which id each recently heard beacon address advertised, and looks the TLM
frame's address up there. The address itself is never kept: only a keyed
BLAKE2b digest of it, with a key drawn at random when the gateway starts, so
the table cannot be matched against addresses seen elsewhere, and it is gone
at the next start. Rotating shopper ids (Eddystone-EID) are never entered:
a phone's address is never linked to anything. What leaves the gateway is
the beacon's configured id with its telemetry (docs/ble.md).
"""

import hashlib
import os
from collections import OrderedDict
from dataclasses import dataclass

from pydantic import ValidationError

from omnizone.contract import BeaconTelemetry
from omnizone.contract.ids import is_rotating
from omnizone.gateway.ble.decode import EddystoneTlm

#: Beacons remembered at once; the least recently heard is forgotten first.
MAX_BEACONS = 1024
#: An address not heard with its id frame for this long is forgotten (beacons
#: send their id frame every second or so, TLM every ten).
LINK_TTL_MS = 120_000


@dataclass(slots=True)
class TelemetryCounters:
    linked: int = 0  # TLM frames tied to a beacon id and published
    unlinked: int = 0  # TLM frames from an address whose id frame was not heard lately
    implausible: int = 0  # TLM frames with values no beacon reports (dropped)
    forgotten: int = 0  # addresses dropped to keep the table bounded

    def as_counters(self) -> dict[str, int]:
        return {
            "linked": self.linked,
            "unlinked": self.unlinked,
            "implausible": self.implausible,
            "forgotten": self.forgotten,
        }


class TelemetryLinker:
    """Address digest → (beacon id, last heard), bounded and short-lived."""

    def __init__(
        self, *, max_beacons: int = MAX_BEACONS, ttl_ms: int = LINK_TTL_MS, key: bytes | None = None
    ) -> None:
        self._key = key if key is not None else os.urandom(16)
        self._max = max_beacons
        self._ttl_ms = ttl_ms
        self._ids: OrderedDict[bytes, tuple[str, int]] = OrderedDict()
        self.counters = TelemetryCounters()

    def __len__(self) -> int:
        return len(self._ids)

    def _digest(self, address: str) -> bytes:
        return hashlib.blake2b(address.upper().encode(), key=self._key, digest_size=8).digest()

    def saw(self, address: str, device: str, at_ms: int) -> None:
        """``address`` advertised ``device`` (a fixed beacon's id frame)."""
        if is_rotating(device):
            return
        token = self._digest(address)
        self._ids[token] = (device, at_ms)
        self._ids.move_to_end(token)
        while len(self._ids) > self._max:
            self._ids.popitem(last=False)
            self.counters.forgotten += 1

    def link(
        self, address: str, tlm: EddystoneTlm, at_ms: int
    ) -> tuple[str, BeaconTelemetry] | None:
        """The beacon id ``address`` advertised lately, with its telemetry; None
        (counted) when its id frame was not heard within the TTL."""
        token = self._digest(address)
        entry = self._ids.get(token)
        if entry is None or at_ms - entry[1] > self._ttl_ms:
            if entry is not None:
                del self._ids[token]
            self.counters.unlinked += 1
            return None
        try:
            telemetry = BeaconTelemetry(
                battery_mv=tlm.battery_mv,
                temperature_c=tlm.temperature_c,
                adv_count=tlm.adv_count,
                uptime_s=tlm.uptime_s,
                heard_ms=at_ms,
            )
        except ValidationError:
            self.counters.implausible += 1
            return None
        self.counters.linked += 1
        return entry[0], telemetry
