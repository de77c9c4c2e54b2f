"""Nothing is lost: a 20 s broker outage while the store keeps producing."""

import time

import pytest
from sqlalchemy import text

from omnizone.sim.runner import run_paced
from tests.e2e.conftest import StoreStack

pytestmark = pytest.mark.e2e

OUTAGE_S = 20.0


def _arrival_order(stack: StoreStack) -> dict[str, list[tuple[str, int]]]:
    """Per gateway, (kind, seq) in the order the server first accepted them."""
    with stack.server.repository.engine.connect() as db:
        rows = db.execute(
            text("SELECT gateway, kind, seq FROM received_messages ORDER BY id"),
        ).all()
    order: dict[str, list[tuple[str, int]]] = {}
    for gateway, kind, seq in rows:
        order.setdefault(gateway, []).append((kind, int(seq)))
    return order


def test_a_broker_outage_loses_nothing_and_keeps_each_gateway_in_order(
    store_stack: StoreStack,
) -> None:
    stack = store_stack
    simulation = stack.simulation()
    for _ in range(600):  # one simulated minute with the broker up
        simulation.step()
    stack.fleet.flush(10)
    before = len(stack.received())

    stack.broker.stop()
    outage_started = time.monotonic()
    # The store keeps trading: ten simulated seconds per wall second, for 20 s.
    run_paced(simulation, speed=10, wall_limit_s=OUTAGE_S)
    assert time.monotonic() - outage_started >= OUTAGE_S
    backlog = stack.fleet.backlog
    assert backlog > 100, "the gateways should have queued the outage's events"
    assert not any(link.connected for link in stack.fleet.links.values())
    stack.broker.start()

    for _ in range(300):
        simulation.step()
    simulation.close_windows()
    assert stack.fleet.flush(60), f"outboxes not drained: {stack.fleet.backlog} left"
    stack.fleet.stop()

    acknowledged = stack.fleet.acknowledged_keys()
    assert stack.wait_until(lambda: acknowledged <= stack.received(), timeout_s=60)
    # Beyond what the gateways saw acknowledged, the server holds only the
    # last wills the broker published for them when it went down.
    kinds = {
        (g, seq): kind for g, arrivals in _arrival_order(stack).items() for kind, seq in arrivals
    }
    extra = stack.received() - acknowledged
    assert {kinds[key] for key in extra} <= {"status"}
    assert len(extra) <= len(stack.fleet.links)
    assert len(acknowledged) > before + backlog

    with stack.api() as api:
        stats = api.get("/api/v1/ingest/stats").json()
    assert stats["dead_lettered"] == 0
    # Every gateway's sequence is complete: births, wills, data, health.
    assert stats["gaps"] == 0

    for gateway, arrivals in _arrival_order(stack).items():
        data = [seq for kind, seq in arrivals if kind in ("ble", "health")]
        assert data == sorted(data), f"{gateway}: data arrived out of order"
