"""A real nats-server cluster as the chain configures it (issue 17).

Three nodes on free ports with their own config and JetStream directories:
the subject mapping puts a gateway's messages in the partition
``partition_of`` computes, a gateway's MQTT account may publish only its own
topics, and the gateway receives the ack a server publishes on core NATS."""

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from omnizone.broker.accounts import BrokerAccounts
from omnizone.broker.nats import NatsCluster, find_nats_server
from omnizone.server.domain.partitions import partition_of

pytestmark = pytest.mark.skipif(find_nats_server() is None, reason="needs nats-server")

STORES = ["rivoli", "lyon", "s000", "s017", "marseille-vieux-port"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsCluster]:
    gateways = {f"{s}-gw": (s, f"pw-{s}-0123456789") for s in STORES}
    accounts = BrokerAccounts("omnizone-server", "server-pw-0123456789", gateways=gateways)
    made = NatsCluster(accounts, nodes=3, partitions=16, run_dir=tmp_path_factory.mktemp("nats"))
    made.start()
    yield made
    made.close()


def _connect(cluster: NatsCluster):  # type: ignore[no-untyped-def]
    import nats

    return nats.connect(
        cluster.urls,
        user=cluster.accounts.server_username,
        password=cluster.accounts.server_password,
    )


def test_the_mapping_puts_each_store_in_the_partition_partition_of_computes(
    cluster: NatsCluster,
) -> None:
    async def run() -> dict[str, str]:
        nc = await _connect(cluster)
        seen: dict[str, str] = {}
        sub = await nc.subscribe("ozp.>")
        await nc.flush()
        for store in STORES:
            await nc.publish(f"omnizone.v1.{store}.{store}-gw.ble", store.encode())
        await nc.flush()
        for _ in STORES:
            msg = await sub.next_msg(timeout=10)
            seen[msg.data.decode()] = msg.subject
        await nc.close()
        return seen

    seen = asyncio.run(run())
    for store in STORES:
        assert seen[store] == f"ozp.{partition_of(store, 16)}.omnizone.v1.{store}.{store}-gw.ble"


def test_a_gateway_publishes_only_its_own_topics_and_hears_its_ack(cluster: NatsCluster) -> None:
    received: list[tuple[str, bytes]] = []
    acked = threading.Event()

    async def listen_and_ack() -> list[str]:
        nc = await _connect(cluster)
        sub = await nc.subscribe("ozp.>")
        await nc.flush()
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id="omnizone-gw-rivoli-rivoli-gw",
            clean_session=False,
            protocol=mqtt.MQTTv311,
        )
        client.username_pw_set("rivoli-gw", "pw-rivoli-0123456789")

        def on_message(_c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
            received.append((msg.topic, bytes(msg.payload)))
            acked.set()

        subscribed = threading.Event()
        client.on_message = on_message
        client.on_subscribe = lambda *_args: subscribed.set()
        # The MQTT session (clean_session=False) lives in JetStream: a cluster
        # just started may take a while to create its streams, and a gateway
        # that hears no SUBACK connects again (as the gateway's client does).
        client.on_connect = lambda c, *_args: c.subscribe("omnizone/v1/rivoli/rivoli-gw/ack", qos=1)
        client.reconnect_delay_set(1, 2)
        client.connect("127.0.0.1", cluster.mqtt_port(1), keepalive=5)
        client.loop_start()
        try:
            for _ in range(6):
                if await asyncio.get_running_loop().run_in_executor(None, subscribed.wait, 10):
                    break
                client.reconnect()
            assert subscribed.is_set(), "the gateway never had its ack subscription granted"
            client.publish("omnizone/v1/rivoli/rivoli-gw/ble", b"mine", qos=1).wait_for_publish(10)
            client.publish("omnizone/v1/lyon/lyon-gw/ble", b"not mine", qos=1).wait_for_publish(10)
            client.publish("omnizone/v1/rivoli/rivoli-gw/config", b"no", qos=1).wait_for_publish(10)
            subjects = []
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                try:
                    msg = await sub.next_msg(timeout=0.5)
                    subjects.append(f"{msg.subject}={msg.data.decode()}")
                except Exception:
                    continue
            # The gateway's subscription reaches the other nodes a moment after
            # its SUBACK (route interest): the server's ack is sent until heard,
            # as a worker re-acknowledges what a gateway still holds.
            deadline = time.monotonic() + 20
            while not acked.is_set() and time.monotonic() < deadline:
                await nc.publish("omnizone.v1.rivoli.rivoli-gw.ack", b"stored")
                await nc.flush()
                await asyncio.get_running_loop().run_in_executor(None, acked.wait, 0.5)
        finally:
            client.loop_stop()
            client.disconnect()
            await nc.close()
        return subjects

    subjects = asyncio.run(listen_and_ack())
    k = partition_of("rivoli", 16)
    assert subjects == [f"ozp.{k}.omnizone.v1.rivoli.rivoli-gw.ble=mine"]
    assert received and set(received) == {("omnizone/v1/rivoli/rivoli-gw/ack", b"stored")}


def test_configs_are_private_and_each_node_has_its_own_store(cluster: NatsCluster) -> None:
    dirs = {Path(p.argv[-1]).parent for p in cluster.processes}
    assert len(dirs) == 3
    for folder in dirs:
        assert (folder / "nats.conf").stat().st_mode & 0o077 == 0
        assert f'store_dir: "{folder / "jetstream"}"' in (folder / "nats.conf").read_text()


def test_workers_split_the_partitions_and_one_that_stops_is_gone_at_once(
    cluster: NatsCluster,
) -> None:
    """Membership is read from the lease bucket's stream (no consumer per
    beat); a worker that stops purges its member key, so the other takes
    every partition without waiting for the TTL."""
    from typing import Any, cast

    from omnizone.server.adapters.nats_link import NatsLink
    from omnizone.server.adapters.nats_worker import NatsWorker

    def worker(name: str) -> tuple[NatsWorker, NatsLink]:
        link = NatsLink(
            cluster.urls,
            name=name,
            username=cluster.accounts.server_username,
            password=cluster.accounts.server_password,
        )
        link.start()
        made = NatsWorker(
            {},
            lambda _stores: cast(Any, object()),
            link,
            worker_id=name,
            partitions=4,
            stream="MEMBERS_TEST",
            lease_ttl_s=30.0,  # longer than the test waits: only the purge can free them
            heartbeat_s=0.3,
        )
        made.start()
        return made, link

    (a, link_a), (b, link_b) = worker("wa"), worker("wb")
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (len(a.held) == len(b.held) == 2):
            time.sleep(0.2)
        assert sorted(a.held + b.held) == [0, 1, 2, 3]
        assert set(a.held).isdisjoint(b.held)
        b.stop()
        assert link_a.run(a._members(), 30) == ["wa"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and a.held != [0, 1, 2, 3]:
            time.sleep(0.2)
        assert a.held == [0, 1, 2, 3]
    finally:
        for w, link in ((a, link_a), (b, link_b)):
            w.stop()
            link.stop()
