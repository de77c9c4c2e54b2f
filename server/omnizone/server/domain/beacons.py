"""The store's fixed beacons as a fleet: what the gateways last heard of each,
and when one needs a look (docs/dashboard.md, "Beacons").

A beacon is named by its store-file id, never by an address. Three alerts:

- **silent**: no gateway has heard it for ``silent_after_ms`` of the store's
  own clock (the newest window any gateway of the store reported, so a store
  whose gateways are all down raises gateway alerts, not beacon ones), or
  never since the server started;
- **low battery**: its last Eddystone-TLM reports less than
  ``low_battery_mv`` (a coin cell this low has days, not months, left);
- **weak signal**: the gateways that hear it hear it ``weak_drop_db`` quieter
  in the last minutes than before (a median over gateways of each one's
  recent median less its earlier one): a dying cell, something hung in
  front of it, or it was knocked off its mount.

Pure functions over plain data, like the rest of the domain.
"""

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

#: The same bar the gateway counts in ``ble.frames.tlm_low_battery``.
LOW_BATTERY_MV = 2500


@dataclass(frozen=True, slots=True)
class BeaconRules:
    silent_after_ms: int = 10 * 60_000
    low_battery_mv: int = LOW_BATTERY_MV
    weak_drop_db: float = 6.0
    recent_ms: int = 5 * 60_000
    min_samples: int = 5  # per gateway, on each side of the comparison


@dataclass(frozen=True, slots=True)
class BeaconAlert:
    beacon: str
    kind: str  # "silent", "low-battery" or "weak-signal"
    message: str


def signal_drop_db(
    heard: Mapping[str, Sequence[tuple[int, float]]], recent_from_ms: int, min_samples: int
) -> float | None:
    """How much quieter the beacon is heard since ``recent_from_ms`` than
    before (positive = quieter): per gateway, median before less median
    since, then the median over the gateways with ``min_samples`` on both
    sides. None when no gateway has enough."""
    drops = []
    for readings in heard.values():
        before = [rssi for at, rssi in readings if at < recent_from_ms]
        since = [rssi for at, rssi in readings if at >= recent_from_ms]
        if len(before) >= min_samples and len(since) >= min_samples:
            drops.append(statistics.median(before) - statistics.median(since))
    return statistics.median(drops) if drops else None


def beacon_alerts(
    beacon: str,
    *,
    now_ms: int | None,
    last_heard_ms: int | None,
    watched_since_ms: int | None,
    battery_mv: int | None,
    drop_db: float | None,
    rules: BeaconRules = BeaconRules(),
) -> list[BeaconAlert]:
    """The alerts standing for one beacon at ``now_ms`` (the store's clock)."""
    alerts = []
    if now_ms is not None:
        if last_heard_ms is None:
            if watched_since_ms is not None and now_ms - watched_since_ms >= rules.silent_after_ms:
                minutes = (now_ms - watched_since_ms) / 60_000
                alerts.append(
                    BeaconAlert(
                        beacon,
                        "silent",
                        f"{beacon}: no gateway has heard it in the {minutes:.0f} min the server "
                        "has watched: check it is powered, in place and advertising its id",
                    )
                )
        elif now_ms - last_heard_ms >= rules.silent_after_ms:
            minutes = (now_ms - last_heard_ms) / 60_000
            alerts.append(
                BeaconAlert(
                    beacon,
                    "silent",
                    f"{beacon}: silent for {minutes:.0f} min (no gateway hears it): a flat "
                    "cell, taken down, or covered; phones cannot range it either",
                )
            )
    if battery_mv is not None and battery_mv < rules.low_battery_mv:
        alerts.append(
            BeaconAlert(
                beacon,
                "low-battery",
                f"{beacon}: battery at {battery_mv} mV (below {rules.low_battery_mv} mV): "
                "replace the cell soon",
            )
        )
    if drop_db is not None and drop_db >= rules.weak_drop_db:
        alerts.append(
            BeaconAlert(
                beacon,
                "weak-signal",
                f"{beacon}: heard {drop_db:.1f} dB quieter than before by the gateways that "
                "hear it: something in front of it, off its mount, or a failing cell",
            )
        )
    return alerts
