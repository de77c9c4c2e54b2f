"""Writing shelf tags: one NDEF URI record pointing at the shopper app's product page.

Staff hold a tag to a reader attached to the gateway (or any nfcpy reader on
a laptop). The tag is formatted if it carries no NDEF yet, written, then read
back from the tag itself so a half-written tag is reported, not trusted.
"""

import contextlib
import io
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from omnizone.gateway.nfc.ndef import parse_ndef, uri_message
from omnizone.gateway.nfc.reader import FrontendFactory, open_frontend

log = logging.getLogger(__name__)

TYPE3_NDEF_MAPPING_1_0 = 0x10


@dataclass(frozen=True, slots=True)
class WriteResult:
    ok: bool
    url: str
    uid: str | None = None
    tag_type: str | None = None
    bytes_written: int = 0
    capacity: int | None = None
    formatted: bool = False
    verified: bool = False
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def write_product_tag(
    device: str,
    url: str,
    timeout_s: float = 30.0,
    *,
    targets: Sequence[str] = ("106A", "106B", "212F"),
    frontend_factory: FrontendFactory = open_frontend,
) -> WriteResult:
    """Wait up to `timeout_s` for a tag on `device`, write `url` to it, verify it."""
    try:
        message = uri_message(url)
    except ValueError as error:
        return WriteResult(False, url, error=str(error))
    try:
        frontend = frontend_factory(device)
    except Exception as error:
        return WriteResult(False, url, error=f"cannot open NFC reader {device!r}: {error}")
    try:
        deadline = time.monotonic() + timeout_s
        tag = frontend.connect(
            rdwr={
                "targets": list(targets),
                "on-connect": lambda _tag: False,  # hand the tag back to us
                "iterations": 1,
                "interval": 0.1,
            },
            terminate=lambda: time.monotonic() >= deadline,
        )
        if tag is None or isinstance(tag, bool):
            return WriteResult(False, url, error=f"no tag presented within {timeout_s:g} s")
        return _write(tag, url, message)
    except Exception as error:
        return WriteResult(False, url, error=f"reader failed: {error!r}")
    finally:
        with contextlib.suppress(Exception):
            frontend.close()


def _write(tag: Any, url: str, message: bytes) -> WriteResult:
    uid, tag_type = bytes(tag.identifier).hex(), str(tag.type)

    def failed(reason: str, **extra: Any) -> WriteResult:
        return WriteResult(False, url, uid, tag_type, error=reason, **extra)

    try:
        formatted = False
        if tag.ndef is None:
            version = TYPE3_NDEF_MAPPING_1_0 if tag_type == "Type3Tag" else None
            # nfcpy's Type 3 format prints its progress; keep stdout for --json.
            with contextlib.redirect_stdout(io.StringIO()):
                status = tag.format(version=version)
            if not status or tag.ndef is None:
                return failed(f"{tag_type} has no NDEF area and could not be formatted")
            formatted = True
        ndef = tag.ndef
        if not ndef.is_writeable:
            return failed("the tag is read-only (locked)", formatted=formatted)
        if len(message) > ndef.capacity:
            return failed(
                f"{len(message)} bytes do not fit the tag's {ndef.capacity}",
                capacity=ndef.capacity,
                formatted=formatted,
            )
        ndef.octets = message
        ndef.has_changed  # noqa: B018 (re-reads the NDEF area from the tag)
        stored = tag.ndef
        read_back = None if stored is None else bytes(stored.octets)
        verified = read_back == message and parse_ndef(read_back).uri == url
        return WriteResult(
            verified,
            url,
            uid,
            tag_type,
            bytes_written=len(message),
            capacity=ndef.capacity,
            formatted=formatted,
            verified=verified,
            error=None if verified else _difference(message, read_back),
        )
    except Exception as error:  # TagCommandError, a tag pulled away mid-write
        return failed(f"write failed: {error!r}")


def _difference(written: bytes, read_back: bytes | None) -> str:
    """Why the verification failed, specific enough to tell a glitch from a bad tag."""
    if read_back is None:
        return "read-back differs from what was written: the tag shows no NDEF area now"
    if read_back != written:
        same = next(
            (i for i, (a, b) in enumerate(zip(written, read_back, strict=False)) if a != b),
            min(len(written), len(read_back)),
        )
        return (
            f"read-back differs from what was written: {len(read_back)} bytes read for "
            f"{len(written)} written, first difference at byte {same}"
        )
    return "read-back differs from what was written: the URL does not decode back the same"
