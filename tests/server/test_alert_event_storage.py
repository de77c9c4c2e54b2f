"""Stored alert rules, the alert log, the event outbox and subscriptions on
SQLite and PostgreSQL (migration 0011_alert_rules_and_stream): what a restart
keeps, a cursor never reused, and webhook delivery that moves on only when
the receiver took it (issue 18 points 7, 8)."""

from dataclasses import dataclass
from typing import Any

import pytest

from omnizone.server.adapters.alert_db import AlertRepository
from omnizone.server.adapters.event_db import EventRepository
from omnizone.server.adapters.memory.alerts import MemoryAlertStore
from omnizone.server.adapters.memory.events import MemoryEventOutbox
from omnizone.server.bootstrap import open_storage
from omnizone.server.domain.analytics.alerts import AlertLogEntry, AlertRules, rules_json
from omnizone.server.domain.analytics.event_stream import make_event
from omnizone.server.service.alerts import AlertDelivery
from omnizone.server.service.endpoints import EndpointGuard
from omnizone.server.service.event_stream import BadSubscription, EventStream
from omnizone.server.service.ports.alerts import AlertStore
from omnizone.server.service.ports.events import EventOutbox

BACKENDS = ("memory", "sqlite", "postgresql")

STORE = "paris-rivoli"


def _engine(request: pytest.FixtureRequest) -> Any:
    """SQLite in the test's folder or a fresh PostgreSQL schema, migrated as the server does."""
    if request.param == "sqlite":
        url = f"sqlite:///{request.getfixturevalue('tmp_path') / 'store.db'}"
    else:
        url = request.getfixturevalue("postgres_schema_url")
    opened = open_storage(url)
    request.addfinalizer(opened.close)
    return opened.sql.engine


@pytest.fixture(params=BACKENDS)
def alerts(request: pytest.FixtureRequest) -> AlertStore:
    """The alert store: in memory, and in SQLite and PostgreSQL (``storage``)."""
    if request.param == "memory":
        return MemoryAlertStore()
    return AlertRepository(_engine(request))


@pytest.fixture(params=BACKENDS)
def outbox(request: pytest.FixtureRequest) -> EventOutbox:
    if request.param == "memory":
        return MemoryEventOutbox()
    return EventRepository(_engine(request))


@dataclass
class Result:
    delivered: bool
    error: str | None = None


class Receiver:
    def __init__(self, fail: int = 0) -> None:
        self.fail = fail
        self.bodies: list[tuple[dict[str, Any], str | None]] = []

    def __call__(self, payload: Any, delivery_id: str | None = None) -> Result:
        if self.fail > 0:
            self.fail -= 1
            return Result(False, "HTTP 503")
        self.bodies.append((payload, delivery_id))
        return Result(True)


def entry(key: str, state: str, at_ms: int) -> AlertLogEntry:
    return AlertLogEntry(key, "occupancy", "shoes", "warning", state, 5, 4, "shoes: 5", at_ms)  # type: ignore[arg-type]


def test_rules_and_the_alert_log_are_kept_and_sent_once(alerts: AlertStore) -> None:
    assert alerts.rules(STORE) is None
    rules = rules_json(AlertRules(zone_capacity={"shoes": 4}, checkout_queue=3))
    alerts.save_rules(STORE, rules, 1)
    assert alerts.rules(STORE) == rules
    ids = alerts.append(STORE, [entry("occupancy:shoes", "raised", 1_000)])
    ids += alerts.append(STORE, [entry("occupancy:shoes", "cleared", 61_000)])
    receiver = Receiver(fail=1)
    delivery = AlertDelivery(alerts, receiver, clock_ms=lambda: 99)
    assert delivery.deliver_once() == 0  # receiver down: nothing marked, stops at the first
    assert delivery.deliver_once() == 2
    assert delivery.deliver_once() == 0  # sent once
    assert [d for _, d in receiver.bodies] == [f"alert-{i}" for i in ids]
    assert [b["type"] for b, _ in receiver.bodies] == ["alert.raised", "alert.cleared"]
    assert [c.attempts for c in alerts.log(STORE, 0, 10**6)] == [2, 1]


