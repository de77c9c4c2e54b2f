"""Versioned message schemas for everything a gateway publishes.

Every message is an envelope: schema version, kind, store, gateway, a sequence
number that increases by one per message (all kinds share one counter per
gateway and it survives restarts), the epoch of the outbox that numbered it,
the time it was sent, and its body. A message is identified by (gateway,
epoch, seq): a new outbox (a replaced SD card) draws a new epoch, so its
numbers starting again at 0 are never mistaken for duplicates. The server
de-duplicates on (store, gateway, epoch, seq) and reports gaps per epoch.
"""

import json
from typing import Annotated, Any, Final, Literal, Self

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from omnizone.contract.base import StrictModel
from omnizone.contract.ids import check_device_key
from omnizone.contract.topics import IDENTIFIER_PATTERN, parse_topic

SCHEMA_VERSION: Final = 1
MAX_ITEMS = 10_000
MAX_PAYLOAD_BYTES = 1_048_576
#: Sequence numbers and epochs fit a signed 64-bit column: 0 <= n < 2**63.
MAX_SEQ: Final = 2**63 - 1
#: Messages from gateways that predate epochs carry none and belong to epoch 0.
LEGACY_EPOCH: Final = 0

# 2000-01-01 .. 2100-01-01: catches seconds-instead-of-milliseconds mistakes.
EpochMs = Annotated[int, Field(ge=946_684_800_000, le=4_102_444_800_000)]
Identifier = Annotated[str, Field(pattern=IDENTIFIER_PATTERN)]
DeviceKey = Annotated[str, AfterValidator(check_device_key)]
Rssi = Annotated[float, Field(ge=-127, le=20)]
GatewayState = Literal["online", "offline"]
Seq = Annotated[int, Field(ge=0, le=MAX_SEQ)]
Epoch = Annotated[int, Field(ge=0, le=MAX_SEQ)]


class _Strict(StrictModel):
    model_config = ConfigDict(allow_inf_nan=False)  # JSON has no NaN or infinity


class _Envelope(_Strict):
    v: Literal[1] = Field(SCHEMA_VERSION, description="schema version")
    store: Identifier
    gateway: Identifier
    epoch: Epoch = Field(LEGACY_EPOCH, description="the outbox's incarnation, drawn when created")
    seq: Seq = Field(description="per-gateway, +1 per message, survives restarts")
    sent_ms: EpochMs


class BeaconTelemetry(_Strict):
    """A fixed beacon's own report (Eddystone-TLM, version 0), as the gateway
    last heard it: tied to the beacon's id frame on the gateway, by the
    address both frames come from, which never leaves the gateway."""

    battery_mv: int | None = Field(
        None, ge=1, le=10_000, description="absent: mains powered (the frame says 0)"
    )
    temperature_c: float | None = Field(None, ge=-128, le=128, description="absent: no sensor")
    adv_count: int = Field(ge=0, le=2**32 - 1, description="advertising PDUs since power-on")
    uptime_s: float = Field(ge=0, le=(2**32 - 1) / 10, description="since power-on")
    heard_ms: EpochMs = Field(description="when the gateway heard this TLM frame")


class BleSighting(_Strict):
    """One device heard by one gateway during one aggregation window.

    ``telemetry`` (optional, added in v1 without a version change) is set on a
    fixed beacon's sighting when the gateway heard that beacon's TLM frame
    since its last sighting; it is never set on a shopper's rotating id."""

    device: DeviceKey
    window_start_ms: EpochMs
    window_ms: int = Field(gt=0, le=600_000)
    count: int = Field(gt=0)
    rssi_mean: Rssi
    rssi_max: Rssi
    tx_power: int | None = Field(None, ge=-127, le=20, description="calibrated dBm at 1 m")
    telemetry: BeaconTelemetry | None = None

    @model_validator(mode="after")
    def _no_telemetry_on_rotating_ids(self) -> Self:
        if self.telemetry is not None and self.device.startswith("eid:"):
            raise ValueError("telemetry is for fixed beacons, not a rotating id")
        return self


class BleMessage(_Envelope):
    kind: Literal["ble"] = "ble"
    items: list[BleSighting] = Field(min_length=1, max_length=MAX_ITEMS)


class NfcTap(_Strict):
    """A tag or phone presented to a tap point (shelf or kiosk reader)."""

    tap_point: Identifier
    uid: str = Field(pattern=r"^[0-9a-f]{8,20}$", description="tag/phone UID, lower-case hex")
    at_ms: EpochMs
    ndef_uri: str | None = Field(None, max_length=2048)
    tag_type: str | None = Field(None, max_length=40, description="e.g. Type2Tag, Type4Tag")


class NfcMessage(_Envelope):
    kind: Literal["nfc"] = "nfc"
    items: list[NfcTap] = Field(min_length=1, max_length=MAX_ITEMS)


