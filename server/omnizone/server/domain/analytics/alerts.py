"""Store alerts: thresholds on occupancy, the checkout queue, dwell and gateway health.

Pure: given the stored stays, when each gateway was last heard (and what its
health said), the rules and ``now``, ``evaluate`` says which alerts are active;
``transitions`` compares two evaluations and says which were raised and which
cleared, so a delivery (dashboard, signed webhook) sends each change once, not
a message per poll. A rule clears below its threshold minus its hysteresis,
so a count that hovers at the limit does not flap.

Occupancy is the number of distinct devices with an open stay in the zone at
``now`` (a stay open longer ago than ``stale_ms`` is not counted: the visit
builder has not closed it yet, but nobody has heard the device). The checkout
queue is the occupancy of the zones of kind ``checkout``. Dwell alerts name
how many devices have stayed longer than the limit, never which ones.
Gateway health: a gateway unheard for ``silent_s``, or whose last health
report said a reader is ``offline`` (e.g. an ESPresense node's room status).
Staff filtering (issue 18 point 5) is applied upstream by whoever builds the
``Stays``; this module counts what it is given.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from .stays import OPEN, Stays

AlertKind = Literal["occupancy", "checkout_queue", "dwell", "gateway_silent", "gateway_reader"]
Severity = Literal["warning", "critical"]


@dataclass(frozen=True, slots=True)
class AlertRules:
    """Thresholds for one store. ``None`` switches a rule off."""

    zone_capacity: Mapping[str, int] = field(default_factory=dict)
    """zone id -> most shoppers it should hold"""
    checkout_queue: int | None = None
    """shoppers in the checkout zones at once"""
    dwell_s: Mapping[str, float] = field(default_factory=dict)
    """zone id -> longest expected stay (s), e.g. a fitting room"""
    gateway_silent_s: float | None = 120.0
    hysteresis: int = 1
    stale_ms: int = 60_000


@dataclass(frozen=True, slots=True)
class GatewayState:
    gateway: str
    last_heard_ms: int | None
    readers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Alert:
    """One active alert. ``key`` names it across evaluations (kind + subject)."""

    key: str
    kind: AlertKind
    subject: str
    severity: Severity
    value: float
    threshold: float
    message: str

    def as_json(self) -> dict[str, object]:
        return {
            "key": self.key,
            "kind": self.kind,
            "subject": self.subject,
            "severity": self.severity,
            "value": self.value,
            "threshold": self.threshold,
            "message": self.message,
        }


@dataclass(frozen=True, slots=True)
class AlertChange:
    state: Literal["raised", "cleared"]
    alert: Alert
    at_ms: int


def occupancy(stays: Stays, zone_ids: Sequence[str], now_ms: int, stale_ms: int) -> dict[str, int]:
    """zone id -> distinct devices with a live open stay at ``now_ms``."""
    live = (
        (stays.status == OPEN) & (stays.entered_ms <= now_ms) & (stays.end_ms >= now_ms - stale_ms)
    )
    counts: dict[str, int] = {}
    for index, zone in enumerate(zone_ids):
        devices = stays.device[live & (stays.zone == index)]
        counts[zone] = int(np.unique(devices).size)
    return counts


def long_stays(
    stays: Stays, zone_ids: Sequence[str], now_ms: int, stale_ms: int, limits_s: Mapping[str, float]
) -> dict[str, int]:
    """zone id -> devices in a live open stay longer than that zone's limit."""
    live = (stays.status == OPEN) & (stays.end_ms >= now_ms - stale_ms)
    result: dict[str, int] = {}
    for zone, limit_s in limits_s.items():
        if zone not in zone_ids:
            continue
        index = zone_ids.index(zone)
        over = live & (stays.zone == index) & (now_ms - stays.entered_ms > limit_s * 1000)
        result[zone] = int(np.unique(stays.device[over]).size)
    return result


