"""The emulated adapter behaves like BlueZ at bleak's backend boundary: raw bytes
in, bleak's AdvertisementData out, passive or-pattern filtering, UDP feed."""

import asyncio
import socket
import uuid
from collections.abc import Callable

import pytest
from bleak import BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import BleakError

from omnizone.gateway.ble.adstructures import (
    eddystone_eid_payload,
    ibeacon_payload,
)
from omnizone.gateway.ble.scanner import PASSIVE_OR_PATTERNS
from omnizone.sim.devices.ble_backend import (
    EmulatedAdapter,
    decode_datagram,
    encode_datagram,
    or_pattern_matches,
    parse_udp_url,
)

FLAGS = "02 01 06"
IBEACON = (
    FLAGS + " 1a ff 4c 00 02 15 e2 c5 6d b5 df fb 48 d2 b0 60 d0 f5 a7 10 96 e0 00 00 00 00 c5"
)
ALTBEACON = (
    FLAGS + " 1b ff 18 01 be ac 2f 23 44 54 cf 6d 4a 0f ad f2 f4 91 1b a9 ff a6 00 01 00 02 c5 00"
)
EDDYSTONE_UID = (
    FLAGS + " 03 03 aa fe 17 16 aa fe 00 e7 ed d1 eb ea c0 4e 5d ef a0 17 01 23 45 67 89 ab 00 00"
)
EDDYSTONE_TLM = "03 03 aa fe 11 16 aa fe 20 00 0b b8 17 00 00 00 00 01 00 00 00 0a"
CONTINUITY = FLAGS + " 0a ff 4c 00 10 05 01 18 1c 2e 7a"
FAST_PAIR = FLAGS + " 03 03 2c fe 06 16 2c fe 00 01 02"
ADDRESS = "C3:00:1D:2E:4F:50"


Heard = list[tuple[BLEDevice, AdvertisementData]]


def recorder() -> tuple[Heard, Callable[[BLEDevice, AdvertisementData], None]]:
    heard: Heard = []

    def callback(device: BLEDevice, advertisement: AdvertisementData) -> None:
        heard.append((device, advertisement))

    return heard, callback


@pytest.mark.parametrize(
    ("frame", "kept"),
    [
        (IBEACON, True),
        (ALTBEACON, True),
        (EDDYSTONE_UID, True),
        (EDDYSTONE_TLM, True),
        (CONTINUITY, False),
        (FAST_PAIR, False),
        ("", False),
    ],
    ids=[
        "ibeacon",
        "altbeacon",
        "eddystone-uid",
        "eddystone-tlm",
        "continuity",
        "fast-pair",
        "empty",
    ],
)
def test_passive_or_patterns_let_exactly_the_beacon_frames_through(frame: str, kept: bool) -> None:
    assert or_pattern_matches(bytes.fromhex(frame), PASSIVE_OR_PATTERNS) is kept


async def test_advertisements_arrive_through_bleaks_own_scanner() -> None:
    adapter = EmulatedAdapter("hci1")
    heard, callback = recorder()
    scanner = BleakScanner(callback, backend=adapter.backend, bluez={"adapter": "hci1"})
    assert adapter.push(ADDRESS, bytes.fromhex(IBEACON), -50) is False  # not scanning yet
    async with scanner:
        assert adapter.scanning == "active"
        assert adapter.push(ADDRESS, bytes.fromhex(IBEACON), -50)
        assert adapter.push(ADDRESS, bytes.fromhex(CONTINUITY), -51)
        discovered = scanner.discovered_devices_and_advertisement_data
    assert adapter.scanning is None
    assert [ad.rssi for _, ad in heard] == [-50, -51]
    device, advertisement = heard[0]
    assert device.address == ADDRESS
    assert list(advertisement.manufacturer_data) == [0x004C]
    assert advertisement.platform_data[0] == "/org/bluez/hci1/dev_C3_00_1D_2E_4F_50"
    assert list(discovered) == [ADDRESS]  # bleak keys what it found by address
    assert adapter.counters.not_scanning == 1 and adapter.counters.delivered == 2


