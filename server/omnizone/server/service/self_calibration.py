"""Self-calibration: the gateways' sightings of one another, kept over a
rolling window and fitted into the store's calibration (``source: self``).

Ingest hands over every sighting whose device is a gateway beacon of the same
store (``StorePlan.gateway_beacons``); those are never shoppers. ``fit`` turns
the window into a ``StoreCalibration`` (``domain/localize/selfcal``),
``drift`` compares the last minutes with the rest, and ``refit`` is what the
server calls every minute: a fit that changed enough rebuilds the store's
localizer through ``IngestService.replace_store``. A survey calibration named
by the store file outranks this one unless the store opts in
(``localization.self_calibration: true``).
"""

import functools
import logging
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from omnizone.contract import BleSighting
from omnizone.server.domain.localize.calibration import (
    AnchorFit,
    store_calibration,
    with_anchors,
)
from omnizone.server.domain.localize.selfcal import (
    DriftAlert,
    Hearings,
    drift,
    fit_beacons,
    fit_self,
)
from omnizone.store import StorePlan
from omnizone.store.calibration import StoreCalibration

log = logging.getLogger(__name__)

WINDOW_MS = 30 * 60_000
RECENT_MS = 5 * 60_000
REFIT_MS = 60_000
#: Readings kept per (receiver, sender) pair: enough for a robust median.
MAX_PER_PAIR = 600
#: A new fit replaces the running localizer only if some gateway moved this much.
CHANGE_DB = 1.0
CHANGE_EXPONENT = 0.1


@dataclass(frozen=True, slots=True)
class GatewayFitView:
    """One gateway's row in the fleet view."""

    gateway: str
    fitted: bool
    power_1m_dbm: float
    offset_db: float
    exponent: float
    spread_db: float
    samples: int
    pairs_heard: int  # gateways it hears, and that hear it
    flags: tuple[str, ...]
    drift: str | None  # kind of its drift alert, if any


@dataclass(frozen=True, slots=True)
class BeaconFitView:
    """One fixed beacon's row: its radio as the gateways hearing it say."""

    beacon: str
    fitted: bool
    power_1m_dbm: float
    offset_db: float
    exponent: float
    spread_db: float
    samples: int
    gateways_hearing: int
    flags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SelfCalibrationView:
    """The fleet view's self-calibration: the last fit per gateway and per
    fixed beacon, the alerts."""

    store: str
    fitted_at: str | None
    power_1m_dbm: float | None
    gateways: list[GatewayFitView]
    alerts: list[DriftAlert]
    beacons: list[BeaconFitView] = field(default_factory=list)


@dataclass(slots=True)
class _Store:
    plan: StorePlan
    index: dict[str, int]
    positions: np.ndarray
    pairs: dict[tuple[int, int], deque[tuple[int, float]]] = field(default_factory=dict)
    beacon_index: dict[str, int] = field(default_factory=dict)  # fixed beacon id -> k
    beacon_positions: np.ndarray = field(default_factory=lambda: np.empty((0, 2)))
    # (receiving gateway j, fixed beacon k) -> readings
    beacon_pairs: dict[tuple[int, int], deque[tuple[int, float]]] = field(default_factory=dict)
    last_ms: int = 0
    fits: list[AnchorFit] = field(default_factory=list)
    beacon_fits: list[AnchorFit] = field(default_factory=list)
    calibration: StoreCalibration | None = None
    fitted_ms: int | None = None
    applied: StoreCalibration | None = None