def _over(value: float, threshold: float, was_active: bool, hysteresis: int) -> bool:
    """Raised above the threshold; stays raised until below threshold - hysteresis."""
    return value > threshold or (was_active and value > threshold - hysteresis)


def evaluate(
    stays: Stays,
    zone_ids: Sequence[str],
    checkout_zones: Iterable[str],
    gateways: Iterable[GatewayState],
    rules: AlertRules,
    now_ms: int,
    active: Iterable[str] = (),
) -> list[Alert]:
    """The alerts active at ``now_ms``; ``active`` are the keys active before (hysteresis)."""
    before = set(active)
    alerts: list[Alert] = []
    counts = occupancy(stays, zone_ids, now_ms, rules.stale_ms)
    for zone, capacity in sorted(rules.zone_capacity.items()):
        value = counts.get(zone, 0)
        key = f"occupancy:{zone}"
        if _over(value, capacity, key in before, rules.hysteresis):
            severity: Severity = "critical" if value > capacity * 1.25 else "warning"
            alerts.append(
                Alert(
                    key,
                    "occupancy",
                    zone,
                    severity,
                    value,
                    capacity,
                    f"{zone}: {value} shoppers, capacity {capacity}",
                )
            )
    if rules.checkout_queue is not None:
        zones = sorted(set(checkout_zones))
        value = sum(counts.get(z, 0) for z in zones)
        key = "checkout_queue:" + ",".join(zones)
        if _over(value, rules.checkout_queue, key in before, rules.hysteresis):
            alerts.append(
                Alert(
                    key,
                    "checkout_queue",
                    ",".join(zones),
                    "warning",
                    value,
                    rules.checkout_queue,
                    f"checkout queue: {value} shoppers waiting, limit {rules.checkout_queue}",
                )
            )
    for zone, value in sorted(
        long_stays(stays, zone_ids, now_ms, rules.stale_ms, rules.dwell_s).items()
    ):
        if value > 0:
            limit = rules.dwell_s[zone]
            alerts.append(
                Alert(
                    f"dwell:{zone}",
                    "dwell",
                    zone,
                    "warning",
                    value,
                    limit,
                    f"{zone}: {value} shopper(s) there longer than {limit:g} s",
                )
            )
    for gateway in sorted(gateways, key=lambda g: g.gateway):
        if rules.gateway_silent_s is not None:
            silent_s = (
                float("inf")
                if gateway.last_heard_ms is None
                else (now_ms - gateway.last_heard_ms) / 1000
            )
            if silent_s > rules.gateway_silent_s:
                shown = (
                    "never heard" if gateway.last_heard_ms is None else f"silent {silent_s:.0f} s"
                )
                alerts.append(
                    Alert(
                        f"gateway_silent:{gateway.gateway}",
                        "gateway_silent",
                        gateway.gateway,
                        "critical",
                        silent_s if silent_s != float("inf") else -1.0,
                        rules.gateway_silent_s,
                        f"gateway {gateway.gateway}: {shown}",
                    )
                )
        for reader, state in sorted(gateway.readers.items()):
            if state == "offline":
                alerts.append(
                    Alert(
                        f"gateway_reader:{gateway.gateway}:{reader}",
                        "gateway_reader",
                        f"{gateway.gateway}/{reader}",
                        "critical",
                        0.0,
                        1.0,
                        f"gateway {gateway.gateway}: {reader} is offline",
                    )
                )
    return alerts


def transitions(before: Sequence[Alert], after: Sequence[Alert], at_ms: int) -> list[AlertChange]:
    """What changed between two evaluations: new keys raised, vanished keys cleared."""
    old = {a.key: a for a in before}
    new = {a.key: a for a in after}
    changes = [AlertChange("raised", a, at_ms) for k, a in new.items() if k not in old]
    changes += [AlertChange("cleared", a, at_ms) for k, a in old.items() if k not in new]
    return changes
