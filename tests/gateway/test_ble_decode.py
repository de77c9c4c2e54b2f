"""From raw advertising bytes to a device key, through the same path the
gateway uses: AD structures → bleak's AdvertisementData → beacon decoder.

The frames are the published examples of each format, written out byte by byte
rather than with our own builders, so an encoder bug cannot hide a decoder bug.
"""

import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omnizone.contract.ids import check_device_key
from omnizone.gateway.ble.adstructures import (
    AD_MANUFACTURER,
    AdvertisementFormatError,
    ad_structure,
    eddystone_eid_payload,
    ibeacon_payload,
    parse_ad_structures,
    uuid16,
)
from omnizone.gateway.ble.decode import (
    EDDYSTONE_SERVICE_UUID,
    DecodedBeacon,
    decode_advertisement,
)

FLAGS = "02 01 06"  # LE General Discoverable, BR/EDR not supported
EDDYSTONE_UUID_LIST = "03 03 aa fe"  # complete list of 16-bit service UUIDs: 0xFEAA

# Apple's example proximity UUID (AirLocate sample code), major 0, minor 0, -59 dBm at 1 m.
IBEACON = (
    FLAGS + " 1a ff 4c 00 02 15 e2 c5 6d b5 df fb 48 d2 b0 60 d0 f5 a7 10 96 e0 00 00 00 00 c5"
)
# AltBeacon spec exploded view: mfg 0x0118, BEAC, id 2F234454CF6D4A0FADF2F4911BA9FFA6 + 0001
# + 0002, reference RSSI -59, mfg reserved 00.
ALTBEACON = (
    FLAGS + " 1b ff 18 01 be ac 2f 23 44 54 cf 6d 4a 0f ad f2 f4 91 1b a9 ff a6 00 01 00 02 c5 00"
)
# Eddystone-UID: frame 0x00, ranging data -25 dBm at 0 m, 10-byte namespace, 6-byte
# instance, two reserved bytes.
EDDYSTONE_UID = (
    FLAGS
    + " "
    + EDDYSTONE_UUID_LIST
    + " 17 16 aa fe 00 e7 ed d1 eb ea c0 4e 5d ef a0 17 01 23 45 67 89 ab 00 00"
)
# Eddystone-EID: frame 0x30, ranging data -25 dBm at 0 m, 8-byte ephemeral id.
EDDYSTONE_EID = FLAGS + " " + EDDYSTONE_UUID_LIST + " 0d 16 aa fe 30 e7 a1 b2 c3 d4 e5 f6 07 18"


def ad(ad_type: int, body: str) -> str:
    """One AD structure in hex, its length byte computed."""
    return f"{len(bytes.fromhex(body)) + 1:02x} {ad_type:02x} {body}"


def decode(hex_bytes: str, rssi: int = -70) -> DecodedBeacon | None:
    ad = parse_ad_structures(bytes.fromhex(hex_bytes), rssi)
    return decode_advertisement(ad.manufacturer_data, ad.service_data)


def test_ibeacon_example() -> None:
    assert decode(IBEACON) == DecodedBeacon(
        "ibeacon:e2c56db5-dffb-48d2-b060-d0f5a71096e0:0:0", tx_power=-59
    )


def test_ibeacon_major_minor_are_big_endian() -> None:
    frame = IBEACON.replace("00 00 00 00 c5", "ff ff 01 02 c5")
    found = decode(frame)
    assert found is not None
    assert found.device.endswith(":65535:258")


def test_altbeacon_example() -> None:
    assert decode(ALTBEACON) == DecodedBeacon(
        "altbeacon:2f234454cf6d4a0fadf2f4911ba9ffa6:1:2", tx_power=-59
    )


def test_eddystone_uid_example() -> None:
    assert decode(EDDYSTONE_UID) == DecodedBeacon(
        "eddystone-uid:edd1ebeac04e5defa017:0123456789ab", tx_power=-25
    )


def test_eddystone_eid_example() -> None:
    assert decode(EDDYSTONE_EID) == DecodedBeacon("eid:a1b2c3d4e5f60718", tx_power=-25)


