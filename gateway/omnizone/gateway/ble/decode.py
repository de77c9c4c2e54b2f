"""Beacon frame decoding from what bleak hands us (manufacturer and service data).

Only frames that name a device are kept: iBeacon, AltBeacon, Eddystone-UID and
Eddystone-EID (the shopper app's rotating id). Everything else — including the
advertiser's MAC address — stays on the gateway. Decoding must be cheap: most
adverts in a store are phones and headphones we drop on the first byte check.

Eddystone-URL and Eddystone-TLM name no device, so they are never sightings of
their own: URL frames are only counted; a TLM frame is tied to its beacon's id
frame by the node (``ble/telemetry.py``, by a keyed digest of the address both
come from, in memory) and travels as that sighting's telemetry. See docs/ble.md.
"""

import uuid
from dataclasses import dataclass, fields

from omnizone.contract import ids

APPLE_COMPANY_ID = 0x004C
EDDYSTONE_SERVICE_UUID = "0000feaa-0000-1000-8000-00805f9b34fb"
EDDYSTONE_UID = 0x00
EDDYSTONE_URL = 0x10
EDDYSTONE_TLM = 0x20
EDDYSTONE_EID = 0x30
TLM_LOW_BATTERY_MV = 2500  # a CR2032/CR2477 cell this low has days, not months, left


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


@dataclass(slots=True)
class FrameCounts:
    """What kinds of advertisement a gateway hears: health counters, no identities."""

    ibeacon: int = 0
    altbeacon: int = 0
    eddystone_uid: int = 0
    eddystone_eid: int = 0
    eddystone_url: int = 0
    eddystone_tlm: int = 0
    tlm_low_battery: int = 0  # TLM frames reporting a battery below TLM_LOW_BATTERY_MV
    other: int = 0  # no beacon frame at all (phones, headphones, garbage): dropped

    def as_counters(self, prefix: str = "frames.") -> dict[str, int]:
        return {prefix + f.name: getattr(self, f.name) for f in fields(self)}


def decode_advertisement(
    manufacturer_data: dict[int, bytes],
    service_data: dict[str, bytes],
    counts: FrameCounts | None = None,
) -> DecodedBeacon | None:
    """The first device-naming frame in an advertisement, or None.

    With `counts`, every advertisement is also counted by its kind; the common
    case (no Eddystone, one non-beacon manufacturer blob) stays two dict reads.
    """
    eddystone = service_data.get(EDDYSTONE_SERVICE_UUID) if service_data else None
    if eddystone is not None:
        found = decode_eddystone(eddystone)
        if found is not None:
            if counts is not None:
                if eddystone[0] == EDDYSTONE_EID:
                    counts.eddystone_eid += 1
                else:
                    counts.eddystone_uid += 1
            return found
    for company_id, data in manufacturer_data.items():
        found = decode_manufacturer(company_id, data)
        if found is not None:
            if counts is not None:
                if data[0] == 0x02:
                    counts.ibeacon += 1
                else:
                    counts.altbeacon += 1
            return found
    if counts is not None:
        _count_unnamed(eddystone, counts)
    return None


def _count_unnamed(eddystone: bytes | None, counts: FrameCounts) -> None:
    if eddystone and eddystone[0] == EDDYSTONE_URL and decode_eddystone_url(eddystone):
        counts.eddystone_url += 1
    elif eddystone and eddystone[0] == EDDYSTONE_TLM:
        counts.eddystone_tlm += 1
        tlm = decode_eddystone_tlm(eddystone)
        if tlm is not None and tlm.battery_mv is not None:
            counts.tlm_low_battery += tlm.battery_mv < TLM_LOW_BATTERY_MV
    else:
        counts.other += 1


# -- frames that name no device: decoded for diagnostics, never published ------

_URL_SCHEMES = ("http://www.", "https://www.", "http://", "https://")
_URL_EXPANSIONS = (
    ".com/",
    ".org/",
    ".edu/",
    ".net/",
    ".info/",
    ".biz/",
    ".gov/",
    ".com",
    ".org",
    ".edu",
    ".net",
    ".info",
    ".biz",
    ".gov",
)


def decode_eddystone_url(data: bytes) -> str | None:
    """The URL of an Eddystone-URL frame (scheme byte + up to 17 encoded bytes), or
    None when a byte is reserved by the spec (0x0E..0x20, 0x7F..0xFF)."""
    if len(data) < 3 or data[0] != EDDYSTONE_URL or data[2] >= len(_URL_SCHEMES):
        return None
    encoded = data[3:]
    if len(encoded) > 17:
        return None
    parts = [_URL_SCHEMES[data[2]]]
    for byte in encoded:
        if byte < len(_URL_EXPANSIONS):
            parts.append(_URL_EXPANSIONS[byte])
        elif 0x20 < byte < 0x7F:
            parts.append(chr(byte))
        else:
            return None
    return "".join(parts)


@dataclass(frozen=True, slots=True)
class EddystoneTlm:
    """Unencrypted Eddystone-TLM (version 0x00) telemetry of a fixed beacon."""

    battery_mv: int | None  # None: not battery powered (the beacon sends 0)
    temperature_c: float | None  # None: no sensor (0x8000)
    adv_count: int  # advertising PDUs since power-on
    uptime_s: float  # SEC_CNT is in 0.1 s


def decode_eddystone_tlm(data: bytes) -> EddystoneTlm | None:
    """Only the plain frame (14 bytes, version 0); encrypted eTLM (version 1) has no
    readable fields without the beacon's key."""
    if len(data) != 14 or data[0] != EDDYSTONE_TLM or data[1] != 0x00:
        return None
    battery = int.from_bytes(data[2:4], "big")
    temp_raw = int.from_bytes(data[4:6], "big", signed=True)
    return EddystoneTlm(
        battery_mv=battery or None,
        temperature_c=None if temp_raw == -0x8000 else temp_raw / 256,
        adv_count=int.from_bytes(data[6:10], "big"),
        uptime_s=int.from_bytes(data[10:14], "big") / 10,
    )
