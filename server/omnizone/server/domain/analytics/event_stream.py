"""Store events for other systems (issue 18 point 8, partly): zone entered and
zone left, derived from the stored stays, in a stable order with a cursor.

The cursor of an event is ``<at_ms, 13 digits>.<12 hex>``: its time, then a
hash of what it is (type, device, zone, when the stay began), so the same
stored stay always gives the same events and cursors, and "everything after
cursor C" is a plain string comparison: a consumer resumes where it stopped
without the server keeping any state per consumer. The device is never sent:
``anonymous_id`` is a store-salted hash of it (Segment's ``anonymousId``).
"""

import hashlib
from dataclasses import dataclass

import numpy as np

from .stays import OPEN, PASS_BY, Stays

ZONE_ENTERED = "zone_entered"
ZONE_LEFT = "zone_left"


@dataclass(frozen=True, slots=True)
class StoreEvent:
    cursor: str
    type: str
    at_ms: int
    zone: str
    anonymous_id: str

    def as_json(self, store: str) -> dict[str, object]:
        """Segment-track-like: event name, ids, timestamp, properties (docs/event-stream.md)."""
        return {
            "id": self.cursor,
            "type": "track",
            "event": self.type,
            "anonymousId": self.anonymous_id,
            "timestamp_ms": self.at_ms,
            "properties": {"store": store, "zone": self.zone},
        }


def anonymous_id(store: str, device: str) -> str:
    return hashlib.sha256(f"omnizone-stream:{store}:{device}".encode()).hexdigest()[:16]


def _cursor(at_ms: int, *what: object) -> str:
    digest = hashlib.sha256("|".join(map(str, what)).encode()).hexdigest()[:12]
    return f"{at_ms:013d}.{digest}"


def zone_events(
    stays: Stays,
    zone_ids: list[str],
    store: str,
    after: str | None = None,
    until_ms: int | None = None,
) -> list[StoreEvent]:
    """Zone entered/left events of the stays (pass-bys left out: nobody entered),
    in cursor order, those after ``after`` only, none later than ``until_ms``."""
    events: list[StoreEvent] = []
    keep = stays.status != PASS_BY
    for i in np.flatnonzero(keep):
        device = stays.devices[int(stays.device[i])]
        zone = zone_ids[int(stays.zone[i])]
        entered = int(stays.entered_ms[i])
        who = anonymous_id(store, device)
        events.append(
            StoreEvent(
                _cursor(entered, ZONE_ENTERED, device, zone, entered),
                ZONE_ENTERED,
                entered,
                zone,
                who,
            )
        )
        if int(stays.status[i]) != OPEN:
            left = int(stays.end_ms[i])
            events.append(
                StoreEvent(
                    _cursor(left, ZONE_LEFT, device, zone, entered), ZONE_LEFT, left, zone, who
                )
            )
    events.sort(key=lambda e: e.cursor)
    if after is not None:
        events = [e for e in events if e.cursor > after]
    if until_ms is not None:
        events = [e for e in events if e.at_ms <= until_ms]
    return events


def cursor_time(cursor: str) -> int:
    """The time part of a cursor; ValueError saying what a cursor looks like."""
    head, sep, tail = cursor.partition(".")
    if not sep or len(head) != 13 or not head.isdigit() or len(tail) != 12:
        raise ValueError(f"cursor {cursor[:40]!r} is not <13 digits>.<12 hex> (an event's id)")
    return int(head)
