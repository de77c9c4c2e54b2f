"""Eddystone-URL/TLM (decoded, counted, never published), frame counts, and the
whole decode path fuzzed with arbitrary advertisement contents."""

import asyncio
import tempfile
from pathlib import Path

import pytest
from bleak import BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from omnizone.contract.ids import check_device_key
from omnizone.gateway.ble.decode import (
    EDDYSTONE_SERVICE_UUID,
    EddystoneTlm,
    FrameCounts,
    decode_advertisement,
    decode_eddystone_tlm,
    decode_eddystone_url,
)
from omnizone.gateway.node import GatewayNode
from omnizone.gateway.outbox import Outbox
from omnizone.sim.devices.ble_backend import EmulatedAdapter

# Eddystone-URL spec example: https://goo.gl/S6zT6P, -21 dBm at 0 m.
URL_FRAME = bytes.fromhex("10eb03676f6f2e676c2f53367a543650")
# Eddystone-TLM (plain): 3000 mV, 23.0 degC, 1 advert, 1.0 s since power-on.
TLM_FRAME = bytes.fromhex("2000 0bb8 1700 00000001 0000000a")
EID_FRAME = bytes.fromhex("30e7a1b2c3d4e5f60718")
UID_FRAME = bytes.fromhex("00e7edd1ebeac04e5defa0170123456789ab0000")
IBEACON = bytes.fromhex("0215e2c56db5dffb48d2b060d0f5a71096e000000000c5")
ALTBEACON = bytes.fromhex("beac2f234454cf6d4a0fadf2f4911ba9ffa600010002c500")
CONTINUITY = bytes.fromhex("100501181c2e7a")  # Apple "Nearby Info": not an iBeacon


def test_eddystone_url_spec_example() -> None:
    assert decode_eddystone_url(URL_FRAME) == "https://goo.gl/S6zT6P"


@pytest.mark.parametrize(
    ("encoded", "url"),
    [
        ("00 65 78 61 6d 70 6c 65 07", "http://www.example.com"),
        ("01 73 68 6f 70 00 61", "https://www.shop.com/a"),
        ("02 61 0b", "http://a.info"),
        ("03", "https://"),
    ],
)
def test_eddystone_url_schemes_and_expansions(encoded: str, url: str) -> None:
    assert decode_eddystone_url(bytes.fromhex("10 eb " + encoded)) == url


@pytest.mark.parametrize(
    "frame",
    ["10 eb 04 61", "10 eb 03 61 0e", "10 eb 03 61 7f", "10 eb 03 20", "10 eb", "00 eb 03 61"],
    ids=["bad-scheme", "reserved-0e", "reserved-7f", "space", "no-scheme", "not-url"],
)
def test_eddystone_url_with_reserved_bytes_is_refused(frame: str) -> None:
    assert decode_eddystone_url(bytes.fromhex(frame)) is None


def test_eddystone_url_longer_than_the_spec_allows_is_refused() -> None:
    assert decode_eddystone_url(bytes.fromhex("10eb03") + b"a" * 18) is None


def test_eddystone_tlm_plain_frame() -> None:
    assert decode_eddystone_tlm(TLM_FRAME) == EddystoneTlm(
        battery_mv=3000, temperature_c=23.0, adv_count=1, uptime_s=1.0
    )


def test_eddystone_tlm_not_supported_values_and_negative_temperature() -> None:
    # USB powered (0 mV), no sensor (0x8000)
    tlm = decode_eddystone_tlm(bytes.fromhex("2000 0000 8000 00000010 00000064"))
    assert tlm == EddystoneTlm(battery_mv=None, temperature_c=None, adv_count=16, uptime_s=10.0)
    cold = decode_eddystone_tlm(bytes.fromhex("2000 0bb8 fe80 00000000 00000000"))
    assert cold is not None and cold.temperature_c == -1.5


@pytest.mark.parametrize(
    "frame",
    [
        "2001" + "00" * 16,  # encrypted eTLM: unreadable without the key
        "2000 0bb8 1700 00000001 000000",  # one byte short
        "2000 0bb8 1700 00000001 0000000a 00",  # one byte long
    ],
    ids=["etlm", "short", "long"],
)
def test_other_tlm_frames_are_not_read(frame: str) -> None:
    assert decode_eddystone_tlm(bytes.fromhex(frame)) is None