class SelfCalibration:
    def __init__(
        self,
        stores: Mapping[str, StorePlan],
        *,
        window_ms: int = WINDOW_MS,
        recent_ms: int = RECENT_MS,
        refit_ms: int = REFIT_MS,
    ) -> None:
        self._window_ms, self._recent_ms, self._refit_ms = window_ms, recent_ms, refit_ms
        self._lock = threading.Lock()
        self._stores = {store: _state(plan) for store, plan in stores.items()}

    def replace_plan(self, plan: StorePlan) -> None:
        """A saved layout: gateways may have moved; what they heard before is dropped."""
        with self._lock:
            self._stores[plan.id] = _state(plan)

    def observe(self, store: str, receiver: str, sightings: Sequence[BleSighting]) -> int:
        """Keep the sightings by ``receiver`` of the store's gateway beacons and
        fixed beacons (known positions both); how many were. Others are not
        this service's (shoppers)."""
        with self._lock:
            state = self._stores.get(store)
            if state is None or receiver not in state.index:
                return 0
            beacons = state.plan.gateway_beacons
            fixed = state.plan.fixed_beacons
            j = state.index[receiver]
            kept = 0
            for item in sightings:
                beacon = fixed.get(item.device)
                if beacon is not None and beacon in state.beacon_index:
                    at_ms = item.window_start_ms + item.window_ms
                    readings = state.beacon_pairs.setdefault(
                        (j, state.beacon_index[beacon]), deque(maxlen=MAX_PER_PAIR)
                    )
                    readings.append((at_ms, float(item.rssi_mean)))
                    kept += 1
                    continue
                sender = beacons.get(item.device)
                if sender is None or sender == receiver or sender not in state.index:
                    continue
                at_ms = item.window_start_ms + item.window_ms
                queue = state.pairs.setdefault((j, state.index[sender]), deque(maxlen=MAX_PER_PAIR))
                queue.append((at_ms, float(item.rssi_mean)))
                state.last_ms = max(state.last_ms, at_ms)
                kept += 1
            return kept

    def fit(self, store: str, now_ms: int | None = None) -> StoreCalibration | None:
        """Fit the window ending at ``now_ms`` (default: the newest reading);
        None before any gateway has heard another."""
        with self._lock:
            state = self._stores[store]
            now = state.last_ms if now_ms is None else now_ms
            hearings = self._window(state, now)
            if hearings.rssi.size == 0:
                return None
            gateways = list(state.index)
            state.fits = fit_self(gateways, state.positions, hearings)
            fitted_at = datetime.fromtimestamp(now / 1000, UTC).isoformat()
            calibration = store_calibration(store, state.fits, source="self", fitted_at=fitted_at)
            state.beacon_fits = fit_beacons(
                list(state.beacon_index),
                state.beacon_positions,
                state.positions,
                self._window(state, now, state.beacon_pairs),
                state.fits,
            )
            state.calibration = with_anchors(calibration, state.beacon_fits)
            state.fitted_ms = now
            return state.calibration

    def drift(self, store: str, now_ms: int | None = None) -> list[DriftAlert]:
        with self._lock:
            state = self._stores[store]
            now = state.last_ms if now_ms is None else now_ms
            return drift(list(state.index), self._window(state, now), now - self._recent_ms)

    def newest_ms(self, store: str) -> int | None:
        """The time of the newest gateway-to-gateway reading (the fit's clock:
        event time, so a replay refits as it would have live)."""
        state = self._stores.get(store)
        return state.last_ms if state is not None and state.pairs else None

    def due(self, store: str, now_ms: int) -> bool:
        state = self._stores[store]
        return state.fitted_ms is None or now_ms - state.fitted_ms >= self._refit_ms

    def refit(
        self, store: str, now_ms: int, apply: Callable[[StoreCalibration], None]
    ) -> StoreCalibration | None:
        """If a minute has passed: fit, and ``apply`` the fit if it differs
        enough from the one applied last (rebuilding a localizer resets its
        filter, so not for a fraction of a dB). The fit applied, or None."""
        if not self.due(store, now_ms):
            return None
        fitted = self.fit(store, now_ms)
        state = self._stores[store]
        if fitted is None or not fitted.anchors or not _changed(state.applied, fitted, state.index):
            return None
        apply(fitted)
        state.applied = fitted
        return fitted

    def mark_applied(self, store: str, calibration: StoreCalibration) -> None:
        """``calibration`` is what the store's localizer runs on now (a fit
        applied at start); the next refit is compared with it."""
        self._stores[store].applied = calibration

    def view(self, store: str) -> SelfCalibrationView:
        """What the fleet view shows: the last fit per gateway and the alerts."""
        with self._lock:
            state = self._stores[store]
            hearings = self._window(state, state.last_ms)
        alerts = self.drift(store)
        kinds = {a.gateway: a.kind for a in alerts}
        fits = {f.anchor: f for f in state.fits}
        reference = state.calibration.power_1m_dbm if state.calibration else None
        beacon_rows = [
            BeaconFitView(
                beacon=f.anchor,
                fitted=f.fitted,
                power_1m_dbm=round(f.radio.power_1m_dbm, 2),
                offset_db=round(f.radio.power_1m_dbm - reference, 2)
                if reference is not None
                else 0.0,
                exponent=round(f.radio.exponent, 3),
                spread_db=round(f.radio.spread_db, 2),
                samples=f.samples,
                gateways_hearing=len(
                    {j for (j, k) in state.beacon_pairs if k == state.beacon_index[f.anchor]}
                ),
                flags=f.flags,
            )
            for f in state.beacon_fits
        ]
        rows = []
        for gateway, j in state.index.items():
            partners = set(hearings.sender[hearings.receiver == j].tolist()) | set(
                hearings.receiver[hearings.sender == j].tolist()
            )
            fit = fits.get(gateway)
            rows.append(
                GatewayFitView(
                    gateway=gateway,
                    fitted=bool(fit and fit.fitted),
                    power_1m_dbm=round(fit.radio.power_1m_dbm, 2) if fit else float("nan"),
                    offset_db=(
                        round(fit.radio.power_1m_dbm - reference, 2)
                        if fit and reference is not None
                        else 0.0
                    ),
                    exponent=round(fit.radio.exponent, 3) if fit else float("nan"),
                    spread_db=round(fit.radio.spread_db, 2) if fit else float("nan"),
                    samples=fit.samples if fit else 0,
                    pairs_heard=len(partners),
                    flags=fit.flags if fit else (),
                    drift=kinds.get(gateway),
                )
            )
        return SelfCalibrationView(
            store,
            state.calibration.fitted_at if state.calibration else None,
            reference,
            rows,
            alerts,
            beacon_rows,
        )

    def _window(
        self,
        state: _Store,
        now_ms: int,
        pairs: dict[tuple[int, int], deque[tuple[int, float]]] | None = None,
    ) -> Hearings:
        """The readings of the window ending at ``now_ms``: gateway pairs, or
        (gateway, fixed beacon) pairs when given ``state.beacon_pairs``."""
        start = now_ms - self._window_ms
        receiver, sender, rssi, at = [], [], [], []
        for (r, s), queue in (state.pairs if pairs is None else pairs).items():
            while queue and queue[0][0] < start:
                queue.popleft()
            for at_ms, value in queue:
                if at_ms <= now_ms:
                    receiver.append(r)
                    sender.append(s)
                    rssi.append(value)
                    at.append(at_ms)
        return Hearings(
            np.array(receiver, dtype=np.intp),
            np.array(sender, dtype=np.intp),
            np.array(rssi, dtype=np.float64),
            np.array(at, dtype=np.int64),
        )


