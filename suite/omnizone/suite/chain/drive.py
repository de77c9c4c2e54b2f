"""The simulator driving a chain's stores: real gateway code over MQTT to nats-server.

Each store gets its own simulated shoppers (registered app phones, with
consent) and its own ``GatewayFleet``: the real ``GatewayNode``, outbox and
``MqttLink`` of every gateway, each logging in to nats-server's MQTT listener
with its own account. One thread per store paces its simulation.
"""

import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from omnizone.broker import BrokerAccounts
from omnizone.sim.app_client import register_app_phones
from omnizone.sim.engine import SimClock, Simulation
from omnizone.sim.fleet import GatewayFleet
from omnizone.sim.runner import run_paced
from omnizone.sim.scenario import Scenario
from omnizone.sim.shoppers import AppPhone
from omnizone.store import StorePlan
from omnizone.suite.measured import quick_scenario


def chain_scenario(shoppers: int, duration_s: float, seed: int = 7) -> Scenario:
    """The quick scenario with ``shoppers`` in the store from the start."""
    return quick_scenario(shoppers, duration_s, seed=seed)


class StoreDrive:
    """Simulate ``plans`` against the chain; ``start`` / ``stop``."""

    def __init__(
        self,
        plans: Sequence[StorePlan],
        accounts: BrokerAccounts,
        mqtt_host: str,
        mqtt_port: int,
        api_url: str,
        folder: Path,
        *,
        shoppers_per_store: int = 10,
        duration_s: float = 600.0,
        speed: float = 10.0,
    ) -> None:
        self._plans = list(plans)
        self._accounts = accounts
        self._host, self._port = mqtt_host, mqtt_port
        self._api_url = api_url
        self._folder = folder
        self._shoppers = shoppers_per_store
        self._duration_s = duration_s
        self._speed = speed
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.fleets: list[GatewayFleet] = []
        self.phones: dict[str, list[AppPhone]] = {}
        self.simulations: list[Simulation] = []
        self.errors: list[str] = []

    def register(self) -> None:
        """Register every store's phones (before the workers start: docs/scaling.md)."""
        for plan in self._plans:
            self.phones[plan.id] = register_app_phones(self._api_url, plan.id, self._shoppers)

    def start(self) -> None:
        if not self.phones:
            self.register()
        start = datetime.now(UTC).replace(microsecond=0)
        for i, plan in enumerate(self._plans):
            scenario = chain_scenario(self._shoppers, self._duration_s, seed=7 + i)
            clock = SimClock.starting_at(start)
            fleet = GatewayFleet(
                plan,
                clock,
                self._folder / plan.id,
                broker_host=self._host,
                broker_port=self._port,
                credentials=self._accounts.all_gateway_credentials(),
                window_ms=scenario.window_ms,
            )
            fleet.start()
            self.fleets.append(fleet)
            simulation = Simulation(
                scenario, plan, fleet.nodes, clock, app_phones=self.phones[plan.id]
            )
            self.simulations.append(simulation)
            thread = threading.Thread(
                target=self._run, args=(simulation,), name=f"drive-{plan.id}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def _run(self, simulation: Simulation) -> None:
        try:
            run_paced(simulation, speed=self._speed, stop=self._stop)
            simulation.close_windows()
        except Exception as error:  # a store's simulation failing is a result
            self.errors.append(f"{type(error).__name__}: {error}")

    def stop(self, flush_timeout_s: float = 60.0) -> None:
        """End the simulations, then let each fleet drain its outbox."""
        self._stop.set()
        for thread in self._threads:
            thread.join(60)
        for fleet in self.fleets:
            fleet.stop(flush_timeout_s=flush_timeout_s)

    def stats(self) -> dict[str, Any]:
        return {"stores": len(self._plans), "errors": self.errors[:5]}
