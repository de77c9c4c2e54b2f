"""Nearest-gateway zone assignment: the baseline localizer.

A device is placed in the zone of the gateway that hears it loudest. It is
crude (no radio map, no filter) but it is the seam a real localizer replaces.
"""

from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_STALE_MS = 3000


@dataclass(frozen=True, slots=True)
class Reading:
    """What one gateway last heard of one device."""

    rssi_mean: float
    window_end_ms: int


def assign_zone(
    readings: Mapping[str, Reading],
    gateway_zones: Mapping[str, str],
    now_ms: int,
    stale_ms: int = DEFAULT_STALE_MS,
) -> str | None:
    """Zone of the strongest fresh reading, keyed by gateway id.

    Readings older than ``stale_ms`` (or from a gateway that covers no zone)
    are ignored, so a device that walked away from a gateway is not kept there
    by an old loud reading. Ties go to the lexically smallest gateway id so the
    answer does not depend on dict order. ``None`` when nothing fresh is heard.
    """
    best: tuple[float, str] | None = None
    for gateway, reading in readings.items():
        if gateway not in gateway_zones or now_ms - reading.window_end_ms > stale_ms:
            continue
        key = (-reading.rssi_mean, gateway)
        if best is None or key < best:
            best = key
    return None if best is None else gateway_zones[best[1]]


def prune(readings: Mapping[str, Reading], now_ms: int, stale_ms: int) -> dict[str, Reading]:
    """Readings still fresh at ``now_ms``; keeps per-device memory bounded."""
    return {g: r for g, r in readings.items() if now_ms - r.window_end_ms <= stale_ms}
