"""Fault injection on real processes (issue 12): kill -9 the broker with the
server up and with it down, kill -9 the server mid-stream, replace a
gateway's outbox, build a backlog while the server is away, and send hostile
sequence numbers while the API keeps answering. Each test asserts at the
server that every event the gateways produced was stored exactly once."""

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from omnizone.contract import MAX_SEQ, Kind, subscription_filter, topic_for
from omnizone.contract.timefmt import wall_clock_ms
from tests.fault.conftest import WAIT_S, Fleet, Gateway, sigkill_broker, until

pytestmark = [pytest.mark.fault, pytest.mark.e2e]


@contextmanager
def streaming(*gateways: Gateway, every_s: float = 0.01) -> Iterator[None]:
    """The gateways keep producing taps (one each per tick) until the block ends."""
    stop = threading.Event()

    def produce() -> None:
        while not stop.is_set():
            for gateway in gateways:
                gateway.tap()
            stop.wait(every_s)  # pacing the production, not waiting for anything

    thread = threading.Thread(target=produce, name="taps", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(30)


def _connected(*gateways: Gateway) -> None:
    assert until(lambda: all(g.link.connected for g in gateways), 30)


class _Watcher:
    """Another subscriber on the gateways' nfc topics (not the server): once it
    has seen a message, the broker has it, and has PUBACKed it to the gateway."""

    def __init__(self, fleet: Fleet) -> None:
        user, password = fleet.accounts.server_credentials
        self.seen: set[str] = set()
        self._lock = threading.Lock()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id="fault-watcher",
            protocol=mqtt.MQTTv311,
        )
        self.client.username_pw_set(user, password)
        self.subscribed = threading.Event()
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *_a: c.subscribe(subscription_filter(kind="nfc"), 1)
        self.client.on_subscribe = lambda *_a: self.subscribed.set()
        self.client.connect(fleet.broker.host, fleet.broker.port)
        self.client.loop_start()
        assert self.subscribed.wait(30)

    def _on_message(self, _c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            for item in json.loads(message.payload).get("items", []):
                self.seen.add(item["uid"])

    def has(self, uids: list[str]) -> bool:
        with self._lock:
            return self.seen >= set(uids)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_kill_9_the_broker_with_the_server_up(fleet: Fleet) -> None:
    fleet.server.start()
    a, b = fleet.gateway("gw-entrance"), fleet.gateway("gw-shoes")
    _connected(a, b)
    with streaming(a, b):
        assert until(lambda: len(fleet.server.tap_counts()) >= 100)
        sigkill_broker(fleet.broker)
        produced_while_down = len(fleet.produced())
        fleet.broker.start()
        assert until(lambda: len(fleet.server.tap_counts()) >= produced_while_down + 100)
    fleet.assert_each_event_stored_exactly_once()


def test_kill_9_the_broker_with_the_server_down(fleet: Fleet) -> None:
    """The broker PUBACKed them all and then lost them: the gateways still have them."""
    fleet.server.start()
    a, b = fleet.gateway("gw-entrance"), fleet.gateway("gw-shoes")
    _connected(a, b)
    a.tap(10)
    b.tap(10)
    assert until(fleet.all_arrived)
    fleet.server.stop()
    watcher = _Watcher(fleet)
    try:
        a.tap(300)
        b.tap(300)
        backlog = a.produced[10:] + b.produced[10:]
        assert until(lambda: watcher.has(backlog))  # on the broker, PUBACKed
    finally:
        watcher.close()
    # Only the server's ack frees a row: none came, so none has left.
    assert a.outbox.depth() == b.outbox.depth() == 300
    sigkill_broker(fleet.broker)  # before its autosave: what it queued is gone
    fleet.broker.start()
    fleet.server.start()
    fleet.assert_each_event_stored_exactly_once()


def test_kill_9_the_server_mid_stream(fleet: Fleet) -> None:
    fleet.server.start()
    a, b = fleet.gateway("gw-entrance"), fleet.gateway("gw-checkout")
    _connected(a, b)
    with streaming(a, b):
        assert until(lambda: len(fleet.server.tap_counts()) >= 100)
        fleet.server.kill()
        killed_at = len(fleet.produced())
        assert until(lambda: len(fleet.produced()) >= killed_at + 100)  # trading on
        fleet.server.start()  # the same database file
        restarted_at = len(fleet.produced())
        assert until(lambda: len(fleet.server.tap_counts()) >= restarted_at)
    assert fleet.server.starts == 2
    fleet.assert_each_event_stored_exactly_once()


def test_a_replaced_outbox_is_a_new_epoch_and_both_are_stored(fleet: Fleet) -> None:
    fleet.server.start()
    first = fleet.gateway("gw-entrance", outbox="sd-card-1.db")
    _connected(first)
    first.tap(50)
    assert until(fleet.all_arrived)
    first.stop(flush_timeout_s=WAIT_S)
    # The SD card is replaced: a new outbox file, numbering from 0 again.
    second = fleet.gateway("gw-entrance", outbox="sd-card-2.db")
    assert second.outbox.epoch != first.outbox.epoch
    _connected(second)
    second.tap(50)
    fleet.assert_each_event_stored_exactly_once()
    assert fleet.server.epochs("gw-entrance") == {first.outbox.epoch, second.outbox.epoch}
    overlap = fleet.server._query(
        "SELECT COUNT(*) FROM (SELECT seq FROM received_messages WHERE gateway = 'gw-entrance'"
        " GROUP BY seq HAVING COUNT(DISTINCT epoch) = 2)"
    )
    assert overlap[0][0] >= 50  # the same numbers, told apart by their epochs


def test_a_backlog_while_the_server_is_away_stays_in_the_outbox_then_drains(
    fleet: Fleet,
) -> None:
    fleet.server.start()
    gateways = [fleet.gateway(g, max_messages=2_000) for g in ("gw-entrance", "gw-denim")]
    _connected(*gateways)
    for gateway in gateways:
        gateway.tap(5)
    assert until(fleet.all_arrived)
    fleet.server.stop()
    for gateway in gateways:
        gateway.tap(1_500)
    # Three quarters of each outbox: held on the gateway, not only on the broker.
    assert [g.outbox.depth() for g in gateways] == [1_500, 1_500]
    assert [g.outbox.dropped() for g in gateways] == [0, 0]
    fleet.server.start()
    fleet.assert_each_event_stored_exactly_once()


def _nfc(gateway: str, seq: object, uid: str, epoch: object = 7) -> bytes:
    body = {
        "v": 1,
        "store": "paris-rivoli",
        "gateway": gateway,
        "epoch": epoch,
        "seq": seq,
        "sent_ms": wall_clock_ms(),
        "kind": "nfc",
        "items": [{"tap_point": "tap-fault", "uid": uid, "at_ms": wall_clock_ms()}],
    }
    return json.dumps(body).encode()


def test_hostile_sequence_numbers_while_the_api_answers(fleet: Fleet) -> None:
    fleet.server.start()
    honest = fleet.gateway("gw-shoes")
    _connected(honest)
    user, password = fleet.accounts.gateway_credentials("gw-denim")
    rogue = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id="rogue-gw-denim",
        protocol=mqtt.MQTTv311,
    )
    rogue.username_pw_set(user, password)
    rogue.connect(fleet.broker.host, fleet.broker.port)
    rogue.loop_start()
    topic = topic_for("paris-rivoli", "gw-denim", Kind.NFC)
    accepted: list[str] = []  # in range: stored (once), however odd
    refused = 0
    health_failures: list[str] = []
    probing = threading.Event()

    def probe_health() -> None:
        while not probing.is_set():
            try:  # generous: a failure bound, not a performance threshold
                httpx.get(f"{fleet.server.url}/health", timeout=10).raise_for_status()
            except httpx.HTTPError as error:
                health_failures.append(repr(error))
            probing.wait(0.05)

    prober = threading.Thread(target=probe_health, daemon=True)
    prober.start()
    try:
        with streaming(honest):
            rounds = [
                (0, "0a0000000001", True),
                (10**9, "0a0000000002", True),  # froze ingest for 23 s before
                (10**12, "0a0000000003", True),  # froze it for over 20 minutes
                (10**12, "0a0000000003", True),  # repeated: a duplicate
                (1, "0a0000000004", True),  # back to normal: re-bases
                (MAX_SEQ, "0a0000000005", True),
                (2, "0a0000000006", True),
                (-1, "0a0000000007", False),
                (2**63, "0a0000000008", False),
                (10**30, "0a0000000009", False),
            ]
            for seq, uid, in_range in rounds:
                rogue.publish(topic, _nfc("gw-denim", seq, uid), qos=1).wait_for_publish(10)
                if in_range:
                    if uid not in accepted:
                        accepted.append(uid)
                else:
                    refused += 1
            assert until(lambda: fleet.all_arrived(accepted))
        with fleet.server.api() as api:
            assert until(lambda: api.get("/api/v1/ingest/stats").json()["dead_lettered"] >= refused)
            stats = api.get("/api/v1/ingest/stats").json()
            letters = api.get("/api/v1/dead-letters").json()
    finally:
        probing.set()
        prober.join(30)
        rogue.disconnect()
        rogue.loop_stop()
    assert health_failures == []
    assert stats["dead_lettered"] == refused
    reasons = " ".join(str(letter.get("reason")) for letter in letters)
    assert "greater than or equal to 0" in reasons
    assert "less than or equal to 9223372036854775807" in reasons
    # Each far jump counts as one gap, never as a trillion; the honest gateway
    # was complete.
    assert stats["gaps"] <= 3
    fleet.assert_each_event_stored_exactly_once(also=accepted)
