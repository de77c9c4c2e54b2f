"""One store's localizer: the filter state of every device, advanced one window at a time.

The pure pieces (radio map, likelihood, forward step) do the work; this shell
keeps per-device state in preallocated numpy arrays (one row per device,
grown by doubling, compacted on removal; the posterior in blocks of devices,
see ``grid_forward``), so a window costs a few matrix operations over all
devices, not a Python loop per device. A window is three steps, each a pure
function over the rows in use (below the class): evidence (``heard_devices``,
``unheard_windows``, ``window_evidence``), the filter step (``grid_forward``
for the position filter, else ``forward_in_blocks`` and
``zone_probabilities``) and ``hysteresis_step``; ``_advance`` sequences them
and writes their results back into the state.

Conventions (docs/localization.md):

- ``update`` is called once per aggregation window with every device heard in
  it. A device known from earlier windows but absent from ``devices`` is
  advanced as if no anchor heard it (an all-NaN row): silence is evidence.
- A device never seen before starts from ``new_device_prior``: half the mass
  on OUTSIDE and the entrances (where shoppers come from), half spread over
  every zone (the server may start while shoppers are inside). It is reported
  outside (zone None) until a zone is confirmed by the hysteresis.
- After ``outside_after_windows`` windows in a row without a reading, a
  device is reported outside (zone None) one last time and forgotten, which
  keeps memory bounded by the devices present.
"""

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray
from scipy import sparse
from scipy.sparse.linalg import matrix_power as sparse_power

from omnizone.store import StorePlan

from .grid import MODES, ModeMotion, Motion, cell_points, floor_grid, mode_motion
from .hmm import Hysteresis, Transition, forward_step, transition_matrix
from .learned import LearnedLikelihood, fit_learned, score_learned
from .likelihood import (
    BLOCK_ROWS,
    LikelihoodModel,
    ResidualState,
    ResidualTempering,
    best_fit_residuals,
    expected_residual,
)
from .radio_map import (
    RadioMap,
    combine,
    expand_to_places,
    fingerprint_map,
    path_loss_map,
    place_map,
    point_fingerprint_map,
)
from .survey import Survey

DEFAULT_EVIDENCE_WEIGHT = 1.0
DEFAULT_SILENT_WINDOW_PROBABILITY = 0.05
#: The position filter's posterior is sharper than the zone filter's, so a
#: lower bar reacts faster without flapping (tuned, docs/localization.md).
GRID_HYSTERESIS = Hysteresis(enter_probability=0.65)
#: Below this probability of being in the store, a device has no position.
MIN_INSIDE_MASS = 0.05


class ZoneDecision(NamedTuple):
    """Immutable; a NamedTuple rather than a dataclass because thousands are
    built per window and tuple construction is several times cheaper."""

    device: str
    zone: str | None  # None = outside the store / unknown
    confidence: float  # posterior probability of ``zone`` (of OUTSIDE when None)
    changed: bool  # the reported zone differs from the previous window's
    previous: str | None = None  # the zone reported before this window (left, when changed)


