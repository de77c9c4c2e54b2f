"""The gateway's link on a real broker: a row leaves the outbox on the server's
ack only, never on the broker's PUBACK, and what is not acknowledged is sent again."""

import contextlib
import json
import queue
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from omnizone.broker import RunningBroker
from omnizone.contract import (
    AckMessage,
    HealthMessage,
    Kind,
    ack_topic,
    dump_ack,
    dump_message,
    topic_for,
)
from omnizone.gateway.mqtt import BrokerAddress, MqttLink
from omnizone.gateway.outbox import Outbox
from omnizone.server.adapters.mqtt_ingest import AckRuns
from omnizone.server.service.ports import ReceivedKey
from tests.broker.conftest import WAIT_S, MqttProbe
from tests.fault.link import LinkProxy

STORE, GATEWAY = "paris-rivoli", "gw-menswear"
T0 = 1_795_251_600_000


def _until(condition: Callable[[], bool]) -> bool:
    end = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > end:
            return False
        time.sleep(0.02)
    return True


def _health(outbox: Outbox) -> int:
    return outbox.append(
        lambda seq: (
            topic_for(STORE, GATEWAY, Kind.HEALTH),
            dump_message(
                HealthMessage(
                    store=STORE,
                    gateway=GATEWAY,
                    epoch=outbox.epoch,
                    seq=seq,
                    sent_ms=T0,
                    uptime_s=1,
                    outbox_depth=0,
                    outbox_dropped=0,
                    version="test",
                )
            ),
        )
    )


def _link(broker: RunningBroker, outbox: Outbox, host: str, port: int, ack_s: float) -> MqttLink:
    """The gateway's link to ``host:port`` (the broker, or a forwarder in front of it)."""
    user, password = broker.accounts.gateway_credentials(GATEWAY)
    return MqttLink(
        BrokerAddress(host, port, user, password),
        STORE,
        GATEWAY,
        outbox,
        lambda: T0,
        "test",
        ack_timeout_s=ack_s,
        max_ack_timeout_s=2 * ack_s,
    )


@pytest.mark.parametrize("kind", ["mosquitto", "embedded"])
def test_rows_leave_on_the_servers_ack_only_and_unacked_ones_are_sent_again(
    broker_factory: Callable[..., RunningBroker], tmp_path: Path, kind: str
) -> None:
    broker = broker_factory(kind)
    server = MqttProbe(broker, broker.accounts.server_username, broker.accounts.server_password)
    server.connect()
    server.subscribe(topic_for(STORE, GATEWAY, Kind.HEALTH))
    outbox = Outbox(tmp_path / "outbox.db")
    seqs = [_health(outbox) for _ in range(3)]
    link = _link(broker, outbox, broker.host, broker.port, 0.5)
    link.start()
    try:
        got = [json.loads(server.next_message().payload)["seq"] for _ in seqs]
        assert got == seqs  # the broker has them all, and PUBACKed them...
        assert outbox.depth() == 3  # ...but only the server may say they are safe

        def ack(epoch: int, first: int, last: int) -> None:
            body = AckMessage(
                store=STORE,
                gateway=GATEWAY,
                epoch=epoch,
                first_seq=first,
                last_seq=last,
                issued_ms=T0,
            )
            server.publish(ack_topic(STORE, GATEWAY), dump_ack(body), retain=True)

        ack(outbox.epoch + 1, 0, 2)  # another outbox's: ignored
        assert _until(lambda: link.acks_ignored == 1)
        assert outbox.depth() == 3
        ack(outbox.epoch, 0, 1)
        assert _until(lambda: outbox.depth() == 1)
        assert sorted(link.acknowledged_seqs) == [0, 1, 3]  # rows 0, 1 and the birth
        # Row 2 was never acknowledged: it comes again, alone, after the timeout.
        assert json.loads(server.next_message().payload)["seq"] == 2
        assert link.resends >= 1
        ack(outbox.epoch, 2, 2)
        assert link.flush(WAIT_S)
    finally:
        link.stop()
        outbox.close()
        server.disconnect()


