"""An emulated Bluetooth adapter behind bleak's own scanner interface.

``EmulatedAdapter.backend`` is a ``BaseBleakScanner`` subclass to pass as
``BleakScanner(backend=...)``: the real ``BleakScanner`` and the gateway's
scanner service run unchanged, and advertisements reach the detection callback
through bleak's own ``create_or_update_device`` / ``call_detection_callbacks``,
built from RAW advertising bytes the way BlueZ builds them.

What the adapter emulates, because the gateway must survive it:

- passive scanning that needs or-patterns, and that a BlueZ without
  ``--experimental`` refuses at start (``refuse_passive``); in passive mode
  only adverts matching an or-pattern are delivered, as BlueZ does;
- a scan that silently stops delivering (``stall``), cleared by restarting
  the scan, like BlueZ issue #1554;
- starts that fail (``fail_starts``) and an adapter that disappears
  (``power_off`` / ``power_on``).

Feeding it: ``push(address, payload, rssi)`` from the event loop (delivered
at once, like a D-Bus signal handler would), ``push_threadsafe`` from another
thread, or UDP datagrams (``await adapter.open_udp("udp://127.0.0.1:0")``) so a
test can feed a gateway running in another process. ``udp_feed`` is the gateway
runner's BLE backend provider for ``ble.feed: udp://…`` (gateway/ble/backend.py):
the suite passes it to ``run_gateway``, since the gateway may not import it. Datagram format: byte 0
is the RSSI as a signed 8-bit integer (dBm), bytes 1-6 the advertiser address
in display order (``AA:BB:..`` is ``aa bb ..``), the rest the raw advertising
payload (AD structures, at most 251 bytes). See docs/ble.md.
"""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from bleak.backends.scanner import AdvertisementDataCallback, BaseBleakScanner
from bleak.exc import BleakError

from omnizone.gateway.ble.adstructures import AdvertisementFormatError, parse_ad_structures

if TYPE_CHECKING:  # the settings stack (pydantic-settings, YAML) stays out of the benchmark
    from omnizone.gateway.settings import BleSettings

log = logging.getLogger(__name__)

PASSIVE_UNSUPPORTED = (
    "passive scanning on Linux requires BlueZ >= 5.56 with --experimental enabled "
    "and Linux kernel >= 5.10"
)
MAX_PAYLOAD = 251  # extended advertising data per PDU
MAX_SEEN_DEVICES = 4096  # BlueZ forgets silent devices after 30 s; we forget the oldest
_ADDRESS_LEN = 6


@dataclass(slots=True)
class AdapterCounters:
    delivered: int = 0
    not_scanning: int = 0  # pushed while no scan was running: nobody heard it
    stalled: int = 0  # pushed while the scan was stalled: lost
    filtered: int = 0  # passive scan and no or-pattern matched
    malformed: int = 0  # truncated AD structures: BlueZ drops those
    bad_datagrams: int = 0
    starts: int = 0
    failed_starts: int = 0


def encode_datagram(address: str, payload: bytes, rssi: int) -> bytes:
    """One UDP feed datagram: rssi (int8) + 6 address bytes + raw payload."""
    raw = bytes.fromhex(address.replace(":", "").replace("-", ""))
    if len(raw) != _ADDRESS_LEN:
        raise ValueError(f"address {address!r} is not 6 bytes")
    if not -128 <= rssi <= 127:
        raise ValueError(f"rssi {rssi} does not fit a signed byte")
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    return (rssi & 0xFF).to_bytes(1, "big") + raw + payload


def decode_datagram(datagram: bytes) -> tuple[str, bytes, int]:
    """(address, payload, rssi); ValueError on a datagram too short or too long."""
    if len(datagram) < 1 + _ADDRESS_LEN:
        raise ValueError(f"datagram of {len(datagram)} bytes has no address")
    if len(datagram) > 1 + _ADDRESS_LEN + MAX_PAYLOAD:
        raise ValueError(f"datagram of {len(datagram)} bytes exceeds the largest advert")
    rssi = datagram[0] - 256 if datagram[0] > 127 else datagram[0]
    address = ":".join(f"{b:02X}" for b in datagram[1 : 1 + _ADDRESS_LEN])
    return address, datagram[1 + _ADDRESS_LEN :], rssi


