"""BLE scanning that keeps running: passive where BlueZ allows it, active
otherwise, and a watchdog that restarts a scan that went quiet or failed.

BlueZ can stop reporting advertisements without an error (bluez/bluez#1554),
and a USB adapter can vanish. The only reliable symptom is silence, so the
watchdog watches the node's advert counter: no advert for ``watchdog_s`` means
stop and start again, with a growing pause between consecutive failures.

The node's ``on_advertisement`` is bleak's detection callback as is: the hot
path gains nothing from this module. See docs/ble.md.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass
from typing import Any, Literal

from bleak import BleakScanner
from bleak.args.bluez import BlueZScannerArgs, OrPattern
from bleak.assigned_numbers import AdvertisementDataType
from bleak.backends.scanner import BaseBleakScanner

from omnizone.contract import GatewayConfig
from omnizone.gateway.node import GatewayNode

log = logging.getLogger(__name__)

ScanningMode = Literal["auto", "passive", "active"]
BleakMode = Literal["passive", "active"]

# Passive scanning on BlueZ goes through the advertisement monitor API, which
# only reports adverts matching one of these (AD type, offset, content) patterns.
# They are exactly the frames decode.py keeps; Apple Continuity, Fast Pair and
# the like are then filtered in the controller/daemon, before Python sees them.
PASSIVE_OR_PATTERNS: tuple[OrPattern, ...] = (
    # iBeacon: Apple's company id 0x004C (little-endian), type 0x02, length 0x15
    OrPattern(0, AdvertisementDataType.MANUFACTURER_SPECIFIC_DATA, b"\x4c\x00\x02\x15"),
    # AltBeacon: any company id, then the beacon code 0xBEAC
    OrPattern(2, AdvertisementDataType.MANUFACTURER_SPECIFIC_DATA, b"\xbe\xac"),
    # Eddystone (UID, EID, URL, TLM): service data for the 16-bit UUID 0xFEAA
    OrPattern(0, AdvertisementDataType.SERVICE_DATA_UUID16, b"\xaa\xfe"),
)

START_TIMEOUT_S = 15.0  # a D-Bus call that hangs is a failure like any other


@dataclass(slots=True)
class ScannerCounters:
    scanner_starts: int = 0  # successful starts, the first one included
    watchdog_restarts: int = 0  # restarts by the watchdog (silence or errors)
    silent_restarts: int = 0  # of which: no advert for watchdog_s
    start_errors: int = 0  # a start that raised (each mode tried counts)
    stop_errors: int = 0
    passive_fallbacks: int = 0  # "auto" found passive refused and runs active
    reconfigures: int = 0  # restarts because the server changed scanning_mode
    watchdog_errors: int = 0  # the watchdog itself failed: a bug, but it keeps going


def backoff_s(failures: int, max_backoff_s: float) -> float:
    """Pause before the next start after `failures` consecutive failures:
    0 (at once), 1, 2, 4, ... seconds, at most max_backoff_s."""
    if failures <= 1:
        return 0.0
    return float(min(max_backoff_s, 2 ** (failures - 2)))


class BleScannerService:
    def __init__(
        self,
        node: GatewayNode,
        *,
        scanning_mode: ScanningMode = "auto",
        watchdog_s: float = 30.0,
        adapter: str | None = None,
        backend: type[BaseBleakScanner] | None = None,
        clock: Callable[[], float] = time.monotonic,
        check_every_s: float | None = None,
        max_backoff_s: float = 60.0,
    ) -> None:
        """`clock` is monotonic seconds; `check_every_s` defaults to
        min(1, watchdog_s / 5)."""
        if watchdog_s <= 0:
            raise ValueError(f"watchdog_s must be positive, got {watchdog_s}")
        self.node = node
        self.scanning_mode: ScanningMode = scanning_mode
        self.watchdog_s = float(watchdog_s)
        self.adapter = adapter
        self.backend = backend
        self.clock = clock
        self.check_every_s = check_every_s
        self.max_backoff_s = max_backoff_s
        self.counters = ScannerCounters()
        self.mode: BleakMode | None = None  # what is scanning now
        self._scanner: BleakScanner | None = None
        self._running = False
        self._passive_refused = False  # "auto" learnt that passive does not work here
        self._restart_requested = False
        self._failures = 0
        self._next_attempt_at = 0.0
        self._last_seen = 0
        self._last_advert_at = 0.0
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        node.add_counters("ble", self.health_counters)
        node.on_config(self._on_config)

    # -- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        """Start scanning now (a failure is reported, then retried by the watchdog)."""
        if self._running:
            return
        self._loop = asyncio.get_running_loop()
        self._running = True
        self._failures = 0
        async with self._lock:
            await self._attempt()
        self._task = asyncio.create_task(self._watch(), name="ble-watchdog")

    async def stop(self) -> None:
        """Stop scanning; waits for a watchdog step in progress rather than
        cancelling it halfway through a start."""
        self._running = False
        async with self._lock:
            tasks = [t for t in (self._task, *self._pending) if t is not None]
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self._task = None
            await self._stop_scanner()
        self.node.readers["ble"] = "stopped"

    def health_counters(self) -> dict[str, int]:
        return asdict(self.counters)

    # -- run-time configuration ------------------------------------------------

    def configure(
        self, *, scanning_mode: ScanningMode | None = None, watchdog_s: float | None = None
    ) -> None:
        """Apply new settings without a restart of the process (call on the loop).

        A new watchdog period applies to the running scan; a new scanning mode
        restarts the scan in that mode (and "auto" probes passive again)."""
        if watchdog_s is not None:
            if watchdog_s <= 0:
                raise ValueError(f"watchdog_s must be positive, got {watchdog_s}")
            self.watchdog_s = float(watchdog_s)
        if scanning_mode is not None and scanning_mode != self.scanning_mode:
            self.scanning_mode = scanning_mode
            self._passive_refused = False
            if self._running:
                self._restart_requested = True
                self._spawn(self.check())

    def _on_config(self, config: GatewayConfig) -> None:
        """Node config listener; may be called from the MQTT thread."""
        ble = config.ble
        if ble is None or (ble.scanning_mode is None and ble.watchdog_s is None):
            return

        def apply() -> None:
            self.configure(scanning_mode=ble.scanning_mode, watchdog_s=ble.watchdog_s)

        loop = self._loop
        try:
            on_loop = loop is None or asyncio.get_running_loop() is loop
        except RuntimeError:
            on_loop = False
        if on_loop or loop is None:
            apply()
        else:
            with contextlib.suppress(RuntimeError):  # loop closed: we are shutting down
                loop.call_soon_threadsafe(apply)

    # -- the watchdog --------------------------------------------------------------

    async def check(self) -> None:
        """One watchdog step; the background task runs it every check_every_s.
        Public so a test can step it on a fake clock."""
        async with self._lock:
            if not self._running:
                return
            now = self.clock()
            if self._restart_requested:
                self._restart_requested = False
                self.counters.reconfigures += 1
                await self._stop_scanner()
                self._failures = 0
                await self._attempt()
                return
            if self._scanner is None:
                if now >= self._next_attempt_at:
                    await self._attempt()
                return
            seen = self.node.counters.adverts_seen
            if seen != self._last_seen:
                self._last_seen = seen
                self._last_advert_at = now
                self._failures = 0
                return
            if now - self._last_advert_at >= self.watchdog_s:
                self.counters.silent_restarts += 1
                log.warning(
                    "BLE: no advertisement for %.0f s, restarting the scan",
                    now - self._last_advert_at,
                )
                await self._restart_after_failure(now)

    async def _watch(self) -> None:
        while self._running:
            every = self.check_every_s or min(1.0, self.watchdog_s / 5)
            await asyncio.sleep(every)
            try:
                await self.check()
            except asyncio.CancelledError:
                raise
            except Exception:
                self.counters.watchdog_errors += 1
                log.exception("BLE watchdog step failed")

    async def _restart_after_failure(self, now: float) -> None:
        await self._stop_scanner()
        self.counters.watchdog_restarts += 1
        self._failures += 1
        self._next_attempt_at = now + backoff_s(self._failures, self.max_backoff_s)
        self.node.readers["ble"] = "restarting"
        if now >= self._next_attempt_at:
            await self._attempt()

    async def _attempt(self) -> None:
        """Start scanning in the first mode that works; on failure, schedule the next try."""
        errors: list[str] = []
        modes = self._modes()
        for mode in modes:
            try:
                scanner = self._build(mode)
                await asyncio.wait_for(scanner.start(), START_TIMEOUT_S)
            except Exception as error:  # bleak, D-Bus, OS: all mean "not scanning"
                self.counters.start_errors += 1
                errors.append(f"{mode}: {error or type(error).__name__}")
                log.warning("BLE: %s scanning did not start: %s", mode, error)
                continue
            if mode == "active" and "passive" in modes:
                self._passive_refused = True
                self.counters.passive_fallbacks += 1
                log.warning("BLE: passive scanning refused, scanning actively (%s)", errors[0])
            self._scanner = scanner
            self.mode = mode
            self.counters.scanner_starts += 1
            self._last_seen = self.node.counters.adverts_seen
            self._last_advert_at = self.clock()
            self.node.readers["ble"] = f"scanning ({mode})"
            return
        now = self.clock()
        self._failures += 1
        self._next_attempt_at = now + max(1.0, backoff_s(self._failures, self.max_backoff_s))
        self.node.readers["ble"] = "error: " + "; ".join(errors)

    def _modes(self) -> list[BleakMode]:
        if self.scanning_mode == "auto":
            return ["active"] if self._passive_refused else ["passive", "active"]
        return [self.scanning_mode]

    def _build(self, mode: BleakMode) -> BleakScanner:
        bluez = BlueZScannerArgs()
        if self.adapter is not None:
            bluez["adapter"] = self.adapter
        if mode == "passive":
            bluez["or_patterns"] = list(PASSIVE_OR_PATTERNS)
        return BleakScanner(
            detection_callback=self.node.on_advertisement,
            scanning_mode=mode,
            bluez=bluez,
            backend=self.backend,
        )

    async def _stop_scanner(self) -> None:
        scanner, self._scanner = self._scanner, None
        self.mode = None
        if scanner is None:
            return
        try:
            await asyncio.wait_for(scanner.stop(), START_TIMEOUT_S)
        except Exception as error:
            self.counters.stop_errors += 1
            log.warning("BLE: stopping the scan failed: %s", error)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