def test_url_and_tlm_name_no_device_but_are_counted() -> None:
    counts = FrameCounts()
    low = bytes.fromhex("2000 08fc 1700 00000001 0000000a")  # 2300 mV
    for frame in (URL_FRAME, TLM_FRAME, low):
        assert decode_advertisement({}, {EDDYSTONE_SERVICE_UUID: frame}, counts) is None
    assert (counts.eddystone_url, counts.eddystone_tlm, counts.tlm_low_battery) == (1, 2, 1)
    assert counts.other == 0


def test_every_frame_kind_is_counted_once() -> None:
    counts = FrameCounts()
    eddystone = EDDYSTONE_SERVICE_UUID
    assert decode_advertisement({}, {eddystone: EID_FRAME}, counts) is not None
    assert decode_advertisement({}, {eddystone: UID_FRAME}, counts) is not None
    assert decode_advertisement({0x004C: IBEACON}, {}, counts) is not None
    assert decode_advertisement({0x0118: ALTBEACON}, {}, counts) is not None
    assert decode_advertisement({0x004C: CONTINUITY}, {}, counts) is None
    assert decode_advertisement({}, {}, counts) is None
    assert counts.as_counters() == {
        "frames.ibeacon": 1,
        "frames.altbeacon": 1,
        "frames.eddystone_uid": 1,
        "frames.eddystone_eid": 1,
        "frames.eddystone_url": 0,
        "frames.eddystone_tlm": 0,
        "frames.tlm_low_battery": 0,
        "frames.other": 2,
    }


# -- fuzz: arbitrary AdvertisementData through the node --------------------------

_uuids = st.one_of(
    st.just(EDDYSTONE_SERVICE_UUID),
    st.uuids().map(str),
    st.text(max_size=8),
)
_beaconish = st.one_of(
    st.binary(max_size=40),
    st.builds(lambda b: b"\x02\x15" + b, st.binary(max_size=30)),
    st.builds(lambda b: b"\xbe\xac" + b, st.binary(max_size=30)),
    st.builds(
        lambda t, b: bytes([t]) + b,
        st.sampled_from([0x00, 0x10, 0x20, 0x30]),
        st.binary(max_size=24),
    ),
)
advertisements = st.builds(
    AdvertisementData,
    local_name=st.one_of(st.none(), st.text(max_size=10)),
    manufacturer_data=st.dictionaries(st.integers(0, 0xFFFF), _beaconish, max_size=3),
    service_data=st.dictionaries(_uuids, _beaconish, max_size=3),
    service_uuids=st.lists(st.uuids().map(str), max_size=2),
    tx_power=st.one_of(st.none(), st.integers(-127, 127)),
    rssi=st.integers(-200, 200),
    platform_data=st.just(()),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(advertisements, min_size=1, max_size=20))
def test_any_advertisement_contents_never_raise_and_drops_are_counted(
    batch: list[AdvertisementData],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        outbox = Outbox(Path(tmp) / "outbox.db")
        clock_ms = [1_767_225_600_000]
        node = GatewayNode("s1", "g1", outbox, clock=lambda: clock_ms[0])
        device = BLEDevice("AA:BB:CC:DD:EE:FF", None, None)
        counts = FrameCounts()
        named = 0
        for advertisement in batch:
            node.on_advertisement(device, advertisement)
            found = decode_advertisement(
                advertisement.manufacturer_data, advertisement.service_data, counts
            )
            if found is not None:
                named += 1
                check_device_key(found.device)
                assert found.tx_power is None or -127 <= found.tx_power <= 20
        clock_ms[0] += 1000
        node.tick()  # sightings must validate against the contract
        outbox.close()
    assert node.counters.adverts_seen == len(batch)
    assert node.counters.adverts_kept == named
    assert sum(counts.as_counters().values()) - counts.tlm_low_battery == len(batch)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=62), min_size=1, max_size=10))
def test_raw_garbage_through_the_emulated_adapter_is_counted_never_raised(
    payloads: list[bytes],
) -> None:
    async def scan() -> tuple[EmulatedAdapter, list[AdvertisementData]]:
        adapter = EmulatedAdapter()
        heard: list[AdvertisementData] = []
        async with BleakScanner(lambda _d, ad: heard.append(ad), backend=adapter.backend):
            for payload in payloads:
                adapter.push("AA:BB:CC:DD:EE:FF", payload, -70)
        return adapter, heard

    adapter, heard = asyncio.run(scan())
    counters = adapter.counters
    assert counters.delivered + counters.malformed == len(payloads)
    assert len(heard) == counters.delivered
    for advertisement in heard:
        decode_advertisement(advertisement.manufacturer_data, advertisement.service_data)
