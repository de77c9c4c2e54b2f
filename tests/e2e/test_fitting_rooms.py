"""Try-ons end to end: shoppers carry garments into the fitting rooms, the
emulated UHF readers (pseudo-terminals) answer the real gateway driver, the
gateway publishes try-on events with GTINs, the server stores them."""

import io
import json

import pytest
from sqlalchemy import text

from omnizone.gateway.rfid.epc import decode_sgtin96
from omnizone.paths import shipped_config
from omnizone.sim.fitting_rooms import FittingRooms
from omnizone.sim.runner import run_paced
from omnizone.sim.scenario import load_scenario
from tests.e2e.conftest import StoreStack

pytestmark = pytest.mark.e2e


def test_garments_taken_into_fitting_rooms_become_try_ons_at_the_server(
    store_stack: StoreStack,
) -> None:
    stack = store_stack
    stack.scenario = load_scenario(shipped_config("scenarios/fitting-rooms.yaml"), duration_s=150)
    truth = io.StringIO()
    rooms = FittingRooms(stack.store, stack.fleet.nodes, seed=1, try_ons=truth)
    assert set(rooms.rooms) == {"rfid-fitting-1", "rfid-fitting-2"}
    rooms.start()
    try:
        simulation = stack.simulation()
        simulation.observers.append(rooms.observe)
        # The UHF driver works in real time: pace the store at 10x.
        run_paced(simulation, speed=10)
        simulation.close_windows()
    finally:
        rooms.stop()
    stack.fleet.flush(20)

    carried = [json.loads(line) for line in truth.getvalue().splitlines()]
    arrivals = {(r["reader"], r["epc"]) for r in carried if r["event"] == "arrived"}
    departures = {(r["reader"], r["epc"]) for r in carried if r["event"] == "departed"}
    assert arrivals, "the scenario should send shoppers into the fitting rooms"

    def stored() -> list[tuple[str, str, str, str | None]]:
        with stack.server.repository.engine.connect() as db:
            return [
                (r[0], r[1], r[2], r[3])
                for r in db.execute(text("SELECT reader, event, epc, gtin FROM try_ons"))
            ]

    assert stack.wait_until(
        lambda: {(r, e) for r, ev, e, _g in stored() if ev == "arrived"} >= arrivals
    )
    rows = stored()
    seen_arrivals = {(r, e) for r, ev, e, _g in rows if ev == "arrived"}
    seen_departures = {(r, e) for r, ev, e, _g in rows if ev == "departed"}
    # Every garment carried in was detected, in the right room, once.
    assert seen_arrivals == arrivals
    assert len([1 for _r, ev, _e, _g in rows if ev == "arrived"]) == len(arrivals)
    # Departures follow the quiet period: those carried out early enough were seen.
    assert seen_departures <= departures and len(seen_departures) >= len(departures) // 2
    for _reader, _event, epc, gtin in rows:
        sgtin = decode_sgtin96(epc)
        assert sgtin is not None and gtin == sgtin.gtin
