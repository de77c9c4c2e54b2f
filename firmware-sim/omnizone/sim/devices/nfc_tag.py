"""An NFC tag presented to a tap point, emulated on nfcpy's own UDP driver.

nfcpy ships `nfc.clf.udp`, a ContactlessFrontend driver that carries the NFC
Forum Digital frames over UDP on localhost. The gateway's reader opens
``udp:127.0.0.1:<port>`` as initiator and runs unchanged; this module opens
the same path as a target (card mode), lets nfcpy's UDP driver do polling and
anticollision, and answers the tag commands:

- Type 3 Tag (FeliCa framing): nfcpy's own Type3TagEmulation, with the NFC
  Forum Type 3 NDEF mapping (attribute block + data blocks) in memory here;
- Type 2 Tag (the NTAG/Ultralight family used for shelf tags): nfcpy has no
  emulation class, so READ/WRITE are answered here on nfcpy's listen() and
  exchange(); nfcpy's reader sees a generic Type2Tag.

The memory is real: readers read and write it with nfcpy's own tag code, so
formatting and writing shelf tags is exercised too. A phone is modelled as a
tag with a fresh random identifier per tap, as phones do (their Type 4 host
card emulation is not emulated here).
"""

import logging
import os
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import nfc
import nfc.clf
import nfc.tag

log = logging.getLogger(__name__)

BLOCK = 16
NDEF_SYSTEM_CODE = bytes.fromhex("12fc")
NDEF_READ_SERVICE = 0x000B
NDEF_WRITE_SERVICE = 0x0009
# PMm: byte 1 (IC code) is not a Sony FeliCa product, so nfcpy treats the tag
# as a plain NFC Forum Type 3 Tag; byte 5 gives the reader the longest read
# and write timeouts the FeliCa formula allows (an emulator on a busy
# machine is slower than silicon).
PMM = bytes.fromhex("003fffffffffffff")
LISTEN_S = 3600.0  # remove() and close() wake a listening card up


def free_udp_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _port_bound(port: int) -> bool:
    """Whether a card has bound the UDP port (nfcpy's listener binds 0.0.0.0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind(("0.0.0.0", port))
        except OSError:
            return True
        return False


def random_phone_uid() -> bytes:
    """A phone's per-tap random identifier (8 bytes, not the P2P prefix 01FE)."""
    return b"\x02\xfe" + os.urandom(6)


def attribute_block(
    length: int, nmaxb: int, *, writable: bool, nbr: int = 4, nbw: int = 4
) -> bytes:
    """The Type 3 Tag NDEF attribute information block (block 0)."""
    block = bytearray(BLOCK)
    block[0:5] = struct.pack(">BBBH", 0x10, nbr, nbw if writable else 0, nmaxb)
    block[10] = 0x01 if writable else 0x00
    block[11:14] = struct.pack(">I", length)[1:]
    block[14:16] = struct.pack(">H", sum(block[0:14]))
    return bytes(block)


class PresentedTag(Protocol):
    """What the emulator needs from a tag: how to be found, how to answer."""

    uid: bytes

    def local_target(self) -> Any:
        """The nfc.clf.LocalTarget announced while listening."""

    def activate(
        self, frontend: nfc.ContactlessFrontend, activated: Any
    ) -> Callable[[bytearray], bytearray | None] | None:
        """The command processor once a reader has selected the tag."""

    def first_command(self, activated: Any) -> bytearray | None:
        """The command that came with the activation."""

    def wake_up(self) -> tuple[str, bytes]:
        """Bit rate and a command that make a listening card return from listen()."""

    def ndef_octets(self) -> bytes | None:
        """The NDEF message a reader would find now (None if not formatted)."""


