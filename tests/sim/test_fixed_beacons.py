"""The store's fixed beacons in the simulator: their id frames and
Eddystone-TLM as raw bytes through the real gateway pipeline (decode, the
TLM link, aggregation, a real outbox), into ingest, the beacon fleet and
self-calibration. One beacon dies, one's cell runs down: the fleet says so."""

from pathlib import Path

import pytest

from omnizone.contract import BleMessage, parse_message
from omnizone.gateway.node import GatewayNode
from omnizone.gateway.outbox import Outbox
from omnizone.paths import shipped_config
from omnizone.server.adapters.memory import MemoryRepository
from omnizone.server.domain.beacons import BeaconRules
from omnizone.server.service.beacon_fleet import BeaconFleet
from omnizone.server.service.ingest import IngestService
from omnizone.server.service.self_calibration import SelfCalibration
from omnizone.sim.engine import SimClock, Simulation
from omnizone.sim.scenario import FixedBeacons, FixedBeaconTruth, load_scenario
from omnizone.store import load_store

DURATION_S = 420
DIES_AT_S = 200


def test_a_dead_beacon_goes_silent_and_a_draining_one_warns_through_the_real_gateway(
    tmp_path: Path,
) -> None:
    base = load_scenario(shipped_config("scenarios/selfcal.yaml"), duration_s=DURATION_S)
    scenario = base.model_copy(
        update={
            "shoppers": base.shoppers.model_copy(
                update={"arrivals_per_minute": 0.0, "initial_shoppers": 0}
            ),
            "fixed_beacons": FixedBeacons(
                beacons={
                    "bcn-checkout": FixedBeaconTruth(dies_at_s=DIES_AT_S),
                    "bcn-outerwear-wall": FixedBeaconTruth(
                        power_offset_db=6.0, battery_mv=2620, drain_mv_per_hour=1200.0
                    ),
                }
            ),
        }
    )
    store = load_store(scenario.store_file)
    clock = SimClock.starting_at(scenario.start)
    outboxes = {g.id: Outbox(tmp_path / f"{g.id}.db") for g in store.gateways}
    nodes = {
        g: GatewayNode(store.id, g, box, window_ms=1000, health_interval_ms=60_000, clock=clock)
        for g, box in outboxes.items()
    }
    simulation = Simulation(scenario, store, nodes, clock=clock)
    fleet = BeaconFleet({store.id: store}, rules=BeaconRules(silent_after_ms=120_000))
    fit = SelfCalibration({store.id: store})
    hearing = [fit.observe, fleet.observe]
    ingest = IngestService({store.id: store}, MemoryRepository(), gateway_hearing_listeners=hearing)
    fleet.set_clock(ingest.heard_span)
    telemetry_items = 0

    def deliver(sim: Simulation) -> None:
        nonlocal telemetry_items
        for box in outboxes.values():
            entries = box.pending(limit=1000)
            for entry in entries:
                message = parse_message(entry.topic, entry.payload)
                if isinstance(message, BleMessage):
                    telemetry_items += sum(1 for i in message.items if i.telemetry is not None)
                ingest.handle(entry.topic, entry.payload, sim.clock.now_ms)
                box.remove(entry.seq)

    simulation.run(on_step=deliver)
    simulation.close_windows()
    deliver(simulation)

    assert simulation.counters.fixed_beacon_tlm_sent > 50
    assert telemetry_items > 50
    assert ingest.counters.fixed_beacons > 1000
    assert not ingest.present(store.id)  # a beacon is never a shopper
    assert all(n.health_counters()["ble.tlm.unlinked"] == 0 for n in nodes.values())

    view = fleet.view(store.id)
    rows = {r.beacon: r for r in view.beacons}
    dead, draining = rows["bcn-checkout"], rows["bcn-outerwear-wall"]
    assert dead.alerts == ("silent",)
    assert dead.last_heard_ms is not None
    assert dead.last_heard_ms <= simulation.start_ms + DIES_AT_S * 1000 + 1000
    assert dead.silent_s is not None and dead.silent_s >= DURATION_S - DIES_AT_S - 2
    assert "low-battery" in draining.alerts and "silent" not in draining.alerts
    truth = simulation.fixed_beacon_state("bcn-outerwear-wall")
    assert draining.battery_mv is not None and isinstance(truth["battery_mv"], int)
    # One TLM every 10 adverts (10 s) at 1200 mV/h: within a few mV of the truth.
    assert truth["battery_mv"] <= draining.battery_mv <= truth["battery_mv"] + 5
    assert isinstance(truth["adv_count"], int) and draining.adv_count is not None
    assert truth["adv_count"] - 20 <= draining.adv_count <= truth["adv_count"]
    assert draining.temperature_c == pytest.approx(21.0)
    assert draining.drain_mv_per_day is not None and draining.drain_mv_per_day > 20_000
    assert {a.kind for a in view.alerts} == {"silent", "low-battery"}

    # Self-calibration fits both kinds of anchor: against each hearing
    # gateway's own fit, the beacon 6 dB louder than a phone is fitted about
    # 6 dB above the store's devices, the other one about level with them.
    calibration = fit.fit(store.id)
    assert calibration is not None
    assert calibration.anchors["bcn-outerwear-wall"].offset_db == pytest.approx(6.0, abs=2.0)
    assert calibration.anchors["bcn-checkout"].offset_db == pytest.approx(0.0, abs=2.0)
    beacon_rows = {b.beacon: b for b in fit.view(store.id).beacons}
    assert beacon_rows["bcn-outerwear-wall"].fitted
    assert beacon_rows["bcn-outerwear-wall"].gateways_hearing >= 3
    for box in outboxes.values():
        box.close()
