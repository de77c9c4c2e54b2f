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


# -- stored rules and the alert log (issue 18 point 7: persisted, in the report) ----------


def rules_json(rules: AlertRules) -> dict[str, object]:
    """The rules as stored and as the API shows them."""
    return {
        "zone_capacity": dict(sorted(rules.zone_capacity.items())),
        "checkout_queue": rules.checkout_queue,
        "dwell_s": dict(sorted(rules.dwell_s.items())),
        "gateway_silent_s": rules.gateway_silent_s,
        "hysteresis": rules.hysteresis,
    }


def rules_from_json(data: Mapping[str, object]) -> AlertRules:
    """Stored rules back (what ``rules_json`` wrote); unknown keys are ignored."""
    capacity = data.get("zone_capacity") or {}
    dwell = data.get("dwell_s") or {}
    queue = data.get("checkout_queue")
    silent = data.get("gateway_silent_s", 120.0)
    hysteresis = data.get("hysteresis", 1)
    assert isinstance(capacity, Mapping) and isinstance(dwell, Mapping)
    return AlertRules(
        zone_capacity={str(k): int(v) for k, v in capacity.items()},
        checkout_queue=None if queue is None else int(str(queue)),
        dwell_s={str(k): float(v) for k, v in dwell.items()},
        gateway_silent_s=None if silent is None else float(str(silent)),
        hysteresis=int(str(hysteresis)),
    )


def rule_problems(rules: AlertRules, zone_ids: Sequence[str]) -> list[tuple[str, str]]:
    """(where, what) for each rule that names a zone the store has not, or a
    threshold below zero: the API answers 422 with them."""
    known = set(zone_ids)
    problems: list[tuple[str, str]] = []
    for field_name, table in (("zone_capacity", rules.zone_capacity), ("dwell_s", rules.dwell_s)):
        for zone, value in sorted(table.items()):
            if zone not in known:
                problems.append(
                    (
                        f"{field_name}.{zone}",
                        f"unknown zone {zone!r} (zones: {', '.join(zone_ids)})",
                    )
                )
            elif value < 0 or (field_name == "dwell_s" and value == 0):
                problems.append((f"{field_name}.{zone}", f"must be above 0, not {value}"))
    return problems


@dataclass(frozen=True, slots=True)
class AlertLogEntry:
    """One stored change of the alert log."""

    key: str
    kind: str
    subject: str
    severity: str
    state: Literal["raised", "cleared"]
    value: float
    threshold: float
    message: str
    at_ms: int


@dataclass(frozen=True, slots=True)
class AlertEpisode:
    """An alert from raised to cleared (``cleared_ms`` None: still active at ``until_ms``)."""

    key: str
    kind: str
    subject: str
    severity: str
    raised_ms: int
    cleared_ms: int | None
    duration_s: float
    peak: float
    threshold: float
    message: str

    def as_json(self) -> dict[str, object]:
        return {
            "key": self.key,
            "kind": self.kind,
            "subject": self.subject,
            "severity": self.severity,
            "raised_ms": self.raised_ms,
            "cleared_ms": self.cleared_ms,
            "duration_s": round(self.duration_s, 3),
            "peak": self.peak,
            "threshold": self.threshold,
            "message": self.message,
        }


def active_from_log(entries: Iterable[AlertLogEntry]) -> list[Alert]:
    """The alerts the log says are still raised (a restarted server resumes
    from them, so it neither raises them again nor forgets to clear them)."""
    open_: dict[str, AlertLogEntry] = {}
    for e in sorted(entries, key=lambda e: e.at_ms):
        if e.state == "raised":
            open_[e.key] = e
        else:
            open_.pop(e.key, None)
    return [
        Alert(e.key, e.kind, e.subject, e.severity, e.value, e.threshold, e.message)  # type: ignore[arg-type]
        for e in open_.values()
    ]


def alert_episodes(entries: Iterable[AlertLogEntry], until_ms: int) -> list[AlertEpisode]:
    """Pair each raise with the clear of the same key that follows it, in
    order of raising; an alert not yet cleared lasts until ``until_ms``. A clear
    without a raise before it (the log began mid-alert) is left out."""
    open_: dict[str, AlertLogEntry] = {}
    episodes: list[AlertEpisode] = []

    def close(raised: AlertLogEntry, cleared_ms: int | None, last_value: float) -> None:
        end = until_ms if cleared_ms is None else cleared_ms
        episodes.append(
            AlertEpisode(
                raised.key,
                raised.kind,
                raised.subject,
                raised.severity,
                raised.at_ms,
                cleared_ms,
                max(0.0, (end - raised.at_ms) / 1000),
                max(raised.value, last_value),
                raised.threshold,
                raised.message,
            )
        )

    for e in sorted(entries, key=lambda e: e.at_ms):
        if e.state == "raised":
            if e.key in open_:  # raised twice (a lost clear): the first ends here
                close(open_[e.key], e.at_ms, open_[e.key].value)
            open_[e.key] = e
        elif e.key in open_:
            close(open_.pop(e.key), e.at_ms, e.value)
    for raised in open_.values():
        close(raised, None, raised.value)
    episodes.sort(key=lambda ep: (ep.raised_ms, ep.key))
    return episodes


def history_summary(episodes: Sequence[AlertEpisode]) -> dict[str, object]:
    """Per kind: how many alerts, how many still active, total and longest time raised."""
    kinds: dict[str, dict[str, float]] = {}
    for ep in episodes:
        row = kinds.setdefault(ep.kind, {"fired": 0, "active": 0, "total_s": 0.0, "longest_s": 0.0})
        row["fired"] += 1
        row["active"] += ep.cleared_ms is None
        row["total_s"] += ep.duration_s
        row["longest_s"] = max(row["longest_s"], ep.duration_s)
    return {
        kind: {k: (round(v, 3) if k.endswith("_s") else int(v)) for k, v in row.items()}
        for kind, row in sorted(kinds.items())
    }