@pytest.mark.parametrize("frame", [IBEACON, ALTBEACON, EDDYSTONE_UID, EDDYSTONE_EID])
def test_decoded_keys_are_keys_the_contract_accepts(frame: str) -> None:
    found = decode(frame)
    assert found is not None
    assert check_device_key(found.device) == found.device


def test_parsed_advertisement_carries_what_bleak_would() -> None:
    ad = parse_ad_structures(bytes.fromhex(EDDYSTONE_EID), rssi=-81)
    assert ad.rssi == -81
    assert ad.service_uuids == [EDDYSTONE_SERVICE_UUID]
    assert ad.service_data == {EDDYSTONE_SERVICE_UUID: bytes.fromhex("30e7a1b2c3d4e5f60718")}
    assert ad.manufacturer_data == {}
    ibeacon = parse_ad_structures(bytes.fromhex(IBEACON), rssi=-50)
    assert list(ibeacon.manufacturer_data) == [0x004C]


def test_name_tx_power_and_128_bit_uuids_are_read() -> None:
    payload = (
        ad_structure(0x09, b"Shelf 7")
        + ad_structure(0x0A, b"\xf4")
        + ad_structure(0x07, uuid.UUID("6e400001-b5a3-f393-e0a9-e50e24dcca9e").bytes[::-1])
    )
    ad = parse_ad_structures(payload, rssi=-40)
    assert ad.local_name == "Shelf 7"
    assert ad.tx_power == -12
    assert ad.service_uuids == ["6e400001-b5a3-f393-e0a9-e50e24dcca9e"]


def test_our_builders_match_the_published_frames() -> None:
    built = ibeacon_payload(uuid.UUID("e2c56db5-dffb-48d2-b060-d0f5a71096e0"), 0, 0, -59)
    assert built == bytes.fromhex(IBEACON)
    eid = eddystone_eid_payload(bytes.fromhex("a1b2c3d4e5f60718"), -25)
    assert eid == bytes.fromhex(EDDYSTONE_EID)
    assert uuid16(0xFEAA) == EDDYSTONE_SERVICE_UUID


def test_padding_after_a_zero_length_ends_the_payload() -> None:
    assert decode(IBEACON + " 00 00 00 00") is not None


@pytest.mark.parametrize(
    "frame",
    [
        # Apple Continuity "Nearby Info" (an iPhone nearby): Apple's company id, not iBeacon.
        FLAGS + " 0a ff 4c 00 10 05 01 18 1c 2e 7a",
        # Apple Continuity AirPods proximity pairing.
        ad(0xFF, "4c 00 07 19 01 0e 20 2b 77 8f 01 00 05 42 9f 3c 2a 6b 59 84 8f 29 c2 a4 e2 37"),
        # Microsoft Swift Pair beacon.
        ad(0xFF, "06 00 03 00 80"),
        # A random manufacturer blob.
        ad(0xFF, "59 00 de ad be ef 01"),
        # iBeacon prefix with one byte missing: not an iBeacon.
        ad(0xFF, "4c 00 02 15 e2 c5 6d b5 df fb 48 d2 b0 60 d0 f5 a7 10 96 e0 00 00 00 00"),
        # AltBeacon code but one byte short (no reserved byte).
        ad(0xFF, "18 01 be ac 2f 23 44 54 cf 6d 4a 0f ad f2 f4 91 1b a9 ff a6 00 01 00 02 c5"),
        # Eddystone-URL (https://goo.gl/S6zT6P) and TLM: they do not name a device.
        EDDYSTONE_UUID_LIST
        + " "
        + ad(0x16, "aa fe 10 eb 03 67 6f 6f 2e 67 6c 2f 53 36 7a 54 36 50"),
        EDDYSTONE_UUID_LIST + " " + ad(0x16, "aa fe 20 00 0b b8 17 00 00 00 00 01 00 00 00 0a"),
        # Eddystone-UID one byte short of its instance.
        EDDYSTONE_UUID_LIST + " " + ad(0x16, "aa fe 00 e7 ed d1 eb ea c0 4e 5d ef a0 17 01 23 45"),
        # Heart-rate service data: some other 16-bit service.
        ad(0x16, "0d 18 00 48"),
        # Just flags and a name.
        FLAGS + " " + ad(0x09, "4a 42 4c 35"),
        # Nothing at all.
        "",
    ],
    ids=[
        "continuity-nearby",
        "continuity-airpods",
        "swift-pair",
        "random-blob",
        "short-ibeacon",
        "short-altbeacon",
        "eddystone-url",
        "eddystone-tlm",
        "short-eddystone-uid",
        "heart-rate",
        "name-only",
        "empty",
    ],
)
def test_frames_that_name_no_device_decode_to_none(frame: str) -> None:
    assert decode(frame) is None


