"""The recording file: append-only, compressed, readable after a crash.

A recording is a sequence of gzip members (RFC 1952 allows several in one
file; ``zcat`` reads them as one stream). Each member holds whole JSON lines.
The first line of the file is the header; every other line is one message as
the recorder received it::

    {"format": "omnizone-recording", "version": 1, "store": "paris-rivoli",
     "started_ms": 1764749000000, "source": "record"}
    {"rx_ms": 1764749000123, "topic": "omnizone/v1/paris-rivoli/gw-entrance/ble",
     "qos": 1, "retain": false, "payload": "{...}"}

``payload`` is the message's bytes as UTF-8 text (every omnizone payload is
JSON); bytes that are not UTF-8 go in ``payload_b64`` instead, so a recording
keeps exactly what was on the wire. The writer closes a member at least once
per ``flush_interval_ms`` and fsyncs it, so a crash loses at most that much;
the reader keeps every complete member of a truncated file and says how many
bytes at the end it could not read.
"""

import base64
import binascii
import gzip
import json
import os
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final, Literal

from pydantic import Field, ValidationError

from omnizone.contract.base import StrictModel
from omnizone.contract.timefmt import wall_clock_ms

FORMAT: Final = "omnizone-recording"
VERSION = 1

Source = Literal["record", "import"]


class RecordingError(ValueError):
    """A recording that cannot be read: which file, which line, what."""


class RecordingHeader(StrictModel):
    format: Literal["omnizone-recording"] = FORMAT
    version: int = VERSION
    store: str
    started_ms: int
    source: Source = "record"
    note: str | None = None
    part: int = Field(0, ge=0, description="0 for the first file of a recording, +1 per rotation")


@dataclass(frozen=True, slots=True)
class RecordedMessage:
    """One MQTT message as received: when (epoch ms), where, what."""

    rx_ms: int
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False

    def to_line(self) -> bytes:
        body: dict[str, Any] = {
            "rx_ms": self.rx_ms,
            "topic": self.topic,
            "qos": self.qos,
            "retain": self.retain,
        }
        try:
            body["payload"] = self.payload.decode("utf-8")
        except UnicodeDecodeError:
            body["payload_b64"] = base64.b64encode(self.payload).decode("ascii")
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


class RecordingWriter:
    """Appends messages to one recording file.

    ``add`` buffers; ``flush`` (called by ``add`` once ``flush_interval_ms``
    has passed since the last flush, by the owner's timer, and by ``close``)
    appends the buffer as one gzip member and fsyncs. ``size_bytes`` is the
    file's size on disk, for rotation by size.
    """

    def __init__(
        self,
        path: str | Path,
        header: RecordingHeader,
        *,
        flush_interval_ms: int = 1000,
        clock: Callable[[], int] = wall_clock_ms,
        fsync: bool = True,
    ) -> None:
        self.path = Path(path)
        self.header = header
        self._flush_interval_ms = flush_interval_ms
        self._clock = clock
        self._fsync = fsync
        self._buffer: list[bytes] = [header.model_dump_json().encode() + b"\n"]
        self._file: IO[bytes] = open(self.path, "xb")  # noqa: SIM115 (held open; closed by close)
        os.chmod(self.path, 0o600)  # device ids are personal data
        self._last_flush_ms = self.opened_ms = clock()
        self.messages = 0
        self.size_bytes = 0
        self.flush()

    def add(self, message: RecordedMessage) -> None:
        self._buffer.append(message.to_line())
        self.messages += 1
        if self._clock() - self._last_flush_ms >= self._flush_interval_ms:
            self.flush()

    @property
    def last_flush_ms(self) -> int:
        """When the buffer last went to disk: the owner's timer flushes a second later."""
        return self._last_flush_ms

    def flush(self) -> None:
        self._last_flush_ms = self._clock()
        if not self._buffer:
            return
        member = gzip.compress(b"".join(self._buffer), mtime=0)
        self._buffer = []
        self._file.write(member)
        self._file.flush()
        if self._fsync:
            os.fsync(self._file.fileno())
        self.size_bytes += len(member)

    def close(self) -> None:
        if self._file.closed:
            return
        self.flush()
        self._file.close()

    def __enter__(self) -> "RecordingWriter":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def write_recording(
    path: str | Path, header: RecordingHeader, messages: Iterable[RecordedMessage]
) -> int:
    """Write a whole recording at once (import, tests); returns the message count."""
    with RecordingWriter(path, header, flush_interval_ms=10**12, fsync=False) as writer:
        for message in messages:
            writer.add(message)
        return writer.messages


@dataclass(frozen=True, slots=True)
class Recording:
    header: RecordingHeader
    messages: list[RecordedMessage]
    truncated_bytes: int  # bytes at the end that were not a complete member (a crash)


