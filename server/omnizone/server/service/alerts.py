"""The alert monitor: evaluates the store's alert rules and hands each change
(raised / cleared) to its sinks once: the dashboard's list and a signed webhook.

The rules and the arithmetic are pure (``domain.analytics.alerts``); this class
keeps what was active last time (for hysteresis and to send each change once)
and a bounded list of recent changes for the dashboard. A sink that fails is
counted and never stops the others (a webhook down must not hide the alert
from the dashboard).
"""

import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence

from omnizone.server.domain.analytics.alerts import (
    Alert,
    AlertChange,
    AlertRules,
    GatewayState,
    evaluate,
    transitions,
)
from omnizone.server.domain.analytics.stays import Stays
from omnizone.server.service.gateways import GatewayView
from omnizone.store import StorePlan

AlertSink = Callable[[Mapping[str, object]], object]
RECENT_CHANGES = 500


def change_payload(store: str, change: AlertChange) -> dict[str, object]:
    """The JSON an alert change travels as (webhook body and dashboard row)."""
    return {
        "type": "alert." + change.state,
        "store": store,
        "at_ms": change.at_ms,
        "alert": change.alert.as_json(),
    }


class AlertMonitor:
    def __init__(
        self,
        store: str,
        zone_ids: Sequence[str],
        checkout_zones: Iterable[str],
        rules: AlertRules,
        sinks: Iterable[AlertSink] = (),
    ) -> None:
        self.store = store
        self.zone_ids = list(zone_ids)
        self.checkout_zones = tuple(checkout_zones)
        self.rules = rules
        self._sinks = list(sinks)
        self._active: list[Alert] = []
        self._recent: deque[dict[str, object]] = deque(maxlen=RECENT_CHANGES)
        self._lock = threading.Lock()
        self.sink_failures = 0

    def update(
        self, stays: Stays, gateways: Iterable[GatewayState], now_ms: int
    ) -> list[AlertChange]:
        with self._lock:
            before = self._active
            after = evaluate(
                stays,
                self.zone_ids,
                self.checkout_zones,
                gateways,
                self.rules,
                now_ms,
                active=(a.key for a in before),
            )
            changes = transitions(before, after, now_ms)
            self._active = after
            payloads = [change_payload(self.store, c) for c in changes]
            self._recent.extend(payloads)
        for payload in payloads:
            for sink in self._sinks:
                try:
                    sink(payload)
                except Exception:  # one sink down must not silence the others
                    self.sink_failures += 1
        return changes

    def active(self) -> list[Alert]:
        with self._lock:
            return list(self._active)

    def recent(self, limit: int = 100) -> list[dict[str, object]]:
        with self._lock:
            return list(self._recent)[-limit:][::-1]


def gateway_states(fleet: Iterable[GatewayView]) -> list[GatewayState]:
    """GatewayState from the fleet view's rows: when each was last heard and
    its last health report's reader states."""
    states: list[GatewayState] = []
    for row in fleet:
        readers = (row.health or {}).get("readers")
        states.append(
            GatewayState(
                gateway=row.gateway,
                last_heard_ms=row.last_seen_ms,
                readers={str(k): str(v) for k, v in (readers or {}).items()}
                if isinstance(readers, Mapping)
                else {},
            )
        )
    return states


StaysOf = Callable[[str, int, int], Stays]
FleetOf = Callable[[str], Iterable[GatewayView]]
LOOKBACK_MS = 6 * 3600 * 1000  # open stays older than this are not a live crowd


class AlertsService:
    """One monitor per store, checked on demand (API, dashboard poll) or by a loop.

    Rules live in memory: the defaults given here, changed through the API;
    they are not persisted across restarts (docs/analytics.md, Alerts)."""

    def __init__(
        self,
        plans: Callable[[str], StorePlan],
        stays_of: StaysOf,
        fleet_of: FleetOf,
        now_of: Callable[[str], int],
        *,
        default_rules: AlertRules | None = None,
        sinks: Iterable[AlertSink] = (),
    ) -> None:
        self._plans = plans
        self._stays_of = stays_of
        self._fleet_of = fleet_of
        self._now_of = now_of  # the store's clock: event time when simulated
        self._default = default_rules or AlertRules()
        self._sinks = list(sinks)
        self._monitors: dict[str, AlertMonitor] = {}
        self._lock = threading.Lock()

    def monitor(self, store: str) -> AlertMonitor:
        with self._lock:
            found = self._monitors.get(store)
            if found is None:
                zones = self._plans(store).zones  # raises for an unknown store
                found = AlertMonitor(
                    store,
                    [z.id for z in zones],
                    [z.id for z in zones if str(z.kind) == "checkout"],
                    self._default,
                    self._sinks,
                )
                self._monitors[store] = found
            return found

    def set_rules(self, store: str, rules: AlertRules) -> None:
        self.monitor(store).rules = rules

    def check(self, store: str) -> AlertMonitor:
        monitor = self.monitor(store)
        now = self._now_of(store)
        monitor.update(
            self._stays_of(store, now - LOOKBACK_MS, now + 1),
            gateway_states(self._fleet_of(store)),
            now,
        )
        return monitor
