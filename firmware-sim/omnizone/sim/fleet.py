"""A store's gateways as the simulator runs them: the real GatewayNode, Outbox
and MqttLink per gateway, each with its own broker credentials, on sim time."""

import time
from collections.abc import Mapping
from pathlib import Path

from omnizone.broker import BrokerAccounts, RunningBroker
from omnizone.gateway import __version__
from omnizone.gateway.mqtt import BrokerAddress, MqttLink
from omnizone.gateway.node import GatewayNode
from omnizone.gateway.outbox import Outbox
from omnizone.sim.engine import SimClock
from omnizone.store import StorePlan


class GatewayFleet:
    @classmethod
    def on_broker(
        cls,
        store: StorePlan,
        clock: SimClock,
        run_dir: Path,
        broker: RunningBroker,
        accounts: BrokerAccounts,
        window_ms: int = 1000,
    ) -> "GatewayFleet":
        """Every gateway of the store on a broker this process started, each
        logging in with its own account."""
        return cls(
            store,
            clock,
            run_dir,
            broker_host=broker.host,
            broker_port=broker.port,
            credentials=accounts.all_gateway_credentials(),
            window_ms=window_ms,
        )

    def __init__(
        self,
        store: StorePlan,
        clock: SimClock,
        run_dir: Path,
        *,
        broker_host: str,
        broker_port: int,
        credentials: Mapping[str, tuple[str, str]],
        window_ms: int = 1000,
        tls_ca: str | None = None,
        health_interval_ms: int = 30_000,
    ) -> None:
        self.store = store
        self.nodes: dict[str, GatewayNode] = {}
        self.links: dict[str, MqttLink] = {}
        self.outboxes: dict[str, Outbox] = {}
        version = f"{__version__}+sim"
        for gateway in store.gateways:
            if gateway.id not in credentials:
                raise ValueError(f"no broker credentials for gateway {gateway.id!r}")
            username, password = credentials[gateway.id]
            outbox = Outbox(run_dir / f"outbox-{gateway.id}.db")
            link = MqttLink(
                BrokerAddress(broker_host, broker_port, username, password, tls_ca),
                store.id,
                gateway.id,
                outbox,
                clock,
                version,
            )
            self.outboxes[gateway.id] = outbox
            self.links[gateway.id] = link
            node = self.nodes[gateway.id] = GatewayNode(
                store.id,
                gateway.id,
                outbox,
                window_ms=window_ms,
                health_interval_ms=health_interval_ms,
                clock=clock,
                on_enqueued=link.notify,
                version=version,
            )
            link.on_config(node.apply_config_message)

    def start(self, connect_timeout_s: float = 15.0) -> None:
        for link in self.links.values():
            link.start()
        end = time.monotonic() + connect_timeout_s
        while not all(link.connected for link in self.links.values()):
            if time.monotonic() > end:
                failing = {g: link for g, link in self.links.items() if not link.connected}
                first, link = next(iter(failing.items()))
                address = link.broker
                reason = link.last_error or "no answer: nothing listening, or a firewall"
                for each in self.links.values():
                    each.stop(flush_timeout_s=0)
                raise ConnectionError(
                    f"{len(failing)} of {len(self.links)} gateways could not connect to the broker "
                    f"at {address.host}:{address.port} within {connect_timeout_s:.0f} s "
                    f"({first}: {reason}); check that the broker runs there and that the "
                    "accounts file holds its passwords"
                )
            time.sleep(0.05)

    def flush(self, timeout_s: float) -> bool:
        end = time.monotonic() + timeout_s
        return all(link.flush(max(0.0, end - time.monotonic())) for link in self.links.values())

    def stop(self, flush_timeout_s: float = 10.0) -> None:
        self.flush(flush_timeout_s)
        for link in self.links.values():
            link.stop(flush_timeout_s=0)
        for outbox in self.outboxes.values():
            outbox.close()

    @property
    def published(self) -> int:
        """Messages known to have arrived: outbox rows the server acknowledged,
        status messages the broker acknowledged."""
        return sum(len(link.acknowledged_seqs) for link in self.links.values())

    @property
    def backlog(self) -> int:
        return sum(outbox.depth() for outbox in self.outboxes.values())

    def acknowledged_keys(self) -> set[tuple[str, int]]:
        return {(g, seq) for g, link in self.links.items() for seq in link.acknowledged_seqs}
