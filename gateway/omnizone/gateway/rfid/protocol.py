"""The serial protocol of Impinj R2000-based UHF reader modules ("UHF RFID
Reader Serial Interface Protocol", the 0xA0-header protocol).

A packet is ``Head(0xA0) Len Address Cmd Data... Check``: ``Len`` counts the
bytes after itself (address, command, data and check), and ``Check`` is the
two's complement of the sum of every byte before it, so a whole packet sums to
zero modulo 256. Everything here is pure: bytes in, frames and reports out.
"""

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Final

HEAD: Final = 0xA0
MIN_LEN: Final = 3  # address + cmd + check
BROADCAST_ADDRESS: Final = 0xFF  # the "public address" every module answers


class Cmd(IntEnum):
    RESET = 0x70
    GET_FIRMWARE_VERSION = 0x72
    SET_WORK_ANTENNA = 0x74
    GET_WORK_ANTENNA = 0x75
    SET_OUTPUT_POWER = 0x76
    GET_OUTPUT_POWER = 0x77
    REAL_TIME_INVENTORY = 0x89
    CUSTOMIZED_SESSION_TARGET_INVENTORY = 0x8B


INVENTORY_COMMANDS: Final = frozenset(
    {Cmd.REAL_TIME_INVENTORY, Cmd.CUSTOMIZED_SESSION_TARGET_INVENTORY}
)


class ErrorCode(IntEnum):
    """The error codes this driver tells apart; others are reported by number."""

    SUCCESS = 0x10
    FAIL = 0x11
    MCU_RESET_ERROR = 0x20
    CW_ON_ERROR = 0x21
    ANTENNA_MISSING = 0x22
    WRITE_FLASH_ERROR = 0x23
    READ_FLASH_ERROR = 0x24
    SET_OUTPUT_POWER_ERROR = 0x25
    TAG_INVENTORY_ERROR = 0x31
    NO_TAG = 0x36
    PARAMETER_INVALID = 0x41
    ANTENNA_ID_OUT_OF_RANGE = 0x47
    OUTPUT_POWER_OUT_OF_RANGE = 0x48


def error_name(code: int) -> str:
    try:
        return ErrorCode(code).name.lower()
    except ValueError:
        return f"error_0x{code:02x}"


def checksum(data: bytes) -> int:
    """Two's complement of the byte sum: appended, the packet sums to 0."""
    return (-sum(data)) & 0xFF


@dataclass(frozen=True, slots=True)
class Frame:
    address: int
    cmd: int
    data: bytes = b""

    def encode(self) -> bytes:
        return build_frame(self.address, self.cmd, self.data)


def build_frame(address: int, cmd: int, data: bytes = b"") -> bytes:
    if not 0 <= address <= 0xFF or not 0 <= cmd <= 0xFF:
        raise ValueError(f"address {address} and command {cmd} must be bytes")
    if len(data) > 0xFF - MIN_LEN:
        raise ValueError(f"{len(data)} data bytes do not fit one packet")
    body = bytes([HEAD, len(data) + MIN_LEN, address, cmd]) + data
    return body + bytes([checksum(body)])


# --- host commands -----------------------------------------------------------


def cmd_get_firmware_version(address: int = BROADCAST_ADDRESS) -> bytes:
    return build_frame(address, Cmd.GET_FIRMWARE_VERSION)


def cmd_set_work_antenna(antenna: int, address: int = BROADCAST_ADDRESS) -> bytes:
    """`antenna` is 1-based here; the wire carries AntennaID 0..3."""
    if not 1 <= antenna <= 4:
        raise ValueError(f"antenna {antenna} is not 1..4")
    return build_frame(address, Cmd.SET_WORK_ANTENNA, bytes([antenna - 1]))


def cmd_set_output_power(power_dbm: int, address: int = BROADCAST_ADDRESS) -> bytes:
    """One RfPower byte: the same output power (0..33 dBm) on every port."""
    if not 0 <= power_dbm <= 33:
        raise ValueError(f"output power {power_dbm} dBm is not 0..33")
    return build_frame(address, Cmd.SET_OUTPUT_POWER, bytes([power_dbm]))


