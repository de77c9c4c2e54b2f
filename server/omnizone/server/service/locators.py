"""Where a device is, from the sightings ingest sees: the seam between ingest
and a localization model.

A locator takes one sighting at a time (a device heard by one gateway over one
window) and returns the zone decisions that are ready. The nearest-gateway
baseline decides at once. The windowed locator waits until every gateway
has reported a window, then places every device of the store at once with the
HMM localizer; a window that closes with no sighting of a known device is
information too ("not heard").
"""

import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol, cast, runtime_checkable

import numpy as np

from omnizone.server.domain.nearest import Reading, assign_zone, prune
from omnizone.server.service.radio_setup import NO_SETUP, RadioSetup
from omnizone.store import StorePlan

if TYPE_CHECKING:
    from omnizone.server.domain.localize.hmm import Hysteresis
    from omnizone.server.domain.localize.likelihood import ResidualTempering

#: grid: the position filter over floor cells (the default); zone: the filter
#: over zones directly; nearest: the loudest-gateway baseline.
LocatorKind = Literal["grid", "zone", "nearest"]


@dataclass(frozen=True, slots=True)
class ZonePlacement:
    device: str
    zone: str | None  # None: outside the store or not placed
    at_ms: int  # end of the window the decision is about
    decided_ms: int  # the store's event time when it was decided (at_ms + any wait)
    published_ms: int | None = None  # when the gateway sent the message that completed it
    xy: tuple[float, float] | None = None  # the model's expected position then (metres), if any


@dataclass(frozen=True, slots=True)
class Sighting:
    device: str
    rssi_mean: float
    window_start_ms: int
    window_ms: int


class Locator(Protocol):
    def observe(self, gateway: str, sightings: Sequence[Sighting]) -> list[ZonePlacement]:
        """One gateway message's sightings; the placements that are ready now."""
        ...

    def flush(self) -> list[ZonePlacement]:
        """Decide every window still waiting (end of a replay or evaluation)."""
        ...


@runtime_checkable
class Positions(Protocol):
    """A locator that can say where on the floor its devices probably are."""

    def positions(self) -> dict[str, tuple[float, float]]:
        """device -> expected (x, y) in metres, for devices it has a position for."""
        ...


@runtime_checkable
class Forgets(Protocol):
    """A locator or model that can drop everything it holds about one device
    (a shopper's erasure): its pending readings and its filter state."""

    def forget(self, device: str) -> None: ...


@runtime_checkable
class Listens(Protocol):
    """A locator that also takes what listening phones heard of the store's
    fixed beacons (issue 15)."""

    late_listened: int

    def observe_listened(
        self, device: str, windows: Sequence["ListenedWindow"]
    ) -> list[ZonePlacement]: ...

    def leave(self, device: str) -> list[ZonePlacement]:
        """The phone left the store's beacon region: out now."""
        ...

    def heard_since(self, device: str, at_ms: int) -> bool: ...


class NearestGatewayLocator:
    """The baseline most presence tools use: the zone of the loudest gateway."""

    def __init__(self, plan: StorePlan, stale_ms: int = 3000) -> None:
        self._zones = dict(plan.gateway_zones)
        # a listening phone's nearest beacon stands for its zone (issue 15)
        beacon_zones = {b.id: plan.zone_at(b.position) for b in plan.beacons}
        self._zones.update({b: z for b, z in beacon_zones.items() if z is not None})
        self._stale_ms = stale_ms
        self._readings: dict[str, dict[str, Reading]] = {}
        self._observed = 0
        self.late_listened = 0

    def observe_listened(
        self, device: str, windows: Sequence["ListenedWindow"]
    ) -> list[ZonePlacement]:
        placements: list[ZonePlacement] = []
        for w in windows:
            sightings = [Sighting(device, dbm, w.start_ms, w.window_ms) for dbm in w.heard.values()]
            for beacon, sighting in zip(w.heard, sightings, strict=True):
                placements += self.observe(beacon, [sighting])
        return placements

    def heard_since(self, device: str, at_ms: int) -> bool:
        return any(r.window_end_ms > at_ms for r in self._readings.get(device, {}).values())

    def leave(self, device: str) -> list[ZonePlacement]:
        heard = self._readings.pop(device, {})
        at_ms = max((r.window_end_ms for r in heard.values()), default=0)
        return [ZonePlacement(device, None, at_ms, at_ms)]

    def observe(self, gateway: str, sightings: Sequence[Sighting]) -> list[ZonePlacement]:
        placements = []
        for s in sightings:
            at_ms = s.window_start_ms + s.window_ms
            stale_ms = max(self._stale_ms, s.window_ms)
            self._observed += 1
            if self._observed % 10_000 == 0:  # forget devices long gone
                self._readings = {
                    d: fresh
                    for d, heard in self._readings.items()
                    if (fresh := prune(heard, at_ms, stale_ms))
                }
            heard = prune(self._readings.get(s.device, {}), at_ms, stale_ms)
            heard[gateway] = Reading(s.rssi_mean, at_ms)
            self._readings[s.device] = heard
            zone = assign_zone(heard, self._zones, at_ms, stale_ms)
            placements.append(ZonePlacement(s.device, zone, at_ms, at_ms))
        return placements

    def flush(self) -> list[ZonePlacement]:
        return []

    def forget(self, device: str) -> None:
        self._readings.pop(device, None)


