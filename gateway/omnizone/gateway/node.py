"""One gateway's pipeline: advert → decode → aggregate → outbox (→ MqttLink).

Time comes from an injected clock (epoch ms) so the simulator can run the real
pipeline faster than real time; nothing here sleeps or reads the wall clock.
"""

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass

from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData

from omnizone.contract import BleMessage, BleSighting, HealthMessage, Kind, dump_message, topic_for
from omnizone.gateway import __version__
from omnizone.gateway.ble.aggregate import WindowAggregator
from omnizone.gateway.ble.decode import decode_advertisement
from omnizone.gateway.outbox import Outbox

Clock = Callable[[], int]


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(slots=True)
class PipelineCounters:
    adverts_seen: int = 0
    adverts_kept: int = 0
    messages_enqueued: int = 0


class GatewayNode:
    def __init__(
        self,
        store: str,
        gateway: str,
        outbox: Outbox,
        *,
        window_ms: int = 1000,
        health_interval_ms: int = 30_000,
        clock: Clock = wall_clock_ms,
        on_enqueued: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.gateway = gateway
        self.outbox = outbox
        self.clock = clock
        self.health_interval_ms = health_interval_ms
        self.counters = PipelineCounters()
        self.readers: dict[str, str] = {"ble": "idle"}
        self._aggregator = WindowAggregator(window_ms)
        self._on_enqueued = on_enqueued
        self._started_ms = clock()
        self._next_health_ms = self._started_ms + health_interval_ms
        self._ble_topic = topic_for(store, gateway, Kind.BLE)

    @property
    def window_ms(self) -> int:
        return self._aggregator.window_ms

    def on_advertisement(self, _device: BLEDevice, advertisement: AdvertisementData) -> None:
        """bleak's detection callback. The device (and its MAC) is deliberately unused."""
        self.counters.adverts_seen += 1
        beacon = decode_advertisement(advertisement.manufacturer_data, advertisement.service_data)
        if beacon is None:
            return
        self.counters.adverts_kept += 1
        self._aggregator.add(beacon.device, advertisement.rssi, beacon.tx_power, self.clock())

    def tick(self) -> None:
        """Close due windows into messages, send health when due."""
        now = self.clock()
        self._aggregator.tick(now)
        for batch in self._aggregator.drain():
            self._enqueue(functools.partial(self._ble, batch))
        if now >= self._next_health_ms:
            self._next_health_ms = now + self.health_interval_ms
            self._enqueue(self._health)

    def _ble(self, items: list[BleSighting], seq: int) -> tuple[str, bytes]:
        message = BleMessage(
            store=self.store, gateway=self.gateway, seq=seq, sent_ms=self.clock(), items=items
        )
        return self._ble_topic, dump_message(message)

    def _health(self, seq: int) -> tuple[str, bytes]:
        now = self.clock()
        message = HealthMessage(
            store=self.store,
            gateway=self.gateway,
            seq=seq,
            sent_ms=now,
            uptime_s=max(0.0, (now - self._started_ms) / 1000),
            outbox_depth=self.outbox.depth(),
            outbox_dropped=self.outbox.dropped(),
            readers=dict(self.readers),
            cpu_temp_c=cpu_temperature_c(),
            version=__version__,
        )
        return topic_for(self.store, self.gateway, Kind.HEALTH), dump_message(message)

    def _enqueue(self, build: Callable[[int], tuple[str, bytes]]) -> None:
        self.outbox.append(build)
        self.counters.messages_enqueued += 1
        if self._on_enqueued is not None:
            self._on_enqueued()


def cpu_temperature_c() -> float | None:
    """The SoC temperature on a Raspberry Pi (or any Linux thermal zone)."""
    try:
        with open("/sys/class/thermal/thermal_zone0/temp", encoding="ascii") as handle:
            return int(handle.read().strip()) / 1000
    except (OSError, ValueError):
        return None
