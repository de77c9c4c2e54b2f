"""The fitting-room UHF reader driver: pyserial → FrameParser → FittingRoom → node.

One thread per reader. It opens the port (a device path or any pyserial URL),
sets the output power and work antenna, then runs real-time inventory rounds
back to back, turning tag reports into try-on events and window reads for the
gateway node. Bad bytes are counted, never raised; a port that vanishes (USB
unplugged, reader power-cycled) is reopened with exponential backoff.
"""

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import serial

from omnizone.contract import GatewayConfig, RfidItem
from omnizone.gateway.node import GatewayNode
from omnizone.gateway.rfid.fitting_room import FittingRoom, TagSeen
from omnizone.gateway.rfid.protocol import (
    BROADCAST_ADDRESS,
    INVENTORY_COMMANDS,
    Cmd,
    ErrorCode,
    Frame,
    FrameParser,
    Malformed,
    ReaderError,
    RoundSummary,
    TagReport,
    cmd_get_firmware_version,
    cmd_real_time_inventory,
    cmd_session_inventory,
    cmd_set_output_power,
    cmd_set_work_antenna,
    decode_inventory,
    error_name,
)
from omnizone.gateway.rfid.settings import RfidReaderSettings

log = logging.getLogger(__name__)

Clock = Callable[[], int]
SerialFactory = Callable[..., Any]

MAX_SILENT_COMMANDS = 5  # unanswered commands in a row before the link counts as lost


class ReaderSilent(OSError):
    """The port is open but nothing sensible comes back (wrong baud rate, dead module)."""


@dataclass(slots=True)
class ReaderCounters:
    reads: int = 0
    rounds: int = 0
    timeouts: int = 0
    reconnects: int = 0
    reader_errors: int = 0
    malformed: int = 0
    foreign_frames: int = 0
    unusable_epcs: int = 0


