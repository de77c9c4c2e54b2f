"""Settings of one NFC tap point (proposed for GatewaySettings.nfc_readers)."""

from typing import Literal

from pydantic import Field

from omnizone.contract.base import StrictModel
from omnizone.contract.topics import IDENTIFIER_PATTERN

TargetType = Literal["106A", "106B", "212F", "424F"]


class NfcReaderSettings(StrictModel):
    tap_point: str = Field(
        pattern=IDENTIFIER_PATTERN, description="tap point id, e.g. shelf-denim or kiosk-1"
    )
    device: str = Field(
        "usb",
        min_length=1,
        description="nfcpy device path: 'usb', 'usb:054c:06c3', 'tty:USB0:pn532', 'udp:host:port'",
    )
    debounce_ms: int = Field(
        2000, ge=0, le=60_000, description="a tag re-presented within this counts once"
    )
    targets: tuple[TargetType, ...] = Field(
        ("106A", "106B", "212F"),
        min_length=1,
        description="technologies polled: 106A (Type 1/2/4A), 106B (Type 4B), 212F/424F (Type 3)",
    )
    poll_interval_s: float = Field(
        0.25, gt=0, le=5, description="pause between polling rounds when no tag is present"
    )
    reopen_max_backoff_s: float = Field(
        30.0, ge=0.1, le=600, description="longest wait between attempts to reopen the reader"
    )