async def test_passive_needs_or_patterns_like_bleaks_bluez_backend() -> None:
    adapter = EmulatedAdapter()
    with pytest.raises(BleakError, match="requires bluez or_patterns"):
        BleakScanner(scanning_mode="passive", backend=adapter.backend)


async def test_an_unknown_adapter_name_is_refused() -> None:
    adapter = EmulatedAdapter("hci0")
    with pytest.raises(BleakError, match="hci7"):
        BleakScanner(backend=adapter.backend, bluez={"adapter": "hci7"})


async def test_truncated_payloads_are_counted_not_raised() -> None:
    adapter = EmulatedAdapter()
    heard, callback = recorder()
    async with BleakScanner(callback, backend=adapter.backend):
        assert not adapter.push(ADDRESS, bytes.fromhex(IBEACON)[:-3], -50)
        assert not adapter.push(ADDRESS, b"\x1f", -50)
    assert heard == [] and adapter.counters.malformed == 2


async def test_only_one_scan_at_a_time_like_a_real_controller() -> None:
    adapter = EmulatedAdapter()
    async with BleakScanner(backend=adapter.backend):
        with pytest.raises(BleakError, match="InProgress"):
            await BleakScanner(backend=adapter.backend).start()


async def test_service_uuid_filter_is_honoured() -> None:
    adapter = EmulatedAdapter()
    heard, callback = recorder()
    eddystone = "0000feaa-0000-1000-8000-00805f9b34fb"
    async with BleakScanner(callback, [eddystone], backend=adapter.backend):
        assert adapter.push(ADDRESS, bytes.fromhex(EDDYSTONE_UID), -60)
        assert not adapter.push(ADDRESS, bytes.fromhex(IBEACON), -60)
    assert len(heard) == 1


def test_datagram_format_round_trips_and_refuses_garbage() -> None:
    payload = eddystone_eid_payload(bytes(8), -20)
    datagram = encode_datagram("7c:d1:c3:4a:5b:6e", payload, -87)
    assert datagram[0] == 256 - 87
    assert datagram[1:7] == bytes.fromhex("7cd1c34a5b6e")
    assert decode_datagram(datagram) == ("7C:D1:C3:4A:5B:6E", payload, -87)
    with pytest.raises(ValueError, match="no address"):
        decode_datagram(b"\x10\x01\x02")
    with pytest.raises(ValueError, match="6 bytes"):
        encode_datagram("7c:d1", payload, -87)
    with pytest.raises(ValueError, match="signed byte"):
        encode_datagram("7c:d1:c3:4a:5b:6e", payload, -200)
    assert parse_udp_url("udp://127.0.0.1:9999") == ("127.0.0.1", 9999)
    with pytest.raises(ValueError, match="udp://host:port"):
        parse_udp_url("tcp://127.0.0.1:9999")


async def test_udp_feed_reaches_the_scanner_and_bad_datagrams_are_counted() -> None:
    adapter = EmulatedAdapter()
    heard, callback = recorder()
    host, port = await adapter.open_udp("udp://127.0.0.1:0")
    payloads = [ibeacon_payload(uuid.UUID(int=i), 1, i, -59) for i in range(20)]
    try:
        async with BleakScanner(callback, backend=adapter.backend):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.sendto(b"\x00\x01", (host, port))  # too short to carry an address
                for i, payload in enumerate(payloads):
                    sock.sendto(
                        encode_datagram(f"00:00:00:00:00:{i:02x}", payload, -40 - i), (host, port)
                    )
            for _ in range(500):
                if len(heard) == len(payloads):
                    break
                await asyncio.sleep(0.01)
    finally:
        adapter.close()
    assert [ad.rssi for _, ad in heard] == [-40 - i for i in range(20)]
    assert adapter.counters.bad_datagrams == 1


async def test_threadsafe_push_lands_on_the_loop() -> None:
    adapter = EmulatedAdapter()
    heard, callback = recorder()
    async with BleakScanner(callback, backend=adapter.backend):
        await asyncio.to_thread(adapter.push_threadsafe, ADDRESS, bytes.fromhex(IBEACON), -70)
        for _ in range(100):
            if heard:
                break
            await asyncio.sleep(0)
    assert len(heard) == 1
