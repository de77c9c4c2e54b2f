"""Settings of one fitting-room UHF reader (a list of these lives in the gateway settings)."""

from typing import Annotated

from pydantic import Field, field_validator

from omnizone.contract import RfidConfig
from omnizone.contract.base import StrictModel
from omnizone.contract.topics import IDENTIFIER_PATTERN
from omnizone.gateway.rfid.fitting_room import FittingRoomRules

Antenna = Annotated[int, Field(ge=1, le=4)]


class RfidReaderSettings(StrictModel):
    id: str = Field(pattern=IDENTIFIER_PATTERN, description="reader id, e.g. fitting-1")
    port: str = Field(
        description="serial device (/dev/ttyUSB0, /dev/serial/by-id/...) or a pyserial URL"
    )
    baudrate: int = Field(115200, description="115200 or 38400 on R2000 modules")
    address: int = Field(
        0xFF, ge=0, le=0xFF, description="module address; 255 is the public address"
    )
    antennas: list[Antenna] = Field(
        default_factory=lambda: [1], min_length=1, max_length=4, description="ports to inventory"
    )
    power_dbm: int = Field(26, ge=0, le=33, description="RF output power")
    session_inventory: bool = Field(
        False, description="use customized session/target inventory (0x8B) instead of 0x89"
    )
    session: int = Field(1, ge=0, le=3, description="Gen2 session for 0x8B")
    repeat: int = Field(1, ge=1, le=255, description="inventory repetitions per command")
    arrive_reads: int = Field(3, ge=1, le=1000, description="reads before 'arrived'")
    arrive_within_ms: int = Field(2_000, ge=100, le=60_000, description="...within this time")
    depart_after_ms: int = Field(
        10_000, ge=500, le=3_600_000, description="quiet period before 'departed'"
    )
    window_ms: int = Field(5_000, ge=100, le=600_000, description="read aggregation window")
    publish_reads: bool = Field(True, description="publish per-window reads besides try-ons")
    response_timeout_s: float = Field(
        1.0, gt=0, le=30, description="wait for an answer or the end of a round"
    )

    @field_validator("antennas")
    @classmethod
    def _distinct(cls, antennas: list[int]) -> list[int]:
        if len(set(antennas)) != len(antennas):
            raise ValueError(f"antennas {antennas} repeat a port")
        return antennas

    def rules(self) -> FittingRoomRules:
        return FittingRoomRules(
            arrive_reads=self.arrive_reads,
            arrive_within_ms=self.arrive_within_ms,
            depart_after_ms=self.depart_after_ms,
            window_ms=self.window_ms,
            publish_reads=self.publish_reads,
        )

    def with_config(self, config: RfidConfig) -> "RfidReaderSettings":
        """These settings with the server's overrides (absent fields keep their value)."""
        changes = config.model_dump(exclude_none=True)
        return self.model_copy(update=changes) if changes else self
