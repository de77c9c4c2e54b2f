"""`omnizone eval selfcal`: zone accuracy with the default radio parameters,
with the simulator's hidden true ones (handed to the server as a calibration
file would be) and with the gateways' self-calibration alone.

The scenario gives some gateways their own true power at 1 m and exponent
(``radio.gateways``); the server is never told. For ``self`` the gateways
first hear one another with the store closed (``--warmup`` simulated seconds,
no shoppers), the server fits that, and during the scored run it refits every
minute from the rolling window, replacing the localizer when the fit moves.
Everything else is ``eval localize``'s path: the real gateway code, ingest,
the grid localizer, SQLite.
"""

import tempfile
from collections import defaultdict
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

from omnizone.server.adapters.db import SqlRepository
from omnizone.server.domain.localize.propagation import anchor_positions
from omnizone.server.service.ingest import IngestService
from omnizone.server.service.locators import make_locator
from omnizone.server.service.radio_setup import RadioSetup, radio_setup
from omnizone.server.service.self_calibration import SelfCalibration
from omnizone.sim.scenario import Scenario
from omnizone.store import StorePlan, load_store
from omnizone.store.calibration import AnchorCalibration, StoreCalibration
from omnizone.suite.evaluation.localize import replay_scenario, zone_recorder
from omnizone.suite.evaluation.metrics import Placement, RecordedVisit, evaluate

MODES = ("default", "true", "self")


def true_calibration(scenario: Scenario, plan: StorePlan) -> StoreCalibration:
    """The simulator's hidden radio as a calibration file would state it."""
    anchors = [g.id for g in plan.gateways if g.ble]
    power, exponent = scenario.radio.per_gateway(anchors)
    typical = float(np.median(power))
    return StoreCalibration(
        store=plan.id,
        source="manual",
        power_1m_dbm=round(typical, 2),
        anchors={
            a: AnchorCalibration(
                offset_db=round(float(power[i]) - typical, 2),
                exponent=float(exponent[i]),
                spread_db=max(scenario.radio.shadowing_sigma_db, 1.0),
            )
            for i, a in enumerate(anchors)
        },
    )


def run_selfcal_eval(
    scenario: Scenario,
    *,
    warmup_s: float = 120.0,
    modes: tuple[str, ...] = MODES,
    on_progress: Callable[[str, float], None] | None = None,
) -> dict[str, Any]:
    plan = load_store(scenario.store_file)
    base = radio_setup(plan)
    truth_cal = true_calibration(scenario, plan)
    out: dict[str, Any] = {
        "scenario": scenario.name,
        "seed": scenario.seed,
        "simulated_s": scenario.duration_s,
        "shadowing_db": scenario.radio.shadowing_sigma_db,
        "gateways": len(plan.gateways),
        "hidden_gateways": {
            g: r.model_dump(mode="json") for g, r in scenario.radio.gateways.items()
        },
    }
    for mode in modes:
        selfcal = SelfCalibration({plan.id: plan}) if mode == "self" else None
        setup = base
        if mode == "true":
            setup = RadioSetup(survey=base.survey, calibration=truth_cal)
        if selfcal is not None:
            fitted = _warm_up(scenario, plan, selfcal, warmup_s)
            setup = RadioSetup(survey=base.survey, calibration=fitted)
            out["self_fit_warmup"] = _fit_errors(fitted, truth_cal, plan)
        out[mode] = _scored_run(scenario, plan, setup, selfcal, base, on_progress, mode)
    if "true" in out and "self" in out:
        out["self_minus_true"] = round(
            out["self"]["zone_accuracy"] - out["true"]["zone_accuracy"], 4
        )
    return out