def test_outbox_cursors_resume_and_are_never_reused(outbox: Any) -> None:
    made = [
        make_event(STORE, "zone_entered", 1_000 + i, f"shopper-{i}", zone="shoes") for i in range(3)
    ]
    outbox.add(made, stored_ms=1)
    outbox.add(made[:1], stored_ms=2)  # the same fact again: not stored twice
    got = outbox.after(STORE, 0, 10)
    assert [e.message_id for e in got] == [e.message_id for e in made]
    assert [e.seq for e in outbox.after(STORE, got[0].seq, 10)] == [e.seq for e in got[1:]]
    assert outbox.prune(older_than_ms=5) == 3
    outbox.add([make_event(STORE, "tap", 9_000, None, tap_point="t")], stored_ms=10)
    (newer,) = outbox.after(STORE, 0, 10)
    assert newer.seq > got[-1].seq  # a consumer at the old cursor still gets it
    assert outbox.erase_device("shopper-0") == 0  # pruned already
    outbox.add([made[1]], stored_ms=11)
    assert outbox.device_events("shopper-1")[0]["event"] == "zone_entered"
    assert outbox.erase_device("shopper-1") == 1


def test_a_subscription_moves_on_only_when_the_receiver_took_the_batch(
    outbox: EventOutbox,
) -> None:
    receiver = Receiver(fail=1)
    stream = EventStream(
        lambda: [STORE],
        outbox,
        identified=lambda shopper: shopper == "shopper-1",
        guard=EndpointGuard(),
        sender_for=lambda url: receiver,
    )
    outbox.add([make_event(STORE, "zone_entered", 500, "shopper-0", zone="shoes")], 1)
    with pytest.raises(BadSubscription, match="unknown event 'zone_exploded'"):
        stream.subscribe(STORE, "https://crm.example/hook", ["zone_exploded"])
    with pytest.raises(BadSubscription, match="url"):
        stream.subscribe(STORE, "http://127.0.0.1:9/hook", [])
    sub = stream.subscribe(STORE, "https://crm.example/hook", ["zone_entered", "visit_ended"])
    assert sub.cursor == outbox.last_seq(STORE)  # from now: the older event is not sent
    outbox.add(
        [
            make_event(STORE, "zone_entered", 1_000, "shopper-1", zone="shoes"),
            make_event(STORE, "tap", 1_500, None, tap_point="t"),  # not subscribed
            make_event(STORE, "visit_ended", 2_000, "shopper-2", zone="shoes"),
        ],
        2,
    )
    assert stream.deliver_once() == 0  # 503: the cursor stays
    (kept,) = outbox.subscriptions(STORE)
    assert kept.cursor == sub.cursor and kept.failures == 1 and kept.last_error == "HTTP 503"
    assert stream.deliver_once() == 2
    assert stream.deliver_once() == 0
    ((body, delivery_id),) = receiver.bodies
    batch = body["batch"]
    assert [m["event"] for m in batch] == ["zone_entered", "visit_ended"]
    assert batch[0]["userId"] == "shopper-1" and "userId" not in batch[1]
    assert delivery_id is not None and delivery_id.startswith(sub.id)
    (moved,) = outbox.subscriptions(STORE)
    assert moved.cursor == outbox.last_seq(STORE) and moved.delivered == 2
    assert stream.unsubscribe(STORE, sub.id) and outbox.subscriptions(STORE) == []


def test_events_just_stored_wait_for_the_settle_window(outbox: EventOutbox) -> None:
    """On PostgreSQL a number taken earlier may commit later: the stream reads
    an event only once it has been stored ``settle_ms`` (2 s there)."""
    now = [10_000]
    stream = EventStream(
        lambda: [STORE],
        outbox,
        identified=lambda _s: False,
        settle_ms=2_000,
        clock_ms=lambda: now[0],
    )
    outbox.add([make_event(STORE, "tap", 9_000, None, tap_point="t")], stored_ms=9_500)
    assert stream.after(STORE, None) == []
    now[0] = 11_501
    ((cursor, name, message),) = stream.after(STORE, None)
    assert name == "tap" and message["context"]["omnizone"]["cursor"] == cursor  # type: ignore[index]