class RfidReader:
    def __init__(
        self,
        settings: RfidReaderSettings,
        node: GatewayNode,
        *,
        clock: Clock | None = None,
        serial_factory: SerialFactory = serial.serial_for_url,
        backoff_s: tuple[float, float] = (0.5, 30.0),
        idle_s: float = 0.05,
        counters_name: str | None = None,
    ) -> None:
        self.settings = settings
        self.node = node
        self.clock: Clock = clock or node.clock
        self.counters = ReaderCounters()
        self.parser = FrameParser()
        self.room = FittingRoom(settings.id, settings.rules())
        self.firmware: tuple[int, int] | None = None
        self._serial_factory = serial_factory
        self._backoff_s = backoff_s
        self._idle_s = idle_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._port: Any = None
        self._lock = threading.Lock()
        self._pending: RfidReaderSettings | None = None
        self._silent = 0
        self._work_antenna: int | None = None
        self._round_done = False
        self._batch: list[RfidItem] = []
        self._items_present = 0  # kept by the reader thread: health reads it from another
        self._set_state("idle")
        node.add_counters(counters_name or f"rfid.{settings.id}", self.counter_values)
        node.on_config(self.apply_config)

    # --- lifecycle -------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"rfid-{self.settings.id}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._close_port()
        self._set_state("stopped")

    @property
    def state(self) -> str:
        return self.node.readers.get(self.settings.id, "idle")

    def counter_values(self) -> dict[str, int]:
        values = asdict(self.counters)
        values.update(
            bad_frames=self.parser.stats.bad_frames,
            resyncs=self.parser.stats.resyncs,
            skipped_bytes=self.parser.stats.skipped_bytes,
            late_reads=self.room.late_reads,
            items_present=self._items_present,
        )
        return values

    def apply_config(self, config: GatewayConfig) -> None:
        """Server-side overrides; taken up by the reader thread at the next round."""
        if config.rfid is None:
            return
        with self._lock:
            base = self._pending or self.settings
            self._pending = base.with_config(config.rfid)

    # --- the thread ------------------------------------------------------------

    def _run(self) -> None:
        delay = self._backoff_s[0]
        while not self._stop.is_set():
            try:
                self._session()
            except (serial.SerialException, OSError) as error:
                problem = str(error) or type(error).__name__
            except Exception as error:  # a driver bug must not end the thread: report, retry
                log.exception("rfid reader %s failed", self.settings.id)
                problem = f"{type(error).__name__}: {error}"
            else:
                break  # stopping
            finally:
                self._close_port()
            if self._stop.is_set():
                break
            self._flush_batch()
            log.warning("rfid reader %s: %s; retry in %.1f s", self.settings.id, problem, delay)
            self._set_state(f"error: {problem}"[:200])
            self.counters.reconnects += 1
            if self._stop.wait(delay):
                break
            delay = min(delay * 2, self._backoff_s[1])
            if self.state.startswith("error"):
                self._set_state("reconnecting")
        self._batch += self.room.close_window()
        self._flush_batch()

    def _session(self) -> None:
        settings = self.settings
        self._port = self._serial_factory(
            settings.port, baudrate=settings.baudrate, timeout=self._idle_s, write_timeout=1.0
        )
        self._silent = 0
        self._work_antenna = None
        self.parser.flush()  # leftovers of the last connection are dead
        self._configure()
        self._set_state("inventory")
        while not self._stop.is_set():
            self._take_pending_config()
            for antenna in self.settings.antennas:
                if self._stop.is_set():
                    break
                self._inventory_round(antenna)
            self._batch += self.room.advance(self.clock())
            self._items_present = len(self.room.present)
            self._flush_batch()

    def _configure(self) -> None:
        answer = self._command(
            cmd_get_firmware_version(self.settings.address), Cmd.GET_FIRMWARE_VERSION
        )
        if answer is not None and len(answer.data) >= 2:
            self.firmware = (answer.data[0], answer.data[1])
        self._set_power(self.settings.power_dbm)

    def _set_power(self, power_dbm: int) -> None:
        answer = self._command(
            cmd_set_output_power(power_dbm, self.settings.address), Cmd.SET_OUTPUT_POWER
        )
        self._check_ack("set_output_power", answer)

    def _check_ack(self, what: str, answer: Frame | None) -> bool:
        if answer is None:
            return False
        if answer.data[:1] != bytes([ErrorCode.SUCCESS]):
            self.counters.reader_errors += 1
            code = answer.data[0] if answer.data else -1
            log.warning("rfid reader %s: %s answered %s", self.settings.id, what, error_name(code))
            return False
        return True

    def _take_pending_config(self) -> None:
        with self._lock:
            new, self._pending = self._pending, None
        if new is None or new == self.settings:
            return
        old, self.settings = self.settings, new
        self._batch += self.room.set_rules(new.rules(), self.clock())
        if new.power_dbm != old.power_dbm:
            self._set_power(new.power_dbm)

    def _inventory_round(self, antenna: int) -> None:
        address = self.settings.address
        if antenna != self._work_antenna:
            answer = self._command(cmd_set_work_antenna(antenna, address), Cmd.SET_WORK_ANTENNA)
            if not self._check_ack("set_work_antenna", answer):
                return
            self._work_antenna = antenna
        if self.settings.session_inventory:
            request = cmd_session_inventory(self.settings.session, 0, self.settings.repeat, address)
        else:
            request = cmd_real_time_inventory(self.settings.repeat, address)
        self._round_done = False
        self._exchange(request, lambda: self._round_done)
        self.counters.rounds += 1

    # --- request / response ----------------------------------------------------

    def _command(self, request: bytes, cmd: int) -> Frame | None:
        """Send a command and wait for its answer; None if none came in time."""
        answers: list[Frame] = []

        def _other(frame: Frame) -> None:
            if frame.cmd == cmd:
                answers.append(frame)

        self._exchange(request, lambda: bool(answers), _other)
        return answers[0] if answers else None

    def _exchange(
        self,
        request: bytes,
        done: Callable[[], bool],
        on_frame: Callable[[Frame], None] | None = None,
    ) -> None:
        self._port.write(request)
        deadline = time.monotonic() + self.settings.response_timeout_s
        while not done():
            if self._stop.is_set():
                return
            if time.monotonic() >= deadline:
                self.counters.timeouts += 1
                self._silent += 1
                if self._silent >= MAX_SILENT_COMMANDS:
                    raise ReaderSilent(f"no answer to {MAX_SILENT_COMMANDS} commands in a row")
                return
            for frame in self._read_frames():
                if frame.cmd in INVENTORY_COMMANDS:
                    self._on_inventory(frame)
                elif on_frame is not None:
                    on_frame(frame)
        self._silent = 0

    def _read_frames(self) -> list[Frame]:
        port = self._port
        chunk: bytes = port.read(max(1, port.in_waiting))
        if chunk:
            frames = self.parser.feed(chunk)
        elif self.parser.pending:
            frames = self.parser.flush()  # silence mid-frame: it was cut short
        else:
            return []
        address = self.settings.address
        if address == BROADCAST_ADDRESS:
            return frames
        kept = [f for f in frames if f.address == address]
        self.counters.foreign_frames += len(frames) - len(kept)
        return kept

    def _on_inventory(self, frame: Frame) -> None:
        packet = decode_inventory(frame)
        if isinstance(packet, TagReport):
            self.counters.reads += 1
            if not 4 <= len(packet.epc) <= 32:
                self.counters.unusable_epcs += 1
                return
            seen = TagSeen(packet.epc.hex(), packet.antenna, packet.rssi_dbm, self.clock())
            self._batch += self.room.observe(seen)
        elif isinstance(packet, RoundSummary):
            self._round_done = True
        elif isinstance(packet, ReaderError):
            self.counters.reader_errors += 1
            self._round_done = True
            if packet.code == ErrorCode.ANTENNA_MISSING:
                log.warning(
                    "rfid reader %s: antenna %s missing", self.settings.id, self._work_antenna
                )
        elif isinstance(packet, Malformed):
            self.counters.malformed += 1

    # --- helpers ---------------------------------------------------------------

    def _flush_batch(self) -> None:
        if self._batch:
            batch, self._batch = self._batch, []
            self.node.on_rfid_items(batch)

    def _set_state(self, state: str) -> None:
        self.node.readers[self.settings.id] = state

    def _close_port(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            try:
                port.close()
            except Exception:  # closing a vanished device may fail; it is gone either way
                log.debug("closing %s failed", self.settings.port, exc_info=True)


def probe_reader(
    settings: RfidReaderSettings, serial_factory: SerialFactory = serial.serial_for_url
) -> tuple[bool, str]:
    """For `omnizone gateway doctor`: can the port be opened, does a module answer?
    Returns (ok, what was found or what to fix)."""
    try:
        port = serial_factory(settings.port, baudrate=settings.baudrate, timeout=0.05)
    except (serial.SerialException, OSError) as error:
        hint = "check the cable, the port name and that the user is in group dialout"
        return False, f"{settings.id}: cannot open {settings.port}: {error} ({hint})"
    parser = FrameParser()
    try:
        port.write(cmd_get_firmware_version(settings.address))
        deadline = time.monotonic() + settings.response_timeout_s
        while time.monotonic() < deadline:
            for frame in parser.feed(port.read(max(1, port.in_waiting))):
                if frame.cmd == Cmd.GET_FIRMWARE_VERSION and len(frame.data) >= 2:
                    major, minor = frame.data[0], frame.data[1]
                    return (
                        True,
                        f"{settings.id}: R2000 module firmware {major}.{minor} on {settings.port}",
                    )
    except (serial.SerialException, OSError) as error:
        return False, f"{settings.id}: {settings.port} failed: {error}"
    finally:
        port.close()
    return False, (
        f"{settings.id}: no answer on {settings.port} at {settings.baudrate} baud "
        f"(try 38400, check address {settings.address} and the reader's power)"
    )