@dataclass
class _Window:
    readings: dict[str, dict[str, float]] = field(default_factory=dict)  # device -> gateway -> dBm
    reporters: set[str] = field(default_factory=set)
    listened: set[str] = field(default_factory=set)  # devices whose phone reported this window
    handed_over: bool = False  # the gateways' part is in (held windows of listening phones)


@dataclass(frozen=True, slots=True)
class ListenedWindow:
    """One window a phone reported of the store's fixed beacons (issue 15):
    beacon id -> mean RSSI; empty when it listened and heard none."""

    start_ms: int
    window_ms: int
    heard: Mapping[str, float]


#: A listening phone's windows are waited for this long (in windows) at most;
#: its batches arrive late by design (docs/mobile-sdk.md).
LISTEN_LATENESS_WINDOWS = 8
#: A listening phone that has sent nothing this long holds no window back.
LISTEN_STALL_WINDOWS = 5
#: A phone that stopped reporting this long is placed from the gateways again.
LISTEN_EXPIRY_MS = 60_000


class WindowedLocator:
    """Batches sightings per aligned window and places all devices together.

    Gateways publish each window as it closes, so their reports for one window
    reach the server within moments of each other. A window is decided as soon
    as every gateway that reported the previous window has reported it, or, at
    the latest, once a report `lateness_windows` windows newer has arrived.
    """

    def __init__(
        self,
        plan: StorePlan,
        localizer_factory: Callable[[StorePlan, int], "WindowLocalizer"],
        lateness_windows: int = 2,
        expected_window_ms: int | None = None,
    ) -> None:
        """``expected_window_ms``: build the localizer now for the gateways'
        usual window, so the first window of the day (a crowd at opening) is
        not also the one that waits for the radio map and motion model."""
        self._plan = plan
        self._factory = localizer_factory
        self._lateness = lateness_windows
        self._localizer: WindowLocalizer | None = None
        self._window_ms: int | None = None
        if expected_window_ms is not None:
            self._window_ms = expected_window_ms
            self._localizer = localizer_factory(plan, expected_window_ms)
        self._windows: dict[int, _Window] = {}
        self._newest = -1
        self._decided_until = -1
        self._expected: set[str] = set()  # gateways that reported the last decided window
        self.late_sightings = 0
        # Listening phones (issue 15): placed by a filter of their own, whose
        # windows wait for the phones' batches; the gateways' windows of them
        # are handed over to it when decided, so both directions are one window.
        self._listening: dict[str, int] = {}  # device -> end of the last window it reported
        self._held: dict[int, _Window] = {}
        self._held_until = -1
        self._patient: WindowLocalizer | None = None
        self._last_reading: dict[str, int] = {}  # listening device -> last window it was heard
        self.late_listened = 0

    def observe(self, gateway: str, sightings: Sequence[Sighting]) -> list[ZonePlacement]:
        ready: list[ZonePlacement] = []
        for s in sightings:
            if self._window_ms != s.window_ms:
                ready += self.flush() if self._window_ms is not None else []
                self._window_ms = s.window_ms
                self._localizer = self._factory(self._plan, s.window_ms)
            if s.window_start_ms < self._decided_until:
                self.late_sightings += 1
                continue
            window = self._windows.setdefault(s.window_start_ms, _Window())
            window.readings.setdefault(s.device, {})[gateway] = s.rssi_mean
            if s.device in self._listening:
                end = s.window_start_ms + s.window_ms
                self._last_reading[s.device] = max(self._last_reading.get(s.device, end), end)
            window.reporters.add(gateway)
            self._newest = max(self._newest, s.window_start_ms)
        if self._window_ms is None:
            return ready
        return ready + self._decide_ready()

    def observe_listened(
        self, device: str, windows: Sequence[ListenedWindow]
    ) -> list[ZonePlacement]:
        """A phone's report of the fixed beacons it heard (issue 15), in time
        order; the placements ready now. From its first report the device is
        placed by the listening filter, with what gateways heard of it in the
        same windows; windows already decided there are counted late."""
        ready: list[ZonePlacement] = []
        for w in windows:
            if self._window_ms != w.window_ms:
                ready += self.flush() if self._window_ms is not None else []
                self._window_ms = w.window_ms
                self._localizer = self._factory(self._plan, w.window_ms)
                self._patient = None
            if w.start_ms < self._held_until:
                self.late_listened += 1
                continue
            if device not in self._listening and isinstance(self._localizer, Forgets):
                self._localizer.forget(device)  # its track moves to the listening filter
            end = w.start_ms + w.window_ms
            self._listening[device] = max(self._listening.get(device, end), end)
            window = self._held.setdefault(w.start_ms, _Window())
            window.readings.setdefault(device, {}).update(w.heard)
            window.listened.add(device)
            self._newest = max(self._newest, w.start_ms)
            if w.heard:
                self._last_reading[device] = max(self._last_reading.get(device, end), end)
        return ready + self._decide_ready()

    @property
    def listening(self) -> frozenset[str]:
        return frozenset(self._listening)

    def heard_since(self, device: str, at_ms: int) -> bool:
        """Did a gateway or the phone itself hear the device after ``at_ms``?"""
        return self._last_reading.get(device, -1) > at_ms

    def _decide_ready(self) -> list[ZonePlacement]:
        ready: list[ZonePlacement] = []
        if self._window_ms is None:
            return ready
        horizon = self._newest - self._lateness * self._window_ms
        for start in sorted(self._windows):
            complete = bool(self._expected) and self._windows[start].reporters >= self._expected
            if start <= horizon or (complete and start == min(self._windows)):
                ready += self._decide(start)
            else:
                break
        if self._held:
            ready += self._decide_held(horizon)
        return ready

    def _decide_held(self, gateway_horizon: int) -> list[ZonePlacement]:
        """Listening phones' windows: once the gateways' part is in (or can no
        longer come) and every phone still reporting has covered it, or at
        the latest ``LISTEN_LATENESS_WINDOWS`` behind the newest window."""
        assert self._window_ms is not None
        ready: list[ZonePlacement] = []
        width = self._window_ms
        latest = self._newest - LISTEN_LATENESS_WINDOWS * width
        stalled = self._newest - LISTEN_STALL_WINDOWS * width
        for start in sorted(self._held):
            gateways_in = self._held[start].handed_over or start < self._decided_until
            gateways_in = gateways_in or start <= gateway_horizon
            covered = all(end >= start + width for end in self._listening.values() if end > stalled)
            if start <= latest or (gateways_in and covered):
                ready += self._decide_listening(start)
            else:
                break
        return ready

    def _decide_listening(self, start: int) -> list[ZonePlacement]:
        window = self._held.pop(start)
        assert self._window_ms is not None
        if self._patient is None:
            self._patient = self._factory(self._plan, self._window_ms)
        anchors = self._patient.anchors
        column = {anchor: i for i, anchor in enumerate(anchors)}
        beacons = np.array([a in self._plan_beacons for a in anchors], dtype=bool)
        devices = sorted(window.readings)
        rssi = np.full((len(devices), len(anchors)), np.nan)
        listened = np.zeros((len(devices), len(anchors)), dtype=bool)
        for row, device in enumerate(devices):
            for anchor, dbm in window.readings[device].items():
                if anchor in column:
                    rssi[row, column[anchor]] = dbm
            if device in window.listened:
                listened[row] = beacons
        present = np.array([a in window.reporters for a in anchors], dtype=bool)
        end = start + self._window_ms
        self._held_until = end
        decided = max(end, self._newest + self._window_ms)
        for device, last in list(self._listening.items()):
            if end - last > LISTEN_EXPIRY_MS:  # its phone went quiet: gateways place it again
                del self._listening[device]
                self._last_reading.pop(device, None)
                if isinstance(self._patient, Forgets):
                    self._patient.forget(device)
        decisions = self._patient.update(
            end, devices, rssi, present, listened=listened if listened.any() else None
        )
        return _placed(self._patient, decisions, end, decided)

    @functools.cached_property
    def _plan_beacons(self) -> frozenset[str]:
        return frozenset(b.id for b in self._plan.beacons)

    def flush(self) -> list[ZonePlacement]:
        ready: list[ZonePlacement] = []
        for start in sorted(self._windows):
            ready += self._decide(start)
        for start in sorted(self._held):
            ready += self._decide_listening(start)
        return ready

    def forget(self, device: str) -> None:
        """Its readings in the windows still waiting go, and the model's state
        of it, so no placement of the device comes out of this locator again."""
        for window in [*self._windows.values(), *self._held.values()]:
            window.readings.pop(device, None)
            window.listened.discard(device)
        self._listening.pop(device, None)
        self._last_reading.pop(device, None)
        for model in (self._localizer, self._patient):
            if isinstance(model, Forgets):
                model.forget(device)

    def leave(self, device: str) -> list[ZonePlacement]:
        """The phone reported leaving the store's beacon region: it is out now
        (zone None), and its filter starts afresh when it is heard again."""
        at_ms = max(0, self._newest + (self._window_ms or 0))
        self.forget(device)
        return [ZonePlacement(device, None, at_ms, at_ms)]

    def positions(self) -> dict[str, tuple[float, float]]:
        """The model's expected position of each device, as of the last decided window."""
        found: dict[str, tuple[float, float]] = {}
        for model in (self._localizer, self._patient):
            if model is None:
                continue
            names, xy = model.positions()
            known = ~np.isnan(xy).any(axis=1)
            for i, (x, y) in zip(np.flatnonzero(known).tolist(), xy[known].tolist(), strict=True):
                found[names[i]] = (x, y)
        return found

    def _decide(self, start: int) -> list[ZonePlacement]:
        window = self._windows.pop(start)
        self._expected = window.reporters
        if self._listening:  # listening phones: their gateways' part joins their own window
            held = self._held.get(start)
            if held is None and start >= self._held_until:
                held = self._held[start] = _Window()
            if held is not None:
                held.reporters |= window.reporters
                held.handed_over = True
                for device in [d for d in window.readings if d in self._listening]:
                    held.readings.setdefault(device, {}).update(window.readings.pop(device))
        assert self._localizer is not None and self._window_ms is not None
        anchors = self._localizer.anchors
        column = {anchor: i for i, anchor in enumerate(anchors)}
        devices = sorted(window.readings)
        rssi = np.full((len(devices), len(anchors)), np.nan)
        for row, device in enumerate(devices):
            for gateway, dbm in window.readings[device].items():
                if gateway in column:
                    rssi[row, column[gateway]] = dbm
        # A gateway that sent nothing for this window (offline, or lost its
        # message) says nothing about who it did not hear.
        present = np.array([anchor in window.reporters for anchor in anchors], dtype=bool)
        end = start + self._window_ms
        self._decided_until = end
        # Decided now: when the last expected report arrived (at the latest, a
        # report `lateness` windows newer), i.e. at the newest window seen.
        decided = max(end, self._newest + self._window_ms)
        decisions = self._localizer.update(end, devices, rssi, present)
        return _placed(self._localizer, decisions, end, decided)