@dataclass
class EmulatedType3Tag:
    """An NFC Forum Type 3 Tag (FeliCa framing), answered by nfcpy's Type3TagEmulation.

    `uid` is the IDm (8 bytes). `blank` leaves the attribute block empty (no
    NDEF until formatted); `writable` exposes the NDEF write service.
    """

    uid: bytes
    ndef: bytes = b""
    writable: bool = True
    blank: bool = False
    blocks: int = 32  # NDEF data blocks: 512 bytes
    memory: bytearray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if len(self.uid) != 8:
            raise ValueError(f"a Type 3 tag identifier (IDm) is 8 bytes, not {len(self.uid)}")
        if self.uid[:2] == b"\x01\xfe":
            raise ValueError("IDm 01FE... announces NFC-DEP (peer to peer), not a tag")
        if len(self.ndef) > self.blocks * BLOCK:
            raise ValueError(f"{len(self.ndef)} bytes of NDEF exceed {self.blocks * BLOCK}")
        self.memory = bytearray((self.blocks + 1) * BLOCK)
        if not self.blank:
            header = attribute_block(len(self.ndef), self.blocks, writable=self.writable)
            self.memory[0:BLOCK] = header
            self.memory[BLOCK : BLOCK + len(self.ndef)] = self.ndef

    def local_target(self) -> Any:
        target = nfc.clf.LocalTarget("212F")
        target.sensf_res = bytearray(b"\x01" + self.uid + PMM + NDEF_SYSTEM_CODE)
        return target

    def activate(
        self, frontend: nfc.ContactlessFrontend, activated: Any
    ) -> Callable[[bytearray], bytearray | None] | None:
        emulation = nfc.tag.emulate(frontend, activated)
        if emulation is None:
            return None
        emulation.add_service(NDEF_READ_SERVICE, self.read_block, None)
        if self.writable:
            emulation.add_service(NDEF_WRITE_SERVICE, self.read_block, self.write_block)
        process: Callable[[bytearray], bytearray | None] = emulation.process_command
        return process

    def first_command(self, activated: Any) -> bytearray | None:
        command = bytes(activated.tt3_cmd)
        return bytearray([len(command) + 1]) + command

    def wake_up(self) -> tuple[str, bytes]:
        return "212F", bytes([10, 0x04]) + self.uid  # Request Response

    def ndef_octets(self) -> bytes | None:
        head = self.memory[0:BLOCK]
        if head[0] >> 4 != 1 or sum(head[0:14]) != struct.unpack(">H", head[14:16])[0]:
            return None
        length = int.from_bytes(head[11:14], "big")
        return bytes(self.memory[BLOCK : BLOCK + length])

    def read_block(self, number: int, _rb: bool = False, _re: bool = False) -> bytes | None:
        if not 0 <= number <= self.blocks:
            return None
        return bytes(self.memory[number * BLOCK : (number + 1) * BLOCK])

    def write_block(self, number: int, data: bytes, _wb: bool = False, _we: bool = False) -> bool:
        if not self.writable or not 0 <= number <= self.blocks or len(data) != BLOCK:
            return False
        self.memory[number * BLOCK : (number + 1) * BLOCK] = data
        return True


PAGE = 4
T2_READ, T2_WRITE = 0x30, 0xA2
T2_ACK, T2_NAK = b"\x0a", b"\x00"


