"""Per-device aggregation over fixed windows aligned to the epoch.

Windows are aligned (start = t - t % window) so every gateway in a store closes
the same windows and the server can compare like with like.
"""

from dataclasses import dataclass, field

from omnizone.contract import BeaconTelemetry, BleSighting

RSSI_MIN = -127.0
RSSI_MAX = 20.0
#: Beacons whose telemetry waits for their next sighting, at most.
MAX_PENDING_TELEMETRY = 1024


@dataclass(slots=True)
class _Accumulator:
    count: int = 0
    rssi_sum: float = 0.0
    rssi_max: float = -1000.0
    tx_power: int | None = None


@dataclass(slots=True)
class WindowAggregator:
    window_ms: int
    _window_start: int | None = None
    _devices: dict[str, _Accumulator] = field(default_factory=dict)
    _closed: list[list[BleSighting]] = field(default_factory=list)
    _closed_until: int = -1  # end of the last closed window: nothing before it reopens
    _telemetry: dict[str, BeaconTelemetry] = field(default_factory=dict)
    late_adverts: int = 0
    bad_rssi: int = 0
    telemetry_dropped: int = 0  # pending telemetry pushed out by newer beacons'

    def add_telemetry(self, device: str, telemetry: BeaconTelemetry) -> None:
        """A fixed beacon's latest TLM: sent with its next closed sighting."""
        self._telemetry.pop(device, None)
        self._telemetry[device] = telemetry
        while len(self._telemetry) > MAX_PENDING_TELEMETRY:
            del self._telemetry[next(iter(self._telemetry))]
            self.telemetry_dropped += 1

    def add(self, device: str, rssi: float, tx_power: int | None, at_ms: int) -> None:
        if not RSSI_MIN <= rssi <= RSSI_MAX:
            self.bad_rssi += 1  # e.g. HCI's 127 "not available"
            return
        start = at_ms - at_ms % self.window_ms
        if start < self._closed_until:
            self.late_adverts += 1  # clock stepped back or a stale report: not worth a window
            return
        if self._window_start is None:
            self._window_start = start
        elif start > self._window_start:
            self._close()
            self._window_start = start
        elif start < self._window_start:
            self.late_adverts += 1  # clock stepped back or a stale report: not worth a window
            return
        acc = self._devices.get(device)
        if acc is None:
            acc = self._devices[device] = _Accumulator()
        acc.count += 1
        acc.rssi_sum += rssi
        if rssi > acc.rssi_max:
            acc.rssi_max = rssi
        if tx_power is not None:
            acc.tx_power = tx_power

    def tick(self, now_ms: int) -> None:
        """Close the current window once its end has passed."""
        if self._window_start is not None and now_ms >= self._window_start + self.window_ms:
            self._close()
            self._window_start = None

    def set_window(self, window_ms: int, now_ms: int) -> None:
        """Change the window length; the open window closes first so no window mixes lengths."""
        if window_ms == self.window_ms:
            return
        self._close()
        self._window_start = None
        self._closed_until = max(self._closed_until, now_ms - now_ms % window_ms)
        self.window_ms = window_ms

    def drain(self) -> list[list[BleSighting]]:
        """Closed windows, oldest first, each a non-empty batch of sightings."""
        closed, self._closed = self._closed, []
        return closed

    def _close(self) -> None:
        devices, self._devices = self._devices, {}
        if self._window_start is None:
            return
        start = self._window_start
        self._closed_until = start + self.window_ms
        if not devices:
            return
        self._closed.append(
            [
                BleSighting(
                    device=device,
                    window_start_ms=start,
                    window_ms=self.window_ms,
                    count=acc.count,
                    rssi_mean=round(acc.rssi_sum / acc.count, 2),
                    rssi_max=acc.rssi_max,
                    tx_power=acc.tx_power,
                    telemetry=self._telemetry.pop(device, None) if self._telemetry else None,
                )
                for device, acc in devices.items()
            ]
        )
