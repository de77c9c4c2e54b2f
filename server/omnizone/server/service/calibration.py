"""``omnizone calibrate``: fit each anchor's radio parameters from a survey
walk and say, in words, how far to trust them (docs/localization.md).

A point survey (``zone,x,y,<anchor>…``) places every reading; an old-style
survey (``zone,<anchor>…``) only says the zone, so its readings are placed at
the zone's centre, which the report says.

Both kinds of anchor are fitted: gateways (a gateway hearing the surveying
phone) and the store file's fixed beacons (the phone hearing a beacon; a
column named by the beacon's id or by the key it advertises). The two are
fitted as groups of their own (a phone's receiver is not a gateway's), and
the beacons' offsets are taken from the gateways' store power at 1 m when
the survey has gateway columns, so one file holds both.
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

from omnizone.server.domain.localize.calibration import (
    AnchorFit,
    ExpectedAccuracy,
    expected_accuracy,
    fit_anchors,
    store_calibration,
    typical_default_bias_db,
    with_anchors,
)
from omnizone.server.domain.localize.propagation import anchor_positions
from omnizone.server.domain.localize.survey import Survey
from omnizone.store import StorePlan
from omnizone.store.calibration import StoreCalibration
from omnizone.store.geometry import centroid


@dataclass(frozen=True, slots=True)
class CalibrationResult:
    calibration: StoreCalibration
    fits: list[AnchorFit]  # gateways first, then fixed beacons
    expected: ExpectedAccuracy | None  # None: no gateway column (a phone-side survey)
    positions: str  # "surveyed points" or "zone centres"
    samples: int
    beacons: frozenset[str] = frozenset()  # which fits are fixed beacons


def calibrate(plan: StorePlan, survey: Survey, *, folds: int = 5) -> CalibrationResult:
    """Fit every gateway and fixed beacon of the plan the survey has a column for."""
    places, positions = _places(plan, survey)
    anchors, xy = anchor_positions(plan)
    column = {a: i for i, a in enumerate(survey.anchors)}
    kept = [i for i, a in enumerate(anchors) if a in column]
    names = [anchors[i] for i in kept]
    rssi = survey.rssi[:, [column[a] for a in names]]
    floor = (plan.store.floor.width_m, plan.store.floor.depth_m)
    fits = fit_anchors(names, xy[kept], places, rssi, floor=floor)
    heard = [
        (b.id, b.position, column[b.id] if b.id in column else column[b.device])
        for b in plan.beacons
        if b.id in column or b.device in column
    ]
    beacon_fits = (
        fit_anchors(
            [b for b, _, _ in heard],
            np.array([p for _, p, _ in heard], dtype=np.float64).reshape(-1, 2),
            places,
            survey.rssi[:, [c for _, _, c in heard]],
            floor=floor,
        )
        if heard
        else []
    )
    fitted_at = datetime.now(UTC).replace(microsecond=0).isoformat()
    if any(f.fitted for f in fits):
        calibration = with_anchors(
            store_calibration(plan.store.id, fits, fitted_at=fitted_at), beacon_fits
        )
    else:  # a phone-side survey: the beacons set the store's power at 1 m
        calibration = store_calibration(plan.store.id, [*fits, *beacon_fits], fitted_at=fitted_at)
    return CalibrationResult(
        calibration=calibration,
        fits=[*fits, *beacon_fits],
        expected=(
            expected_accuracy(plan, survey.zones, places, rssi, names, folds=folds)
            if names
            else None
        ),
        positions=positions,
        samples=len(survey),
        beacons=frozenset(b for b, _, _ in heard),
    )


def report(result: CalibrationResult, plan: StorePlan) -> dict[str, Any]:
    """The JSON ``omnizone calibrate --json`` prints."""
    cal = result.calibration
    fitted = {f.anchor for f in result.fits}
    missing = [g.id for g in plan.gateways if g.ble and g.id not in fitted]
    if result.beacons:
        missing += [b.id for b in plan.beacons if b.id not in fitted]
    typical = typical_default_bias_db(result.fits)
    offsets = {anchor: entry.offset_db for anchor, entry in cal.anchors.items()}
    notes = []
    if typical is not None and abs(typical) >= 3.0:
        notes.append(
            f"the default radio map (-59 dBm at 1 m) was {typical:+.1f} dB off across the store: "
            "the devices are louder or quieter than the default assumes; the fit corrects it"
        )
    if result.positions == "zone centres":
        notes.append(
            "the survey has no x,y columns: readings were placed at their zone's centre, "
            "which blurs the fit; a point survey (zone,x,y,…) fits better"
        )
    if result.expected is None:
        notes.append(
            "the survey has no gateway column (the phone heard fixed beacons): the beacons "
            "are fitted, the gateways keep the defaults, and no expected accuracy of the "
            "gateways' map is given"
        )
    if missing:
        notes.append(f"no survey column for {', '.join(missing)}: they keep the defaults")
    return {
        "store": cal.store,
        "samples": result.samples,
        "positions": result.positions,
        "power_1m_dbm": cal.power_1m_dbm,
        "anchors": {
            fit.anchor: {
                "kind": "beacon" if fit.anchor in result.beacons else "gateway",
                "fitted": fit.fitted,
                "samples": fit.samples,
                "power_1m_dbm": round(fit.radio.power_1m_dbm, 2),
                "offset_db": offsets.get(fit.anchor),
                "exponent": round(fit.radio.exponent, 3),
                "spread_db": round(fit.radio.spread_db, 2),
                "bias_db": round(fit.bias_db, 2),
                "default_model_bias_db": round(fit.default_bias_db, 2),
                "outlier_share": round(fit.outlier_share, 4),
                "best_position": fit.best_position,
                "flags": list(fit.flags),
            }
            for fit in result.fits
        },
        "flagged": [fit.anchor for fit in result.fits if fit.flags],
        "expected_zone_accuracy": (
            {
                "default_model": result.expected.default_model,
                "calibrated_model": result.expected.calibrated_model,
                "calibrated_with_survey": result.expected.calibrated_with_survey,
                "folds": result.expected.folds,
                "what": "single windows, blocked cross-validation over the survey (no filter)",
            }
            if result.expected is not None
            else None
        ),
        "notes": notes,
    }


def _places(plan: StorePlan, survey: Survey) -> tuple[NDArray[np.float64], str]:
    if survey.points is not None:
        return survey.points, "surveyed points"
    centres = {zone.id: centroid(zone.polygon) for zone in plan.zones}
    return np.array([centres[z] for z in survey.zones], dtype=np.float64), "zone centres"