def test_the_servers_runs_grow_in_order_and_a_new_run_hands_back_the_old() -> None:
    runs = AckRuns()
    for seq in (5, 6, 7):
        assert runs.note(ReceivedKey(STORE, GATEWAY, seq, 9)) is None
    assert runs.note(ReceivedKey(STORE, GATEWAY, 4, 9)) is None  # touches the run: grows it
    [ack] = runs.take()
    assert (ack.epoch, ack.first_seq, ack.last_seq) == (9, 4, 7)
    assert runs.take() == []
    assert runs.note(ReceivedKey(STORE, GATEWAY, 6, 9)) is None  # a duplicate inside: re-told
    assert [(a.first_seq, a.last_seq) for a in runs.take()] == [(4, 7)]
    runs.note(ReceivedKey(STORE, GATEWAY, 8, 9))
    replaced = runs.note(ReceivedKey(STORE, GATEWAY, 100, 9))  # a birth far above
    assert replaced is not None and (replaced.first_seq, replaced.last_seq) == (4, 8)
    assert [(a.first_seq, a.last_seq) for a in runs.take()] == [(100, 100)]
    runs.note(ReceivedKey(STORE, GATEWAY, 101, 9))
    replaced = runs.note(ReceivedKey(STORE, GATEWAY, 0, 10))  # a new epoch: a new run
    assert replaced is not None and (replaced.epoch, replaced.last_seq) == (9, 101)
    assert [(a.epoch, a.first_seq) for a in runs.take()] == [(10, 0)]


@pytest.mark.parametrize("kind", ["mosquitto", "embedded"])
def test_a_publish_the_acl_denies_stays_in_the_outbox(
    broker_factory: Callable[..., RunningBroker], tmp_path: Path, kind: str
) -> None:
    """MQTT 3.1.1 PUBACKs a publish the ACL drops: the row must not leave on that."""
    broker = broker_factory(kind)
    server = MqttProbe(broker, broker.accounts.server_username, broker.accounts.server_password)
    server.connect()
    server.subscribe("omnizone/v1/#")
    outbox = Outbox(tmp_path / "outbox.db")
    # A row on a topic this gateway may not write (a misconfigured ACL, say).
    denied = outbox.append(lambda seq: (topic_for(STORE, "gw-denim", Kind.HEALTH), b"{}"))
    allowed = _health(outbox)
    user, password = broker.accounts.gateway_credentials(GATEWAY)
    link = MqttLink(
        BrokerAddress(broker.host, broker.port, user, password),
        STORE,
        GATEWAY,
        outbox,
        lambda: T0,
        "test",
        ack_timeout_s=0.3,
        max_ack_timeout_s=0.6,
    )
    link.start()
    try:
        seen: list[int] = []
        while allowed not in seen:  # the allowed one arrives; the broker dropped the other
            message = server.next_message()
            if message.topic.endswith("/health"):
                seen.append(json.loads(message.payload)["seq"])
        assert denied not in seen
        ack = AckMessage(
            store=STORE,
            gateway=GATEWAY,
            epoch=outbox.epoch,
            first_seq=allowed,
            last_seq=allowed,
            issued_ms=T0,
        )
        server.publish(ack_topic(STORE, GATEWAY), dump_ack(ack), retain=True)
        assert _until(lambda: outbox.depth() == 1)
        assert _until(lambda: link.resends >= 2)  # tried again, bounded by the back-off
        assert [entry.seq for entry in outbox.pending()] == [denied]  # still kept
    finally:
        link.stop(flush_timeout_s=0)
        outbox.close()
        server.disconnect()


def test_a_link_down_for_a_while_leaves_no_hole_in_the_gateways_sequence(
    broker_factory: Callable[..., RunningBroker], tmp_path: Path
) -> None:
    """The store's uplink drops and turns the gateway's reconnects away for a
    while. Only a connection the broker accepted has a will there: a try that
    never got that far must not use up sequence numbers, or the server counts
    gaps (lost messages) where nothing was lost."""
    broker = broker_factory("mosquitto")
    server = MqttProbe(broker, broker.accounts.server_username, broker.accounts.server_password)
    server.connect()
    server.subscribe("omnizone/v1/#")
    outbox = Outbox(tmp_path / "outbox.db")
    for _ in range(3):
        _health(outbox)
    uplink = LinkProxy(broker.host, broker.port)
    link = _link(broker, outbox, uplink.host, uplink.port, 0.5)
    seen: set[int] = set()

    def collect_until(done: Callable[[], bool]) -> None:
        end = time.monotonic() + WAIT_S
        while not done():
            assert time.monotonic() < end, f"seen {sorted(seen)}"
            with contextlib.suppress(queue.Empty):
                message = server.messages.get(timeout=0.1)
                if message.topic.split("/")[3] == GATEWAY:
                    seen.add(json.loads(message.payload)["seq"])

    link.start()
    try:
        collect_until(lambda: {0, 1, 2} <= seen)
        uplink.cut()
        later = [_health(outbox) for _ in range(3)]
        assert _until(lambda: uplink.refused >= 3)  # tries the link turned away
        uplink.restore()
        collect_until(lambda: set(later) <= seen and link.connects >= 2)
    finally:
        link.stop()
        uplink.close()
    last_will = link._will_seq  # the offline status stop() published
    collect_until(lambda: last_will in seen)
    outbox.close()
    server.disconnect()
    assert seen == set(range(max(seen) + 1)), f"holes: {sorted(set(range(max(seen))) - seen)}"
