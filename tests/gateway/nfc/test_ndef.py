"""NDEF decoding (published example bytes, fuzz) and the shelf-tag message."""

import ndef
import pytest
from hypothesis import given
from hypothesis import strategies as st

from omnizone.gateway.nfc.ndef import (
    NdefDecoder,
    NdefError,
    gtin14,
    parse_ndef,
    product_url,
    uri_message,
)

# NFC Forum URI RTD: a short record, TNF well-known, type "U", identifier code
# 0x01 ("http://www.") followed by "nfc-forum.org".
NFC_FORUM_URI = bytes.fromhex("d1010e55016e66632d666f72756d2e6f7267")
# A text record ("en", "Hello") then a URI record ("https://" + "example.org/p").
TEXT_THEN_URI = bytes.fromhex("9101085402656e48656c6c6f" + "51010e5504" + b"example.org/p".hex())


def test_the_nfc_forum_uri_example_decodes_to_its_uri() -> None:
    summary = parse_ndef(NFC_FORUM_URI)
    assert summary.uri == "http://www.nfc-forum.org"
    assert summary.record_types == ("urn:nfc:wkt:U",)
    assert summary.length == len(NFC_FORUM_URI)


def test_the_first_uri_is_kept_whatever_comes_before_it() -> None:
    text_record = b"".join(ndef.message_encoder([ndef.TextRecord("Hello", "en")]))
    assert TEXT_THEN_URI.startswith(text_record[:1].replace(b"\xd1", b"\x91") + text_record[1:])
    summary = parse_ndef(TEXT_THEN_URI)
    assert summary.record_types == ("urn:nfc:wkt:T", "urn:nfc:wkt:U")
    assert summary.uri == "https://example.org/p"
    assert "-> https://example.org/p" in summary.describe()


def test_a_smart_poster_uri_counts_as_the_uri() -> None:
    poster = b"".join(ndef.message_encoder([ndef.SmartposterRecord("https://shop.example/a")]))
    assert parse_ndef(poster).uri == "https://shop.example/a"


def test_an_empty_message_is_a_blank_tag_not_an_error() -> None:
    summary = parse_ndef(b"")
    assert (summary.uri, summary.record_types) == (None, ())


def test_non_ascii_uris_are_published_as_the_tag_holds_them() -> None:
    """Not ndeflib's percent-encoded `.uri` (issue 16): the tag's own text."""
    message = b"".join(ndef.message_encoder([ndef.UriRecord("https://shop.example/p/café")]))
    assert parse_ndef(message).uri == "https://shop.example/p/café"


@pytest.mark.parametrize(
    "octets",
    [
        NFC_FORUM_URI[:-3],  # truncated payload
        b"\xd1\x01",  # header only
        b"\x00" * 7,  # no record
        b"\xff" * 32,
        NFC_FORUM_URI[:2] + b"\x7f" + NFC_FORUM_URI[3:],  # length beyond the data
    ],
)
def test_malformed_messages_are_counted_and_give_none(octets: bytes) -> None:
    decoder = NdefDecoder()
    assert decoder.decode(octets) is None
    assert decoder.errors == 1
    assert decoder.last_error is not None and "malformed NDEF" in decoder.last_error
    with pytest.raises(NdefError):
        parse_ndef(octets)


@given(st.binary(max_size=600))
def test_no_bytes_make_the_decoder_raise(octets: bytes) -> None:
    decoder = NdefDecoder()
    summary = decoder.decode(octets)
    assert (summary is None) == (decoder.errors == 1)


@given(st.binary(max_size=80), st.integers(0, 79), st.integers(0, 255))
def test_corrupting_a_valid_message_never_raises(tail: bytes, where: int, value: int) -> None:
    octets = bytearray(TEXT_THEN_URI + tail)
    octets[where % len(octets)] = value
    decoder = NdefDecoder()
    summary = decoder.decode(bytes(octets))
    assert summary is None or summary.length == len(octets)


@pytest.mark.parametrize(
    ("given_gtin", "expected"),
    [
        ("3614272049529", "03614272049529"),  # EAN-13
        ("036000291452", "00036000291452"),  # UPC-A
        ("96385074", "00000096385074"),  # EAN-8
        ("10614141000415", "10614141000415"),  # GTIN-14
    ],
)
def test_gtins_are_checked_and_padded_to_14_digits(given_gtin: str, expected: str) -> None:
    assert gtin14(given_gtin) == expected


@pytest.mark.parametrize("bad", ["3614272049528", "36142720495", "abc", "", "٣٦١٤٢٧٢٠٤٩٥٢٩"])
def test_bad_gtins_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="GTIN"):
        gtin14(bad)


def test_the_product_page_message_is_one_uri_record() -> None:
    url = product_url("https://shop.example/", "3614272049529")
    assert url == "https://shop.example/app/p/03614272049529"
    message = uri_message(url)
    records = list(ndef.message_decoder(message, errors="strict"))
    assert len(records) == 1 and isinstance(records[0], ndef.UriRecord)
    # "https://" is abbreviated to identifier code 0x04 on the tag.
    assert message[:5] == bytes([0xD1, 0x01, len(message) - 4, 0x55, 0x04])
    assert message[5:] == b"shop.example/app/p/03614272049529"
    assert parse_ndef(message).uri == url


@pytest.mark.parametrize("base", ["shop.example", "ftp://shop.example", "https://"])
def test_a_base_url_must_be_http_with_a_host(base: str) -> None:
    with pytest.raises(ValueError, match="base URL"):
        product_url(base, "3614272049529")