def _placed(
    model: "WindowLocalizer", decisions: "list[WindowDecision]", end: int, decided: int
) -> list[ZonePlacement]:
    """The window's decisions as placements, each placed device with the
    model's expected position (the floor heatmap, issue 18 point 6)."""
    if not decisions:
        return []
    names, xy = model.positions()
    row = {name: i for i, name in enumerate(names)}
    out = []
    for d in decisions:
        at = row.get(d.device) if d.zone is not None else None
        point = None
        if at is not None and not np.isnan(xy[at]).any():
            point = (float(xy[at, 0]), float(xy[at, 1]))
        out.append(ZonePlacement(d.device, d.zone, end, decided, xy=point))
    return out


class WindowDecision(Protocol):
    @property
    def device(self) -> str: ...
    @property
    def zone(self) -> str | None: ...


class WindowLocalizer(Protocol):
    """What the windowed locator needs of a localization model."""

    @property
    def anchors(self) -> tuple[str, ...]: ...

    def update(
        self,
        window_end_ms: int,
        devices: list[str],
        rssi: np.ndarray,
        present: np.ndarray,
        listened: np.ndarray | None = None,
    ) -> "list[WindowDecision]":
        """``listened`` (devices × anchors): anchors that reported for that
        device only (a listening phone's beacons, issue 15)."""
        ...

    def positions(self) -> tuple[list[str], np.ndarray]:
        """Device names and their expected (x, y), NaN where unknown."""
        ...


