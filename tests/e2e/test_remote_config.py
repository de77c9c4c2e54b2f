"""Remote configuration through the retained config topic, applied without a
restart, and the fleet view that shows each gateway's health."""

import pytest
from sqlalchemy import text

from tests.e2e.conftest import StoreStack

pytestmark = pytest.mark.e2e


def _windows_seen(stack: StoreStack, gateway: str) -> set[int]:
    with stack.server.repository.engine.connect() as db:
        rows = db.execute(
            text("SELECT DISTINCT window_ms FROM ble_sightings WHERE gateway = :g"),
            {"g": gateway},
        )
        return {int(r[0]) for r in rows}


def test_a_config_change_reaches_the_running_gateway_and_changes_its_window(
    store_stack: StoreStack,
) -> None:
    stack = store_stack
    simulation = stack.simulation()
    for _ in range(300):  # 30 simulated seconds on the default window
        simulation.step()
    target = "gw-entrance"
    with stack.api() as api:
        response = api.put(
            f"/api/v1/stores/{stack.store.id}/gateways/{target}/config",
            json={"window_ms": 2000, "health_interval_s": 5},
        )
        assert response.status_code == 200, response.text
        assert response.json()["revision"] == 1
        node = stack.fleet.nodes[target]
        # The retained config arrives on the gateway's network thread and is
        # applied at the pipeline's next tick: keep the store running.
        assert stack.wait_until(lambda: (simulation.step(), node.config_revision)[1] == 1)
        assert stack.fleet.nodes["gw-checkout"].config_revision == -1  # only the target
        for _ in range(600):
            simulation.step()
        simulation.close_windows()
        stack.fleet.flush(10)
        stack.wait_until(lambda: 2000 in _windows_seen(stack, target))
        assert _windows_seen(stack, target) == {1000, 2000}
        assert _windows_seen(stack, "gw-checkout") == {1000}

        # A second change merges with the first and bumps the revision.
        second = api.put(
            f"/api/v1/stores/{stack.store.id}/gateways/{target}/config",
            json={"rfid": {"depart_after_ms": 30000}},
        ).json()
        assert (second["revision"], second["window_ms"]) == (2, 2000)
        assert second["rfid"] == {"depart_after_ms": 30000}
        assert api.get(f"/api/v1/stores/{stack.store.id}/gateways/{target}/config").json() == second

        refused = api.put(
            f"/api/v1/stores/{stack.store.id}/gateways/{target}/config", json={"window_ms": 5}
        )
        assert refused.status_code == 422 and "window_ms" in refused.text
        unknown = api.put(
            f"/api/v1/stores/{stack.store.id}/gateways/gw-nowhere/config", json={"window_ms": 500}
        )
        assert unknown.status_code == 404
        assert (
            api.put(
                f"/api/v1/stores/{stack.store.id}/gateways/{target}/config",
                json={"window_ms": 500},
                headers={"X-API-Key": "wrong"},
            ).status_code
            == 401
        )


def test_the_fleet_view_shows_every_gateway_online_with_its_health(
    store_stack: StoreStack,
) -> None:
    stack = store_stack
    simulation = stack.simulation()
    for _ in range(400):  # past the first 30 s health report
        simulation.step()
    stack.fleet.flush(10)
    with stack.api() as api:

        def all_reported() -> bool:
            rows = api.get(f"/api/v1/stores/{stack.store.id}/gateways").json()
            return all(r["online"] and r["outbox_depth"] is not None for r in rows)

        assert stack.wait_until(all_reported)
        rows = {
            r["gateway"]: r for r in api.get(f"/api/v1/stores/{stack.store.id}/gateways").json()
        }
        # Each live session's reserved will number is not a gap.
        assert api.get("/api/v1/ingest/stats").json()["gaps"] == 0
    assert set(rows) == {g.id for g in stack.store.gateways}
    entrance = rows["gw-entrance"]
    assert entrance["zone"] == "entrance"
    assert entrance["state"] == "online"
    assert entrance["version"].endswith("+sim")
    assert entrance["counters"]["ble.adverts_seen"] > 0
    assert entrance["uptime_s"] >= 30

    # A gateway that stops cleanly says so, and the fleet view shows it offline.
    link = stack.fleet.links["gw-checkout"]
    link.stop()
    with stack.api() as api:
        assert stack.wait_until(
            lambda: (
                not {
                    r["gateway"]: r
                    for r in api.get(f"/api/v1/stores/{stack.store.id}/gateways").json()
                }["gw-checkout"]["online"]
            )
        )
