"""Raw advertising payload (AD structures, Core Spec Vol 3 Part C §11) to bleak's
AdvertisementData, the way BlueZ does it before bleak sees an advert.

Used where we get raw bytes (the simulator's emulated radio, captures) so that
exactly the same decode path runs as with a live adapter.
"""

import uuid
from typing import Any

from bleak.backends.scanner import AdvertisementData

_BASE_UUID_SUFFIX = "-0000-1000-8000-00805f9b34fb"

AD_FLAGS = 0x01
AD_UUID16_INCOMPLETE = 0x02
AD_UUID16_COMPLETE = 0x03
AD_UUID128_COMPLETE = 0x07
AD_NAME_SHORT = 0x08
AD_NAME_COMPLETE = 0x09
AD_TX_POWER = 0x0A
AD_SERVICE_DATA16 = 0x16
AD_MANUFACTURER = 0xFF


class AdvertisementFormatError(ValueError):
    pass


def uuid16(value: int) -> str:
    return f"0000{value:04x}{_BASE_UUID_SUFFIX}"


def parse_ad_structures(
    payload: bytes, rssi: int, platform_data: tuple[Any, ...] = ()
) -> AdvertisementData:
    """Raises AdvertisementFormatError on a truncated structure (BlueZ drops those)."""
    manufacturer: dict[int, bytes] = {}
    service_data: dict[str, bytes] = {}
    service_uuids: list[str] = []
    local_name: str | None = None
    tx_power: int | None = None
    i = 0
    while i < len(payload):
        length = payload[i]
        if length == 0:
            break  # early termination: the rest is padding
        if i + 1 + length > len(payload):
            raise AdvertisementFormatError(
                f"AD structure at byte {i} claims {length} bytes, only {len(payload) - i - 1} left"
            )
        ad_type = payload[i + 1]
        body = payload[i + 2 : i + 1 + length]
        if ad_type == AD_MANUFACTURER and len(body) >= 2:
            manufacturer[int.from_bytes(body[:2], "little")] = bytes(body[2:])
        elif ad_type == AD_SERVICE_DATA16 and len(body) >= 2:
            service_data[uuid16(int.from_bytes(body[:2], "little"))] = bytes(body[2:])
        elif ad_type in (AD_UUID16_INCOMPLETE, AD_UUID16_COMPLETE):
            service_uuids += [
                uuid16(int.from_bytes(body[j : j + 2], "little"))
                for j in range(0, len(body) - 1, 2)
            ]
        elif ad_type == AD_UUID128_COMPLETE:
            service_uuids += [
                str(uuid.UUID(bytes=bytes(body[j : j + 16][::-1])))
                for j in range(0, len(body) - 15, 16)
            ]
        elif ad_type in (AD_NAME_SHORT, AD_NAME_COMPLETE):
            local_name = body.decode("utf-8", errors="replace")
        elif ad_type == AD_TX_POWER and len(body) == 1:
            tx_power = body[0] - 256 if body[0] > 127 else body[0]
        i += 1 + length
    return AdvertisementData(
        local_name=local_name,
        manufacturer_data=manufacturer,
        service_data=service_data,
        service_uuids=service_uuids,
        tx_power=tx_power,
        rssi=rssi,
        platform_data=platform_data,
    )


def ad_structure(ad_type: int, body: bytes) -> bytes:
    if len(body) > 30:
        raise AdvertisementFormatError(f"AD structure body of {len(body)} bytes exceeds 30")
    return bytes([len(body) + 1, ad_type]) + body


def eddystone_eid_payload(ephemeral_id: bytes, tx_power_0m: int) -> bytes:
    """A legacy advertising payload carrying an Eddystone-EID frame."""
    frame = bytes([0x30, tx_power_0m & 0xFF]) + ephemeral_id
    return (
        ad_structure(AD_FLAGS, b"\x06")
        + ad_structure(AD_UUID16_COMPLETE, (0xFEAA).to_bytes(2, "little"))
        + ad_structure(AD_SERVICE_DATA16, (0xFEAA).to_bytes(2, "little") + frame)
    )


def eddystone_uid_payload(namespace: bytes, instance: bytes, tx_power_0m: int) -> bytes:
    """A legacy advertising payload carrying an Eddystone-UID frame (what a
    gateway's own adapter advertises for self-calibration)."""
    frame = bytes([0x00, tx_power_0m & 0xFF]) + namespace + instance + b"\x00\x00"
    return (
        ad_structure(AD_FLAGS, b"\x06")
        + ad_structure(AD_UUID16_COMPLETE, (0xFEAA).to_bytes(2, "little"))
        + ad_structure(AD_SERVICE_DATA16, (0xFEAA).to_bytes(2, "little") + frame)
    )


def eddystone_tlm_payload(
    battery_mv: int | None, temperature_c: float | None, adv_count: int, uptime_s: float
) -> bytes:
    """A legacy advertising payload carrying a plain Eddystone-TLM frame
    (version 0): what a fixed beacon interleaves with its id frame."""
    temp = -0x8000 if temperature_c is None else round(temperature_c * 256)
    frame = (
        bytes([0x20, 0x00])
        + (battery_mv or 0).to_bytes(2, "big")
        + temp.to_bytes(2, "big", signed=True)
        + (adv_count & 0xFFFFFFFF).to_bytes(4, "big")
        + (round(uptime_s * 10) & 0xFFFFFFFF).to_bytes(4, "big")
    )
    return (
        ad_structure(AD_FLAGS, b"\x06")
        + ad_structure(AD_UUID16_COMPLETE, (0xFEAA).to_bytes(2, "little"))
        + ad_structure(AD_SERVICE_DATA16, (0xFEAA).to_bytes(2, "little") + frame)
    )


def ibeacon_payload(proximity_uuid: uuid.UUID, major: int, minor: int, tx_power_1m: int) -> bytes:
    body = (
        (0x004C).to_bytes(2, "little")
        + b"\x02\x15"
        + proximity_uuid.bytes
        + major.to_bytes(2, "big")
        + minor.to_bytes(2, "big")
        + bytes([tx_power_1m & 0xFF])
    )
    return ad_structure(AD_FLAGS, b"\x06") + ad_structure(AD_MANUFACTURER, body)
