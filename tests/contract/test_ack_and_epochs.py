"""The ack topic and message, epochs in the envelope, sequence bounds."""

import json

import pytest

from omnizone.contract import (
    MAX_SEQ,
    AckMessage,
    ContractError,
    Kind,
    ack_topic,
    dump_ack,
    dump_message,
    gateway_read_patterns,
    parse_ack,
    parse_message,
    server_write_patterns,
    topic_for,
)

STORE, GW = "paris-rivoli", "gw-entrance"
T0 = 1_767_225_600_000
HEALTH = {
    "store": STORE,
    "gateway": GW,
    "kind": "health",
    "seq": 4,
    "sent_ms": T0,
    "uptime_s": 1.0,
    "outbox_depth": 0,
    "outbox_dropped": 0,
    "version": "1",
}


def _health(**fields: object) -> bytes:
    return json.dumps({**HEALTH, **fields}).encode()


def test_the_epoch_is_read_and_written_and_absent_means_zero() -> None:
    topic = topic_for(STORE, GW, Kind.HEALTH)
    assert parse_message(topic, _health()).epoch == 0
    message = parse_message(topic, _health(epoch=MAX_SEQ))
    assert message.epoch == MAX_SEQ
    assert json.loads(dump_message(message))["epoch"] == MAX_SEQ


@pytest.mark.parametrize(
    "fields",
    [{"seq": -1}, {"seq": 2**63}, {"epoch": -1}, {"epoch": 2**63}, {"epoch": "1"}],
)
def test_numbers_outside_signed_64_bits_are_refused(fields: dict[str, object]) -> None:
    with pytest.raises(ContractError):
        parse_message(topic_for(STORE, GW, Kind.HEALTH), _health(**fields))


def test_the_ack_round_trips_on_its_own_topic() -> None:
    ack = AckMessage(store=STORE, gateway=GW, epoch=9, first_seq=3, last_seq=7, issued_ms=T0)
    assert ack_topic(STORE, GW) == "omnizone/v1/paris-rivoli/gw-entrance/ack"
    assert parse_ack(ack_topic(STORE, GW), dump_ack(ack)) == ack
    assert ack.covers(9, 3) and ack.covers(9, 7)
    assert not ack.covers(9, 8) and not ack.covers(8, 5)


@pytest.mark.parametrize(
    ("topic", "body", "reason"),
    [
        (ack_topic(STORE, "gw-denim"), {}, "differs from the topic"),
        (topic_for(STORE, GW, Kind.CONFIG), {}, "not 'config'"),
        (ack_topic(STORE, GW), {"first_seq": 8}, "first_seq 8 is above last_seq 7"),
        (ack_topic(STORE, GW), {"last_seq": 2**63}, "last_seq"),
    ],
)
def test_a_wrong_ack_is_refused(topic: str, body: dict[str, object], reason: str) -> None:
    ack = {
        "v": 1,
        "store": STORE,
        "gateway": GW,
        "epoch": 9,
        "first_seq": 3,
        "last_seq": 7,
        "issued_ms": T0,
    }
    with pytest.raises(ContractError, match=reason):
        parse_ack(topic, json.dumps({**ack, **body}).encode())


def test_only_the_server_writes_acks_and_a_gateway_reads_only_its_own() -> None:
    assert gateway_read_patterns(STORE, GW) == [
        topic_for(STORE, GW, Kind.CONFIG),
        ack_topic(STORE, GW),
    ]
    assert "omnizone/v1/+/+/ack" in server_write_patterns()
