"""What the phone-sightings service needs from storage (issue 15): the
windows a shopper's phone reported of the store's fixed beacons, and the
batches already applied (a resend is answered from here, never applied twice).

Rows name the shopper (the token's), the store's beacon id and the window;
nothing about the phone's radio. Erasure deletes both kinds of row."""

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class PhoneSightingRow:
    store: str
    device: str  # the shopper id
    beacon: str  # the store file's beacon id
    window_start_ms: int
    window_ms: int
    rssi_mean: float
    count: int


class PhoneSightingStore(Protocol):
    def applied(self, device: str, batch: str) -> dict[str, Any] | None:
        """The answer given when this batch was first applied, or None."""
        ...

    def apply(
        self,
        device: str,
        batch: str,
        received_ms: int,
        rows: list[PhoneSightingRow],
        answer: dict[str, Any],
    ) -> bool:
        """Store the rows and remember the batch, in one transaction; False
        (and nothing written) when the batch was applied before (a race of two resends)."""
        ...

    def device_sightings(self, device: str) -> list[dict[str, Any]]:
        """The export: every stored window of the shopper's phone."""
        ...

    def device_batches(self, device: str) -> list[dict[str, Any]]:
        """The export: every batch applied (its id, when, the answer given)."""
        ...

    def erase_device(self, device: str) -> int:
        """Delete every row of the shopper (sightings and batches); how many."""
        ...

    def prune(self, before_ms: int) -> int:
        """Retention: sightings of windows before ``before_ms``, batches received before it."""
        ...