def parse_udp_url(url: str) -> tuple[str, int]:
    """``udp://host:port`` to (host, port); port 0 picks a free one."""
    parts = urlsplit(url)
    if parts.scheme != "udp" or not parts.hostname or parts.port is None:
        raise ValueError(f"{url!r} is not udp://host:port")
    return parts.hostname, parts.port


def or_pattern_matches(payload: bytes, patterns: Iterable[Sequence[Any]]) -> bool:
    """BlueZ's advertisement monitor rule: some AD structure of the pattern's type
    holds the pattern's content at the pattern's start position."""
    i = 0
    structures: list[tuple[int, bytes]] = []
    while i + 1 < len(payload) and payload[i]:
        length = payload[i]
        structures.append((payload[i + 1], payload[i + 2 : i + 1 + length]))
        i += 1 + length
    for start, ad_type, content in patterns:
        content = bytes(content)
        for kind, body in structures:
            if kind == int(ad_type) and body[start : start + len(content)] == content:
                return True
    return False


class EmulatedAdapter:
    """One emulated Bluetooth controller; any number of scanners may be built on it
    (the gateway builds a new BleakScanner on each restart), one scans at a time."""

    def __init__(self, name: str = "hci0", *, refuse_passive: bool = False) -> None:
        self.name = name
        self.refuse_passive = refuse_passive
        self.counters = AdapterCounters()
        self.powered = True
        self.scanning: Literal["active", "passive"] | None = None
        self._active: _EmulatedScanner | None = None
        self._stalled = False
        self._stalled_restarts = 0
        self._fail_starts: list[Exception] = []
        self._udp: asyncio.DatagramTransport | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        adapter = self

        class Backend(_EmulatedScanner):
            _adapter = adapter

        Backend.__name__ = Backend.__qualname__ = f"EmulatedBleakScanner[{name}]"
        self.backend: type[BaseBleakScanner] = Backend

    # -- controlling the radio ---------------------------------------------------

    def stall(self, restarts: int = 0) -> None:
        """The running scan stops delivering; it stays silent through `restarts`
        further restarts, then recovers."""
        self._stalled = True
        self._stalled_restarts = restarts

    def fail_starts(self, *errors: Exception) -> None:
        """The next len(errors) scan starts raise these, in order."""
        self._fail_starts.extend(errors)

    def power_off(self) -> None:
        """The adapter vanishes (USB dongle pulled, firmware crash): nothing is
        delivered and starts fail until power_on()."""
        self.powered = False

    def power_on(self) -> None:
        self.powered = True

    @property
    def stalled(self) -> bool:
        return self._stalled

    # -- feeding it --------------------------------------------------------------

    def push(self, address: str, payload: bytes, rssi: int) -> bool:
        """An advert on the air; True if a scanner got it."""
        scanner = self._active
        if scanner is None or not self.powered:
            self.counters.not_scanning += 1
            return False
        if self._stalled:
            self.counters.stalled += 1
            return False
        return scanner._receive(address, payload, rssi)

    def push_many(self, adverts: Iterable[tuple[str, bytes, int]]) -> int:
        return sum(self.push(address, payload, rssi) for address, payload, rssi in adverts)

    def push_threadsafe(self, address: str, payload: bytes, rssi: int) -> None:
        """From a thread other than the event loop's (a simulator thread)."""
        if self._loop is None:
            self.counters.not_scanning += 1
            return
        self._loop.call_soon_threadsafe(self.push, address, payload, rssi)

    async def open_udp(self, url: str = "udp://127.0.0.1:0") -> tuple[str, int]:
        """Listen for feed datagrams; returns the bound (host, port)."""
        host, port = parse_udp_url(url)
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _FeedProtocol(self), local_addr=(host, port)
        )
        self._udp = transport
        bound: tuple[str, int] = transport.get_extra_info("sockname")[:2]
        return bound

    def close(self) -> None:
        if self._udp is not None:
            self._udp.close()
            self._udp = None

    def _on_datagram(self, datagram: bytes) -> None:
        try:
            address, payload, rssi = decode_datagram(datagram)
        except ValueError:
            self.counters.bad_datagrams += 1
            return
        self.push(address, payload, rssi)

    # -- called by the backend -----------------------------------------------------

    def _start(self, scanner: "_EmulatedScanner") -> None:
        self.counters.starts += 1
        if self._fail_starts:
            self.counters.failed_starts += 1
            raise self._fail_starts.pop(0)
        if not self.powered:
            self.counters.failed_starts += 1
            raise BleakError(f"adapter '{self.name}' not found")
        if scanner.mode == "passive" and self.refuse_passive:
            self.counters.failed_starts += 1
            raise BleakError(PASSIVE_UNSUPPORTED)
        if self._active is not None and self._active is not scanner:
            self.counters.failed_starts += 1
            raise BleakError("org.bluez.Error.InProgress: Operation already in progress")
        if self._stalled:
            if self._stalled_restarts > 0:
                self._stalled_restarts -= 1
            else:
                self._stalled = False
        with contextlib.suppress(RuntimeError):
            self._loop = asyncio.get_running_loop()
        self._active = scanner
        self.scanning = scanner.mode

    def _stop(self, scanner: "_EmulatedScanner") -> None:
        if self._active is scanner:
            self._active = None
            self.scanning = None


