"""`omnizone eval localize`: the simulator's shoppers, the real gateway pipeline
(decode, aggregate, outbox) and the server's ingest (validation, de-duplication,
localization, visits, SQLite), with the broker replaced by a direct hand-off so
the run is deterministic and fast. The same messages go to one server with the
HMM localizer and one with the nearest-gateway baseline; both are scored
against the ground truth.
"""

import dataclasses
import io
import json
import tempfile
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omnizone.contract.ids import eid_key
from omnizone.contract.phone import parse_phone_report
from omnizone.contract.phone_client import Post
from omnizone.gateway.node import GatewayNode
from omnizone.gateway.outbox import Outbox
from omnizone.server.adapters.db import SqlRepository
from omnizone.server.adapters.memory.phones import MemoryPhoneSightings
from omnizone.server.service.ingest import IngestService
from omnizone.server.service.locators import (
    LocatorKind,
    ZonePlacement,
    default_enter_probability,
    make_locators,
)
from omnizone.server.service.phone_sightings import PhoneSightings
from omnizone.server.service.radio_setup import radio_setups
from omnizone.sim.engine import SimClock, Simulation
from omnizone.sim.scenario import PhoneMode, Scenario
from omnizone.sim.shoppers import Shopper
from omnizone.store import StorePlan, load_store
from omnizone.suite.evaluation.metrics import (
    Placement,
    RecordedVisit,
    TruthRow,
    delayed_truth,
    evaluate,
)

BASELINE: LocatorKind = "nearest"


def run_localize_eval(
    scenario: Scenario,
    *,
    localizer: LocatorKind = "grid",
    enter_probability: float | None = None,
    on_progress: Callable[[float], None] | None = None,
    phone_mode: PhoneMode | None = None,
    truth_delays_s: Sequence[float] = (),
) -> dict[str, Any]:
    """``enter_probability``: the filter's hysteresis bar instead of its
    default, to trace the latency/flap trade-off (the baseline has none).
    ``phone_mode``: every shopper's phone advertises, listens or both
    (issue 15) instead of the scenario's mix. ``truth_delays_s``: also score
    the true zones reported that many seconds late (``metrics.delayed_truth``),
    under ``delayed_truth``."""
    if phone_mode is not None:
        phones = scenario.phones.model_copy(update={"modes": {phone_mode: 1.0}})
        scenario = scenario.model_copy(update={"phones": phones})
    store = load_store(scenario.store_file)
    kinds = (localizer, BASELINE)
    radio = radio_setups({store.id: store})
    with tempfile.TemporaryDirectory(prefix="omnizone-eval-") as tmp:
        folder = Path(tmp)
        services: dict[str, IngestService] = {}
        repositories: dict[str, SqlRepository] = {}
        timelines: dict[str, dict[str, list[Placement]]] = {}
        for kind in kinds:
            repositories[kind] = SqlRepository.from_url(f"sqlite:///{folder / kind}.db")
            timeline: dict[str, list[Placement]] = defaultdict(list)
            timelines[kind] = timeline
            services[kind] = IngestService(
                {store.id: store},
                repositories[kind],
                locators=make_locators(
                    {store.id: store},
                    kind,
                    enter_probability=None if kind == BASELINE else enter_probability,
                    radio=radio,  # the survey the store file names, as deployed
                ),
                placement_listeners=[zone_recorder(timeline)],
            )

        replay = replay_scenario(scenario, store, list(services.values()), on_progress)
        phone_stats = replay.phones
        min_stay = store.store.visits.min_presence_s
        results = {}
        for kind in kinds:
            # Every recorded stay, pass-bys included: dwell is what is scored here;
            # whether a stay counts as a visit is a separate, configured threshold.
            visits = [
                RecordedVisit(v.device, v.zone, v.entered_ms, v.left_ms, v.dwell_s)
                for v in repositories[kind].recent_visits(store.id, 10**9, None)
            ]
            results[kind] = evaluate(
                replay.truth, timelines[kind], visits, min_stay_s=min_stay, end_ms=replay.end_ms
            )
            repositories[kind].close()
        ceiling = {
            f"{delay:g}": _ceiling(
                evaluate(
                    replay.truth,
                    delayed_truth(replay.truth, round(delay * 1000)),
                    [],
                    min_stay_s=min_stay,
                    end_ms=replay.end_ms,
                )
            )
            for delay in truth_delays_s
        }
    return {
        "scenario": scenario.name,
        "seed": scenario.seed,
        "simulated_s": scenario.duration_s,
        "shadowing_db": scenario.radio.shadowing_sigma_db,
        "gateways": len(store.gateways),
        "truth_interval_ms": scenario.ground_truth_interval_ms,
        "window_ms": scenario.window_ms,
        "localizer": localizer,
        "phone_modes": dict(scenario.phones.modes),
        "phones": phone_stats,
        "enter_probability": (
            default_enter_probability(localizer) if enter_probability is None else enter_probability
        ),
        **results[localizer],
        "baseline": {"localizer": "nearest-gateway", **results["nearest"]},
        **({"delayed_truth": ceiling} if ceiling else {}),
    }


