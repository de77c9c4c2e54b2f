"""Radio parameters fitted from the gateways hearing one another: no survey.

Every gateway's own adapter advertises a fixed beacon; the other gateways
hear it like any beacon. The distance between two gateways is known from the
plan, so each receiving gateway j collects (d_ij, RSSI) pairs from every
gateway i it hears, and the model of ``calibration`` is fitted to them:

    rssi_ij = P + o_j - 10 · n_j · log10(d_ij)      (+ shadowing)

P + o_j is receiver j's power at 1 m, n_j its exponent. A receiver that hears
too few gateways, or at too narrow a range of distances, to tell its exponent
from its power gets the exponent shared by the others (their median) and its
power alone. A transmitter term t_i is left out: every gateway advertises at
the same configured power, and a phone is assumed to advertise like a gateway
(what the fitted power at 1 m then means is the store's phones, give or take
the difference between the two: docs/localization.md, "Self-calibration").

Drift: the same pairs in the last few minutes against the long run. All of a
gateway's pairs quieter by the same amount is something in front of it
(blocked); its pairs changing each by a different amount is a gateway whose
distances to the others no longer fit the plan (moved). One drifting gateway
at a time is told apart; two moved at once may flag a neighbour too.

Pure numpy, like the survey fit.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from .calibration import (
    EXPONENT_RANGE,
    MIN_LOG_DISTANCE_SPAN,
    MIN_SAMPLES,
    POOR_SPREAD_DB,
    AnchorFit,
    AnchorRadio,
    fit_anchor,
    robust_line,
)
from .propagation import MIN_DISTANCE_M

#: A receiver needs this many gateways heard to fit its own exponent.
MIN_SENDERS_FOR_EXPONENT = 3
#: Samples of a pair needed on both sides of the comparison for drift.
MIN_DRIFT_SAMPLES = 5
MIN_DRIFT_PAIRS = 3
#: A gateway's pairs all shifted by more than this: blocked (or unblocked).
BLOCKED_SHIFT_DB = 6.0
#: A partner whose pair changed this much beyond the common shift ...
MOVED_PAIR_DB = 6.0
#: ... and this many such partners: moved.
MIN_MOVED_PAIRS = 2


@dataclass(frozen=True, slots=True)
class Hearings:
    """Gateway-to-gateway readings: ``rssi[k]`` is ``receiver[k]`` hearing
    ``sender[k]`` (indices into the gateway list), at ``at_ms[k]``."""

    receiver: NDArray[np.intp]
    sender: NDArray[np.intp]
    rssi: NDArray[np.float64]
    at_ms: NDArray[np.int64]

    def where(self, keep: NDArray[np.bool_]) -> "Hearings":
        return Hearings(self.receiver[keep], self.sender[keep], self.rssi[keep], self.at_ms[keep])


@dataclass(frozen=True, slots=True)
class DriftAlert:
    gateway: str
    kind: str  # "blocked", "louder" or "moved"
    shift_db: float  # median change of its pairs, recent against the long run
    scatter_db: float  # how differently its pairs changed
    pairs: int
    message: str


def fit_self(
    gateways: Sequence[str], positions: NDArray[np.float64], hearings: Hearings
) -> list[AnchorFit]:
    """One fit per gateway, in ``gateways`` order (``positions`` (G, 2));
    those heard by nobody keep the defaults (``fitted`` False)."""
    first: list[AnchorFit] = []
    spans: list[tuple[int, float]] = []
    for j, gateway in enumerate(gateways):
        mine = hearings.receiver == j
        senders = hearings.sender[mine]
        first.append(
            fit_anchor(
                gateway,
                (float(positions[j, 0]), float(positions[j, 1])),
                positions[senders],
                hearings.rssi[mine],
            )
        )
        distinct = np.unique(senders)
        log_d = np.log10(
            np.maximum(np.linalg.norm(positions[distinct] - positions[j], axis=1), MIN_DISTANCE_M)
        )
        span = float(log_d.max() - log_d.min()) if distinct.size else 0.0
        spans.append((int(distinct.size), span))
    low, high = EXPONENT_RANGE
    own = [
        f.radio.exponent
        for f, (senders, span) in zip(first, spans, strict=True)
        if f.fitted
        and senders >= MIN_SENDERS_FOR_EXPONENT
        and span >= MIN_LOG_DISTANCE_SPAN
        and low <= f.radio.exponent <= high
    ]
    shared = float(np.median(own)) if own else AnchorRadio().exponent
    out = []
    for j, (fit, (senders, span)) in enumerate(zip(first, spans, strict=True)):
        if fit.fitted and (
            senders < MIN_SENDERS_FOR_EXPONENT
            or span < MIN_LOG_DISTANCE_SPAN
            or not low <= fit.radio.exponent <= high
        ):
            fit = _power_only(gateways[j], positions, j, hearings, shared)
        out.append(fit)
    return out


def _power_only(
    gateway: str, positions: NDArray[np.float64], j: int, hearings: Hearings, exponent: float
) -> AnchorFit:
    """The shared exponent, this receiver's power: what a receiver hearing too
    few gateways (or all at about one distance) can say."""
    mine = hearings.receiver == j
    values = hearings.rssi[mine]
    distance = np.linalg.norm(positions[hearings.sender[mine]] - positions[j], axis=1)
    log_d = np.log10(np.maximum(distance, MIN_DISTANCE_M))
    power = float(np.median(values + 10.0 * exponent * log_d))
    residual = values - (power - 10.0 * exponent * log_d)
    sigma = max(1.4826 * float(np.median(np.abs(residual - np.median(residual)))), 0.5)
    spread = float(np.sqrt(np.mean(np.minimum(residual**2, (3.0 * sigma) ** 2))))
    default = AnchorRadio()
    return AnchorFit(
        gateway,
        AnchorRadio(power_1m_dbm=power, exponent=exponent, spread_db=max(spread, 1.0)),
        int(values.size),
        float(np.mean(residual)),
        float(np.mean(values - (default.power_1m_dbm - 10.0 * default.exponent * log_d))),
        float(np.mean(np.abs(residual) > 3.0 * sigma)),
        fitted=True,
        flags=(
            f"hears too few gateways at too narrow a range of distances to fit its own "
            f"exponent: the others' ({exponent:.2f}) is used",
        ),
    )


def drift(gateways: Sequence[str], hearings: Hearings, recent_from_ms: int) -> list[DriftAlert]:
    """Alerts for gateways whose pairs heard since ``recent_from_ms`` differ
    from the same pairs heard before it. A pair's change is the median of its
    recent readings less the median of its earlier ones, both directions
    averaged. Blocked: a gateway's pairs all shifted alike. Moved: at least
    ``MIN_MOVED_PAIRS`` of its partners changed, each differently from that
    common shift by more than ``MOVED_PAIR_DB`` (a neighbour of a moved or
    blocked gateway has only one such partner: the gateway itself)."""
    recent = hearings.at_ms >= recent_from_ms
    directed: dict[tuple[int, int], float] = {}
    pairs = {(int(r), int(s)) for r, s in zip(hearings.receiver, hearings.sender, strict=True)}
    for r, s in sorted(pairs):
        pair = (hearings.receiver == r) & (hearings.sender == s)
        now, before = hearings.rssi[pair & recent], hearings.rssi[pair & ~recent]
        if now.size >= MIN_DRIFT_SAMPLES and before.size >= MIN_DRIFT_SAMPLES:
            directed[(r, s)] = float(np.median(now) - np.median(before))
    changes: dict[int, dict[int, list[float]]] = {j: {} for j in range(len(gateways))}
    for (r, s), delta in directed.items():
        changes[r].setdefault(s, []).append(delta)
        changes[s].setdefault(r, []).append(delta)
    alerts = []
    for j, partners in changes.items():
        if len(partners) < MIN_DRIFT_PAIRS:
            continue
        values = np.array([float(np.mean(v)) for v in partners.values()])
        shift = float(np.median(values))
        deviation = np.abs(values - shift)
        scatter = float(np.sqrt(np.mean(deviation**2)))
        changed = int(np.sum(deviation > MOVED_PAIR_DB))
        name = gateways[j]
        if changed >= MIN_MOVED_PAIRS:
            kind = "moved"
            message = (
                f"{name}: {changed} of its {values.size} pairs changed by different amounts "
                f"(up to {deviation.max():.1f} dB): its distances to the others no longer fit "
                "the position in the plan; check whether it was moved, and update its position"
            )
        elif shift <= -BLOCKED_SHIFT_DB:
            kind = "blocked"
            message = (
                f"{name}: {-shift:.1f} dB quieter to and from every other gateway: "
                "something now stands in front of it (a display, a shelf, a closed door)"
            )
        elif shift >= BLOCKED_SHIFT_DB:
            kind = "louder"
            message = (
                f"{name}: {shift:.1f} dB louder to and from every other gateway: "
                "an obstruction was removed or its antenna changed"
            )
        else:
            continue
        alerts.append(
            DriftAlert(name, kind, round(shift, 2), round(scatter, 2), int(values.size), message)
        )
    return alerts


def fit_beacons(
    beacons: Sequence[str],
    beacon_positions: NDArray[np.float64],
    gateway_positions: NDArray[np.float64],
    hearings: Hearings,
    gateway_fits: Sequence[AnchorFit],
) -> list[AnchorFit]:
    """One fit per fixed beacon, from the gateways hearing it: ``hearings``'
    ``receiver`` indexes the gateways, ``sender`` the beacons.

    Each receiving gateway's own fit says what it hears of a phone-like
    advertiser at that distance (``P_j - 10 n_j log10 d``); a beacon's readings
    against that curve give how much louder than a phone it is (a robust
    location of the residuals): its offset. Its power at 1 m is the
    gateways' typical power plus that offset (what a phone ranging it hears
    at 1 m, by reciprocity), its exponent the median of the hearing
    gateways' (the path near it), its spread that of the residuals. Readings
    by gateways the fit could not place are left out; a beacon heard fewer
    than ``MIN_SAMPLES`` times keeps the defaults."""
    fitted = [f.fitted for f in gateway_fits]
    powers = [f.radio.power_1m_dbm for f in gateway_fits if f.fitted]
    typical = float(np.median(powers)) if powers else AnchorRadio().power_1m_dbm
    power = np.array([f.radio.power_1m_dbm for f in gateway_fits], dtype=np.float64)
    slope = np.array([f.radio.exponent for f in gateway_fits], dtype=np.float64)
    out = []
    for k, beacon in enumerate(beacons):
        mine = (hearings.sender == k) & np.array(
            [fitted[j] for j in hearings.receiver], dtype=np.bool_
        ).reshape(-1)
        receivers = hearings.receiver[mine]
        values = hearings.rssi[mine]
        if values.size < MIN_SAMPLES:
            out.append(
                AnchorFit(
                    beacon,
                    AnchorRadio(),
                    int(values.size),
                    0.0,
                    0.0,
                    0.0,
                    fitted=False,
                    flags=(
                        f"heard {values.size} times by fitted gateways (at least {MIN_SAMPLES} "
                        "needed): the default radio parameters stand; check it is powered and "
                        "that a gateway is in range",
                    ),
                )
            )
            continue
        distance = np.linalg.norm(gateway_positions[receivers] - beacon_positions[k], axis=1)
        log_d = np.log10(np.maximum(distance, MIN_DISTANCE_M))
        residual = values - (power[receivers] - 10.0 * slope[receivers] * log_d)
        offset, _zero, sigma, _weights = robust_line(np.zeros_like(residual), residual)
        centred = residual - offset
        outliers = float(np.mean(np.abs(centred) > 3.0 * sigma))
        spread = float(np.sqrt(np.mean(np.minimum(centred**2, (3.0 * sigma) ** 2))))
        exponent = float(np.median(slope[np.unique(receivers)]))
        default = AnchorRadio()
        flags = []
        if sigma > POOR_SPREAD_DB:
            flags.append(
                f"the gateways' readings scatter {sigma:.1f} dB around its fit: something "
                "between it and them, or it moves"
            )
        out.append(
            AnchorFit(
                beacon,
                AnchorRadio(
                    power_1m_dbm=typical + offset, exponent=exponent, spread_db=max(spread, 1.0)
                ),
                int(values.size),
                float(np.mean(centred)),
                float(np.mean(values - (default.power_1m_dbm - 10.0 * default.exponent * log_d))),
                outliers,
                fitted=True,
                flags=tuple(flags),
            )
        )
    return out
