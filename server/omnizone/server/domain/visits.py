"""Per-device zone visits: a pure state machine over (zone, event time) steps.

A stay in a zone opens when the device is first placed there. Short absences
(another zone, or no placement) shorter than the store's ``exit_grace_s`` are
forgiven; once the device has been away for ``exit_grace_s`` the stay closes at
the last time it was seen in the zone, and, if it is now in another zone, a
stay there opens back-dated to when it first arrived. A closed stay shorter
than ``min_presence_s`` is a pass-by, anything longer a visit. Stays of one
device therefore never overlap. All times are event times (ms), never the wall
clock: a simulator may run faster than real time.
"""

from collections.abc import Container
from dataclasses import dataclass, replace

from omnizone.store import VisitSettings

__all__ = [
    "DeviceVisitState",
    "VisitClosed",
    "VisitEvent",
    "VisitOpened",
    "VisitSettings",
    "advance",
    "expire",
    "without_zones",
]


@dataclass(frozen=True, slots=True)
class DeviceVisitState:
    """The open stay of one device, and where it has been since it last was there."""

    zone: str
    entered_ms: int
    last_in_zone_ms: int
    last_heard_ms: int
    away_zone: str | None = None
    away_since_ms: int | None = None


@dataclass(frozen=True, slots=True)
class VisitOpened:
    zone: str
    entered_ms: int


@dataclass(frozen=True, slots=True)
class VisitClosed:
    zone: str
    entered_ms: int
    left_ms: int
    pass_by: bool

    @property
    def dwell_s(self) -> float:
        return (self.left_ms - self.entered_ms) / 1000


VisitEvent = VisitOpened | VisitClosed


def _close(state: DeviceVisitState, settings: VisitSettings) -> VisitClosed:
    dwell_ms = state.last_in_zone_ms - state.entered_ms
    return VisitClosed(
        zone=state.zone,
        entered_ms=state.entered_ms,
        left_ms=state.last_in_zone_ms,
        pass_by=dwell_ms < settings.min_presence_s * 1000,
    )


def _open(zone: str, entered_ms: int, at_ms: int) -> tuple[DeviceVisitState, VisitOpened]:
    state = DeviceVisitState(
        zone=zone, entered_ms=entered_ms, last_in_zone_ms=at_ms, last_heard_ms=at_ms
    )
    return state, VisitOpened(zone, entered_ms)


def advance(
    state: DeviceVisitState | None,
    zone: str | None,
    at_ms: int,
    settings: VisitSettings,
) -> tuple[DeviceVisitState | None, list[VisitEvent]]:
    """One placement of a device at event time ``at_ms`` (``zone=None``: heard
    but placed nowhere). Steps older than the last one are ignored: a late
    sighting must not move a stay backwards in time."""
    if state is None:
        if zone is None:
            return None, []
        new, opened = _open(zone, at_ms, at_ms)
        return new, [opened]
    if at_ms < state.last_heard_ms:
        return state, []
    grace_ms = settings.exit_grace_s * 1000
    away_long_enough = at_ms - state.last_in_zone_ms >= grace_ms
    if zone == state.zone and not away_long_enough:
        return (
            replace(
                state,
                last_in_zone_ms=at_ms,
                last_heard_ms=at_ms,
                away_zone=None,
                away_since_ms=None,
            ),
            [],
        )
    if away_long_enough:
        events: list[VisitEvent] = [_close(state, settings)]
        if zone is None:
            return None, events
        entered_ms = (
            state.away_since_ms
            if zone == state.away_zone and state.away_since_ms is not None
            else at_ms
        )
        new, opened = _open(zone, entered_ms, at_ms)
        return new, [*events, opened]
    # away, but still within the grace period
    if zone is not None and zone != state.away_zone:
        return replace(state, last_heard_ms=at_ms, away_zone=zone, away_since_ms=at_ms), []
    return replace(state, last_heard_ms=at_ms), []


def expire(
    state: DeviceVisitState | None, now_ms: int, settings: VisitSettings
) -> tuple[DeviceVisitState | None, list[VisitEvent]]:
    """Close the stay of a device unheard for ``device_timeout_s``: it left the store."""
    if state is None:
        return None, []
    if now_ms - state.last_heard_ms >= settings.device_timeout_s * 1000:
        return None, [_close(state, settings)]
    return state, []


def without_zones(
    state: DeviceVisitState | None, zones: Container[str], settings: VisitSettings
) -> tuple[DeviceVisitState | None, list[VisitEvent]]:
    """A new layout keeps only ``zones``: a stay in a zone it removed closes at
    the last time the device was seen there (the next placement opens a stay
    in a zone of the new layout); a move towards a removed zone is forgotten."""
    if state is None:
        return None, []
    if state.zone not in zones:
        return None, [_close(state, settings)]
    if state.away_zone is not None and state.away_zone not in zones:
        return replace(state, away_zone=None, away_since_ms=None), []
    return state, []
