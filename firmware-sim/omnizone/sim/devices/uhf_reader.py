"""An R2000-module UHF reader emulated on a pseudo-terminal.

The gateway's real driver opens the slave side (``/dev/pts/N``, or a symlink to
it standing in for ``/dev/serial/by-id/...``) exactly as it would a USB-serial
reader; this side answers the commands in the module's own serial protocol and,
during inventory, reports the tags currently in the fitting room. Seeded noise
(garbage between frames, frames split across writes, corrupt checksums,
truncated frames) exercises the driver's resynchronisation.
"""

import contextlib
import os
import random
import select
import threading
import tty
from dataclasses import dataclass
from pathlib import Path

from omnizone.gateway.rfid.protocol import (
    BROADCAST_ADDRESS,
    Cmd,
    ErrorCode,
    Frame,
    FrameParser,
    build_frame,
    round_summary_frame,
    tag_report_frame,
)
from omnizone.lifecycle import Started


@dataclass(frozen=True, slots=True)
class SerialNoise:
    """Per-frame probabilities of each kind of line trouble."""

    garbage_rate: float = 0.0  # random bytes (0xA0 included) before the frame
    split_rate: float = 0.0  # the frame reaches the host in two writes
    corrupt_rate: float = 0.0  # one byte of the frame flipped: checksum fails
    truncate_rate: float = 0.0  # the frame loses its tail
    max_garbage: int = 8


# Request shapes: 0x89 Repeat; 0x8B Session Target Repeat (some firmware adds SL / Phase).
_INVENTORY_REQUESTS = frozenset(
    [(Cmd.REAL_TIME_INVENTORY, 1)]
    + [(Cmd.CUSTOMIZED_SESSION_TARGET_INVENTORY, n) for n in (3, 4, 5)]
)

NOISY = SerialNoise(garbage_rate=0.1, split_rate=0.2, corrupt_rate=0.05, truncate_rate=0.03)


@dataclass(slots=True)
class EmulatorCounters:
    commands: int = 0
    rounds: int = 0
    frames: int = 0
    tag_reports: int = 0
    garbage_bytes: int = 0
    corrupted: int = 0
    truncated: int = 0
    splits: int = 0
    dropped_bytes: int = 0


@dataclass(frozen=True, slots=True)
class PlacedTag:
    epc: bytes
    rssi_dbm: float
    antenna: int