class StoreLocalizer:
    def __init__(
        self,
        radio: RadioMap,
        transition: Transition,
        hysteresis: Hysteresis = Hysteresis(),
        *,
        outside_after_windows: int = 30,
        window_ms: int = 1000,
        new_device_prior: NDArray[np.float64] | None = None,
        evidence_weight: float = DEFAULT_EVIDENCE_WEIGHT,
        silent_window_probability: float = DEFAULT_SILENT_WINDOW_PROBABILITY,
        zones: Sequence[str] | None = None,
        zone_share: NDArray[np.float64] | None = None,
        state_rows: NDArray[np.intp] | None = None,
        state_points: NDArray[np.float64] | None = None,
        motion: ModeMotion | None = None,
        tempering: ResidualTempering | None = None,
        learned: LearnedLikelihood | None = None,
        learned_share: float = 0.0,
        state_zone: NDArray[np.intp] | None = None,
    ) -> None:
        """The filter's states are the radio map's rows plus OUTSIDE. By default
        those rows are the zones; for a position grid (``grid.py``) they are
        cells, ``zones`` names the store's zones and ``zone_share`` (cells ×
        zones) says how much of each cell lies in each zone: a zone's
        probability is the sum of its cells' shares.

        ``evidence_weight`` scales the log-likelihood: the anchors are not
        independent given the zone (where in the zone the shopper stands moves
        them all), so the naive-Bayes sum is overconfident; 0.5 halves it.
        ``silent_window_probability`` is the chance that a phone in the store
        sends nothing in a window (background throttling, a pocket): a window
        where no anchor hears a device then says little about which zone it is
        in, and only slowly pushes it outside.

        ``state_points`` (states × 2, metres) is where each state lies on the
        floor (a grid cell's centre); with it, ``positions`` gives each device's
        expected position.

        ``motion``, the parts of a grid ``transition`` (``grid.ModeMotion``),
        lets a one-window step skip the full sparse product (``grid_forward``);
        the states must then be its cells still, its cells walking, OUTSIDE.

        ``tempering`` learns a factor on ``evidence_weight`` from how far the
        readings fall from the map (``likelihood.ResidualTempering``); None
        keeps the weight fixed.

        ``learned`` (``learned.fit_learned`` of the survey) scores each window
        per zone; with ``learned_share`` w, a radio map row's score is
        ``(1 - w) · map + w · learned[its zone]`` (``state_zone``: each map
        row's zone in ``zones``; OUTSIDE and zones the survey lacks get the
        device's best learned score, so the learned part re-ranks the zones
        and says nothing about being outside)."""
        rows = np.arange(len(radio.zones)) if state_rows is None else np.asarray(state_rows)
        if rows.ndim != 1 or (rows.size and not 0 <= rows.min() <= rows.max() < len(radio.zones)):
            raise ValueError("state_rows must pick radio map rows, one per state")
        # each filter state's column in the likelihood (OUTSIDE last)
        self._likelihood_columns: NDArray[np.intp] | None = (
            None if state_rows is None else np.append(rows, len(radio.zones))
        )
        states = rows.size + 1
        if transition.shape != (states, states):
            raise ValueError(f"transition must be ({states}, {states}) for {states - 1} states")
        zone_names = tuple(radio.zones if zones is None else zones)
        self._membership = state_membership(states, len(zone_names), zone_share)
        self._points: NDArray[np.float64] | None = None
        if state_points is not None:
            points = np.asarray(state_points, dtype=np.float64)
            if points.shape != (states - 1, 2):
                raise ValueError(f"state_points must be ({states - 1}, 2) (states × x, y)")
            self._points = points
        if outside_after_windows < 1 or window_ms < 1 or evidence_weight <= 0:
            raise ValueError("outside_after_windows, window_ms, evidence_weight must be positive")
        if not 0.0 <= silent_window_probability < 1.0:
            raise ValueError("silent_window_probability must be within [0, 1)")
        self.silent_window_probability = silent_window_probability
        self.radio = radio
        self.transition: Transition = (
            sparse.csr_array(transition)
            if sparse.issparse(transition)
            else np.ascontiguousarray(transition, dtype=np.float64)
        )
        self.hysteresis = hysteresis
        self.outside_after_windows = outside_after_windows
        self.window_ms = window_ms
        self.evidence_weight = evidence_weight
        self._likelihood = LikelihoodModel(radio)
        self.tempering = tempering
        if not 0.0 <= learned_share <= 1.0:
            raise ValueError("learned_share must be within [0, 1]")
        self._learned = learned if learned_share > 0 else None
        self.learned_share = learned_share
        self._learned_anchors = np.empty(0, dtype=np.intp)
        self._learned_columns = np.empty(0, dtype=np.intp)
        if self._learned is not None:
            self._learned_anchors, self._learned_columns = _learned_layout(
                self._learned, radio, zone_names, state_zone
            )
        self._residuals: ResidualState | None = (
            None if tempering is None else ResidualState.start(expected_residual(radio), tempering)
        )
        self._outside_state = states - 1
        self._outside = len(zone_names)  # OUTSIDE among the reported zones
        self._zones = zone_names
        self._labels: list[str | None] = [*zone_names, None]
        if new_device_prior is None:
            new_device_prior = _default_prior(self.transition)
        prior = np.asarray(new_device_prior, dtype=np.float64)
        if prior.shape != (states,) or prior.sum() <= 0:
            raise ValueError(f"new_device_prior must be ({states},) with positive mass")
        self._new_prior = prior / prior.sum()
        self._powers: dict[int, Transition] = {1: self.transition}
        self._grid_step = (
            None
            if motion is None
            else GridStep.of(motion, self.transition, self._likelihood_columns, self._membership)
        )
        self._last_window_end_ms: int | None = None
        self._buffers: dict[str, NDArray[np.float64]] = {}  # see ``_scratch``
        # per-device state, rows [0, n) in use
        self._n = 0
        self._names: list[str] = []
        self._row: dict[str, int] = {}
        capacity = GRID_BLOCK_DEVICES
        # blocks × states × devices (device i: block i // self._block): the grid
        # step works on a block's whole state rows (``grid_forward``); with one
        # device per block, the rows are devices (``forward_in_blocks``)
        self._block = 1 if self._grid_step is None else GRID_BLOCK_DEVICES
        self._posterior = np.zeros((capacity // self._block, states, self._block))
        self._zone = np.full(capacity, self._outside, dtype=np.intp)
        self._zone_posterior = np.zeros((capacity, self._outside + 1))
        self._candidate = np.full(capacity, -1, dtype=np.intp)
        self._streak = np.zeros(capacity, dtype=np.int32)
        self._unheard = np.zeros(capacity, dtype=np.int32)

    @classmethod
    def for_store(
        cls,
        plan: StorePlan,
        *,
        window_ms: int = 1000,
        survey: Survey | None = None,
        hysteresis: Hysteresis = Hysteresis(),
        mean_dwell_s: float = 30.0,
        outside_entry_per_s: float = 0.05,
        survey_weight: float = 0.7,
        outside_after_windows: int | None = None,
        evidence_weight: float = DEFAULT_EVIDENCE_WEIGHT,
        silent_window_probability: float = DEFAULT_SILENT_WINDOW_PROBABILITY,
        tempering: ResidualTempering | None = None,
        **model_kwargs: Any,
    ) -> "StoreLocalizer":
        """The path-loss map of the plan (``model_kwargs`` go to ``path_loss_map``),
        blended with a survey when given, and the plan's zone graph.
        ``outside_after_windows`` defaults to the store's ``device_timeout_s``."""
        radio = path_loss_map(plan, window_ms=window_ms, **model_kwargs)
        if survey is not None:
            surveyed = fingerprint_map(survey, zones=[z for z in radio.zones if z in survey.zones])
            radio = combine(radio, surveyed, survey_weight)
        transition = transition_matrix(
            radio.zones,
            plan.adjacency,
            plan.entrances,
            window_s=window_ms / 1000,
            mean_dwell_s=mean_dwell_s,
            outside_entry_per_s=outside_entry_per_s,
        )
        return cls(
            radio,
            transition,
            hysteresis,
            outside_after_windows=_outside_after(plan, window_ms, outside_after_windows),
            window_ms=window_ms,
            evidence_weight=evidence_weight,
            silent_window_probability=silent_window_probability,
            tempering=tempering,
        )

    @classmethod
    def on_grid(
        cls,
        plan: StorePlan,
        *,
        window_ms: int = 1000,
        survey: Survey | None = None,
        hysteresis: Hysteresis = GRID_HYSTERESIS,
        cell_m: float = 1.0,
        motion: Motion = Motion(),
        survey_weight: float = 0.7,
        outside_after_windows: int | None = None,
        evidence_weight: float = DEFAULT_EVIDENCE_WEIGHT,
        silent_window_probability: float = DEFAULT_SILENT_WINDOW_PROBABILITY,
        tempering: ResidualTempering | None = None,
        point_survey_radius_m: float | None = None,
        learned_share: float = 0.0,
        **model_kwargs: Any,
    ) -> "StoreLocalizer":
        """The position filter: states are ``cell_m`` grid cells (``grid.py``),
        the radio map is the path-loss model at each cell (``model_kwargs`` go
        to ``place_map``), blended with a survey's zone rows when given."""
        grid = floor_grid(plan, cell_m)
        names = tuple(f"cell-{i}" for i in range(len(grid)))
        radio = place_map(plan, names, cell_points(grid), window_ms=window_ms, **model_kwargs)
        if survey is not None:
            surveyed = fingerprint_map(survey, zones=[z for z in grid.zones if z in survey.zones])
            cell_zones = [grid.zones[z] for z in grid.cell_zone]
            if survey.points is not None and point_survey_radius_m is not None:
                per_cell = point_fingerprint_map(
                    survey,
                    surveyed,
                    names,
                    grid.centers,
                    cell_zones,
                    radius_m=point_survey_radius_m,
                )
            else:
                per_cell = expand_to_places(surveyed, names, cell_zones)
            radio = combine(radio, per_cell, survey_weight)
        parts = mode_motion(grid, plan, window_s=window_ms / 1000, motion=motion)
        learned = fit_learned(survey) if survey is not None and learned_share > 0 else None
        return cls(
            radio,
            parts.tocsr(),
            hysteresis,
            outside_after_windows=_outside_after(plan, window_ms, outside_after_windows),
            window_ms=window_ms,
            evidence_weight=evidence_weight,
            silent_window_probability=silent_window_probability,
            zones=grid.zones,
            zone_share=np.tile(grid.zone_share, (MODES, 1)),
            state_rows=np.tile(np.arange(len(grid)), MODES),
            state_points=np.tile(grid.centers, (MODES, 1)),
            motion=parts,
            tempering=tempering,
            learned=learned,
            learned_share=learned_share if learned is not None else 0.0,
            state_zone=grid.cell_zone,
        )

    def blank(self) -> "StoreLocalizer":
        """The same model with no devices tracked yet (a fresh start)."""
        fresh = copy.copy(self)
        fresh._last_window_end_ms = None
        fresh._n = 0
        fresh._names = []
        fresh._row = {}
        fresh._powers = {1: self.transition}
        fresh._buffers = {}  # never shared: each localizer writes its own
        fresh._residuals = copy.copy(self._residuals)
        fresh._posterior = self._posterior[: GRID_BLOCK_DEVICES // self._block].copy()
        for name in ("_zone_posterior", "_zone", "_candidate", "_streak", "_unheard"):
            setattr(fresh, name, getattr(self, name)[:GRID_BLOCK_DEVICES].copy())
        return fresh

    # -- reading --------------------------------------------------------------

    @property
    def anchors(self) -> tuple[str, ...]:
        """The column order ``update`` expects."""
        return self.radio.anchors

    @property
    def zones(self) -> tuple[str, ...]:
        return self._zones

    def __len__(self) -> int:
        return self._n

    def __contains__(self, device: object) -> bool:
        return device in self._row

    def current(self) -> list[ZoneDecision]:
        """Every tracked device's reported zone, as of the last window (changed=False)."""
        n = self._n
        zone = self._zone[:n]
        confidence = self._zone_posterior[np.arange(n), zone].tolist()
        labels = self._labels
        return [
            ZoneDecision(d, labels[z], c, False, labels[z])
            for d, z, c in zip(self._names, zone.tolist(), confidence, strict=True)
        ]

    def positions(self) -> tuple[list[str], NDArray[np.float64]]:
        """Every tracked device's expected position (n × 2, metres): the
        posterior mean over the floor, given that the device is in the store.
        One matrix product for all devices, so a live map can ask every
        second. NaN rows: the model has no positions (the zone filter), or the
        device is almost surely outside."""
        n = self._n
        names = list(self._names)
        if self._points is None:
            return names, np.full((n, 2), np.nan)
        inside = device_rows(self._posterior, n)[:, :-1]
        mass = inside.sum(axis=1)
        mean: NDArray[np.float64] = (inside @ self._points) / np.maximum(mass, 1e-12)[:, None]
        mean[mass < MIN_INSIDE_MASS] = np.nan
        return names, mean

    def posterior(self, device: str) -> dict[str | None, float]:
        """The filter's belief for one device (zone -> probability, None = OUTSIDE)."""
        row = self._zone_posterior[self._row[device]]
        return {label: float(p) for label, p in zip(self._labels, row, strict=True)}

    # -- writing --------------------------------------------------------------

    def forget(self, device: str) -> None:
        row = self._row.pop(device, None)
        if row is not None:
            self._remove_rows(np.array([row]))

    def update(
        self,
        window_end_ms: int,
        devices: Sequence[str],
        rssi: NDArray[np.float64],
        present: NDArray[np.bool_] | None = None,
        listened: NDArray[np.bool_] | None = None,
    ) -> list[ZoneDecision]:
        """Advance every tracked device by one window; a decision for each.

        ``rssi`` is (len(devices), len(anchors)) in ``anchors`` order, NaN = not
        heard. ``present`` (A,) marks the anchors that reported this window
        (default: all); an anchor that did not report says nothing, where one
        that reported without the device says "not here". Call once per window
        with increasing ``window_end_ms``; a gap of k windows advances the
        model k steps. Devices dropped after ``outside_after_windows`` silent
        windows get their final (zone None) decision here.

        ``listened`` (len(devices), A): anchors that reported for that device
        only, beside ``present`` (a listening phone's report of the fixed
        beacons it heard and did not hear, issue 15).
        """
        return self._advance(
            window_end_ms, devices, rssi, present, only_changes=False, listened=listened
        )

    def update_changes(
        self,
        window_end_ms: int,
        devices: Sequence[str],
        rssi: NDArray[np.float64],
        present: NDArray[np.bool_] | None = None,
    ) -> list[ZoneDecision]:
        """As ``update``, but only the devices whose reported zone changed."""
        return self._advance(window_end_ms, devices, rssi, present, only_changes=True)

    def _advance(
        self,
        window_end_ms: int,
        devices: Sequence[str],
        rssi: NDArray[np.float64],
        present: NDArray[np.bool_] | None,
        *,
        only_changes: bool,
        listened: NDArray[np.bool_] | None = None,
    ) -> list[ZoneDecision]:
        """One window: evidence, filter step, hysteresis, then the decisions.

        The steps are the pure functions below; this method only feeds them the
        rows of the state arrays in use and writes their results back."""
        rssi = np.asarray(rssi, dtype=np.float64)
        if rssi.shape != (len(devices), len(self.radio.anchors)):
            raise ValueError(
                f"rssi must have shape ({len(devices)}, {len(self.radio.anchors)}) "
                f"(devices × anchors), got {rssi.shape}"
            )
        if len(set(devices)) != len(devices):
            raise ValueError("a device appears twice in one window")
        steps = self._steps_since_last(window_end_ms)
        rows, new_rows = self._rows_for(devices)
        n = self._n
        if new_rows.size:
            block, column = np.divmod(new_rows, self._block)
            self._posterior[block, :, column] = self._new_prior
        # 1. evidence: what this window says about where each device is
        reporting = present
        if listened is not None:  # per device: the anchors that reported, and its own
            shared = np.ones(rssi.shape[1], dtype=bool) if present is None else present
            reporting = np.asarray(listened, dtype=bool) | np.asarray(shared, dtype=bool)[None, :]
        heard = heard_devices(n, rows, rssi, reporting)
        unheard = unheard_windows(self._unheard[:n], heard, steps)
        self._unheard[:n] = unheard
        # per radio map row (a cell is one row for both of its modes)
        columns = len(self.radio.zones) + 1
        scores = self._likelihood(
            rssi, reporting, with_outside=True, out=self._scratch("scores", len(devices), columns)
        )
        weight = self._learn_weight(rssi, scores, present)
        if self._learned is not None and len(devices):
            scores = self._with_learned(scores, rssi, present)
        log_lik = window_evidence(
            self._likelihood.silence(present, with_outside=True),
            scores,
            rows,
            heard,
            columns=None,
            silent_window_probability=self.silent_window_probability,
            evidence_weight=weight,
            out=self._scratch("evidence", n, columns),
        )
        # 2. filter step: the posterior over states, in place, then over zones
        zone_posterior = self._zone_posterior[:n]
        if self._grid_step is not None and steps == 1:
            grid_forward(self._posterior, log_lik, self._grid_step, zones=zone_posterior)
        else:
            posterior = device_rows(self._posterior, n)
            if self._likelihood_columns is not None:
                log_lik = log_lik[:, self._likelihood_columns]
            forward_in_blocks(posterior, log_lik, self._power(steps), out=posterior)
            zone_probabilities(posterior, self._membership, out=zone_posterior)
            if not np.may_share_memory(posterior, self._posterior):  # a copy: write back
                set_device_rows(self._posterior, posterior)
        # 3. hysteresis: which zone to report
        zone = self._zone[:n]
        step = hysteresis_step(
            zone_posterior,
            zone,
            self._candidate[:n],
            self._streak[:n],
            unheard,
            self.hysteresis,
            outside_after_windows=self.outside_after_windows,
            outside=self._outside,
        )
        report = changed_decisions if only_changes else all_decisions
        decisions = report(self._names, self._labels, zone_posterior, zone, step)
        zone[:] = step.reported
        self._candidate[:n] = step.candidate
        self._streak[:n] = step.streak
        if step.gone.any():
            dropped = np.flatnonzero(step.gone)
            for i in dropped.tolist():
                del self._row[self._names[i]]
            self._remove_rows(dropped)
        return decisions

    def current_evidence_weight(self) -> float:
        """The weight the next window's evidence gets (fixed, or as learned so far)."""
        if self.tempering is None or self._residuals is None:
            return self.evidence_weight
        return self.evidence_weight * self._residuals.weight(self.tempering)

    def _learn_weight(
        self,
        rssi: NDArray[np.float64],
        scores: NDArray[np.float64],
        present: NDArray[np.bool_] | None,
    ) -> float:
        """Feed this window's residuals (a sample of devices) to the running
        figure, and return the evidence weight to use for it."""
        if self.tempering is None or self._residuals is None:
            return self.evidence_weight
        sample = min(rssi.shape[0], self.tempering.sample_devices)
        if sample:
            z2, count = best_fit_residuals(self.radio, rssi[:sample], scores[:sample], present)
            self._residuals.add(z2, count, self.tempering)
        return self.current_evidence_weight()

    def _with_learned(
        self,
        scores: NDArray[np.float64],
        rssi: NDArray[np.float64],
        present: NDArray[np.bool_] | None,
    ) -> NDArray[np.float64]:
        """The map's scores blended with the learned per-zone scores."""
        assert self._learned is not None
        anchors = self._learned_anchors
        reporting = None if present is None else np.asarray(present, dtype=bool)[anchors]
        learned = score_learned(self._learned, rssi[:, anchors], reporting, with_prior=False)
        best = learned.max(axis=1, keepdims=True)
        per_column = np.concatenate([learned, best], axis=1)[:, self._learned_columns]
        share = self.learned_share
        blended: NDArray[np.float64] = (1.0 - share) * scores + share * per_column
        return blended

    # -- bookkeeping ----------------------------------------------------------

    def _scratch(self, name: str, rows: int, columns: int) -> NDArray[np.float64]:
        """The first ``rows`` rows of a (rows × columns) work array kept from
        window to window (its content is not kept: each window overwrites
        it). Fresh arrays of this size would be new memory every window, which
        the kernel maps and zeroes page by page: about a sixth of a window's
        CPU time at 5000 devices (docs/localization.md, "Speed")."""
        buffer = self._buffers.get(name)
        if buffer is None or buffer.shape[0] < rows or buffer.shape[1] != columns:
            capacity = max(rows, 2 * buffer.shape[0] if buffer is not None else GRID_BLOCK_DEVICES)
            buffer = self._buffers[name] = np.empty((capacity, columns))
        return buffer[:rows]

    def _steps_since_last(self, window_end_ms: int) -> int:
        last = self._last_window_end_ms
        if last is not None and window_end_ms <= last:
            raise ValueError(
                f"window_end_ms {window_end_ms} is not after the previous window ({last}): "
                "call update once per window, in order"
            )
        self._last_window_end_ms = window_end_ms
        if last is None:
            return 1
        return max(
            1, min(round((window_end_ms - last) / self.window_ms), self.outside_after_windows)
        )

    def _power(self, steps: int) -> Transition:
        power = self._powers.get(steps)
        if power is None:
            if sparse.issparse(self.transition):
                power = sparse_power(self.transition, steps).tocsr()
            else:
                power = np.linalg.matrix_power(self.transition, steps)
            self._powers[steps] = power
        return power

    def _rows_for(self, devices: Sequence[str]) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
        lookup = self._row.get
        found = [lookup(d, -1) for d in devices]
        rows = np.array(found, dtype=np.intp)
        missing = np.flatnonzero(rows < 0)
        if missing.size:
            first = self._n
            self._grow(first + missing.size)
            new_names = [devices[i] for i in missing.tolist()]
            new_rows = np.arange(first, first + missing.size, dtype=np.intp)
            rows[missing] = new_rows
            self._names.extend(new_names)
            self._row.update(zip(new_names, new_rows.tolist(), strict=True))
            self._n = first + missing.size
            self._zone[new_rows] = self._outside
            self._candidate[new_rows] = -1
            self._streak[new_rows] = 0
            self._unheard[new_rows] = 0
            return rows, new_rows
        return rows, np.empty(0, dtype=np.intp)

    def _grow(self, needed: int) -> None:
        capacity = self._zone.shape[0]
        if needed <= capacity:
            return
        while capacity < needed:
            capacity *= 2
        self._posterior = _resized(self._posterior, capacity // self._block)
        self._zone_posterior = _resized(self._zone_posterior, capacity)
        self._zone = _resized(self._zone, capacity)
        self._candidate = _resized(self._candidate, capacity)
        self._streak = _resized(self._streak, capacity)
        self._unheard = _resized(self._unheard, capacity)

    def _remove_rows(self, rows: NDArray[np.intp]) -> None:
        """Drop rows (already removed from ``_row``) by moving the last rows into the gaps."""
        n = self._n
        keep = np.ones(n, dtype=bool)
        keep[rows] = False
        remaining = n - rows.size
        holes = rows[rows < remaining]
        movers = np.flatnonzero(keep[remaining:]) + remaining
        hole_block, hole_column = np.divmod(holes, self._block)
        mover_block, mover_column = np.divmod(movers, self._block)
        self._posterior[hole_block, :, hole_column] = self._posterior[mover_block, :, mover_column]
        arrays = (self._zone_posterior, self._zone, self._candidate)
        for array in (*arrays, self._streak, self._unheard):
            array[holes] = array[movers]
        names = self._names
        for hole, mover in zip(holes.tolist(), movers.tolist(), strict=True):
            names[hole] = names[mover]
            self._row[names[hole]] = hole
        del names[remaining:]
        self._n = remaining


# -- the steps of one window, as pure functions over the rows in use --------------


def heard_devices(
    n: int,
    rows: NDArray[np.intp],
    rssi: NDArray[np.float64],
    present: NDArray[np.bool_] | None,
) -> NDArray[np.bool_]:
    """(n,) True for the tracked devices some reporting anchor heard this window.

    A reading from an anchor that is not ``present`` does not count: only a
    device nobody heard is silent, and silence is what the unheard counter and
    the silent-window probability are about. ``rows`` are the rows of ``rssi``'s
    devices among the ``n`` tracked."""
    reading = ~np.isnan(rssi)
    if present is not None:
        mask = np.asarray(present, dtype=bool)
        reading &= mask if mask.ndim == 2 else mask[None, :]
    heard = np.zeros(n, dtype=bool)
    heard[rows[reading.any(axis=1)]] = True
    return heard


def unheard_windows(
    unheard: NDArray[np.int32], heard: NDArray[np.bool_], steps: int
) -> NDArray[np.int32]:
    """Windows in a row without a reading, after ``steps`` more windows.

    A gap of several windows counts as that many silent ones, so a device that
    stopped sending is dropped after the same time however the windows arrive."""
    counted: NDArray[np.int32] = np.where(heard, 0, unheard + steps)
    return counted


def window_evidence(
    silence: NDArray[np.float64],
    readings: NDArray[np.float64],
    rows: NDArray[np.intp],
    heard: NDArray[np.bool_],
    *,
    columns: NDArray[np.intp] | None,
    silent_window_probability: float,
    evidence_weight: float,
    out: NDArray[np.float64] | None = None,
) -> NDArray[np.float64]:
    """(n, states) log-likelihood of this window for every tracked device.

    A device without readings scores ``silence`` (the likelihood row of "no
    anchor heard it"): being absent from a window is evidence too. ``readings``
    are the scores of the devices heard, at ``rows``; ``columns`` picks each
    filter state's likelihood column (a grid cell's radio map row), None when
    the states are the radio map's rows. A phone in the store sends nothing in
    some windows, so an in-store state explains silence with at least
    ``silent_window_probability`` (and a reading with the rest); OUTSIDE, the
    last column, is left as is. Last, ``evidence_weight`` tempers the naive
    Bayes sum over anchors, which are not independent.

    The one (n, states) array is ``out`` when given (a buffer the caller
    keeps from window to window; not ``readings`` itself), else allocated
    here, and worked in place."""
    shape = (heard.size, silence.size)
    if out is not None and (out.shape != shape or np.may_share_memory(out, readings)):
        raise ValueError(f"out must be a {shape} array apart from the readings")
    log_lik = np.empty(shape) if out is None else out
    if rows.size < heard.size:
        log_lik[:] = silence
    log_lik[rows] = readings
    if columns is not None:
        log_lik = log_lik[:, columns]
    silent = silent_window_probability
    if silent > 0:
        in_store = log_lik[:, :-1]
        in_store += math.log1p(-silent) * heard[:, None]  # + 0.0 where unheard: unchanged
        quiet = ~heard
        in_store[quiet] = np.logaddexp(math.log(silent), math.log1p(-silent) + in_store[quiet])
    if evidence_weight != 1.0:
        log_lik *= evidence_weight
    return log_lik


def forward_in_blocks(
    prior: NDArray[np.float64],
    log_lik: NDArray[np.float64],
    transition: Transition,
    *,
    out: NDArray[np.float64],
) -> NDArray[np.float64]:
    """``forward_step`` over blocks of ``BLOCK_ROWS`` devices, into ``out``.

    Blocks keep the step's temporaries cache-sized, so the cost per device
    does not grow with the number of devices. ``out`` may be ``prior`` itself:
    each block is read before it is written, so the filter advances in place
    with no second (n, states) array."""
    n = prior.shape[0]
    for start in range(0, n, BLOCK_ROWS):
        stop = min(start + BLOCK_ROWS, n)
        out[start:stop] = forward_step(prior[start:stop], log_lik[start:stop], transition)
    return out


#: Devices per block in ``grid_forward``: a block's (cells × devices)
#: temporaries stay in a typical L2 cache (measured, docs/localization.md).
GRID_BLOCK_DEVICES = 128
#: A state's probability below this is set to 0, and a likelihood below this
#: share of the device's best column is dropped: such numbers are far below what
#: any decision can tell apart, and their products would turn into subnormal
#: floats, which the CPU handles many times slower (measured,
#: docs/localization.md). Products of the two stay above 1e-300.
NEGLIGIBLE_PROBABILITY = 1e-120
NEGLIGIBLE_LIKELIHOOD = 1e-150
#: Below this total, the evidence ruled out nearly every predicted state: the
#: dropped likelihoods could matter, so the row takes ``forward_step``. Above
#: it, they move the posterior by at most 1e-150 / 1e-50 = 1e-100.
_SMALLEST_MASS = 1e-50


@dataclass(frozen=True)
class GridStep:
    """What ``grid_forward`` needs, worked out once per localizer."""

    motion: ModeMotion
    transition: sparse.csr_array  # motion.tocsr(): for the rows ``forward_step`` takes
    columns: NDArray[np.intp]  # (states,) each state's likelihood column
    cell_columns: NDArray[np.intp] | None  # (C,) a cell's column; None: the first C
    still_moves: bool  # False: a still shopper never leaves the cell (still kernel = I)
    still_to: sparse.csr_array  # (C, C) the still kernel transposed: to-cell rows
    walk_to: sparse.csr_array  # (C, C) the walk kernel transposed
    doors: NDArray[np.intp]  # the cells that lead outside and back in
    membership: NDArray[np.float64]  # (states, zones + 1), see ``state_membership``
    # (zones + 1, C): a cell's share, either mode; sparse, as a cell lies in one
    # zone or a few, so the product costs about C multiply-adds per device
    cell_membership: sparse.csr_array

    @classmethod
    def of(
        cls,
        motion: ModeMotion,
        transition: Transition,
        columns: NDArray[np.intp] | None,
        membership: NDArray[np.float64] | None,
    ) -> "GridStep":
        cells = motion.cells
        if transition.shape != motion.shape or columns is None or membership is None:
            raise ValueError("motion needs the grid's states: cells still, cells walking, OUTSIDE")
        cell_columns = columns[:cells]
        if not (
            np.array_equal(columns[cells : 2 * cells], cell_columns)
            and columns[-1] == columns.max() > cell_columns.max()
            and np.array_equal(membership[:cells], membership[cells : 2 * cells])
        ):
            raise ValueError("both modes of a cell must share its radio map row and zone shares")
        still = motion.still
        identity = still.nnz == cells and np.array_equal(still.diagonal(), np.ones(cells))
        return cls(
            motion=motion,
            transition=sparse.csr_array(transition),
            columns=columns,
            cell_columns=None if np.array_equal(cell_columns, np.arange(cells)) else cell_columns,
            still_moves=not identity,
            still_to=sparse.csr_array(still.T),
            walk_to=sparse.csr_array(motion.walk.T),
            doors=np.flatnonzero((motion.exits > 0) | (motion.walk_in > 0)),
            membership=membership,
            cell_membership=sparse.csr_array(membership[:cells].T),
        )


def device_rows(posterior: NDArray[np.float64], n: int) -> NDArray[np.float64]:
    """(n, states) copy of the first ``n`` devices of a blocked posterior
    (blocks × states × devices, as ``StoreLocalizer`` keeps it)."""
    rows: NDArray[np.float64] = posterior.transpose(0, 2, 1).reshape(-1, posterior.shape[1])[:n]
    return rows


def set_device_rows(posterior: NDArray[np.float64], rows: NDArray[np.float64]) -> None:
    """Write (n, states) rows back as the first ``n`` devices of a blocked posterior."""
    size = posterior.shape[2]
    full, rest = divmod(rows.shape[0], size)
    by_device = posterior.transpose(0, 2, 1)  # a view: blocks × devices × states
    by_device[:full] = rows[: full * size].reshape(full, size, rows.shape[1])
    if rest:
        by_device[full, :rest] = rows[full * size :]


def grid_forward(
    posterior: NDArray[np.float64],
    log_lik: NDArray[np.float64],
    step: GridStep,
    *,
    zones: NDArray[np.float64],
) -> None:
    """One window of the position filter, in place: ``forward_step`` through
    ``step.motion`` for every device, then each zone's probability into ``zones``.

    ``posterior`` is blocks × states × devices (``GRID_BLOCK_DEVICES`` devices
    per block, device i in block i // GRID_BLOCK_DEVICES: a state's row over
    a block's devices is contiguous, which is what the sparse kernel product
    wants), ``log_lik`` devices × radio map columns (OUTSIDE last) and
    ``zones`` devices × (zones + 1), one row per device in use.
    Same result as ``forward_step`` with ``step.transition`` followed by
    ``zone_probabilities`` up to float rounding, at a fraction of the cost:

    - the prediction applies the motion from its parts (``ModeMotion``): one
      walk-kernel product per device instead of the full matrix's four blocks;
    - the weighing is in linear space: ``predicted · exp(log_lik - max)``,
      normalized, computed once per cell for both modes. The shift by the row's
      maximum cancels in the normalization. A row it cannot serve exactly
      (non-finite evidence, a prior without mass, evidence that rules out
      nearly every predicted state) goes through ``forward_step`` instead.
    """
    motion = step.motion
    cells = motion.cells
    walking = slice(cells, 2 * cells)
    doors = step.doors
    n = log_lik.shape[0]
    size = posterior.shape[2]
    # reused for every block; a block's views into them are contiguous
    work = [np.empty(cells * size) for _ in range(3)]
    weights = np.empty(log_lik.shape[1] * size)
    for start in range(0, n, size):
        stop = min(start + size, n)
        width = stop - start
        to_still, to_walk, scratch = (w[: cells * width].reshape(cells, width) for w in work)
        belief = posterior[start // size, :, :width]
        still, walk, outside = belief[:cells], belief[walking], belief[-1]
        # likelihood relative to the device's best column: radio map columns × devices
        block_lik = log_lik[start:stop]
        top = block_lik.max(axis=1)
        weight = weights[: block_lik.size].reshape(block_lik.shape[1], width)
        with np.errstate(invalid="ignore"):  # inf - inf: such a row is redone below
            np.subtract(block_lik.T, top, out=weight)
        np.exp(weight, out=weight)
        weight *= weight >= NEGLIGIBLE_LIKELIHOOD  # faster than a masked assignment
        cell_weight = weight[:-1] if step.cell_columns is None else weight[step.cell_columns]
        # predict: still -> (still, walking), walking -> (still, walking), in and out the doors
        np.add(still, walk, out=scratch)
        from_doors = scratch[doors]
        np.multiply(walk, 1.0 - motion.stop, out=to_walk)
        np.multiply(still, motion.start, out=to_still)
        to_walk += to_still
        # what does not start or keep walking stands still (to within rounding)
        np.subtract(scratch, to_walk, out=to_still)
        # stay is 1 off the doors
        to_still[doors] *= motion.stay[doors, None]
        to_walk[doors] *= motion.stay[doors, None]
        if step.still_moves:
            to_still = step.still_to @ to_still
        to_walk = step.walk_to @ to_walk
        to_walk[doors] += motion.walk_in[doors, None] * outside
        to_outside = motion.exits[doors] @ from_doors + (1.0 - motion.enter) * outside
        to_outside *= weight[-1]
        # weigh by the evidence, normalize; both modes of a cell share its weight
        np.add(to_still, to_walk, out=scratch)
        scratch *= cell_weight
        mass = scratch.sum(axis=0) + to_outside
        exact = np.isfinite(top) & (top <= 1e300) & np.isfinite(mass) & (mass > _SMALLEST_MASS)
        redo = np.flatnonzero(~exact)
        prior = belief[:, redo].T.copy() if redo.size else None
        scale = 1.0 / np.where(exact, mass, 1.0)
        zone_block = step.cell_membership @ scratch
        zone_block[-1] += to_outside
        zone_block *= scale
        block_zones = zones[start:stop]
        block_zones[:] = zone_block.T
        np.multiply(cell_weight, scale, out=scratch)
        for part, weighed in ((still, to_still), (walk, to_walk)):
            np.multiply(weighed, scratch, out=part)
            part *= part >= NEGLIGIBLE_PROBABILITY
        np.multiply(to_outside, scale, out=outside)
        if prior is not None:
            redone = forward_step(prior, block_lik[redo][:, step.columns], step.transition)
            belief[:, redo] = redone.T
            block_zones[redo] = redone @ step.membership


def zone_probabilities(
    posterior: NDArray[np.float64],
    membership: NDArray[np.float64] | None,
    *,
    out: NDArray[np.float64],
) -> NDArray[np.float64]:
    """(n, zones + 1) probability of each zone (OUTSIDE last), into ``out``.

    Hysteresis and decisions speak of zones, while the filter's states may be
    grid cells: a zone's probability is the sum of its cells' shares
    (``membership``, see ``state_membership``). None: the states are the zones."""
    if membership is None:
        out[:] = posterior
    else:
        np.matmul(posterior, membership, out=out)
    return out


class HysteresisStep(NamedTuple):
    """The hysteresis state after one window, one entry per device."""

    reported: NDArray[np.intp]  # the zone to report (index; OUTSIDE = the zone count)
    candidate: NDArray[np.intp]  # the zone waiting to be confirmed, -1 for none
    streak: NDArray[np.int32]  # windows in a row ``candidate`` has led
    changed: NDArray[np.bool_]  # ``reported`` differs from the zone reported before
    gone: NDArray[np.bool_]  # silent too long: reported outside, to be forgotten


def hysteresis_step(
    zone_posterior: NDArray[np.float64],
    zone: NDArray[np.intp],
    candidate: NDArray[np.intp],
    streak: NDArray[np.int32],
    unheard: NDArray[np.int32],
    hysteresis: Hysteresis,
    *,
    outside_after_windows: int,
    outside: int,
) -> HysteresisStep:
    """Which zone to report, given the zone posterior and the previous state.

    The most likely zone flickers from window to window at a boundary, and
    every reported change is a visit event downstream, so a new zone is only
    reported once it has led with at least ``enter_probability`` for
    ``confirm_windows`` windows in a row (at once above ``sure_probability``).
    A change of lead restarts the count, and a confirmed switch clears it. A
    device unheard for ``outside_after_windows`` windows is reported outside
    whatever its posterior says (``gone``). The inputs are not modified."""
    best = zone_posterior.argmax(axis=1)
    leading = zone_posterior[np.arange(best.size), best]
    wants = (best != zone) & (leading >= hysteresis.enter_probability)
    streak = np.where(wants, np.where(best == candidate, streak + 1, 1), 0)
    candidate = np.where(wants, best, -1)
    switch = wants & (
        (streak >= hysteresis.confirm_windows) | (leading >= hysteresis.sure_probability)
    )
    gone = unheard >= outside_after_windows
    reported = np.where(gone, outside, np.where(switch, best, zone))
    changed = reported != zone
    streak[changed] = 0
    candidate[changed] = -1
    return HysteresisStep(reported, candidate, streak, changed, gone)


# -- the decisions ----------------------------------------------------------------


def all_decisions(
    names: Sequence[str],
    labels: Sequence[str | None],
    zone_posterior: NDArray[np.float64],
    before: NDArray[np.intp],
    step: HysteresisStep,
) -> list[ZoneDecision]:
    """A decision for every device (``update``): its reported zone, the
    posterior of that zone, and the zone reported before this window."""
    reported = step.reported
    confidence = zone_posterior[np.arange(reported.size), reported].tolist()
    return [
        ZoneDecision(d, labels[z], c, ch, labels[b])
        for d, z, c, ch, b in zip(
            names,
            reported.tolist(),
            confidence,
            step.changed.tolist(),
            before.tolist(),
            strict=True,
        )
    ]


def changed_decisions(
    names: Sequence[str],
    labels: Sequence[str | None],
    zone_posterior: NDArray[np.float64],
    before: NDArray[np.intp],
    step: HysteresisStep,
) -> list[ZoneDecision]:
    """The decisions of the devices whose reported zone changed
    (``update_changes``); the others are never built, which is most of them."""
    which = np.flatnonzero(step.changed)
    reported = step.reported[which]
    confidence = zone_posterior[which, reported].tolist()
    return [
        ZoneDecision(names[i], labels[z], c, True, labels[b])
        for i, z, c, b in zip(
            which.tolist(), reported.tolist(), confidence, before[which].tolist(), strict=True
        )
    ]


def _outside_after(plan: StorePlan, window_ms: int, windows: int | None) -> int:
    """Default: the store's ``device_timeout_s`` in windows."""
    if windows is not None:
        return windows
    return max(1, math.ceil(plan.store.visits.device_timeout_s * 1000 / window_ms))


def state_membership(
    states: int, zones: int, zone_share: NDArray[np.float64] | None
) -> NDArray[np.float64] | None:
    """(states, zones + 1): how each state's probability adds to each zone's
    (OUTSIDE last); None when the states are the zones themselves."""
    if zone_share is None:
        if zones != states - 1:
            raise ValueError("without zone_share, the states must be the zones")
        return None
    share = np.asarray(zone_share, dtype=np.float64)
    if share.shape != (states - 1, zones):
        raise ValueError(f"zone_share must be ({states - 1}, {zones}) (states × zones)")
    membership = np.zeros((states, zones + 1))
    membership[:-1, :-1] = share
    membership[:-1, -1] = np.clip(1.0 - share.sum(axis=1), 0.0, 1.0)  # cells off every zone
    membership[-1, -1] = 1.0
    return membership


def _learned_layout(
    learned: LearnedLikelihood,
    radio: RadioMap,
    zones: Sequence[str],
    state_zone: NDArray[np.intp] | None,
) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """(the learned model's anchors among the map's, each map column's learned
    zone with OUTSIDE last) for ``StoreLocalizer._with_learned``. A column
    whose zone the model lacks, and OUTSIDE, point one past the model's
    zones (the device's best learned score)."""
    index = radio.anchor_index()
    missing = [a for a in learned.anchors if a not in index]
    if missing:
        raise ValueError(f"the learned model's anchors {missing} are not in the radio map")
    anchors = np.array([index[a] for a in learned.anchors], dtype=np.intp)
    row_zone = (
        np.arange(len(radio.zones)) if state_zone is None else np.asarray(state_zone, dtype=np.intp)
    )
    if row_zone.shape != (len(radio.zones),):
        raise ValueError("state_zone must give one zone per radio map row")
    position = {zone: i for i, zone in enumerate(learned.zones)}
    unknown = len(learned.zones)
    columns = [position.get(zones[z], unknown) for z in row_zone.tolist()]
    return anchors, np.array([*columns, unknown], dtype=np.intp)


def _resized(array: NDArray[Any], capacity: int) -> NDArray[Any]:
    grown = np.zeros((capacity, *array.shape[1:]), dtype=array.dtype)
    grown[: array.shape[0]] = array
    return grown


def _default_prior(transition: Transition) -> NDArray[np.float64]:
    """Half on OUTSIDE and the entrances, half uniform over the zones."""
    states = transition.shape[0]
    last = sparse.csr_array(transition[[-1], :]).toarray()
    doors = last.ravel()[:-1] > 0
    prior = np.zeros(states)
    prior[:-1] = 0.5 / (states - 1)
    door_share = 0.5 / (1 + doors.sum())
    prior[-1] += door_share
    prior[:-1][doors] += door_share
    return prior
