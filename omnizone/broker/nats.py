"""A NATS cluster for a retail chain: config files and the nats-server processes.

Pure rendering (``render_node_config``) plus a launcher (``NatsCluster``) that
runs N real ``nats-server`` processes on free loopback ports, each with its own
JetStream store directory and an MQTT listener, clustered by routes. The
accounts are omnizone's (``BrokerAccounts``): one NATS user per gateway whose
permissions cover only its own subjects (MQTT ``omnizone/v1/s/g/ble`` is the
NATS subject ``omnizone.v1.s.g.ble``), and the server user.

Gateway kinds are mapped to partitioned subjects by the server itself
(subject mapping ``{{partition(P,1)}}`` over the store token), so one
partition holds whole stores: ``ozp.<k>.omnizone.v1.<store>.<gw>.<kind>``.
``omnizone.server.domain.partitions.partition_of`` computes the same k.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import tempfile
from dataclasses import dataclass
from pathlib import Path

from omnizone.broker.accounts import BrokerAccounts
from omnizone.broker.files import MESSAGE_SIZE_LIMIT, write_private
from omnizone.broker.process import BrokerError, BrokerProcess, free_port
from omnizone.contract.topics import GATEWAY_KINDS, Kind
from omnizone.lifecycle import Started

NATS_SERVER = "/usr/sbin/nats-server"
PARTITION_PREFIX = "ozp"
"""Partitioned subjects: ``ozp.<partition>.omnizone.v1.<store>.<gateway>.<kind>``."""
DEFAULT_PARTITIONS = 16
CLUSTER_NAME = "omnizone"
ACCOUNT = "CHAIN"


def find_nats_server() -> str | None:
    """The nats-server binary: on PATH or Debian's /usr/sbin."""
    found = shutil.which("nats-server")
    if found:
        return found
    return NATS_SERVER if Path(NATS_SERVER).exists() else None


def subject_of(topic: str) -> str:
    """The NATS subject of an MQTT topic (levels joined by dots)."""
    return topic.replace("/", ".")


def partition_mappings(partitions: int) -> dict[str, str]:
    """Subject mapping for every gateway kind: the store token picks the partition."""
    return {
        f"omnizone.v1.*.*.{kind.value}": (
            f"{PARTITION_PREFIX}.{{{{partition({partitions},1)}}}}"
            f".omnizone.v1.{{{{wildcard(1)}}}}.{{{{wildcard(2)}}}}.{kind.value}"
        )
        for kind in sorted(GATEWAY_KINDS)
    }


@dataclass(frozen=True, slots=True)
class NodePorts:
    client: int
    cluster: int
    mqtt: int
    monitor: int


def _q(value: str) -> str:
    return json.dumps(value)  # NATS config strings accept JSON string syntax


def _gateway_permissions(store: str, gateway: str) -> str:
    base = f"omnizone.v1.{store}.{gateway}"
    # nats-server checks an MQTT client's publish after the subject mapping:
    # its own subjects in any partition (the server picks which), never another's.
    publish = [
        f"{prefix}{base}.{kind.value}"
        for kind in sorted(GATEWAY_KINDS)
        for prefix in ("", f"{PARTITION_PREFIX}.*.")
    ]
    # Its ack and config, and the inbox nats-server makes for an MQTT QoS 1
    # subscription ($MQTT.sub.<id>, delivered from the session's consumer).
    subscribe = [f"{base}.{Kind.ACK.value}", f"{base}.{Kind.CONFIG.value}", "$MQTT.sub.>"]
    return (
        "{ publish: { allow: [" + ", ".join(_q(s) for s in publish) + "] }, "
        "subscribe: { allow: [" + ", ".join(_q(s) for s in subscribe) + "] } }"
    )


