"""Beacon frame decoding from what bleak hands us (manufacturer and service data).

Only frames that name a device are kept: iBeacon, AltBeacon, Eddystone-UID and
Eddystone-EID (the shopper app's rotating id). Everything else — including the
advertiser's MAC address — stays on the gateway. Decoding must be cheap: most
adverts in a store are phones and headphones we drop on the first byte check.
"""

import uuid
from dataclasses import dataclass

from omnizone.contract import ids

APPLE_COMPANY_ID = 0x004C
EDDYSTONE_SERVICE_UUID = "0000feaa-0000-1000-8000-00805f9b34fb"
EDDYSTONE_UID = 0x00
EDDYSTONE_EID = 0x30


@dataclass(frozen=True, slots=True)
class DecodedBeacon:
    device: str
    tx_power: int | None  # calibrated power at 1 m (iBeacon/AltBeacon) or 0 m (Eddystone) in dBm


def _signed(byte: int) -> int | None:
    """A calibrated power byte; None outside the contract's -127..20 dBm (garbage)."""
    value = byte - 256 if byte > 127 else byte
    return value if -127 <= value <= 20 else None


def decode_manufacturer(company_id: int, data: bytes) -> DecodedBeacon | None:
    if company_id == APPLE_COMPANY_ID and len(data) == 23 and data[0] == 0x02 and data[1] == 0x15:
        proximity = uuid.UUID(bytes=bytes(data[2:18]))
        major = int.from_bytes(data[18:20], "big")
        minor = int.from_bytes(data[20:22], "big")
        return DecodedBeacon(ids.ibeacon_key(proximity, major, minor), _signed(data[22]))
    if len(data) >= 24 and data[0] == 0xBE and data[1] == 0xAC:
        beacon_id = bytes(data[2:18])
        major = int.from_bytes(data[18:20], "big")
        minor = int.from_bytes(data[20:22], "big")
        return DecodedBeacon(ids.altbeacon_key(beacon_id, major, minor), _signed(data[22]))
    return None


def decode_eddystone(data: bytes) -> DecodedBeacon | None:
    if not data:
        return None
    frame = data[0]
    if frame == EDDYSTONE_UID and len(data) >= 18:
        key = ids.eddystone_uid_key(bytes(data[2:12]), bytes(data[12:18]))
        return DecodedBeacon(key, _signed(data[1]))
    if frame == EDDYSTONE_EID and len(data) >= 10:
        return DecodedBeacon(ids.eid_key(bytes(data[2:10])), _signed(data[1]))
    return None


def decode_advertisement(
    manufacturer_data: dict[int, bytes], service_data: dict[str, bytes]
) -> DecodedBeacon | None:
    """The first device-naming frame in an advertisement, or None."""
    eddystone = service_data.get(EDDYSTONE_SERVICE_UUID)
    if eddystone is not None:
        found = decode_eddystone(eddystone)
        if found is not None:
            return found
    for company_id, data in manufacturer_data.items():
        found = decode_manufacturer(company_id, data)
        if found is not None:
            return found
    return None