def read_recording(path: str | Path) -> Recording:
    """Every message of one recording file, in file order."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise RecordingError(f"{path}: cannot read the file ({error.strerror})") from None
    text, truncated = _members(data)
    lines = text.splitlines()
    if not lines:
        raise RecordingError(f"{path}: not an omnizone recording (no header)")
    header = _header(path, lines[0])
    messages = [_message(path, number, line) for number, line in enumerate(lines[1:], start=2)]
    return Recording(header, messages, truncated)


def _members(data: bytes) -> tuple[bytes, int]:
    """Decompress complete gzip members; the undecodable tail's length."""
    out: list[bytes] = []
    offset = 0
    while offset < len(data):
        inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            chunk = inflate.decompress(data[offset:])
        except zlib.error:
            break
        if not inflate.eof:
            break  # a member cut short: the crash's last unflushed second
        out.append(chunk)
        offset = len(data) - len(inflate.unused_data)
    return b"".join(out), len(data) - offset


def _header(path: Path, line: bytes) -> RecordingHeader:
    try:
        raw = json.loads(line)
    except ValueError:
        raise RecordingError(f"{path}:1: not an omnizone recording (header is not JSON)") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise RecordingError(f"{path}:1: not an omnizone recording (no 'format: {FORMAT}')")
    if raw.get("version") != VERSION:
        raise RecordingError(
            f"{path}:1: recording version {raw.get('version')!r}; this omnizone reads {VERSION}"
        )
    try:
        return RecordingHeader.model_validate(raw)
    except ValidationError as error:
        where = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise RecordingError(f"{path}:1: bad header: {where}") from None


def _message(path: Path, number: int, line: bytes) -> RecordedMessage:
    try:
        raw = json.loads(line)
        if "payload_b64" in raw:
            payload = base64.b64decode(raw["payload_b64"], validate=True)
        else:
            payload = str(raw["payload"]).encode("utf-8")
        return RecordedMessage(
            rx_ms=int(raw["rx_ms"]),
            topic=str(raw["topic"]),
            payload=payload,
            qos=int(raw.get("qos", 1)),
            retain=bool(raw.get("retain", False)),
        )
    except (ValueError, KeyError, TypeError, binascii.Error) as error:
        raise RecordingError(f"{path}:{number}: bad message line ({error})") from None


def part_path(first: str | Path, part: int) -> Path:
    """Where part ``part`` of a recording goes: the first is ``first`` itself
    (``rivoli.ozrec``), then ``rivoli.0001.ozrec``, ``rivoli.0002.ozrec``…"""
    first = Path(first)
    if part == 0:
        return first
    stem, dot, rest = first.name.partition(".")
    return first.with_name(f"{stem}.{part:04d}{dot}{rest}")


def recording_files(paths: Iterable[str | Path]) -> list[Path]:
    """Recording files named on a command line, in replay order.

    A folder stands for every recording in it (other files are refused by
    name, never skipped); the parts are ordered by their header's
    ``started_ms`` and ``part``, so a rotated recording replays in order
    whatever the shell's glob order.
    """
    files: list[Path] = []
    for given in map(Path, paths):
        if given.is_dir():
            files.extend(sorted(p for p in given.iterdir() if p.is_file()))
        else:
            files.append(given)
    if not files:
        raise RecordingError("no recording files given (or the folder is empty)")
    keyed = []
    for path in files:
        header = read_header(path)
        keyed.append(((header.started_ms, header.part, str(path)), path))
    return [path for _key, path in sorted(keyed)]


def read_header(path: str | Path) -> RecordingHeader:
    """The header of one recording, reading only its first member."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            data = handle.read(65536)
    except OSError as error:
        raise RecordingError(f"{path}: cannot read the file ({error.strerror})") from None
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        first = inflate.decompress(data, 65536)
    except zlib.error:
        raise RecordingError(f"{path}: not an omnizone recording (not gzip)") from None
    line = first.split(b"\n", 1)[0]
    if not line:
        raise RecordingError(f"{path}: not an omnizone recording (no header)")
    return _header(path, line)


def iter_messages(path: str | Path, chunk_bytes: int = 1 << 20) -> Iterator[RecordedMessage]:
    """The messages of one recording, read a chunk at a time (a day of a big
    store does not fit in memory). Like ``read_recording``, an incomplete last
    member (a crash) ends the stream; a bad line raises ``RecordingError``."""
    path = Path(path)
    try:
        handle = open(path, "rb")  # noqa: SIM115 (closed below, also when the caller stops early)
    except OSError as error:
        raise RecordingError(f"{path}: cannot read the file ({error.strerror})") from None
    with handle:
        number = 0
        for line in _stream_lines(handle, chunk_bytes):
            number += 1
            if number == 1:
                _header(path, line)
            elif line:
                yield _message(path, number, line)
        if number == 0:
            raise RecordingError(f"{path}: not an omnizone recording (no header)")


def _stream_lines(handle: IO[bytes], chunk_bytes: int) -> Iterator[bytes]:
    """Lines of the complete gzip members, in order; a cut-off member's text is dropped."""
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
    member_text: list[bytes] = []  # the current member's text, kept until it is complete
    pending = b""  # start of a line continued in the next member
    while chunk := handle.read(chunk_bytes):
        data = chunk
        while data:
            try:
                member_text.append(inflate.decompress(data))
            except zlib.error:
                return
            if not inflate.eof:
                break  # this member goes on in the next chunk
            data = inflate.unused_data
            inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
            *lines, pending = (pending + b"".join(member_text)).split(b"\n")
            member_text = []
            yield from lines
    if pending:
        yield pending