Gtin = Annotated[str, Field(pattern=r"^\d{14}$", description="GTIN-14")]
ItemSerial = Annotated[str, Field(pattern=r"^\d{1,20}$", description="SGTIN serial")]
Epc = Annotated[str, Field(pattern=r"^[0-9a-f]{8,64}$", description="EPC bank, lower-case hex")]


class RfidRead(_Strict):
    """A UHF tag seen by one reader antenna, aggregated over a window (fitting rooms)."""

    type: Literal["read"] = "read"
    reader: Identifier
    antenna: int = Field(ge=1, le=16)
    epc: Epc
    rssi: Rssi = Field(description="mean over the window")
    at_ms: EpochMs = Field(description="first read in the window")
    count: int = Field(1, gt=0)
    gtin: Gtin | None = None
    serial: ItemSerial | None = None


class TryOn(_Strict):
    """An item was brought into ("arrived") or taken out of ("departed") a fitting room."""

    type: Literal["try-on"] = "try-on"
    reader: Identifier
    event: Literal["arrived", "departed"]
    epc: Epc
    gtin: Gtin | None = None
    serial: ItemSerial | None = None
    at_ms: EpochMs


RfidItem = Annotated[RfidRead | TryOn, Field(discriminator="type")]


class RfidMessage(_Envelope):
    kind: Literal["rfid"] = "rfid"
    items: list[RfidItem] = Field(min_length=1, max_length=MAX_ITEMS)


class StatusMessage(_Envelope):
    """Retained birth ("online") and last-will ("offline") of a gateway session.

    A session reserves two sequence numbers at connect: the birth and, one
    above it, the will, so a gateway that dies leaves no gap in its sequence.
    """

    kind: Literal["status"] = "status"
    state: GatewayState
    session: int = Field(ge=0, description="boot/connect counter")
    version: str = Field(max_length=64)


class HealthMessage(_Envelope):
    kind: Literal["health"] = "health"
    uptime_s: float = Field(ge=0)
    outbox_depth: int = Field(ge=0)
    outbox_dropped: int = Field(ge=0)
    readers: dict[str, str] = Field(default_factory=dict, description="reader name -> state")
    counters: dict[str, int] = Field(
        default_factory=dict, description="e.g. ble.watchdog_restarts, rfid.bad_frames"
    )
    cpu_temp_c: float | None = None
    version: str = Field(max_length=64)


GatewayMessage = Annotated[
    BleMessage | NfcMessage | RfidMessage | StatusMessage | HealthMessage,
    Field(discriminator="kind"),
]
_GATEWAY_MESSAGE: TypeAdapter[GatewayMessage] = TypeAdapter(GatewayMessage)


class ContractError(ValueError):
    """A message that breaks the contract; the text says what and where."""

    def __init__(self, topic: str, reason: str) -> None:
        super().__init__(f"{topic}: {reason}")
        self.topic = topic
        self.reason = reason


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors(include_url=False)[:5]:
        where = ".".join(str(p) for p in item["loc"]) or "<message>"
        parts.append(f"{where}: {item['msg']}")
    more = error.error_count() - len(parts)
    if more > 0:
        parts.append(f"... and {more} more")
    return "; ".join(parts)


def parse_message(topic: str, payload: bytes) -> GatewayMessage:
    """Validate one MQTT message against the contract.

    The topic must agree with the body (store, gateway, kind): a gateway cannot
    speak for another one even if the broker's ACLs were loosened.
    """
    try:
        address = parse_topic(topic)
    except ValueError as error:
        raise ContractError(topic, str(error)) from None
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ContractError(topic, f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}")
    try:
        raw: Any = json.loads(payload)
    except (ValueError, RecursionError) as error:  # also huge ints, deep nesting
        raise ContractError(topic, f"payload is not JSON: {error}") from None
    version = raw.get("v") if isinstance(raw, dict) else None
    if version is not None and (type(version) is not int or version != SCHEMA_VERSION):
        raise ContractError(
            topic, f"schema version {raw.get('v')!r} is not supported (this is v{SCHEMA_VERSION})"
        )
    try:
        message = _GATEWAY_MESSAGE.validate_python(raw, strict=True)  # no "5" or true for 5
    except ValidationError as error:
        raise ContractError(topic, _describe(error)) from None
    mismatches = [
        f"{field} is {body!r} in the body but {expected!r} in the topic"
        for field, body, expected in (
            ("store", message.store, address.store),
            ("gateway", message.gateway, address.gateway),
            ("kind", message.kind, address.kind.value),
        )
        if body != expected
    ]
    if mismatches:
        raise ContractError(topic, "; ".join(mismatches))
    return message


def dump_message(message: GatewayMessage) -> bytes:
    return message.model_dump_json(exclude_none=True).encode()