def cmd_real_time_inventory(repeat: int = 1, address: int = BROADCAST_ADDRESS) -> bytes:
    if not 0 <= repeat <= 0xFF:
        raise ValueError(f"repeat {repeat} is not a byte")
    return build_frame(address, Cmd.REAL_TIME_INVENTORY, bytes([repeat]))


def cmd_session_inventory(
    session: int = 1, target: int = 0, repeat: int = 1, address: int = BROADCAST_ADDRESS
) -> bytes:
    """Customized session/target inventory: session S0..S3, target A (0) or B (1)."""
    if not 0 <= session <= 3 or target not in (0, 1) or not 0 <= repeat <= 0xFF:
        raise ValueError(f"session {session}, target {target}, repeat {repeat} out of range")
    return build_frame(
        address, Cmd.CUSTOMIZED_SESSION_TARGET_INVENTORY, bytes([session, target, repeat])
    )


# --- reader responses --------------------------------------------------------


# FreqParameter 0..6: 865.0-868.0 MHz (ETSI), 7..59: 902.0-928.0 MHz (FCC), 0.5 MHz steps.
def frequency_mhz(index: int) -> float | None:
    if 0 <= index <= 6:
        return 865.0 + 0.5 * index
    if 7 <= index <= 59:
        return 902.0 + 0.5 * (index - 7)
    return None


def rssi_dbm(raw: int) -> int:
    """The RSSI byte's table is linear: 0x62 (98) is -31 dBm, 0x1F (31) is -98 dBm,
    i.e. dBm = value - 129. The top bit is not part of the value (8-port
    modules use it for the antenna group), and results are kept within the
    contract's -127 dBm floor."""
    return max(-127, (raw & 0x7F) - 129)


def rssi_byte(dbm: float) -> int:
    """Inverse of `rssi_dbm` (for the emulator and tests)."""
    return max(0, min(0x7F, round(dbm) + 129))


@dataclass(frozen=True, slots=True)
class TagReport:
    """One tag singulated during an inventory round."""

    antenna: int  # 1-based
    frequency_index: int
    pc: int
    epc: bytes
    rssi_dbm: int

    @property
    def frequency_mhz(self) -> float | None:
        return frequency_mhz(self.frequency_index)


@dataclass(frozen=True, slots=True)
class RoundSummary:
    """The packet that closes an inventory round."""

    antenna: int  # 1-based
    read_rate: int  # tags/s
    total_read: int


@dataclass(frozen=True, slots=True)
class ReaderError:
    cmd: int
    code: int

    @property
    def name(self) -> str:
        return error_name(self.code)


@dataclass(frozen=True, slots=True)
class Malformed:
    """A frame with a good checksum whose body does not fit its command."""

    cmd: int
    reason: str


InventoryPacket = TagReport | RoundSummary | ReaderError | Malformed


def decode_inventory(frame: Frame) -> InventoryPacket:
    """A response to 0x89/0x8B: a tag report, the round's end, or an error.

    Tag report data: FreqAnt (frequency index in the high 6 bits, antenna in
    the low 2), PC (2 bytes, EPC length in words in its top 5 bits), EPC, RSSI.
    Round end: AntID, ReadRate (2), TotalRead (4). Failure: ErrorCode.
    """
    data = frame.data
    if len(data) == 1:
        return ReaderError(frame.cmd, data[0])
    if len(data) == 7:  # a tag report has an even EPC length, so never 7 bytes
        return RoundSummary(
            antenna=(data[0] & 0x03) + 1,
            read_rate=int.from_bytes(data[1:3], "big"),
            total_read=int.from_bytes(data[3:7], "big"),
        )
    if len(data) < 4:
        return Malformed(frame.cmd, f"{len(data)} data bytes is neither a report nor a summary")
    pc = int.from_bytes(data[1:3], "big")
    epc_len = (pc >> 11) * 2
    if 3 + epc_len + 1 > len(data):
        return Malformed(frame.cmd, f"PC 0x{pc:04x} announces {epc_len} EPC bytes, frame has fewer")
    rssi_raw = data[3 + epc_len]
    antenna = (data[0] & 0x03) + 1 + (4 if rssi_raw & 0x80 else 0)
    return TagReport(
        antenna=antenna,
        frequency_index=data[0] >> 2,
        pc=pc,
        epc=bytes(data[3 : 3 + epc_len]),
        rssi_dbm=rssi_dbm(rssi_raw),
    )


