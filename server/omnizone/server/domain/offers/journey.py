"""A shopper's trip through the store, as the trigger events it produces.

The localizer reports a zone per window; campaigns want moments: the shopper
came in, entered a zone, has now stayed N seconds, left it. ``follow`` turns
one placement into those moments, given what was known before; it is pure,
so the service keeps the ``Journey`` of each device and nothing else.
"""

from collections.abc import Iterable
from dataclasses import dataclass, replace

from omnizone.server.domain.offers.events import EventKind


@dataclass(frozen=True, slots=True)
class Journey:
    store_entered_ms: int
    zone: str
    zone_entered_ms: int
    dwell_fired: frozenset[float] = frozenset()  # thresholds already reported in this zone

    @property
    def visit_id(self) -> str:
        """One store visit of one device (the per-visit caps count against it)."""
        return str(self.store_entered_ms)


@dataclass(frozen=True, slots=True)
class Moment:
    kind: EventKind
    at_ms: int
    zone: str | None
    dwell_s: float | None = None


def follow(
    journey: Journey | None,
    zone: str | None,
    at_ms: int,
    dwell_thresholds_s: Iterable[float] = (),
) -> tuple[Journey | None, list[Moment]]:
    """The journey after a placement in ``zone`` (None: outside the store),
    and the moments it produced, in the order they happened."""
    if zone is None:
        if journey is None:
            return None, []
        return None, [Moment("zone_left", at_ms, journey.zone)]
    if journey is None:
        started = Journey(store_entered_ms=at_ms, zone=zone, zone_entered_ms=at_ms)
        return started, [Moment("store_entered", at_ms, zone), Moment("zone_entered", at_ms, zone)]
    if zone != journey.zone:
        moved = Journey(journey.store_entered_ms, zone, at_ms)
        return moved, [
            Moment("zone_left", at_ms, journey.zone),
            Moment("zone_entered", at_ms, zone),
        ]
    stayed_s = (at_ms - journey.zone_entered_ms) / 1000
    reached = sorted(
        t for t in set(dwell_thresholds_s) if t <= stayed_s and t not in journey.dwell_fired
    )
    if not reached:
        return journey, []
    fired = journey.dwell_fired | frozenset(reached)
    return replace(journey, dwell_fired=fired), [Moment("dwell", at_ms, zone, stayed_s)]
