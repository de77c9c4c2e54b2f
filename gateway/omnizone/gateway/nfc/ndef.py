"""NDEF messages on tap-point tags: decoding what a tag carries, building what
staff write on shelf tags. ndeflib does the record format; this module decides
what we keep (the first URI) and makes sure bad tag content never raises.

A URI record's text is ndeflib's ``.iri``: the record's UTF-8 bytes as written
(after the prefix code), so a URL reads back exactly. ndeflib's ``.uri`` is a
conversion of it (IDNA host, ``quote()`` over path, query and fragment) that
turns ``?src=shelf&store=rivoli`` into ``?src%3Dshelf%26store%3Drivoli``,
``%20`` into ``%2520`` and ``;`` into ``%3B``: another URL than the tag's."""

from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import ndef


class NdefError(ValueError):
    """NDEF bytes that do not decode; the text says what is wrong."""


@dataclass(frozen=True, slots=True)
class NdefSummary:
    """What a tap point keeps of an NDEF message."""

    length: int
    record_types: tuple[str, ...]
    uri: str | None

    def describe(self) -> str:
        types = ", ".join(self.record_types) or "no records"
        return f"{self.length} bytes: {types}" + (f" -> {self.uri}" if self.uri else "")


def parse_ndef(octets: bytes) -> NdefSummary:
    """Decode an NDEF message strictly; an empty message is a blank tag, not an error."""
    try:
        records = list(ndef.message_decoder(bytes(octets), errors="strict"))
    except Exception as error:  # ndeflib raises DecodeError, but fuzzing must not find others
        raise NdefError(f"malformed NDEF message of {len(octets)} bytes: {error}") from None
    uri: str | None = None
    for record in records:
        uri = _record_uri(record)
        if uri is not None:
            break
    return NdefSummary(len(octets), tuple(str(record.type) for record in records), uri)


def _record_uri(record: object) -> str | None:
    """The URI of a URI record, or of a Smart Poster's URI record, exactly as
    the tag holds it (``.iri``, never ndeflib's re-quoted ``.uri``)."""
    try:
        if isinstance(record, ndef.UriRecord):
            return str(record.iri)
        if isinstance(record, ndef.SmartposterRecord) and record.resource is not None:
            return str(record.resource.iri)
    except Exception:  # defensive: a record ndeflib cannot hand back is as good as none
        return None
    return None


class NdefDecoder:
    """Counts malformed messages instead of raising: a tap point must keep working."""

    def __init__(self) -> None:
        self.errors = 0
        self.last_error: str | None = None

    def decode(self, octets: bytes) -> NdefSummary | None:
        try:
            return parse_ndef(octets)
        except NdefError as error:
            self.errors += 1
            self.last_error = str(error)
            return None


def gtin14(gtin: str) -> str:
    """A GTIN-8/12/13/14 as 14 digits, after checking its GS1 check digit."""
    digits = gtin.strip()
    if not digits.isascii() or not digits.isdigit() or len(digits) not in (8, 12, 13, 14):
        raise ValueError(f"GTIN {gtin!r} must be 8, 12, 13 or 14 digits")
    digits = digits.zfill(14)
    body, check = digits[:-1], int(digits[-1])
    # GS1 General Specifications 7.9: weights 3,1,3,... from the right of the body.
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    if (10 - total % 10) % 10 != check:
        raise ValueError(f"GTIN {gtin!r} has a wrong check digit")
    return digits


def product_url(base_url: str, gtin: str) -> str:
    """The shopper app's product page, e.g. https://shop.example/app/p/03614272049529."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"base URL {base_url!r} must be an http(s) URL with a host")
    return f"{base_url.rstrip('/')}/app/p/{quote(gtin14(gtin))}"


def uri_message(url: str) -> bytes:
    """The NDEF message staff write on a shelf tag: one URI record holding
    ``url`` byte for byte (UTF-8), so reading it back gives ``url`` again."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"tag URL {url!r} must be an http(s) URL with a host")
    return b"".join(ndef.message_encoder([ndef.UriRecord(url)]))
