"""SGTIN-96 against published vectors (GS1 EPC Tag Data Standard examples and
the test suites of public EPC libraries) and a round trip over every partition."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from omnizone.gateway.rfid.epc import (
    PARTITIONS,
    Sgtin,
    decode_sgtin96,
    encode_sgtin96,
    gs1_check_digit,
    sgtin_from_gtin,
)

VECTORS = [
    # TDS example: urn:epc:tag:sgtin-96:3.0614141.812345.6789
    ("3074257BF7194E4000001A85", 3, "0614141", "812345", 6789, "80614141123458"),
    # partition 6 (6-digit prefix), all-small fields
    ("301800004000004000000001", 0, "000001", "0000001", 1, "00000010000014"),
    # partition 5, prefix 0008000, item reference 001137, serial 11
    ("3034007D00011C400000000B", 1, "0008000", "001137", 11, "00008000011378"),
]


@pytest.mark.parametrize(("hexepc", "filt", "prefix", "item", "serial", "gtin"), VECTORS)
def test_published_vectors(
    hexepc: str, filt: int, prefix: str, item: str, serial: int, gtin: str
) -> None:
    sgtin = decode_sgtin96(hexepc)
    assert sgtin == Sgtin(filt, prefix, item, serial)
    assert sgtin.gtin == gtin
    assert encode_sgtin96(sgtin) == bytes.fromhex(hexepc)
    assert decode_sgtin96(hexepc.lower()) == sgtin
    assert decode_sgtin96(bytes.fromhex(hexepc)) == sgtin


def test_uris() -> None:
    sgtin = decode_sgtin96("3074257BF7194E4000001A85")
    assert sgtin is not None
    assert sgtin.pure_identity_uri == "urn:epc:id:sgtin:0614141.812345.6789"
    assert sgtin.tag_uri == "urn:epc:tag:sgtin-96:3.0614141.812345.6789"


def test_check_digit() -> None:
    assert gs1_check_digit("8061414112345") == 8
    assert gs1_check_digit("0000001000001") == 4
    assert gs1_check_digit("0001234560001") == 2  # GTIN-14 00012345600012


@pytest.mark.parametrize(
    "epc",
    [
        "31AC16465751CCD0C2000000",  # SSCC-96: another scheme
        "E2801160600002054C2A5B7C",  # a factory (TID-like) EPC
        "3074257BF7194E4000001A",  # too short
        "3074257BF7194E4000001A8500",  # too long
        "303C00000000000000000000",  # partition 7 is reserved
        "3014E8D4A51000000000000",  # odd number of hex digits
        "not hex at all",
        "",
        "30FFFFFFFFFFFFFFFFFFFFFF",  # company prefix larger than its 12 digits allow
    ],
)
def test_other_epcs_are_not_sgtins(epc: str) -> None:
    assert decode_sgtin96(epc) is None


@given(st.binary(max_size=16))
def test_arbitrary_bytes_never_raise(raw: bytes) -> None:
    result = decode_sgtin96(raw)
    if result is not None:
        assert len(result.gtin) == 14 and result.gtin.isdigit()
        assert encode_sgtin96(result) == raw


@st.composite
def sgtins(draw: st.DrawFn) -> Sgtin:
    _, cp_digits, _, ir_digits = draw(st.sampled_from(PARTITIONS))
    prefix = draw(st.integers(0, 10**cp_digits - 1))
    item = draw(st.integers(0, 10**ir_digits - 1))
    return Sgtin(
        filter=draw(st.integers(0, 7)),
        company_prefix=str(prefix).zfill(cp_digits),
        item_reference=str(item).zfill(ir_digits),
        serial=draw(st.integers(0, 2**38 - 1)),
    )


@given(sgtins())
def test_round_trip_over_all_partitions(sgtin: Sgtin) -> None:
    raw = encode_sgtin96(sgtin)
    assert len(raw) == 12 and raw[0] == 0x30
    assert decode_sgtin96(raw) == sgtin
    again = sgtin_from_gtin(sgtin.gtin, len(sgtin.company_prefix), sgtin.serial, sgtin.filter)
    assert again == sgtin


def test_gtin_split_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        sgtin_from_gtin("80614141123457", 7, 1)  # wrong check digit
    with pytest.raises(ValueError):
        sgtin_from_gtin("8061414112345", 7, 1)
    with pytest.raises(ValueError):
        encode_sgtin96(Sgtin(1, "12345", "12345678", 1))  # 5-digit prefix: no partition