def _warm_up(
    scenario: Scenario, plan: StorePlan, selfcal: SelfCalibration, warmup_s: float
) -> StoreCalibration | None:
    """The gateways hear one another with nobody in the store; the fit of that."""
    closed = scenario.model_copy(
        update={
            "duration_s": warmup_s,
            "start": scenario.start - timedelta(seconds=warmup_s),
            "seed": scenario.seed + 1,
            "shoppers": scenario.shoppers.model_copy(
                update={"arrivals_per_minute": 0.0, "initial_shoppers": 0}
            ),
        }
    )
    with tempfile.TemporaryDirectory(prefix="omnizone-selfcal-") as tmp:
        repository = SqlRepository.from_url(f"sqlite:///{Path(tmp) / 'warmup'}.db")
        service = IngestService(
            {plan.id: plan}, repository, gateway_hearing_listeners=[selfcal.observe]
        )
        replay_scenario(closed, plan, [service])
        repository.close()
    fitted = selfcal.fit(plan.id)
    if fitted is not None:
        selfcal.mark_applied(plan.id, fitted)
    return fitted


def _scored_run(
    scenario: Scenario,
    plan: StorePlan,
    setup: RadioSetup,
    selfcal: SelfCalibration | None,
    base: RadioSetup,
    on_progress: Callable[[str, float], None] | None,
    mode: str,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="omnizone-selfcal-") as tmp:
        repository = SqlRepository.from_url(f"sqlite:///{Path(tmp) / mode}.db")
        timeline: dict[str, list[Placement]] = defaultdict(list)
        service = IngestService(
            {plan.id: plan},
            repository,
            locators={plan.id: make_locator(plan, "grid", radio=setup)},
            placement_listeners=[zone_recorder(timeline)],
            gateway_hearing_listeners=[selfcal.observe] if selfcal is not None else (),
        )
        refits: list[int] = []

        def periodic(now_ms: int) -> None:
            if selfcal is None:
                return

            def apply(calibration: StoreCalibration) -> None:
                radio = RadioSetup(survey=base.survey, calibration=calibration)
                service.replace_store(plan, make_locator(plan, "grid", radio=radio))
                refits.append(now_ms)

            selfcal.refit(plan.id, now_ms, apply)

        replay = replay_scenario(
            scenario,
            plan,
            [service],
            (lambda f: on_progress(mode, f)) if on_progress is not None else None,
            after_step=periodic,
        )
        visits = [
            RecordedVisit(v.device, v.zone, v.entered_ms, v.left_ms, v.dwell_s)
            for v in repository.recent_visits(plan.id, 10**9, None)
        ]
        result = evaluate(
            replay.truth,
            timeline,
            visits,
            min_stay_s=plan.store.visits.min_presence_s,
            end_ms=replay.end_ms,
        )
        repository.close()
    result["gateway_beacons_ingested"] = service.counters.gateway_beacons
    if selfcal is not None:
        result["localizer_rebuilds"] = len(refits)
        result["alerts"] = [a.message for a in selfcal.drift(plan.id)]
    return result


def _fit_errors(
    fitted: StoreCalibration | None, truth: StoreCalibration, plan: StorePlan
) -> dict[str, Any]:
    """How far the self fit is from the hidden truth, per gateway."""
    if fitted is None:
        return {"fitted": False}
    anchors, _ = anchor_positions(plan)
    rows = {}
    for anchor in anchors:
        got, true = fitted.anchors.get(anchor), truth.anchors.get(anchor)
        if got is None or true is None:
            continue
        rows[anchor] = {
            "power_1m_dbm": round(got.power_1m_dbm(fitted.power_1m_dbm), 2),
            "true_power_1m_dbm": round(true.power_1m_dbm(truth.power_1m_dbm), 2),
            "exponent": got.exponent,
            "true_exponent": true.exponent,
            "spread_db": got.spread_db,
        }
    power_error = [abs(r["power_1m_dbm"] - r["true_power_1m_dbm"]) for r in rows.values()]
    exponent_error = [abs(r["exponent"] - r["true_exponent"]) for r in rows.values()]
    return {
        "fitted": True,
        "max_power_error_db": round(max(power_error), 2) if power_error else None,
        "max_exponent_error": round(max(exponent_error), 3) if exponent_error else None,
        "gateways": rows,
    }