def grid_localizer(
    plan: StorePlan,
    window_ms: int,
    enter_probability: float | None = None,
    radio: RadioSetup = NO_SETUP,
) -> WindowLocalizer:
    from omnizone.server.domain.localize.localizer import GRID_HYSTERESIS, StoreLocalizer

    hysteresis = _hysteresis(GRID_HYSTERESIS, enter_probability)
    return cast(
        WindowLocalizer,
        StoreLocalizer.on_grid(
            plan,
            window_ms=window_ms,
            hysteresis=hysteresis,
            survey=radio.survey,
            tempering=evidence_tempering(plan),
            beacons=bool(plan.beacons),  # the fixed beacons listening phones hear (issue 15)
            **radio.model_parameters(plan),
        ),
    )


def zone_localizer(
    plan: StorePlan,
    window_ms: int,
    enter_probability: float | None = None,
    radio: RadioSetup = NO_SETUP,
) -> WindowLocalizer:
    from omnizone.server.domain.localize.hmm import Hysteresis
    from omnizone.server.domain.localize.localizer import StoreLocalizer

    hysteresis = _hysteresis(Hysteresis(), enter_probability)
    return cast(
        WindowLocalizer,
        StoreLocalizer.for_store(
            plan,
            window_ms=window_ms,
            hysteresis=hysteresis,
            survey=radio.survey,
            tempering=evidence_tempering(plan),
            beacons=bool(plan.beacons),  # the fixed beacons listening phones hear (issue 15)
            **radio.model_parameters(plan),
        ),
    )