@contextlib.asynccontextmanager
async def udp_feed(ble: "BleSettings") -> AsyncIterator[type[BaseBleakScanner]]:
    """A gateway's BLE backend for ``ble.feed``: an emulated adapter named like
    ``ble.adapter`` (default hci0) that listens on the feed's UDP address for the
    whole run. QA mode: raw adverts from another process, through bleak's own
    scanner code, instead of a Bluetooth adapter."""
    if not ble.feed:
        raise ValueError("udp_feed needs ble.feed (udp://host:port)")
    adapter = EmulatedAdapter(ble.adapter or "hci0")
    await adapter.open_udp(ble.feed)
    try:
        yield adapter.backend
    finally:
        adapter.close()


class _FeedProtocol(asyncio.DatagramProtocol):
    def __init__(self, adapter: EmulatedAdapter) -> None:
        self._adapter = adapter

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self._adapter._on_datagram(data)


class _EmulatedScanner(BaseBleakScanner):
    """The backend proper; bound to its adapter by EmulatedAdapter.backend."""

    _adapter: EmulatedAdapter

    def __init__(
        self,
        detection_callback: AdvertisementDataCallback | None,
        service_uuids: list[str] | None,
        scanning_mode: Literal["active", "passive"] = "active",
        *,
        bluez: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(detection_callback, service_uuids)
        bluez = dict(bluez or {})
        self.mode: Literal["active", "passive"] = scanning_mode
        self.adapter_name: str = bluez.get("adapter") or self._adapter.name
        self._or_patterns: list[Sequence[Any]] = list(bluez.get("or_patterns") or [])
        if scanning_mode == "passive" and not self._or_patterns:
            # bleak's BlueZ backend refuses this in its constructor too
            raise BleakError("passive scanning mode requires bluez or_patterns")
        if self.adapter_name != self._adapter.name:
            raise BleakError(f"adapter '{self.adapter_name}' not found")

    async def start(self) -> None:
        self.seen_devices = {}
        self._adapter._start(self)

    async def stop(self) -> None:
        self._adapter._stop(self)

    def _receive(self, address: str, payload: bytes, rssi: int) -> bool:
        counters = self._adapter.counters
        if self.mode == "passive" and not or_pattern_matches(payload, self._or_patterns):
            counters.filtered += 1
            return False
        path = f"/org/bluez/{self.adapter_name}/dev_{address.replace(':', '_')}"
        try:
            advertisement = parse_ad_structures(payload, rssi, (path, {"Address": address}))
        except AdvertisementFormatError:
            counters.malformed += 1
            return False
        if not self.is_allowed_uuid(advertisement.service_uuids):
            counters.filtered += 1
            return False
        if len(self.seen_devices) >= MAX_SEEN_DEVICES and path not in self.seen_devices:
            del self.seen_devices[next(iter(self.seen_devices))]
        device = self.create_or_update_device(
            path, address, advertisement.local_name, {"path": path}, advertisement
        )
        counters.delivered += 1
        self.call_detection_callbacks(device, advertisement)
        return True
