"""Identifiers that travel on the wire.

A BLE device is named by what it *advertises*, resolved to a key string, never
by its MAC address: ``ibeacon:<uuid>:<major>:<minor>``,
``altbeacon:<id1>:<id2>:<id3>``, ``eddystone-uid:<namespace>:<instance>``,
``eid:<16 hex>`` (the shopper app's rotating ephemeral id).
"""

import hashlib
import re
import uuid

DEVICE_KEY_PATTERN = (
    r"^(?:ibeacon:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}:\d{1,5}:\d{1,5}"
    r"|altbeacon:[0-9a-f]{32}:\d{1,5}:\d{1,5}"
    r"|eddystone-uid:[0-9a-f]{20}:[0-9a-f]{12}"
    r"|eid:[0-9a-f]{16})$"
)
_DEVICE_KEY = re.compile(DEVICE_KEY_PATTERN)
_MAC_LIKE = re.compile(r"(?i)\b[0-9a-f]{2}(?:[:-][0-9a-f]{2}){5}\b")


def check_device_key(value: str) -> str:
    if _DEVICE_KEY.match(value):
        # A key of the valid pattern cannot hold a MAC address: none of its
        # forms has six two-character groups in a row (the common case first,
        # one regular expression instead of two per sighting).
        return value
    if _MAC_LIKE.search(value):
        raise ValueError(f"device key {value!r} contains a MAC address; MACs never leave a gateway")
    if not _DEVICE_KEY.match(value):
        raise ValueError(
            f"device key {value!r} is not one of ibeacon:<uuid>:<major>:<minor>, "
            "altbeacon:<32 hex>:<major>:<minor>, eddystone-uid:<20 hex>:<12 hex>, eid:<16 hex>"
        )
    return value


def ibeacon_key(proximity_uuid: uuid.UUID, major: int, minor: int) -> str:
    return f"ibeacon:{proximity_uuid}:{major}:{minor}"


def altbeacon_key(beacon_id: bytes, major: int, minor: int) -> str:
    return f"altbeacon:{beacon_id.hex()}:{major}:{minor}"


def eddystone_uid_key(namespace: bytes, instance: bytes) -> str:
    return f"eddystone-uid:{namespace.hex()}:{instance.hex()}"


def eid_key(ephemeral_id: bytes) -> str:
    if len(ephemeral_id) != 8:
        raise ValueError(f"an ephemeral id is 8 bytes, got {len(ephemeral_id)}")
    return f"eid:{ephemeral_id.hex()}"


def gateway_beacon_key(store: str, gateway: str) -> str:
    """The fixed Eddystone-UID a gateway's own adapter advertises, so the other
    gateways hear it and the server can fit the radio with no survey
    (docs/localization.md, "Self-calibration"). The namespace is derived from
    the store, the instance from the gateway id: both ends compute the same
    key from names they already share, and no MAC is involved."""
    namespace = hashlib.sha256(f"omnizone-store:{store}".encode()).digest()[:10]
    instance = hashlib.sha256(f"omnizone-gateway:{store}:{gateway}".encode()).digest()[:6]
    return eddystone_uid_key(namespace, instance)


def eddystone_uid_parts(key: str) -> tuple[bytes, bytes]:
    """(namespace, instance) of an ``eddystone-uid:<20 hex>:<12 hex>`` key."""
    kind, namespace, instance = check_device_key(key).split(":")
    if kind != "eddystone-uid":
        raise ValueError(f"device key {key!r} is not an Eddystone-UID")
    return bytes.fromhex(namespace), bytes.fromhex(instance)


def ibeacon_parts(key: str) -> tuple[uuid.UUID, int, int]:
    """(proximity UUID, major, minor) of an ``ibeacon:<uuid>:<major>:<minor>`` key."""
    kind, proximity, major, minor = check_device_key(key).split(":")
    if kind != "ibeacon":
        raise ValueError(f"device key {key!r} is not an iBeacon")
    return uuid.UUID(proximity), int(major), int(minor)


def is_rotating(key: str) -> bool:
    """A shopper app's rotating id (never linked to anything on a gateway)."""
    return key.startswith("eid:")