def _ceiling(result: dict[str, Any]) -> dict[str, Any]:
    """A delayed truth's figures that mean something (it records no visits)."""
    keys = (
        "zone_accuracy",
        "flaps_per_shopper_hour",
        "change_latency_median_s",
        "changes_missed_fraction",
        "n_truth_changes",
        "entries_scored",
        "shopper_seconds",
    )
    figures = {key: result[key] for key in keys}
    hours = result["shopper_seconds"] / 3600
    figures["truth_changes_per_shopper_hour"] = (
        round(result["n_truth_changes"] / hours, 1) if hours else None
    )
    return figures


@dataclass(frozen=True, slots=True)
class Replay:
    """What the simulator knows of a run: where each shopper truly was."""

    truth: list[TruthRow]
    start_ms: int
    end_ms: int
    phones: dict[str, Any] | None = None  # listening phones' figures, when any listened


def replay_scenario(
    scenario: Scenario,
    store: StorePlan,
    services: Sequence[IngestService],
    on_progress: Callable[[float], None] | None = None,
    after_step: Callable[[int], None] | None = None,
) -> Replay:
    """Run the scenario through the real gateway pipeline into each ingest
    service (a direct hand-off instead of the broker), finish their windows,
    and return the ground truth. Shared by the localization evaluation and the
    analytics correctness test. ``after_step`` is told the simulated time
    after each step's messages were delivered (a periodic job, as the server
    runs them)."""
    clock = SimClock.starting_at(scenario.start)
    nodes = {
        g.id: GatewayNode(
            store.id, g.id, Outbox(":memory:"), window_ms=scenario.window_ms, clock=clock
        )
        for g in store.gateways
    }
    truth_text = io.StringIO()
    # Listening phones (issue 15) report through the same use case as the
    # public API (the reference client's batches, parsed as the server does).
    listening = [
        PhoneSightings(
            {store.id: store},
            MemoryPhoneSightings(),
            service,
            may_store_location=lambda _device: True,
            shopper_store=lambda _device: store.id,
            clock=clock,
            store_clock=service.event_time,
        )
        for service in services
    ]

    def transport(shopper: Shopper) -> Post:
        device = (
            shopper.app.shopper_id if shopper.app is not None else eid_key(shopper.ephemeral_id)
        )

        def post(body: bytes) -> tuple[int, bytes]:
            report = parse_phone_report(body)
            answers = [phones.report(device, report) for phones in listening]
            return 200, answers[0].model_dump_json().encode()

        return post

    simulation = Simulation(scenario, store, nodes, clock, truth_text, phone_transport=transport)

    def deliver() -> None:
        for node in nodes.values():
            for entry in node.outbox.pending(limit=1000):
                for service in services:
                    service.handle(entry.topic, entry.payload, clock.now_ms)
                node.outbox.remove(entry.seq)

    steps = 0
    try:
        while not simulation.finished:
            simulation.step()
            deliver()
            if after_step is not None:
                after_step(clock.now_ms)
            steps += 1
            if on_progress is not None and steps % 100 == 0:
                on_progress(
                    (clock.now_ms - simulation.start_ms) / (simulation.end_ms - simulation.start_ms)
                )
        simulation.close_windows()
        deliver()
        for service in services:
            service.finish(store.id)
    finally:
        for node in nodes.values():
            node.outbox.close()
    truth = [
        TruthRow(r["t_ms"], r["shopper"], r["device"], r["zone"], r.get("x"), r.get("y"))
        for r in map(json.loads, truth_text.getvalue().splitlines())
    ]
    phones = None
    if simulation.listening is not None:
        phones = {
            "sim": dataclasses.asdict(simulation.listening.counters),
            "server": listening[0].stats(store.id),
        }
    return Replay(truth, simulation.start_ms, simulation.end_ms, phones)


def zone_recorder(timeline: dict[str, list[Placement]]) -> Callable[[str, ZonePlacement], None]:
    """A placement listener that keeps each device's reported zone timeline
    (its changes only), as a live consumer saw it."""

    def record(_store: str, placement: ZonePlacement) -> None:
        previous = timeline[placement.device]
        # What a live consumer knew: the zone as of when it was decided.
        if not previous or previous[-1].zone != placement.zone:
            previous.append(Placement(placement.decided_ms, placement.zone))

    return record
