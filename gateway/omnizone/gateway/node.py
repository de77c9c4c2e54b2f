"""One gateway's pipeline: advert → decode → aggregate → outbox (→ MqttLink).

Time comes from an injected clock (epoch ms) so the simulator can run the real
pipeline faster than real time; nothing here sleeps or reads the wall clock.
"""

import functools
import logging
import queue
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData

from omnizone.contract import (
    BleMessage,
    BleSighting,
    ContractError,
    GatewayConfig,
    HealthMessage,
    Kind,
    NfcMessage,
    NfcTap,
    RfidItem,
    RfidMessage,
    dump_message,
    parse_config,
    topic_for,
)
from omnizone.contract.timefmt import wall_clock_ms
from omnizone.gateway import __version__
from omnizone.gateway.ble.aggregate import WindowAggregator
from omnizone.gateway.ble.decode import (
    EDDYSTONE_SERVICE_UUID,
    EDDYSTONE_TLM,
    FrameCounts,
    decode_advertisement,
    decode_eddystone_tlm,
)
from omnizone.gateway.ble.telemetry import TelemetryLinker
from omnizone.gateway.outbox import Outbox

Clock = Callable[[], int]

log = logging.getLogger(__name__)


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
        version: str = __version__,
    ) -> None:
        self.store = store
        self.gateway = gateway
        self.version = version
        self.outbox = outbox
        self.clock = clock
        self.health_interval_ms = health_interval_ms
        self.counters = PipelineCounters()
        self.frames = FrameCounts()
        self._enqueue_lock = threading.Lock()
        self.readers: dict[str, str] = {"ble": "idle"}
        self._aggregator = WindowAggregator(window_ms)
        self._telemetry = TelemetryLinker()
        self._on_enqueued = on_enqueued
        self._started_ms = clock()
        self._next_health_ms = self._started_ms + health_interval_ms
        self._ble_topic = topic_for(store, gateway, Kind.BLE)
        self._counter_sources: dict[str, Callable[[], Mapping[str, int]]] = {}
        self._config_listeners: list[Callable[[GatewayConfig], None]] = []
        self.config_revision = -1
        self._pending_configs: queue.SimpleQueue[GatewayConfig] = queue.SimpleQueue()
        self.configs_rejected = 0

    @property
    def window_ms(self) -> int:
        return self._aggregator.window_ms

    def on_advertisement(self, device: BLEDevice, advertisement: AdvertisementData) -> None:
        """bleak's detection callback. The device's address is read only to tie a
        fixed beacon's TLM frame to its id frame, as a keyed digest in memory
        (``ble/telemetry.py``); it is never stored or sent."""
        self.counters.adverts_seen += 1
        beacon = decode_advertisement(
            advertisement.manufacturer_data, advertisement.service_data, self.frames
        )
        if beacon is None:
            if advertisement.service_data:
                self._on_telemetry(device, advertisement.service_data)
            return
        self.counters.adverts_kept += 1
        now = self.clock()
        if not beacon.device.startswith("eid:"):
            self._telemetry.saw(device.address, beacon.device, now)
        self.on_reading(beacon.device, advertisement.rssi, beacon.tx_power, now)

    def _on_telemetry(self, device: BLEDevice, service_data: Mapping[str, bytes]) -> None:
        frame = service_data.get(EDDYSTONE_SERVICE_UUID)
        if not frame or frame[0] != EDDYSTONE_TLM:
            return
        tlm = decode_eddystone_tlm(frame)
        if tlm is None:  # encrypted eTLM: counted in frames, unreadable here
            return
        linked = self._telemetry.link(device.address, tlm, self.clock())
        if linked is not None:
            self._aggregator.add_telemetry(*linked)

    def on_reading(self, device: str, rssi: float, tx_power: int | None, at_ms: int) -> None:
        """One decoded sighting (device key, dBm, calibrated tx power) heard at ``at_ms``:
        the advert callback after decoding, and readings imported from other tools."""
        self._aggregator.add(device, rssi, tx_power, at_ms)

    def on_nfc_taps(self, taps: Sequence[NfcTap]) -> None:
        """A tap is published at once: the shopper is waiting for the product page."""
        if taps:
            items = list(taps)
            self._enqueue(functools.partial(self._message, NfcMessage, Kind.NFC, items))

    def on_rfid_items(self, items: Sequence[RfidItem]) -> None:
        """Window reads and try-on events from a fitting-room reader."""
        if items:
            batch = list(items)
            self._enqueue(functools.partial(self._message, RfidMessage, Kind.RFID, batch))

    def add_counters(self, name: str, source: Callable[[], Mapping[str, int]]) -> None:
        """Counters a driver reports in health messages, as '<name>.<counter>'."""
        self._counter_sources[name] = source

    def on_config(self, listener: Callable[[GatewayConfig], None]) -> None:
        self._config_listeners.append(listener)

    def apply_config_message(self, topic: str, payload: bytes) -> None:
        """The retained config as it arrives over MQTT (network thread). A bad one is
        counted, never applied; a good one waits for the pipeline's next tick."""
        try:
            config = parse_config(topic, payload)
        except ContractError as error:
            self.configs_rejected += 1
            log.warning("gateway %s: config refused: %s", self.gateway, error)
            return
        self._pending_configs.put(config)

    def apply_config(self, config: GatewayConfig) -> bool:
        """Apply a newer config from the server without a restart; False if ignored."""
        if (config.store, config.gateway) != (self.store, self.gateway):
            self.configs_rejected += 1
            return False
        if config.revision <= self.config_revision:
            return False
        self.config_revision = config.revision
        if config.window_ms is not None:
            self._aggregator.set_window(config.window_ms, self.clock())
        if config.health_interval_s is not None:
            self.health_interval_ms = round(config.health_interval_s * 1000)
            self._next_health_ms = min(self._next_health_ms, self.clock() + self.health_interval_ms)
        for listener in self._config_listeners:
            listener(config)
        return True

    def health_counters(self) -> dict[str, int]:
        counters = {
            "ble.adverts_seen": self.counters.adverts_seen,
            "ble.adverts_kept": self.counters.adverts_kept,
            "ble.late_adverts": self._aggregator.late_adverts,
            "ble.bad_rssi": self._aggregator.bad_rssi,
            **self.frames.as_counters("ble.frames."),
            **{f"ble.tlm.{k}": v for k, v in self._telemetry.counters.as_counters().items()},
            "ble.tlm.beacons_known": len(self._telemetry),
            "ble.tlm.pending_dropped": self._aggregator.telemetry_dropped,
            "config.revision": self.config_revision,
            "config.rejected": self.configs_rejected,
        }
        for name, source in self._counter_sources.items():
            try:
                counters.update({f"{name}.{k}": int(v) for k, v in source().items()})
            except Exception:  # a broken driver must not stop health reports
                counters[f"{name}.counter_errors"] = counters.get(f"{name}.counter_errors", 0) + 1
        return counters

    def tick(self) -> None:
        """Close due windows into messages, send health when due."""
        while not self._pending_configs.empty():
            self.apply_config(self._pending_configs.get_nowait())
        now = self.clock()
        self._aggregator.tick(now)
        for batch in self._aggregator.drain():
            self._enqueue(functools.partial(self._ble, batch))
        if now >= self._next_health_ms:
            self._next_health_ms = now + self.health_interval_ms
            self._enqueue(self._health)

    def _ble(self, items: list[BleSighting], seq: int) -> tuple[str, bytes]:
        message = BleMessage(
            store=self.store,
            gateway=self.gateway,
            epoch=self.outbox.epoch,
            seq=seq,
            sent_ms=self.clock(),
            items=items,
        )
        return self._ble_topic, dump_message(message)

    def _message(
        self,
        model: type[NfcMessage] | type[RfidMessage],
        kind: Kind,
        items: list[Any],
        seq: int,
    ) -> tuple[str, bytes]:
        message = model(
            store=self.store,
            gateway=self.gateway,
            epoch=self.outbox.epoch,
            seq=seq,
            sent_ms=self.clock(),
            items=items,
        )
        return topic_for(self.store, self.gateway, kind), dump_message(message)

    def _health(self, seq: int) -> tuple[str, bytes]:
        now = self.clock()
        message = HealthMessage(
            store=self.store,
            gateway=self.gateway,
            epoch=self.outbox.epoch,
            seq=seq,
            sent_ms=now,
            uptime_s=max(0.0, (now - self._started_ms) / 1000),
            outbox_depth=self.outbox.depth(),
            outbox_dropped=self.outbox.dropped(),
            readers=dict(self.readers),
            counters=self.health_counters(),
            cpu_temp_c=cpu_temperature_c(),
            version=self.version,
        )
        return topic_for(self.store, self.gateway, Kind.HEALTH), dump_message(message)

    def _enqueue(self, build: Callable[[int], tuple[str, bytes]]) -> None:
        # NFC and RFID readers enqueue from their own threads.
        with self._enqueue_lock:
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