@dataclass
class EmulatedType2Tag:
    """An NFC Forum Type 2 Tag (the NTAG/Ultralight family of shelf tags).

    nfcpy has no Type 2 emulation class, so the READ and WRITE commands of the
    Type 2 Tag specification are answered here, on nfcpy's own listen() and
    exchange(). `uid` is 7 bytes; its first byte (manufacturer) must not be
    0x04 (NXP), because nfcpy then probes NXP-only commands and re-selects the
    tag, which this emulation does not do: the tag reads as a generic Type2Tag.
    """

    uid: bytes
    ndef: bytes = b""
    writable: bool = True
    data_bytes: int = 144  # NTAG213's user memory
    memory: bytearray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if len(self.uid) != 7:
            raise ValueError(f"a Type 2 tag UID here is 7 bytes, not {len(self.uid)}")
        if self.uid[0] == 0x04:
            raise ValueError("NXP UIDs (04...) are not emulated; use another manufacturer byte")
        if self.data_bytes % 8 or not 16 <= self.data_bytes <= 2040:
            raise ValueError("data_bytes must be a multiple of 8 between 16 and 2040")
        tlv = self._tlv(self.ndef)
        if len(tlv) > self.data_bytes:
            raise ValueError(f"{len(self.ndef)} bytes of NDEF exceed {self.data_bytes}")
        uid = self.uid
        self.memory = bytearray(4 * PAGE + self.data_bytes)
        self.memory[0:3] = uid[0:3]
        self.memory[3] = 0x88 ^ uid[0] ^ uid[1] ^ uid[2]  # BCC0 (ISO/IEC 14443-3)
        self.memory[4:8] = uid[3:7]
        self.memory[8] = uid[3] ^ uid[4] ^ uid[5] ^ uid[6]  # BCC1
        # Capability container: NDEF magic, mapping 1.0, size/8, access.
        self.memory[12:16] = bytes(
            [0xE1, 0x10, self.data_bytes // 8, 0x00 if self.writable else 0x0F]
        )
        self.memory[16 : 16 + len(tlv)] = tlv

    @staticmethod
    def _tlv(message: bytes) -> bytes:
        if len(message) < 0xFF:
            return bytes([0x03, len(message)]) + message + b"\xfe"
        return b"\x03\xff" + struct.pack(">H", len(message)) + message + b"\xfe"

    def local_target(self) -> Any:
        target = nfc.clf.LocalTarget("106A")
        target.sens_res = bytearray(b"\x44\x00")  # double-size UID, no Type 1
        target.sdd_res = bytearray(self.uid)
        target.sel_res = bytearray(b"\x00")  # Type 2: no ISO-DEP, no NFC-DEP
        return target

    def activate(
        self, _frontend: nfc.ContactlessFrontend, activated: Any
    ) -> Callable[[bytearray], bytearray | None] | None:
        return self.process if activated.tt2_cmd else None

    def first_command(self, activated: Any) -> bytearray | None:
        return bytearray(activated.tt2_cmd)

    def wake_up(self) -> tuple[str, bytes]:
        return "106A", bytes([T2_READ, 0])

    def process(self, command: bytearray) -> bytearray | None:
        pages = len(self.memory) // PAGE
        if len(command) == 2 and command[0] == T2_READ:
            start = command[1]
            if start >= pages:
                return bytearray(T2_NAK)
            # Four pages, rolling over to page 0 at the end of memory.
            return bytearray(
                b"".join(
                    self.memory[(p % pages) * PAGE : (p % pages + 1) * PAGE]
                    for p in range(start, start + 4)
                )
            )
        if len(command) == 6 and command[0] == T2_WRITE:
            page = command[1]
            if not self.writable or not 4 <= page < pages:
                return bytearray(T2_NAK)
            self.memory[page * PAGE : (page + 1) * PAGE] = command[2:6]
            return bytearray(T2_ACK)
        return None  # unsupported command: a Type 2 tag stays mute

    def ndef_octets(self) -> bytes | None:
        if self.memory[12] != 0xE1:
            return None
        data = self.memory[16:]
        offset = 0
        while offset < len(data):
            kind = data[offset]
            if kind == 0x00:
                offset += 1
                continue
            if kind == 0xFE or offset + 1 >= len(data):
                return None
            length, header = data[offset + 1], 2
            if length == 0xFF:
                length, header = int.from_bytes(data[offset + 2 : offset + 4], "big"), 4
            if kind == 0x03:
                return bytes(data[offset + header : offset + header + length])
            offset += header + length
        return None


class NfcTagEmulator:
    """A card on nfcpy's UDP driver: hold an emulated tag to the reader, take it away.

    The reader opens `self.device`. One tag at a time, like a hand at a shelf.
    """

    def __init__(self, port: int | None = None, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port or free_udp_port(host)
        self.device = f"udp:{host}:{self.port}"
        self.activations = 0
        self.commands = 0
        self.bad_commands = 0
        self._lock = threading.Condition()
        self._tag: PresentedTag | None = None
        self._until: float | None = None
        self._closed = False
        self._listening: PresentedTag | None = None
        self._idle = threading.Event()
        self._idle.set()
        self._thread = threading.Thread(target=self._run, name="nfc-tag-emulator", daemon=True)
        self._thread.start()

    def present(self, tag: PresentedTag, duration_ms: int | None = None) -> None:
        """Put `tag` on the reader, for `duration_ms` of real time or until remove()."""
        with self._lock:
            if self._closed:
                raise RuntimeError("emulator is closed")
            self._tag = tag
            self._until = None if duration_ms is None else time.monotonic() + duration_ms / 1000
            self._idle.clear()
            self._lock.notify_all()
            # Return once the card is listening, so a reader polling right
            # away finds it (an initiator's poll to an unbound port is lost
            # and costs it a one-second timeout).
            self._lock.wait_for(lambda: self._listening is tag or self._tag is not tag, 1.0)
        deadline = time.monotonic() + 1.0
        while not _port_bound(self.port) and time.monotonic() < deadline:
            time.sleep(0.001)

    def remove(self, timeout_s: float = 5.0) -> bool:
        """Take the tag away; True once it has left the field (socket closed)."""
        with self._lock:
            self._tag = None
            self._lock.notify_all()
        return self._wake(time.monotonic() + timeout_s)

    def wait_removed(self, timeout_s: float) -> bool:
        """Wait for a timed presentation to end."""
        return self._idle.wait(timeout_s)

    def close(self, timeout_s: float = 5.0) -> None:
        with self._lock:
            self._closed = True
            self._tag = None
            self._lock.notify_all()
        self._wake(time.monotonic() + timeout_s)
        self._thread.join(timeout_s)

    def __enter__(self) -> "NfcTagEmulator":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _wake(self, deadline: float) -> bool:
        """Bring a listening card out of nfcpy's listen() once its tag is gone.

        A card listens with a long timeout: ending listen() on a short timer
        would lose the polling state nfcpy keeps inside it, and a reader whose
        first command fell just after such a restart would find the tag mute.
        So removal briefly selects the card as a second initiator would.
        """
        while not self._idle.wait(0.01):
            if time.monotonic() > deadline:
                return False
            with self._lock:
                listening = self._listening
            if listening is None:
                continue
            brty, command = listening.wake_up()
            poker = nfc.ContactlessFrontend(self.device)
            try:
                if poker.sense(nfc.clf.RemoteTarget(brty)) is not None:
                    poker.exchange(command, 0.05)
            except nfc.clf.CommunicationError:
                pass  # the card answered nothing: it is no longer listening
            finally:
                poker.close()
        return True

    # -- the card thread -----------------------------------------------------

    def _current(self) -> PresentedTag | None:
        """The tag in the field now, ending timed presentations."""
        with self._lock:
            if self._until is not None and time.monotonic() >= self._until:
                self._tag, self._until = None, None
            return self._tag

    def _remaining(self, cap: float) -> float:
        with self._lock:
            if self._until is None:
                return cap
            return max(0.0, min(cap, self._until - time.monotonic()))

    def _run(self) -> None:
        while True:
            with self._lock:
                while self._tag is None and not self._closed:
                    self._idle.set()
                    self._lock.wait()
                if self._closed:
                    self._idle.set()
                    return
            tag = self._current()
            if tag is None:
                continue
            frontend = nfc.ContactlessFrontend(self.device)
            try:
                self._serve(frontend, tag)
            except Exception as error:  # the emulator must outlive a confused reader
                log.warning("nfc emulator: %r", error)
            finally:
                frontend.close()  # the tag leaves the field: the socket goes away

    def _serve(self, frontend: nfc.ContactlessFrontend, tag: PresentedTag) -> None:
        target = tag.local_target()
        while self._current() is tag:
            started = time.monotonic()
            with self._lock:
                self._listening = tag
                self._lock.notify_all()
            try:
                activated = frontend.listen(target, self._remaining(LISTEN_S))
            finally:
                with self._lock:
                    self._listening = None
            if self._current() is not tag:
                return  # woken up by remove()
            if activated is None:
                if time.monotonic() - started < 0.05:
                    time.sleep(0.05)  # port busy: do not spin
                continue
            process = tag.activate(frontend, activated)
            if process is None:
                continue
            self.activations += 1
            self._exchange(frontend, tag, process, tag.first_command(activated))

    def _exchange(
        self,
        frontend: nfc.ContactlessFrontend,
        tag: PresentedTag,
        process: Callable[[bytearray], bytearray | None],
        first: bytearray | None,
    ) -> None:
        """Answer the reader's commands until it lets go or the tag is taken away."""
        response = self._process(process, first)
        while self._current() is tag:
            try:
                command = frontend.exchange(response, self._remaining(0.1))
            except nfc.clf.BrokenLinkError:
                return  # the reader switched its field off: wait to be polled again
            except nfc.clf.CommunicationError:
                response = None  # no command in time (TimeoutError) or a bad frame
                continue
            response = self._process(process, command)

    def _process(
        self, process: Callable[[bytearray], bytearray | None], command: bytearray | None
    ) -> bytearray | None:
        if not command:
            return None
        self.commands += 1
        try:
            return process(bytearray(command))
        except Exception as error:  # a malformed command is ignored, as a card would
            self.bad_commands += 1
            log.debug("nfc emulator: bad command %s: %r", bytes(command).hex(), error)
            return None
