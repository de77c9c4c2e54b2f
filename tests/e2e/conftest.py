"""A whole store on one machine for end-to-end tests: a real broker process
with per-gateway accounts, the server on SQLite, and the simulated gateways."""

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from omnizone.broker import BrokerAccounts, RunningBroker, find_mosquitto, start_broker
from omnizone.paths import shipped_config
from omnizone.server.runtime import ServerRuntime
from omnizone.server.settings import ServerSettings
from omnizone.sim.app_client import expected_shoppers, register_app_phones
from omnizone.sim.engine import SimClock, Simulation
from omnizone.sim.fleet import GatewayFleet
from omnizone.sim.scenario import Scenario, load_scenario
from omnizone.store import StorePlan, load_store

API_KEY = "e2e-test-key"


@dataclass
class Backend:
    """Broker and server, without any gateway yet."""

    scenario: Scenario
    store: StorePlan
    accounts: BrokerAccounts
    broker: RunningBroker
    server: ServerRuntime
    run_dir: Path

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.server.api_url, headers={"X-API-Key": API_KEY})

    def received(self, gateway: str | None = None) -> set[tuple[str, int]]:
        keys = self.server.repository.received_keys(self.store.id)
        return {(k.gateway, k.seq) for k in keys if gateway in (None, k.gateway)}

    def wait_until(self, condition: Callable[[], bool], timeout_s: float = 30.0) -> bool:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if condition():
                return True
            time.sleep(0.05)
        return condition()


@dataclass
class StoreStack(Backend):
    """Broker, server and every gateway of the store, simulated."""

    fleet: GatewayFleet
    clock: SimClock

    def simulation(self, ground_truth_path: Path | None = None) -> Simulation:
        """Every shopper carries the app, registered through the API with consent."""
        truth = ground_truth_path.open("w") if ground_truth_path else None
        phones = register_app_phones(
            self.server.api_url, self.store.id, expected_shoppers(self.scenario)
        )
        return Simulation(
            self.scenario, self.store, self.fleet.nodes, self.clock, truth, app_phones=phones
        )

    def run_delivered(self, simulation: Simulation) -> None:
        """Run it to the end and close its windows; wait until the server holds
        every message the gateways had acknowledged."""
        simulation.run()
        simulation.close_windows()
        self.fleet.flush(timeout_s=10)
        published = self.fleet.acknowledged_keys()
        assert self.wait_until(lambda: published <= self.received())


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[Backend]:
    if find_mosquitto() is None:
        pytest.skip("needs the mosquitto binary")
    scenario = load_scenario(shipped_config("scenarios/quick.yaml"))
    store = load_store(scenario.store_file)
    accounts = BrokerAccounts.for_store(store)
    with start_broker(accounts, run_dir=tmp_path / "broker", prefer="mosquitto") as broker:
        settings = ServerSettings.on_broker(
            broker,
            accounts,
            database_url=f"sqlite:///{tmp_path / 'omnizone.db'}",
            api_keys={API_KEY: ["read", "admin"]},
            api_port=0,
        )
        with ServerRuntime(settings, stores={store.id: store}) as server:
            yield Backend(scenario, store, accounts, broker, server, tmp_path)


@pytest.fixture
def store_stack(backend: Backend) -> Iterator[StoreStack]:
    b = backend
    clock = SimClock.starting_at(b.scenario.start)
    fleet = GatewayFleet.on_broker(
        b.store, clock, b.run_dir, b.broker, b.accounts, b.scenario.window_ms
    )
    fleet.start()
    try:
        yield StoreStack(
            b.scenario, b.store, b.accounts, b.broker, b.server, b.run_dir, fleet, clock
        )
    finally:
        fleet.stop(flush_timeout_s=5)
