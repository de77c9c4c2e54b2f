"""Store events for other systems (issue 18 point 8): what happened in the
store, as Segment-style ``track`` messages (docs/event-stream.md).

Events: ``zone_entered``, ``zone_left`` (a stay), ``visit_started``,
``visit_ended`` (the device's first stay in the store opened, its last one
closed), ``tap``, ``try_on``, ``offer_sent``, ``offer_opened``,
``offer_redeemed``. Each is made here, by pure functions, from the fact it
tells of, at the moment that fact is stored; the storage gives it a sequence
number, which is its cursor (``str(seq)``), so a consumer resumes after any
event of any kind. ``message_id`` is a hash of what the event is, the same
however often it is told, so a receiver drops duplicates.

Privacy (docs/identity.md, docs/security.md): no event carries a device key
or a radio address. Location events exist only for devices whose location may
be stored (ingest makes none otherwise). ``anonymousId`` is a hash of store,
device and UTC day: a receiver can join one visit's events, not one device's
days. ``userId`` (the shopper id) is added only for a shopper who consented
to ``personalized_offers`` at the moment the event is sent, so a withdrawal
takes effect for events already stored.
"""

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from omnizone.server.domain.visits import VisitClosed, VisitEvent, VisitOpened

ZONE_ENTERED = "zone_entered"
ZONE_LEFT = "zone_left"
VISIT_STARTED = "visit_started"
VISIT_ENDED = "visit_ended"
TAP = "tap"
TRY_ON = "try_on"
OFFER_SENT = "offer_sent"
OFFER_OPENED = "offer_opened"
OFFER_REDEEMED = "offer_redeemed"
EVENT_NAMES = (
    ZONE_ENTERED,
    ZONE_LEFT,
    VISIT_STARTED,
    VISIT_ENDED,
    TAP,
    TRY_ON,
    OFFER_SENT,
    OFFER_OPENED,
    OFFER_REDEEMED,
)
DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    """An event as written, before the storage numbers it. ``device`` is kept
    for erasure and for ``userId``; it is never sent."""

    store: str
    event: str
    at_ms: int
    device: str | None
    properties: Mapping[str, object] = field(default_factory=dict)
    message_id: str = ""


@dataclass(frozen=True, slots=True)
class StoredEvent:
    seq: int
    store: str
    event: str
    at_ms: int
    device: str | None
    properties: Mapping[str, object]
    message_id: str

    @property
    def cursor(self) -> str:
        return str(self.seq)


def _hash(*what: object) -> str:
    return hashlib.sha256("|".join(map(str, what)).encode()).hexdigest()


def make_event(
    store: str, event: str, at_ms: int, device: str | None, **properties: object
) -> OutboxEvent:
    """An event with its message id: a hash of its name, store, device, time and properties."""
    shown = {k: v for k, v in sorted(properties.items()) if v is not None}
    message_id = _hash(store, event, device, at_ms, sorted(shown.items()))[:32]
    return OutboxEvent(store, event, at_ms, device, shown, message_id)


def visit_events(
    store: str,
    device: str,
    events: Sequence[VisitEvent],
    was_present: bool,
    is_present: bool,
) -> list[OutboxEvent]:
    """The stream events of one device's stay changes in one write: a zone
    entered or left per stay (a pass-by says so in ``pass_by``), the visit
    started when it was nowhere before, ended when it is nowhere now."""
    out: list[OutboxEvent] = []
    opened = [e for e in events if isinstance(e, VisitOpened)]
    closed = [e for e in events if isinstance(e, VisitClosed)]
    if opened and not was_present:
        first = min(opened, key=lambda e: e.entered_ms)
        out.append(make_event(store, VISIT_STARTED, first.entered_ms, device, zone=first.zone))
    for e in events:
        if isinstance(e, VisitOpened):
            out.append(make_event(store, ZONE_ENTERED, e.entered_ms, device, zone=e.zone))
        else:
            out.append(
                make_event(
                    store,
                    ZONE_LEFT,
                    e.left_ms,
                    device,
                    zone=e.zone,
                    entered_ms=e.entered_ms,
                    dwell_s=round(e.dwell_s, 3),
                    pass_by=e.pass_by,
                )
            )
    if closed and not is_present:
        last = max(closed, key=lambda e: e.left_ms)
        out.append(make_event(store, VISIT_ENDED, last.left_ms, device, zone=last.zone))
    return out


def tap_event(store: str, gateway: str, tap_point: str, uid: str, at_ms: int) -> OutboxEvent:
    """A tap at an NFC point. The tag or phone UID is not sent: only a hash
    of it (with the tap point and time) makes the message id."""
    event = make_event(store, TAP, at_ms, None, tap_point=tap_point, gateway=gateway)
    return OutboxEvent(
        store, TAP, at_ms, None, event.properties, _hash(store, TAP, uid, tap_point, at_ms)[:32]
    )


def try_on_event(store: str, reader: str, gtin: str | None, epc: str, at_ms: int) -> OutboxEvent:
    """An item brought into a fitting room (the reader's ``arrived``). The
    item's EPC is not sent (a serial can follow an item home)."""
    event = make_event(store, TRY_ON, at_ms, None, reader=reader, gtin=gtin)
    return OutboxEvent(
        store, TRY_ON, at_ms, None, event.properties, _hash(store, TRY_ON, epc, reader, at_ms)[:32]
    )


def offer_event(
    event: str,
    store: str,
    shopper_id: str,
    offer_id: str,
    campaign_id: str,
    at_ms: int,
    zone: str | None = None,
) -> OutboxEvent:
    """Offer sent, opened or redeemed: one event per offer and kind."""
    made = make_event(
        store, event, at_ms, shopper_id, offer_id=offer_id, campaign_id=campaign_id, zone=zone
    )
    return OutboxEvent(
        store, event, at_ms, shopper_id, made.properties, _hash(store, event, offer_id)[:32]
    )


def is_shopper_id(device: str | None) -> bool:
    """A resolved shopper's id has no kind prefix (``eid:``, ``ibeacon:``…)."""
    return device is not None and ":" not in device


def anonymous_id(store: str, device: str | None, at_ms: int, fallback: str) -> str:
    """Store, device and UTC day hashed: stable within a day's visit, not across days."""
    who = device if device is not None else f"event:{fallback}"
    return _hash("omnizone-stream", store, who, at_ms // DAY_MS)[:16]


def iso_time(at_ms: int) -> str:
    return (
        datetime.fromtimestamp(at_ms / 1000, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def segment_message(event: StoredEvent, identified: bool) -> dict[str, object]:
    """The Segment ``track`` message of a stored event. ``identified``: the
    shopper consented to ``personalized_offers`` now, so ``userId`` is sent."""
    message: dict[str, object] = {
        "type": "track",
        "event": event.event,
        "messageId": event.message_id,
        "anonymousId": anonymous_id(event.store, event.device, event.at_ms, event.message_id),
        "timestamp": iso_time(event.at_ms),
        "properties": {"store": event.store, **event.properties},
        "context": {"omnizone": {"cursor": event.cursor, "at_ms": event.at_ms}},
    }
    if identified and is_shopper_id(event.device):
        message["userId"] = event.device
    return message


def parse_cursor(cursor: str) -> int:
    """An event's cursor back to its sequence number; ValueError saying what one looks like."""
    if not cursor.isdigit() or len(cursor) > 18:
        raise ValueError(f"cursor {cursor[:40]!r} is not an event id (a whole number, e.g. 1234)")
    return int(cursor)