class EmulatedUhfReader(Started):
    def __init__(
        self,
        *,
        address: int = 0x01,
        firmware: tuple[int, int] = (1, 8),
        noise: SerialNoise = SerialNoise(),
        seed: int = 0,
        round_s: float = 0.005,
        rssi_jitter_db: float = 0.0,
        link: str | Path | None = None,
    ) -> None:
        self.address = address
        self.firmware = firmware
        self.noise = noise
        self.round_s = round_s
        self.rssi_jitter_db = rssi_jitter_db
        self.link = Path(link) if link is not None else None
        self.counters = EmulatorCounters()
        self.power_dbm: int | None = None
        self.work_antenna = 1
        self._rng = random.Random(seed)
        self._tags: dict[bytes, PlacedTag] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._master = -1
        self._slave = -1
        self._slave_name = ""
        self._parser = FrameParser()

    # --- the fitting room --------------------------------------------------------

    def put_tag(self, epc: str | bytes, rssi_dbm: float = -55.0, antenna: int = 1) -> None:
        raw = bytes.fromhex(epc) if isinstance(epc, str) else bytes(epc)
        with self._lock:
            self._tags[raw] = PlacedTag(raw, rssi_dbm, antenna)

    def remove_tag(self, epc: str | bytes) -> None:
        raw = bytes.fromhex(epc) if isinstance(epc, str) else bytes(epc)
        with self._lock:
            self._tags.pop(raw, None)

    def clear(self) -> None:
        with self._lock:
            self._tags.clear()

    def set_noise(self, noise: SerialNoise) -> None:
        self.noise = noise

    # --- lifecycle -----------------------------------------------------------------

    @property
    def port(self) -> str:
        """What the driver opens: the symlink if one was asked for, else /dev/pts/N."""
        return str(self.link) if self.link is not None else self._slave_name

    def start(self) -> None:
        if self._thread is not None:
            return
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no line discipline: bytes pass untouched
        os.set_blocking(self._master, False)
        self._slave_name = os.ttyname(self._slave)
        if self.link is not None:
            staging = self.link.with_name(self.link.name + ".new")
            with contextlib.suppress(FileNotFoundError):
                staging.unlink()
            staging.symlink_to(self._slave_name)
            staging.replace(self.link)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="uhf-reader-emulator", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Like pulling the USB cable: the host's next read fails."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        for fd in (self._master, self._slave):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = -1
        if self.link is not None and self.link.is_symlink():
            with contextlib.suppress(FileNotFoundError):
                if os.readlink(self.link) == self._slave_name:
                    self.link.unlink()

    # --- the module ------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master], [], [], 0.05)
            if not ready:
                continue
            try:
                chunk = os.read(self._master, 4096)
            except BlockingIOError:
                continue
            except OSError:  # EIO while no host has the slave open
                self._stop.wait(0.01)
                continue
            for frame in self._parser.feed(chunk):
                if frame.address in (self.address, BROADCAST_ADDRESS):
                    self.counters.commands += 1
                    self._answer(frame)

    def _answer(self, frame: Frame) -> None:
        cmd, data = frame.cmd, frame.data
        if cmd == Cmd.GET_FIRMWARE_VERSION:
            self._send(build_frame(self.address, cmd, bytes(self.firmware)))
        elif cmd == Cmd.SET_WORK_ANTENNA:
            if len(data) == 1 and data[0] <= 3:
                self.work_antenna = data[0] + 1
                self._ack(cmd, ErrorCode.SUCCESS)
            else:
                self._ack(cmd, ErrorCode.ANTENNA_ID_OUT_OF_RANGE)
        elif cmd == Cmd.GET_WORK_ANTENNA:
            self._send(build_frame(self.address, cmd, bytes([self.work_antenna - 1])))
        elif cmd == Cmd.SET_OUTPUT_POWER:
            if len(data) in (1, 4) and all(p <= 33 for p in data):
                self.power_dbm = data[0]
                self._ack(cmd, ErrorCode.SUCCESS)
            else:
                self._ack(cmd, ErrorCode.OUTPUT_POWER_OUT_OF_RANGE)
        elif (cmd, len(data)) in _INVENTORY_REQUESTS:
            self._inventory(cmd)
        else:
            self._ack(cmd, ErrorCode.FAIL)

    def _ack(self, cmd: int, code: int) -> None:
        self._send(build_frame(self.address, cmd, bytes([code])))

    def _inventory(self, cmd: int) -> None:
        with self._lock:
            tags = [t for t in self._tags.values() if t.antenna == self.work_antenna]
        for tag in tags:
            rssi = tag.rssi_dbm + self._rng.uniform(-self.rssi_jitter_db, self.rssi_jitter_db)
            frequency = self._rng.randrange(7, 60)
            self._send(
                tag_report_frame(self.address, tag.epc, round(rssi), tag.antenna, frequency, cmd)
            )
            self.counters.tag_reports += 1
        if self._stop.wait(self.round_s):
            return
        rate = round(len(tags) / self.round_s) if self.round_s > 0 else len(tags)
        self._send(
            round_summary_frame(self.address, self.work_antenna, min(rate, 0xFFFF), len(tags), cmd)
        )
        self.counters.rounds += 1

    def _send(self, frame: bytes) -> None:
        noise, rng = self.noise, self._rng
        self.counters.frames += 1
        if noise.garbage_rate and rng.random() < noise.garbage_rate:
            garbage = rng.randbytes(rng.randint(1, noise.max_garbage))
            self.counters.garbage_bytes += len(garbage)
            self._write(garbage)
        if noise.corrupt_rate and rng.random() < noise.corrupt_rate:
            position = rng.randrange(1, len(frame))
            damaged = bytearray(frame)
            damaged[position] ^= rng.randint(1, 0xFF)
            frame = bytes(damaged)
            self.counters.corrupted += 1
        if noise.truncate_rate and rng.random() < noise.truncate_rate:
            frame = frame[: rng.randrange(1, len(frame))]
            self.counters.truncated += 1
        if len(frame) > 1 and noise.split_rate and rng.random() < noise.split_rate:
            cut = rng.randrange(1, len(frame))
            self.counters.splits += 1
            self._write(frame[:cut])
            self._stop.wait(0.001)
            frame = frame[cut:]
        self._write(frame)

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                written = os.write(self._master, view)
            except BlockingIOError:
                # Nobody reads the port (host not connected): a real module's UART
                # would lose these bytes too.
                _, writable, _ = select.select([], [self._master], [], 0.2)
                if not writable:
                    self.counters.dropped_bytes += len(view)
                    return
                continue
            except OSError:
                self.counters.dropped_bytes += len(view)
                return
            view = view[written:]