def evidence_tempering(plan: StorePlan) -> "ResidualTempering | None":
    """The store's ``localization.evidence_tempering`` as the filter's
    tempering (``likelihood.ResidualTempering``); None when off."""
    from omnizone.server.domain.localize.likelihood import ResidualTempering

    setting = plan.localization.evidence_tempering
    if setting == "off":
        return None
    return ResidualTempering(max_weight=1.0) if setting == "lower" else ResidualTempering()


def default_enter_probability(kind: LocatorKind) -> float | None:
    """The hysteresis bar a filter uses unless told otherwise (None: the baseline has none)."""
    from omnizone.server.domain.localize.hmm import Hysteresis
    from omnizone.server.domain.localize.localizer import GRID_HYSTERESIS

    bars = {"grid": GRID_HYSTERESIS.enter_probability, "zone": Hysteresis().enter_probability}
    return bars.get(kind)


def _hysteresis(default: "Hysteresis", enter_probability: float | None) -> "Hysteresis":
    if enter_probability is None:
        return default
    return dataclasses.replace(default, enter_probability=enter_probability)


#: The gateways' default BLE window (gateway settings ``window_ms``).
GATEWAY_WINDOW_MS = 1000


def make_locators(
    stores: Mapping[str, StorePlan],
    kind: LocatorKind = "grid",
    expected_window_ms: int | None = GATEWAY_WINDOW_MS,
    *,
    enter_probability: float | None = None,
    radio: Mapping[str, RadioSetup] | None = None,
) -> dict[str, Locator]:
    """``enter_probability`` overrides the filter's hysteresis bar (how sure it
    must be of a new zone before reporting it): the latency/flap trade-off
    that ``omnizone eval localize --enter-probability`` explores. ``radio``:
    what each store's filter learns from besides its plan (its survey; read
    by ``radio_setup.radio_setups``); a store missing from it has the
    plan's path-loss map alone. The baseline uses neither."""
    setups = radio or {}
    return {
        store: make_locator(
            plan,
            kind,
            expected_window_ms,
            enter_probability=enter_probability,
            radio=setups.get(store, NO_SETUP),
        )
        for store, plan in stores.items()
    }


def make_locator(
    plan: StorePlan,
    kind: LocatorKind = "grid",
    expected_window_ms: int | None = GATEWAY_WINDOW_MS,
    *,
    enter_probability: float | None = None,
    radio: RadioSetup = NO_SETUP,
) -> Locator:
    """One store's locator (``make_locators``); also a running store's new one
    when its layout or radio changes (``radio_reload``)."""
    if kind == "nearest":
        return NearestGatewayLocator(plan)
    build = grid_localizer if kind == "grid" else zone_localizer
    return WindowedLocator(
        plan,
        functools.partial(build, enter_probability=enter_probability, radio=radio),
        expected_window_ms=expected_window_ms,
    )
