"""The alert monitor: evaluates the store's alert rules and hands each change
(raised / cleared) to its sinks once: the dashboard's list, the alert log and,
from the log, a signed webhook (``AlertDelivery``). ``AlertLoop`` evaluates
every store every few seconds in the server runtime, so an alert fires
without anyone looking (issue 18 point 7).

The rules and the arithmetic are pure (``domain.analytics.alerts``); this class
keeps what was active last time (for hysteresis and to send each change once)
and a bounded list of recent changes for the dashboard. A sink that fails is
counted and never stops the others (a webhook down must not hide the alert
from the dashboard).
"""

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Protocol

from omnizone.contract.timefmt import wall_clock_ms
from omnizone.server.domain.analytics.alerts import (
    Alert,
    AlertChange,
    AlertEpisode,
    AlertLogEntry,
    AlertRules,
    GatewayState,
    active_from_log,
    alert_episodes,
    evaluate,
    rule_problems,
    rules_from_json,
    rules_json,
    transitions,
)
from omnizone.server.domain.analytics.stays import Stays
from omnizone.server.service.gateways import GatewayView
from omnizone.server.service.ports.alerts import AlertStore, StoredAlertChange
from omnizone.store import StorePlan

log = logging.getLogger(__name__)

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
        active: Iterable[Alert] = (),
    ) -> None:
        self.store = store
        self.zone_ids = list(zone_ids)
        self.checkout_zones = tuple(checkout_zones)
        self.rules = rules
        self._sinks = list(sinks)
        self._active: list[Alert] = list(active)
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