def render_node_config(
    name: str,
    ports: NodePorts,
    routes: list[int],
    store_dir: Path,
    accounts: BrokerAccounts,
    *,
    partitions: int = DEFAULT_PARTITIONS,
    host: str = "127.0.0.1",
    max_payload: int = MESSAGE_SIZE_LIMIT,
) -> str:
    """One node's nats-server config: cluster routes, JetStream in its own
    directory, the MQTT listener (it needs JetStream and a server name), the
    chain account with its users, permissions and partition mappings."""
    users = [
        f"{{ user: {_q(accounts.server_username)}, password: {_q(accounts.server_password)} }}"
    ]
    for gateway, (store, password) in sorted(accounts.gateways.items()):
        users.append(
            f"{{ user: {_q(gateway)}, password: {_q(password)}, "
            f"permissions: {_gateway_permissions(store, gateway)} }}"
        )
    mappings = "\n".join(
        f"      {_q(src)}: {_q(dst)}" for src, dst in partition_mappings(partitions).items()
    )
    route_lines = ", ".join(f"nats-route://{host}:{port}" for port in routes)
    return f"""# omnizone chain node {name} (generated)
server_name: {_q(name)}
host: {_q(host)}
port: {ports.client}
http_port: {ports.monitor}
max_payload: {max_payload}
jetstream {{
  store_dir: {_q(str(store_dir))}
  max_memory_store: 268435456
  max_file_store: 4294967296
}}
cluster {{
  name: {_q(CLUSTER_NAME)}
  host: {_q(host)}
  port: {ports.cluster}
  routes: [{route_lines}]
}}
mqtt {{
  host: {_q(host)}
  port: {ports.mqtt}
  ack_wait: "30s"
}}
accounts {{
  {ACCOUNT} {{
    jetstream: enabled
    users: [
      {(chr(10) + "      ").join(users)}
    ]
    mappings: {{
{mappings}
    }}
  }}
  SYS {{ users: [ {{ user: "sys", password: {_q(accounts.server_password + "-sys")} }} ] }}
}}
system_account: SYS
"""


class NatsCluster(Started):
    """N nats-server processes clustered on loopback; restartable node by node.

    ``run_dir`` holds each node's config, JetStream directory and log; a fresh
    temporary directory (removed on ``close``) when not given."""

    def __init__(
        self,
        accounts: BrokerAccounts,
        *,
        nodes: int = 3,
        partitions: int = DEFAULT_PARTITIONS,
        run_dir: Path | None = None,
        host: str = "127.0.0.1",
        binary: str | None = None,
    ) -> None:
        found = binary or find_nats_server()
        if found is None:
            raise BrokerError("nats-server not found (apt install nats-server)")
        self.accounts = accounts
        self.partitions = partitions
        self.host = host
        self._owns = run_dir is None
        self.run_dir = (
            Path(tempfile.mkdtemp(prefix="omnizone-nats-")) if run_dir is None else run_dir
        )
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.names = [f"n{i}" for i in range(nodes)]
        self.ports = [
            NodePorts(free_port(host), free_port(host), free_port(host), free_port(host))
            for _ in self.names
        ]
        self.processes: list[BrokerProcess] = []
        for i, name in enumerate(self.names):
            node_dir = self.run_dir / name
            routes = [p.cluster for j, p in enumerate(self.ports) if j != i]
            config = node_dir / "nats.conf"
            write_private(
                config,
                render_node_config(
                    name,
                    self.ports[i],
                    routes,
                    node_dir / "jetstream",
                    accounts,
                    partitions=partitions,
                    host=host,
                ),
            )
            self.processes.append(
                BrokerProcess(
                    f"nats {name}",
                    [found, "-c", str(config)],
                    host=host,
                    port=self.ports[i].client,
                    log_path=node_dir / "nats.log",
                    extra_ports=(self.ports[i].mqtt,),
                    start_timeout_s=20.0,
                    stop_timeout_s=10.0,
                )
            )

    @property
    def urls(self) -> list[str]:
        """Client URLs of every node (what workers and API nodes connect to)."""
        return [f"nats://{self.host}:{p.client}" for p in self.ports]

    def mqtt_port(self, node: int = 0) -> int:
        return self.ports[node].mqtt

    def start(self) -> None:
        """Start every node (routes need peers: all are started before any waits)."""
        try:
            for process in self.processes:
                process.start()
        except BaseException:
            self.stop()
            raise

    def kill(self, node: int) -> None:
        """SIGKILL one node, as a crash: no flush, no goodbye to its peers."""
        process = self.processes[node]
        pid = process.pid
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        process.stop()

    def restart(self, node: int) -> None:
        self.processes[node].start()

    def stop(self) -> None:
        for process in self.processes:
            process.stop()

    def close(self) -> None:
        self.stop()
        if self._owns:
            shutil.rmtree(self.run_dir, ignore_errors=True)