def test_an_eddystone_frame_wins_over_manufacturer_data() -> None:
    both = EDDYSTONE_EID + IBEACON.removeprefix(FLAGS)
    found = decode(both)
    assert found is not None and found.device.startswith("eid:")


def test_implausible_calibrated_power_is_dropped_not_passed_on() -> None:
    """A reference RSSI of +32 dBm is garbage: the sighting keeps the beacon but not
    the power (the contract allows -127..20, and the aggregator would fail later)."""
    found = decode(ALTBEACON.replace("00 02 c5 00", "00 02 20 00"))
    assert found == DecodedBeacon("altbeacon:2f234454cf6d4a0fadf2f4911ba9ffa6:1:2", None)
    eid = decode(EDDYSTONE_EID.replace("30 e7", "30 80"))  # -128
    assert eid is not None and eid.tx_power is None


@pytest.mark.parametrize(
    ("frame", "where"),
    [
        (IBEACON[:-3], "AD structure at byte 3 claims 26 bytes, only 25 left"),
        ("02 01", "AD structure at byte 0 claims 2 bytes, only 1 left"),
        ("1f", "claims 31 bytes, only 0 left"),
        (FLAGS + " 05 09 4a", "AD structure at byte 3"),
    ],
    ids=["ibeacon-cut", "flags-cut", "length-only", "name-cut"],
)
def test_truncated_structures_raise(frame: str, where: str) -> None:
    with pytest.raises(AdvertisementFormatError, match=where):
        parse_ad_structures(bytes.fromhex(frame), rssi=-70)


def test_ad_structure_refuses_bodies_a_legacy_advert_cannot_carry() -> None:
    with pytest.raises(AdvertisementFormatError, match="31 bytes exceeds 30"):
        ad_structure(AD_MANUFACTURER, bytes(31))


def _decode_any(payload: bytes) -> None:
    try:
        ad = parse_ad_structures(payload, rssi=-70)
    except AdvertisementFormatError:
        return
    found = decode_advertisement(ad.manufacturer_data, ad.service_data)
    if found is not None:
        check_device_key(found.device)
        assert found.tx_power is None or -127 <= found.tx_power <= 20


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=62))
def test_arbitrary_bytes_never_raise_anything_but_format_errors(payload: bytes) -> None:
    _decode_any(payload)


structures = st.tuples(
    st.sampled_from([0x01, 0x02, 0x03, 0x07, 0x08, 0x09, 0x0A, 0x16, 0xFF, 0x2A]),
    st.one_of(
        st.binary(max_size=29),
        st.builds(lambda b: b"\x4c\x00\x02\x15" + b, st.binary(min_size=19, max_size=23)),
        st.builds(lambda b: b"\x18\x01\xbe\xac" + b, st.binary(min_size=20, max_size=26)),
        st.builds(
            lambda t, b: b"\xaa\xfe" + bytes([t]) + b,
            st.sampled_from([0, 0x30]),
            st.binary(max_size=20),
        ),
    ),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(structures, max_size=4))
def test_well_formed_structures_with_any_content_never_raise(
    parts: list[tuple[int, bytes]],
) -> None:
    """Beacon-shaped bodies with random content reach deep into the decoders."""
    _decode_any(b"".join(bytes([len(body) + 1, ad_type]) + body for ad_type, body in parts))
