"""Taps end to end: shoppers hold their phones to the kiosk readers (emulated
cards on nfcpy's UDP link), the real NFC driver reads them, the gateway
publishes taps, the server stores them."""

import io
import json

import pytest
from sqlalchemy import text

from omnizone.paths import shipped_config
from omnizone.sim.runner import run_paced
from omnizone.sim.scenario import load_scenario
from omnizone.sim.tap_points import TapPoints
from tests.e2e.conftest import StoreStack

pytestmark = pytest.mark.e2e


def test_phones_held_to_tap_points_become_taps_at_the_server(store_stack: StoreStack) -> None:
    stack = store_stack
    stack.scenario = load_scenario(shipped_config("scenarios/quick.yaml"), duration_s=150)
    log = io.StringIO()
    taps = TapPoints(stack.store, stack.fleet.nodes, tap_probability=1.0, seed=2, taps=log)
    assert set(taps.points) == {"tap-outerwear-jackets", "tap-shoes-kiosk"}
    taps.start()
    try:
        simulation = stack.simulation()
        simulation.observers.append(taps.observe)
        run_paced(simulation, speed=10)
        simulation.close_windows()
    finally:
        taps.stop()
    stack.fleet.flush(20)

    requested = {(r["tap_point"], r["uid"]) for r in map(json.loads, log.getvalue().splitlines())}
    assert requested, "shoppers should have walked past a tap point"

    def stored() -> set[tuple[str, str]]:
        with stack.server.repository.engine.connect() as db:
            rows = db.execute(text("SELECT tap_point, uid FROM nfc_taps"))
            return {(r[0], r[1]) for r in rows}

    assert stack.wait_until(lambda: stored() >= requested, timeout_s=20), (
        sorted(requested),
        sorted(stored()),
    )
    assert stored() == requested  # each phone once (debounced), nothing invented