def pc_for_epc(epc: bytes) -> int:
    """The PC word a tag backscatters for this EPC (length only, no flags)."""
    if len(epc) % 2 or len(epc) > 62:
        raise ValueError(f"an EPC of {len(epc)} bytes is not a whole number of words (<= 31)")
    return (len(epc) // 2) << 11


def tag_report_frame(
    address: int,
    epc: bytes,
    rssi: int,
    antenna: int = 1,
    frequency_index: int = 0,
    cmd: int = Cmd.REAL_TIME_INVENTORY,
) -> bytes:
    """What the module sends for one tag (the emulator's side; `rssi` in dBm)."""
    freq_ant = ((frequency_index & 0x3F) << 2) | ((antenna - 1) & 0x03)
    raw = rssi_byte(rssi) | (0x80 if antenna > 4 else 0)
    data = bytes([freq_ant]) + pc_for_epc(epc).to_bytes(2, "big") + epc + bytes([raw])
    return build_frame(address, cmd, data)


def round_summary_frame(
    address: int,
    antenna: int,
    read_rate: int,
    total_read: int,
    cmd: int = Cmd.REAL_TIME_INVENTORY,
) -> bytes:
    data = bytes([antenna - 1]) + read_rate.to_bytes(2, "big") + total_read.to_bytes(4, "big")
    return build_frame(address, cmd, data)


# --- incremental parser ------------------------------------------------------


@dataclass(slots=True)
class ParserStats:
    frames: int = 0
    bad_frames: int = 0  # checksum failures and frames cut short
    resyncs: int = 0  # times the parser had to hunt for the next head byte
    skipped_bytes: int = 0


@dataclass(slots=True)
class FrameParser:
    """Splits a byte stream into frames; never raises on input.

    On a bad checksum only the head byte is discarded and the search restarts
    right after it, so a good frame hidden behind a corrupt or truncated one
    (whose bogus length swallowed it) is still found.
    """

    stats: ParserStats = field(default_factory=ParserStats)
    _buffer: bytearray = field(default_factory=bytearray)

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def feed(self, chunk: bytes) -> list[Frame]:
        self._buffer += chunk
        return self._scan()  # leaves at most one partial frame (< 257 bytes)

    def flush(self) -> list[Frame]:
        """The line went quiet mid-frame: that frame will never complete.
        Count it, drop its head and recover any frames behind it."""
        frames: list[Frame] = []
        while self._buffer:
            self.stats.bad_frames += 1
            self._drop(1)
            frames += self._scan()
        return frames

    def _drop(self, count: int) -> None:
        del self._buffer[:count]
        self.stats.skipped_bytes += count

    def _scan(self) -> list[Frame]:
        frames: list[Frame] = []
        buf = self._buffer
        while buf:
            if buf[0] != HEAD:
                start = buf.find(HEAD)
                self.stats.resyncs += 1
                self._drop(len(buf) if start < 0 else start)
                continue
            if len(buf) < 2:
                break
            length = buf[1]
            if length < MIN_LEN:
                self.stats.bad_frames += 1
                self._drop(1)
                continue
            total = length + 2
            if len(buf) < total:
                break
            if sum(buf[:total]) & 0xFF:
                self.stats.bad_frames += 1
                self._drop(1)
                continue
            frames.append(Frame(buf[2], buf[3], bytes(buf[4 : total - 1])))
            self.stats.frames += 1
            del buf[:total]
        return frames