def _state(plan: StorePlan) -> _Store:
    gateways = [g for g in plan.gateways if g.ble]
    return _Store(
        plan=plan,
        index={g.id: i for i, g in enumerate(gateways)},
        positions=np.array([g.position for g in gateways], dtype=np.float64).reshape(-1, 2),
        beacon_index={b.id: k for k, b in enumerate(plan.beacons)},
        beacon_positions=np.array([b.position for b in plan.beacons], dtype=np.float64).reshape(
            -1, 2
        ),
    )


def _changed(
    before: StoreCalibration | None, after: StoreCalibration, gateways: Mapping[str, int]
) -> bool:
    """Whether a gateway's fit moved enough to rebuild the localizer. A fixed
    beacon's alone does not: the gateway-heard localizer does not range
    beacons, and a rebuild resets its filter; the beacons' entries travel
    with the next rebuild a gateway's change makes."""
    if before is None:
        return True
    for anchor, entry in after.anchors.items():
        if anchor not in gateways:
            continue
        old = before.anchors.get(anchor)
        if old is None:
            return True
        power = entry.power_1m_dbm(after.power_1m_dbm) - old.power_1m_dbm(before.power_1m_dbm)
        if abs(power) >= CHANGE_DB or abs(entry.exponent - old.exponent) >= CHANGE_EXPONENT:
            return True
    return False


class SelfCalibrationJob:
    """What the server runs every minute: each store's refit, applied to its
    running localizer where the store file lets it (``localization.
    self_calibration``). ``run_once`` is the step; ``start`` runs it on a
    thread of its own (``replace_store`` takes ingest's lock, so the refit
    cannot run inside ingest's listener)."""

    def __init__(
        self,
        calibration: SelfCalibration,
        stores: Mapping[str, StorePlan],
        apply: Callable[[str, StoreCalibration], None],
        *,
        every_s: float = REFIT_MS / 1000,
    ) -> None:
        self.calibration = calibration
        self._applies = {
            store: plan.localization.self_calibration == "always"
            or (
                plan.localization.self_calibration == "auto"
                and plan.localization.calibration is None
            )
            for store, plan in stores.items()
        }
        self._apply = apply
        self._every_s = every_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.applied = 0

    @property
    def stores(self) -> list[str]:
        return list(self._applies)

    def knows(self, store: str) -> bool:
        return store in self._applies

    def applies_to(self, store: str) -> bool:
        return self._applies.get(store, False)

    def run_once(self) -> list[str]:
        """Refit every store that is due; the stores whose localizer was rebuilt."""
        rebuilt = []
        for store, applies in self._applies.items():
            now = self.calibration.newest_ms(store)
            if now is None:
                continue
            if not applies:
                if self.calibration.due(store, now):
                    self.calibration.fit(store, now)  # shown in the fleet view only
                continue
            if self.calibration.refit(store, now, functools.partial(self._apply, store)):
                self.applied += 1
                rebuilt.append(store)
        return rebuilt

    def start(self) -> None:
        def run() -> None:
            while not self._stop.wait(self._every_s):
                try:
                    self.run_once()
                except Exception:  # a bad fit must not end the job: log and go on
                    log.exception("self-calibration refit failed")

        self._thread = threading.Thread(target=run, name="omnizone-self-calibration", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
