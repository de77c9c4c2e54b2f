"""MQTT ingest against a real Mosquitto (password auth) and a real SQLite file."""

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy.exc import OperationalError

from omnizone.server.adapters.db import SqlRepository
from omnizone.server.adapters.mqtt_ingest import MqttIngest
from omnizone.server.service.ingest import IngestService
from omnizone.store import StorePlan

from .conftest import DEVICE_A, DEVICE_B, STORE, T0, Broker, ble

pytestmark = pytest.mark.e2e

WAIT_S = 20.0  # only bounds a hang; no assertion depends on timing


def eventually(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


@pytest.fixture
def gateway_client(broker: Broker) -> Iterator[mqtt.Client]:
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id="gw-test",
        protocol=mqtt.MQTTv311,
    )
    client.username_pw_set("gw-test", broker.users["gw-test"])
    client.connect(broker.host, broker.port)
    client.loop_start()
    yield client
    client.disconnect()
    client.loop_stop()


def publish(client: mqtt.Client, topic: str, payload: bytes) -> None:
    info = client.publish(topic, payload, qos=1)
    info.wait_for_publish(WAIT_S)
    assert info.is_published()


def ingest_for(broker: Broker, service: IngestService, **kwargs: Any) -> MqttIngest:
    return MqttIngest(
        service,
        host=broker.host,
        port=broker.port,
        username="omnizone-server",
        password=broker.users["omnizone-server"],
        client_id="omnizone-server-test",
        **kwargs,
    )


def test_messages_duplicates_and_garbage_through_a_real_broker(
    broker: Broker, service: IngestService, repo: SqlRepository, gateway_client: mqtt.Client
) -> None:
    ingest = ingest_for(broker, service)
    ingest.start()
    try:
        assert ingest.wait_connected(WAIT_S)
        first = ble("gw-shoes", 0, T0, {DEVICE_A: -60})
        publish(gateway_client, *first)
        publish(gateway_client, *ble("gw-shoes", 1, T0 + 1000, {DEVICE_A: -60, DEVICE_B: -70}))
        publish(gateway_client, *first)  # a redelivery
        publish(gateway_client, "omnizone/v1/paris-rivoli/gw-shoes/ble", b"\xff garbage")
        publish(gateway_client, *ble("gw-shoes", 2, T0 + 2000, {DEVICE_A: -60}))
        eventually(lambda: ingest.counters.handled == 5, "five messages handled")
        eventually(lambda: ingest.counters.acknowledged == 5, "five acknowledgements")
    finally:
        ingest.stop()
    stats = repo.ingest_stats()
    assert (stats.ingested, stats.duplicates, stats.dead_lettered, stats.gaps) == (3, 1, 1, 0)
    [letter] = repo.dead_letters(10)
    assert letter.payload == b"\xff garbage" and "not JSON" in letter.reason
    assert repo.presence_by_zone(STORE) == {"shoes": 2}
    assert not ingest.connected
    assert not [t for t in threading.enumerate() if t.name == "omnizone-ingest"]


class _DownRepository(SqlRepository):
    def transaction(self) -> Any:
        raise OperationalError("BEGIN", {}, Exception("database is down"))


def test_unstored_message_is_not_acknowledged_and_comes_back(
    plan: StorePlan, broker: Broker, repo: SqlRepository, gateway_client: mqtt.Client
) -> None:
    down = IngestService({plan.id: plan}, _DownRepository(repo.engine))
    first = ingest_for(broker, down, retry_delay_s=0.01)
    first.start()
    assert first.wait_connected(WAIT_S)
    publish(gateway_client, *ble("gw-shoes", 0, T0, {DEVICE_A: -60}))
    eventually(lambda: first.counters.storage_errors >= 2, "storage retries")
    first.stop()
    assert first.counters.acknowledged == 0 and repo.ingest_stats().ingested == 0

    # Same client id, persistent session: the broker redelivers the unacked message.
    healthy = IngestService({plan.id: plan}, repo)
    second = ingest_for(broker, healthy)
    second.start()
    try:
        eventually(lambda: second.counters.acknowledged == 1, "the redelivered message")
    finally:
        second.stop()
    assert repo.ingest_stats().ingested == 1
    assert repo.presence_by_zone(STORE) == {"shoes": 1}


def test_messages_that_arrive_together_are_stored_in_batches(
    plan: StorePlan, broker: Broker, repo: SqlRepository, gateway_client: mqtt.Client
) -> None:
    """A burst is handled in fewer transactions than messages, none larger than
    ``batch_max``; every message is stored once and acknowledged, and the
    gateway's retained ack covers the whole run."""
    service = IngestService({plan.id: plan}, repo)
    ingest = ingest_for(broker, service, batch_max=4, batch_wait_ms=500)
    acks: list[bytes] = []
    gateway_client.on_message = lambda _c, _u, msg: acks.append(bytes(msg.payload))
    gateway_client.subscribe("omnizone/v1/paris-rivoli/gw-shoes/ack", qos=1)
    ingest.start()
    try:
        assert ingest.wait_connected(WAIT_S)
        for seq in range(10):
            info = gateway_client.publish(
                *ble("gw-shoes", seq, T0 + seq * 1000, {DEVICE_A: -60}), qos=1
            )
        info.wait_for_publish(WAIT_S)
        eventually(lambda: ingest.counters.acknowledged == 10, "ten acknowledgements")
        eventually(lambda: any(b'"last_seq":9' in a for a in acks), "the gateway's ack up to 9")
    finally:
        ingest.stop()
    assert ingest.counters.handled == 10
    assert 3 <= ingest.counters.batches < 10
    assert 1 < ingest.counters.largest_batch <= 4
    assert repo.ingest_stats().ingested == 10
    assert b'"first_seq":0' in acks[-1]
