"""``omnizone eval beacons``: the store's fixed beacons through the real
gateway pipeline (raw id and Eddystone-TLM bytes, the TLM link, a real
outbox) into ingest, the beacon fleet and self-calibration, scored against
the simulator's hidden truth: how much telemetry gets through, how close
the battery and advertising count are, when each alert first stands against
when it should, false alerts, and the beacons' fitted offsets against
their hidden ones (docs/benchmarks.md, "Issue 15, point 6")."""

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omnizone.contract import BleMessage, parse_message
from omnizone.gateway.node import GatewayNode
from omnizone.gateway.outbox import Outbox
from omnizone.server.adapters.memory import MemoryRepository
from omnizone.server.domain.beacons import BeaconRules
from omnizone.server.service.beacon_fleet import BeaconFleet
from omnizone.server.service.ingest import IngestService
from omnizone.server.service.self_calibration import SelfCalibration
from omnizone.sim.engine import SimClock, Simulation
from omnizone.sim.scenario import FixedBeaconTruth, Scenario
from omnizone.store import load_store

#: The fleet view is looked at this often (simulated), as a dashboard would.
CHECK_EVERY_MS = 10_000


def run_beacon_eval(
    scenario: Scenario,
    *,
    rules: BeaconRules = BeaconRules(),
    on_progress: Callable[[float], None] | None = None,
) -> dict[str, Any]:
    plan = load_store(scenario.store_file)
    clock = SimClock.starting_at(scenario.start)
    with tempfile.TemporaryDirectory(prefix="omnizone-eval-beacons-") as folder:
        outboxes = {g.id: Outbox(Path(folder) / f"{g.id}.db") for g in plan.gateways}
        nodes = {
            g: GatewayNode(plan.id, g, box, window_ms=scenario.window_ms, clock=clock)
            for g, box in outboxes.items()
        }
        simulation = Simulation(scenario, plan, nodes, clock=clock)
        fleet = BeaconFleet({plan.id: plan}, rules=rules)
        fit = SelfCalibration({plan.id: plan})
        ingest = IngestService(
            {plan.id: plan},
            MemoryRepository(),
            gateway_hearing_listeners=[fit.observe, fleet.observe],
        )
        fleet.set_clock(ingest.heard_span)
        published = 0
        first_alert: dict[tuple[str, str], float] = {}
        next_check = simulation.start_ms + CHECK_EVERY_MS

        def deliver(sim: Simulation) -> None:
            nonlocal published, next_check
            for box in outboxes.values():
                for entry in box.pending(limit=1000):
                    message = parse_message(entry.topic, entry.payload)
                    if isinstance(message, BleMessage):
                        published += sum(1 for i in message.items if i.telemetry is not None)
                    ingest.handle(entry.topic, entry.payload, sim.clock.now_ms)
                    box.remove(entry.seq)
            if sim.clock.now_ms >= next_check:
                next_check += CHECK_EVERY_MS
                elapsed = (sim.clock.now_ms - sim.start_ms) / 1000
                for alert in fleet.view(plan.id).alerts:
                    first_alert.setdefault((alert.beacon, alert.kind), elapsed)
                if on_progress is not None:
                    on_progress(min(1.0, elapsed / scenario.duration_s))

        simulation.run(on_step=deliver)
        simulation.close_windows()
        deliver(simulation)
        counters = [n.health_counters() for n in nodes.values()]
        for box in outboxes.values():
            box.close()

    view = {r.beacon: r for r in fleet.view(plan.id).beacons}
    calibration = fit.fit(plan.id)
    fitted = calibration.anchors if calibration is not None else {}
    beacons: dict[str, Any] = {}
    false_alerts = 0
    for beacon in plan.beacons:
        truth = scenario.fixed_beacons.beacons.get(beacon.id, FixedBeaconTruth())
        state = simulation.fixed_beacon_state(beacon.id)
        row = view[beacon.id]
        should = _due_alerts(truth, scenario, rules)
        alerts = {kind: at for (b, kind), at in first_alert.items() if b == beacon.id}
        false_alerts += sum(1 for kind in alerts if kind not in should)
        entry = fitted.get(beacon.id)
        beacons[beacon.id] = {
            "truth": {
                "power_offset_db": truth.power_offset_db,
                "battery_mv_end": state["battery_mv"],
                "adv_count_end": state["adv_count"],
                "alive_end": state["alive"],
            },
            "fleet": {
                "battery_mv": row.battery_mv,
                "adv_count": row.adv_count,
                "temperature_c": row.temperature_c,
                "last_heard_s": (
                    round((row.last_heard_ms - simulation.start_ms) / 1000, 1)
                    if row.last_heard_ms is not None
                    else None
                ),
                "gateways_hearing": row.gateways_hearing,
                "alerts_end": list(row.alerts),
            },
            "battery_error_mv": (
                row.battery_mv - state["battery_mv"]
                if row.battery_mv is not None and isinstance(state["battery_mv"], int)
                else None
            ),
            "alerts_due_s": should,
            "alerts_first_s": alerts,
            "alerts_missed": sorted(k for k in should if k not in alerts),
            "fit": (
                {
                    "offset_db": entry.offset_db,
                    "exponent": entry.exponent,
                    "samples": entry.samples,
                    "offset_error_db": round(entry.offset_db - truth.power_offset_db, 2),
                }
                if entry is not None
                else None
            ),
        }
    tlm = {
        k: sum(c.get(f"ble.tlm.{k}", 0) for c in counters)
        for k in ("linked", "unlinked", "implausible")
    }
    return {
        "scenario": scenario.name,
        "seed": scenario.seed,
        "simulated_s": scenario.duration_s,
        "rules": {
            "silent_after_s": rules.silent_after_ms / 1000,
            "low_battery_mv": rules.low_battery_mv,
            "weak_drop_db": rules.weak_drop_db,
            "checked_every_s": CHECK_EVERY_MS / 1000,
        },
        "tlm_frames_sent": simulation.counters.fixed_beacon_tlm_sent,
        "tlm_receptions": tlm,
        "telemetry_items_published": published,
        "fixed_beacon_sightings_ingested": ingest.counters.fixed_beacons,
        "beacons_placed_as_shoppers": sum(
            1 for device in ingest.present(plan.id) if device in plan.fixed_beacons
        ),
        "false_alerts": false_alerts,
        "beacons": beacons,
    }


def _due_alerts(
    truth: FixedBeaconTruth, scenario: Scenario, rules: BeaconRules
) -> dict[str, float]:
    """When each alert should first stand, from the hidden truth (simulated s)."""
    due: dict[str, float] = {}
    dead_below = scenario.fixed_beacons.dead_below_mv
    dies = truth.dies_at_s
    if truth.battery_mv and truth.drain_mv_per_hour > 0:
        hours = (truth.battery_mv - rules.low_battery_mv) / truth.drain_mv_per_hour
        if 0 <= hours * 3600 < scenario.duration_s:
            due["low-battery"] = round(max(0.0, hours * 3600), 1)
        flat = (truth.battery_mv - dead_below) / truth.drain_mv_per_hour * 3600
        dies = flat if dies is None else min(dies, flat)
    elif truth.battery_mv and truth.battery_mv < rules.low_battery_mv:
        due["low-battery"] = 0.0
    if dies is not None and dies + rules.silent_after_ms / 1000 < scenario.duration_s:
        due["silent"] = round(dies + rules.silent_after_ms / 1000, 1)
    return due
