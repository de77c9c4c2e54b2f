"""What a shopper's phone reports of the store's fixed beacons (issue 15).

The other direction of the radio: instead of gateways hearing the phone
advertise, the phone ranges the store's fixed beacons (iBeacon UUID/major/minor
or Eddystone-UID, the keys of the store file's ``beacons``) and sends what it
heard, one window at a time, in batches, to ``POST /api/v1/me/beacons``
with its shopper token (docs/mobile-sdk.md). The server, the simulator's phones
and the reference client (``omnizone.contract.phone_client``) all use these
models; nothing else defines the payload.

A window is aligned to the store's BLE window (``WINDOW_MS``, the gateways'
window) so that a phone's window and the gateways' window of the same second
are one window of the localizer. A batch is identified by its ``batch`` id,
chosen by the phone: a resend of the same id is a duplicate, answered as the
first time and not applied again. Nothing here names the phone's radio: no
MAC, no advertising id, no device name; the phone is the token's shopper.
"""

import json
from typing import Annotated, Final, Literal

from pydantic import AfterValidator, ConfigDict, Field, ValidationError, model_validator

from omnizone.contract.base import StrictModel
from omnizone.contract.ids import check_device_key
from omnizone.contract.messages import EpochMs, Identifier

PHONE_SCHEMA_VERSION: Final = 1
#: The window a phone reports: the gateways' BLE window, so both directions fuse.
WINDOW_MS: Final = 1000
#: Bounds of one batch (a phone that was offline sends several batches).
MAX_WINDOWS: Final = 120
MAX_BEACONS_PER_WINDOW: Final = 32
MAX_REGION_EVENTS: Final = 8
MAX_BATCH_BYTES: Final = 65_536
#: A phone with the app in the background reports at most this often (per shopper).
MIN_BATCH_INTERVAL_MS: Final = 500
#: How old a window may be and still count (older ones are counted as stale).
MAX_WINDOW_AGE_MS: Final = 10 * 60_000
BATCH_ID_PATTERN: Final = r"^[A-Za-z0-9_-]{8,64}$"


def _fixed_beacon_key(value: str) -> str:
    """A store's fixed beacon: iBeacon or Eddystone-UID, never a rotating id."""
    check_device_key(value)
    if not value.startswith(("ibeacon:", "eddystone-uid:")):
        raise ValueError(
            f"beacon {value!r} is not a fixed beacon key "
            "(ibeacon:<uuid>:<major>:<minor> or eddystone-uid:<20 hex>:<12 hex>)"
        )
    return value


BeaconKey = Annotated[str, AfterValidator(_fixed_beacon_key)]


class _Strict(StrictModel):
    model_config = ConfigDict(allow_inf_nan=False)


class HeardBeacon(_Strict):
    """One fixed beacon the phone heard in one window."""

    beacon: BeaconKey
    rssi: float = Field(ge=-127, le=0, description="mean RSSI of the window, dBm (not 0)")
    count: int = Field(1, ge=1, le=100, description="adverts (or ranging samples) averaged")


class PhoneWindow(_Strict):
    """One window of ranging. An empty ``beacons`` list is information too:
    the phone listened and heard none of the store's beacons."""

    start_ms: EpochMs = Field(description="window start, a multiple of window_ms")
    window_ms: Literal[1000] = WINDOW_MS
    beacons: list[HeardBeacon] = Field(default_factory=list, max_length=MAX_BEACONS_PER_WINDOW)

    @model_validator(mode="after")
    def _aligned(self) -> "PhoneWindow":
        if self.start_ms % self.window_ms:
            raise ValueError(f"start_ms {self.start_ms} is not a multiple of {self.window_ms}")
        keys = [b.beacon for b in self.beacons]
        if len(set(keys)) != len(keys):
            raise ValueError("a beacon appears twice in one window")
        return self


class RegionEvent(_Strict):
    """The phone entered or left the store's beacon region (iOS region
    monitoring, Android's equivalent); the server reconciles it with the
    gateways (docs/mobile-sdk.md)."""

    event: Literal["enter", "exit"]
    at_ms: EpochMs


class PhoneReport(_Strict):
    """One batch from one phone: windows in time order, and region events."""

    v: Literal[1] = PHONE_SCHEMA_VERSION
    store: Identifier
    batch: str = Field(pattern=BATCH_ID_PATTERN, description="the phone's id of this batch")
    windows: list[PhoneWindow] = Field(default_factory=list, max_length=MAX_WINDOWS)
    regions: list[RegionEvent] = Field(default_factory=list, max_length=MAX_REGION_EVENTS)

    @model_validator(mode="after")
    def _ordered(self) -> "PhoneReport":
        starts = [w.start_ms for w in self.windows]
        if starts != sorted(set(starts)):
            raise ValueError("windows must be in time order, one per start_ms")
        if not self.windows and not self.regions:
            raise ValueError("a batch holds at least one window or region event")
        return self


class PhoneReportResult(_Strict):
    """The server's answer: what it did with the batch. The same answer is
    given to a resend (``duplicate`` true), so a phone may resend blindly."""

    batch: str
    duplicate: bool
    windows_accepted: int = Field(ge=0)
    windows_stale: int = Field(0, ge=0, description="too old, or already decided")
    unknown_beacons: dict[str, int] = Field(
        default_factory=dict, description="keys heard that are not this store's beacons: count"
    )
    region_events: int = Field(0, ge=0)


class PhoneContractError(ValueError):
    """A payload that does not follow the contract; ``reason`` says what and where."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_phone_report(payload: bytes) -> PhoneReport:
    """Parse and validate; one line naming the field on failure."""
    if len(payload) > MAX_BATCH_BYTES:
        raise PhoneContractError(f"batch is {len(payload)} bytes, at most {MAX_BATCH_BYTES}")
    try:
        return PhoneReport.model_validate_json(payload)
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise PhoneContractError(f"{where}: {first['msg']}") from None


def dump_phone_report(report: PhoneReport) -> bytes:
    return json.dumps(report.model_dump(mode="json"), separators=(",", ":")).encode()
