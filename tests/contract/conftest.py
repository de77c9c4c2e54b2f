"""One valid message of every kind, and a helper to break them one field at a time."""

import json
from typing import Any

import pytest

from omnizone.contract import (
    BleMessage,
    BleSighting,
    GatewayMessage,
    HealthMessage,
    NfcMessage,
    NfcTap,
    RfidMessage,
    RfidRead,
    StatusMessage,
    dump_message,
    topic_for,
)

STORE = "paris-rivoli"
GATEWAY = "gw-entrance"
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def valid_messages() -> dict[str, GatewayMessage]:
    """kind -> a message that uses every optional field of that kind."""
    envelope: dict[str, Any] = {"store": STORE, "gateway": GATEWAY, "sent_ms": T0 + 1000}
    return {
        "ble": BleMessage(
            **envelope,
            seq=10,
            items=[
                BleSighting(
                    device="ibeacon:e2c56db5-dffb-48d2-b060-d0f5a71096e0:0:0",
                    window_start_ms=T0,
                    window_ms=1000,
                    count=7,
                    rssi_mean=-71.5,
                    rssi_max=-64,
                    tx_power=-59,
                ),
                BleSighting(
                    device="eid:0011223344556677",
                    window_start_ms=T0,
                    window_ms=1000,
                    count=1,
                    rssi_mean=-88,
                    rssi_max=-88,
                ),
            ],
        ),
        "nfc": NfcMessage(
            **envelope,
            seq=11,
            items=[
                NfcTap(
                    tap_point="tap-shoes-kiosk",
                    uid="04a224b2c35e80",
                    at_ms=T0 + 400,
                    ndef_uri="https://example.com/p/09506000134352",
                )
            ],
        ),
        "rfid": RfidMessage(
            **envelope,
            seq=12,
            items=[
                RfidRead(
                    reader="rfid-fitting-1",
                    antenna=1,
                    epc="e28011606000020a5b6c7d8e",
                    rssi=-52.5,
                    at_ms=T0 + 500,
                    count=3,
                )
            ],
        ),
        "status": StatusMessage(**envelope, seq=13, state="online", session=4, version="0.1.0"),
        "health": HealthMessage(
            **envelope,
            seq=14,
            uptime_s=3600.5,
            outbox_depth=2,
            outbox_dropped=0,
            readers={"ble": "scanning", "rfid": "ok"},
            cpu_temp_c=51.2,
            version="0.1.0",
        ),
    }


@pytest.fixture
def messages() -> dict[str, GatewayMessage]:
    return valid_messages()


def as_json(kind: str) -> dict[str, Any]:
    """The wire form of the sample message of `kind`, as a dict to tamper with."""
    loaded: dict[str, Any] = json.loads(dump_message(valid_messages()[kind]))
    return loaded


def topic(kind: str, store: str = STORE, gateway: str = GATEWAY) -> str:
    return topic_for(store, gateway, kind)


@pytest.fixture
def wire() -> Any:
    """`wire(kind)` -> (topic, dict) of a valid message, ready to be broken."""

    def make(kind: str) -> tuple[str, dict[str, Any]]:
        return topic(kind), as_json(kind)

    return make
