"""Passers-by at the street front (issue 18, point 4): they walk outside the
store, are heard by the gateways as phones nobody registered, never enter,
and leave the shoppers' world as it was."""

import io

from omnizone.contract.ids import is_rotating
from omnizone.paths import shipped_config
from omnizone.sim.engine import Simulation
from omnizone.sim.scenario import StreetTraffic, load_scenario
from omnizone.store import load_store
from tests.sim.test_engine import RecordingGateway


def _run(rate: float) -> tuple[Simulation, dict[str, RecordingGateway], str]:
    scenario = load_scenario(
        shipped_config("scenarios/quick.yaml"),
        duration_s=120,
        street=StreetTraffic(passers_by_per_minute=rate),
    )
    store = load_store(scenario.store_file)
    gateways = {g.id: RecordingGateway() for g in store.gateways}
    truth = io.StringIO()
    simulation = Simulation(scenario, store, gateways, ground_truth=truth)
    simulation.run()
    return simulation, gateways, truth.getvalue()


def test_passers_by_are_heard_outside_and_leave_the_shoppers_world_unchanged() -> None:
    quiet, quiet_heard, quiet_truth = _run(0.0)
    busy, busy_heard, busy_truth = _run(10.0)
    assert busy_truth == quiet_truth  # the shoppers walk, and are written, the same
    assert quiet.street.passers_by == 0 and quiet.street.truth()[0].passed == 0
    assert busy.street.passers_by >= 10
    advertised = set(busy.street.advertised)
    assert len(advertised) == busy.street.passers_by and all(map(is_rotating, advertised))
    heard = {d for g in busy_heard.values() for d, _rssi, _a in g.heard} & advertised
    assert len(heard) >= busy.street.passers_by - 2  # the street-front gateway hears them
    # The shoppers' own adverts are heard alike with and without the street.
    for g, recorder in busy_heard.items():
        mine = [h for h in recorder.heard if h[0] not in advertised]
        assert mine == quiet_heard[g].heard, g
    (hour,) = busy.street.truth()
    assert hour.passed == busy.street.passers_by and hour.entered == busy.counters.shoppers_arrived