class UnusableRules(ValueError):
    """Rules naming a zone the store has not (``problems``: (where, what))."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{where}: {what}" for where, what in problems))
        self.problems = problems


def log_entry(change: AlertChange) -> AlertLogEntry:
    a = change.alert
    return AlertLogEntry(
        a.key,
        a.kind,
        a.subject,
        a.severity,
        change.state,
        a.value,
        a.threshold,
        a.message,
        change.at_ms,
    )


RESTORE_MS = 7 * 86_400_000  # an alert raised longer ago than this is not resumed


class AlertsService:
    """One monitor per store, checked by ``AlertLoop`` (and on demand by the API).

    The rules are the store's saved ones (``AlertStore``), else the defaults
    given here; every change goes to the alert log, and a restarted server
    resumes the alerts the log says are raised (docs/analytics.md, Alerts)."""

    def __init__(
        self,
        plans: Callable[[str], StorePlan],
        stays_of: StaysOf,
        fleet_of: FleetOf,
        now_of: Callable[[str], int],
        *,
        default_rules: AlertRules | None = None,
        sinks: Iterable[AlertSink] = (),
        stored: AlertStore | None = None,
        clock_ms: Callable[[], int] = wall_clock_ms,
    ) -> None:
        self._plans = plans
        self._stays_of = stays_of
        self._fleet_of = fleet_of
        self._now_of = now_of  # the store's clock: event time when simulated
        self._default = default_rules or AlertRules()
        self._stored = stored
        self._clock_ms = clock_ms
        self._sinks = list(sinks)
        if stored is not None:
            self._sinks.append(self._record)
        self._monitors: dict[str, AlertMonitor] = {}
        self._lock = threading.Lock()

    def _record(self, payload: Mapping[str, object]) -> None:
        """The alert log's sink: the payload's change, stored."""
        assert self._stored is not None
        alert = payload["alert"]
        assert isinstance(alert, Mapping)
        state = str(payload["type"]).removeprefix("alert.")
        entry = AlertLogEntry(
            str(alert["key"]),
            str(alert["kind"]),
            str(alert["subject"]),
            str(alert["severity"]),
            "raised" if state == "raised" else "cleared",
            float(str(alert["value"])),
            float(str(alert["threshold"])),
            str(alert["message"]),
            int(str(payload["at_ms"])),
        )
        self._stored.append(str(payload["store"]), [entry])

    @property
    def stores(self) -> list[str]:
        with self._lock:
            return list(self._monitors)

    def monitor(self, store: str) -> AlertMonitor:
        with self._lock:
            found = self._monitors.get(store)
            if found is None:
                zones = self._plans(store).zones  # raises for an unknown store
                rules, active = self._default, []
                if self._stored is not None:
                    saved = self._stored.rules(store)
                    if saved is not None:
                        rules = rules_from_json(saved)
                    now = self._now_of(store)
                    entries = [c.entry for c in self._stored.log(store, now - RESTORE_MS, 2**62)]
                    active = active_from_log(entries)
                found = AlertMonitor(
                    store,
                    [z.id for z in zones],
                    [z.id for z in zones if str(z.kind) == "checkout"],
                    rules,
                    self._sinks,
                    active,
                )
                self._monitors[store] = found
            return found

    def set_rules(self, store: str, rules: AlertRules) -> None:
        """Check, save and use ``rules``; ``UnusableRules`` names what is wrong."""
        monitor = self.monitor(store)
        problems = rule_problems(rules, monitor.zone_ids)
        if problems:
            raise UnusableRules(problems)
        if self._stored is not None:
            self._stored.save_rules(store, rules_json(rules), self._clock_ms())
        monitor.rules = rules

    def rules(self, store: str) -> AlertRules:
        return self.monitor(store).rules

    def history(self, store: str, from_ms: int, to_ms: int) -> list[AlertEpisode]:
        """The alerts raised in [from_ms, to_ms) (and those still raised at its
        start), each with when it cleared and how long it lasted."""
        self.monitor(store)
        if self._stored is None:
            return []
        return stored_history(self._stored, store, from_ms, to_ms, self._now_of(store))

    def check(self, store: str) -> AlertMonitor:
        monitor = self.monitor(store)
        now = self._now_of(store)
        monitor.update(
            self._stays_of(store, now - LOOKBACK_MS, now + 1),
            gateway_states(self._fleet_of(store)),
            now,
        )
        return monitor


def stored_history(
    stored: AlertStore, store: str, from_ms: int, to_ms: int, now_ms: int
) -> list[AlertEpisode]:
    """The alert episodes of [from_ms, to_ms) from the log (the API and ``omnizone report``):
    those raised in it, and those raised before that were still raised in it."""
    entries = [c.entry for c in stored.log(store, from_ms - RESTORE_MS, to_ms)]
    return [
        e
        for e in alert_episodes(entries, min(to_ms, now_ms))
        if e.raised_ms >= from_ms or e.cleared_ms is None or e.cleared_ms >= from_ms
    ]


class WebhookSender(Protocol):
    def __call__(self, payload: Mapping[str, object], delivery_id: str | None = None) -> object: ...


def _delivered(result: object) -> bool:
    return bool(getattr(result, "delivered", True))


class AlertDelivery:
    """Sends the alert log's undelivered changes to the webhook, oldest first,
    each once: a row is marked when the receiver took it (2xx). A round stops
    at the first change the webhook would not take (it is down: the next
    round tries again, ``max_attempts`` rounds at most); ``send`` retries
    within a round (``SignedWebhook``). The delivery id is the log row's, the
    same on every attempt, so a receiver drops duplicates."""

    def __init__(
        self,
        stored: AlertStore,
        send: WebhookSender,
        *,
        clock_ms: Callable[[], int] = wall_clock_ms,
        max_attempts: int = 20,
        batch: int = 100,
    ) -> None:
        self._stored = stored
        self._send = send
        self._clock_ms = clock_ms
        self.max_attempts = max_attempts
        self._batch = batch
        self.failures = 0

    def deliver_once(self) -> int:
        sent = 0
        for change in self._stored.undelivered(self._batch, self.max_attempts):
            ok = _delivered(self._send(stored_payload(change), f"alert-{change.id}"))
            self._stored.mark(change.id, self._clock_ms() if ok else None)
            if not ok:
                self.failures += 1
                break
            sent += 1
        return sent


def stored_payload(change: StoredAlertChange) -> dict[str, object]:
    e = change.entry
    return {
        "type": "alert." + e.state,
        "store": change.store,
        "at_ms": e.at_ms,
        "id": change.id,
        "alert": {
            "key": e.key,
            "kind": e.kind,
            "subject": e.subject,
            "severity": e.severity,
            "value": e.value,
            "threshold": e.threshold,
            "message": e.message,
        },
    }


class AlertLoop:
    """Every ``interval_s``: check every store's alerts, then run each of
    ``after`` (the webhook deliveries). ``run_once`` is one round (tests)."""

    def __init__(
        self,
        service: AlertsService,
        stores: Callable[[], Iterable[str]],
        interval_s: float,
        after: Sequence[Callable[[], object]] = (),
    ) -> None:
        self._service = service
        self._stores = stores
        self.interval_s = interval_s
        self._after = list(after)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.rounds = 0
        self.last_round_cpu_s = 0.0

    def add_step(self, step: Callable[[], object]) -> None:
        """Run ``step`` after the checks of each round (a webhook delivery)."""
        self._after.append(step)

    def run_once(self) -> None:
        started = time.process_time()
        for store in self._stores():
            try:
                self._service.check(store)
            except Exception:  # one store's failure must not stop the others
                log.warning("alert check of %s failed", store, exc_info=True)
        for step in self._after:
            try:
                step()
            except Exception:
                log.warning("alert delivery failed", exc_info=True)
        self.rounds += 1
        self.last_round_cpu_s = time.process_time() - started

    def start(self) -> None:
        if self._thread is not None:
            return

        def run() -> None:
            while not self._stop.wait(self.interval_s):
                self.run_once()

        self._thread = threading.Thread(target=run, name="alert-loop", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
            self._thread = None
