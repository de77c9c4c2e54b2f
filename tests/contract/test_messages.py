"""Message schemas: every kind round-trips, and every way of breaking the
contract is refused with a ContractError that names the field."""

import json
from collections.abc import Callable
from typing import Any

import pytest

from omnizone.contract import (
    SCHEMA_VERSION,
    BleMessage,
    ContractError,
    GatewayMessage,
    dump_message,
    parse_message,
    topic_for,
)
from omnizone.contract.ids import (
    altbeacon_key,
    check_device_key,
    eddystone_uid_key,
    eid_key,
    ibeacon_key,
)
from omnizone.contract.messages import MAX_PAYLOAD_BYTES
from omnizone.contract.topics import GATEWAY_KINDS

Wire = Callable[[str], tuple[str, dict[str, Any]]]
KINDS = sorted(GATEWAY_KINDS)


def _refused(topic: str, body: dict[str, Any] | bytes) -> ContractError:
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    with pytest.raises(ContractError) as caught:
        parse_message(topic, payload)
    return caught.value


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_round_trips(kind: str, messages: dict[str, GatewayMessage]) -> None:
    message = messages[kind]
    topic = topic_for(message.store, message.gateway, kind)
    payload = dump_message(message)
    parsed = parse_message(topic, payload)
    assert parsed == message
    assert type(parsed) is type(message)
    assert dump_message(parsed) == payload


@pytest.mark.parametrize("kind", KINDS)
def test_wire_form_carries_version_kind_and_milliseconds(
    kind: str, messages: dict[str, GatewayMessage]
) -> None:
    body = json.loads(dump_message(messages[kind]))
    assert body["v"] == SCHEMA_VERSION == 1
    assert body["kind"] == kind
    assert isinstance(body["sent_ms"], int)
    assert None not in body.values(), "unset optionals are left out, not sent as null"


def test_optional_fields_may_be_left_out(wire: Wire) -> None:
    topic, body = wire("ble")
    del body["items"][0]["tx_power"]
    parsed = parse_message(topic, json.dumps(body).encode())
    assert isinstance(parsed, BleMessage)
    assert parsed.items[0].tx_power is None


def test_v_may_be_omitted_and_defaults_to_the_current_version(wire: Wire) -> None:
    topic, body = wire("status")
    del body["v"]
    assert parse_message(topic, json.dumps(body).encode()).v == SCHEMA_VERSION


def test_non_json_is_refused() -> None:
    error = _refused(topic_for("s", "g", "ble"), b"\x00not json{")
    assert "payload is not JSON" in str(error)
    assert error.topic == "omnizone/v1/s/g/ble"
    assert str(error).startswith("omnizone/v1/s/g/ble: ")


def test_invalid_utf8_is_refused() -> None:
    assert "not JSON" in str(_refused(topic_for("s", "g", "ble"), b'{"v": "\xff"}'))


@pytest.mark.parametrize("version", [2, 0, "1", None, True, 1.0])
def test_other_schema_versions_are_refused(wire: Wire, version: object) -> None:
    topic, body = wire("ble")
    body["v"] = version
    error = _refused(topic, body)
    if version is None:  # null is not "absent": it is a wrong value for v
        assert "v:" in error.reason
    else:
        assert "schema version" in error.reason or "v:" in error.reason
    if version == 2:
        assert error.reason == "schema version 2 is not supported (this is v1)"


def test_unknown_kind_is_refused(wire: Wire) -> None:
    topic, body = wire("ble")
    body["kind"] = "wifi"
    error = _refused(topic, body)
    assert "'wifi'" in error.reason and "kind" in error.reason


def test_missing_kind_is_refused(wire: Wire) -> None:
    topic, body = wire("ble")
    del body["kind"]
    assert "kind" in _refused(topic, body).reason


@pytest.mark.parametrize("kind", KINDS)
def test_extra_fields_are_refused(kind: str, wire: Wire) -> None:
    topic, body = wire(kind)
    body["mac"] = "aa:bb:cc:dd:ee:ff"
    error = _refused(topic, body)
    assert f"{kind}.mac: Extra inputs are not permitted" in error.reason


def test_extra_fields_inside_items_are_refused(wire: Wire) -> None:
    topic, body = wire("ble")
    body["items"][1]["address"] = "x"
    assert "ble.items.1.address: Extra inputs are not permitted" in _refused(topic, body).reason


@pytest.mark.parametrize("kind", KINDS)
def test_missing_seq_is_refused(kind: str, wire: Wire) -> None:
    topic, body = wire(kind)
    del body["seq"]
    assert f"{kind}.seq: Field required" in _refused(topic, body).reason


def test_negative_seq_is_refused(wire: Wire) -> None:
    topic, body = wire("ble")
    body["seq"] = -1
    reason = _refused(topic, body).reason
    assert "ble.seq" in reason and "greater than or equal to 0" in reason


@pytest.mark.parametrize("seq", [True, "5", 1.5, None])
def test_seq_must_be_a_json_integer(wire: Wire, seq: object) -> None:
    """`true` or `"5"` for a sequence number is a broken gateway, not a value to coerce."""
    topic, body = wire("ble")
    body["seq"] = seq
    assert "ble.seq" in _refused(topic, body).reason


def test_seconds_instead_of_milliseconds_is_refused(wire: Wire) -> None:
    topic, body = wire("ble")
    body["sent_ms"] = 1_767_225_600  # epoch *seconds*
    reason = _refused(topic, body).reason
    assert "ble.sent_ms" in reason and "greater than or equal to" in reason


def test_seconds_inside_items_are_refused_too(wire: Wire) -> None:
    topic, body = wire("nfc")
    body["items"][0]["at_ms"] = 1_767_225_600
    assert "nfc.items.0.at_ms" in _refused(topic, body).reason


@pytest.mark.parametrize(
    "device",
    [
        "aa:bb:cc:dd:ee:ff",
        "AA-BB-CC-DD-EE-FF",
        "ibeacon:aa:bb:cc:dd:ee:ff",
        "mac:AA:BB:CC:DD:EE:FF",
    ],
)
def test_a_mac_address_as_device_key_is_refused(wire: Wire, device: str) -> None:
    topic, body = wire("ble")
    body["items"][0]["device"] = device
    reason = _refused(topic, body).reason
    assert "ble.items.0.device" in reason
    assert "MAC address" in reason


@pytest.mark.parametrize(
    "device",
    [
        "ibeacon:E2C56DB5-DFFB-48D2-B060-D0F5A71096E0:0:0",  # keys are lower-case
        "ibeacon:e2c56db5-dffb-48d2-b060-d0f5a71096e0:0",
        "eid:00112233445566",
        "eddystone-uid:00112233445566778899:0011223344",
        "bluetooth-name:Bob's AirPods",
        "",
    ],
)
def test_malformed_device_keys_are_refused(wire: Wire, device: str) -> None:
    topic, body = wire("ble")
    body["items"][0]["device"] = device
    assert "ble.items.0.device" in _refused(topic, body).reason


@pytest.mark.parametrize("kind", ["ble", "nfc", "rfid"])
def test_empty_batches_are_refused(kind: str, wire: Wire) -> None:
    topic, body = wire(kind)
    body["items"] = []
    reason = _refused(topic, body).reason
    assert f"{kind}.items" in reason and "at least 1 item" in reason


@pytest.mark.parametrize(
    ("field", "topic_kwargs", "expected"),
    [
        (
            "store",
            {"store": "other-store"},
            "store is 'paris-rivoli' in the body but 'other-store'",
        ),
        ("gateway", {"gateway": "gw-denim"}, "gateway is 'gw-entrance' in the body but 'gw-denim'"),
        ("kind", {"kind": "nfc"}, "kind is 'ble' in the body but 'nfc' in the topic"),
    ],
)
def test_topic_and_body_must_agree(
    wire: Wire, field: str, topic_kwargs: dict[str, str], expected: str
) -> None:
    _, body = wire("ble")
    address = {"store": "paris-rivoli", "gateway": "gw-entrance", "kind": "ble"} | topic_kwargs
    error = _refused(topic_for(address["store"], address["gateway"], address["kind"]), body)
    assert expected in error.reason


def test_a_gateway_message_on_the_config_topic_is_refused(wire: Wire) -> None:
    _, body = wire("status")
    error = _refused(topic_for("paris-rivoli", "gw-entrance", "config"), body)
    assert "kind is 'status' in the body but 'config' in the topic" in error.reason


def test_a_bad_topic_is_a_contract_error_too(wire: Wire) -> None:
    _, body = wire("ble")
    error = _refused("omnizone/v1/paris-rivoli/ble", body)
    assert "is not of the form" in error.reason


def test_oversized_payloads_are_refused_before_parsing() -> None:
    error = _refused(topic_for("s", "g", "ble"), b" " * (MAX_PAYLOAD_BYTES + 1))
    assert f"exceeds {MAX_PAYLOAD_BYTES}" in error.reason


@pytest.mark.parametrize(
    "payload",
    [
        b"1" * 5000,  # int() refuses > 4300 digits with a plain ValueError
        b"[" * 100_000,  # json recursion limit: RecursionError
        b'{"seq": ' + b"9" * 5000 + b"}",
    ],
    ids=["huge-int", "deep-nesting", "huge-int-in-object"],
)
def test_hostile_json_is_a_contract_error_not_a_crash(payload: bytes) -> None:
    error = _refused(topic_for("s", "g", "ble"), payload)
    assert "not JSON" in error.reason


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_are_refused(wire: Wire, value: str) -> None:
    """Python's json reads NaN/Infinity, but they are not JSON and would not survive a
    round trip (pydantic writes them back as null)."""
    topic, body = wire("health")
    text = json.dumps(body).replace('"uptime_s": 3600.5', f'"uptime_s": {value}')
    assert value in text
    assert "health.uptime_s" in _refused(topic, text.encode()).reason


def test_error_text_lists_at_most_five_problems(wire: Wire) -> None:
    topic, body = wire("ble")
    for item in body["items"]:
        item.update(count=0, rssi_mean=99, rssi_max=99, window_ms=0)
    reason = _refused(topic, body).reason
    assert reason.count("ble.items.") == 5
    assert reason.endswith("... and 3 more")


def test_device_key_builders_produce_keys_the_contract_accepts() -> None:
    import uuid

    keys = [
        ibeacon_key(uuid.UUID("e2c56db5-dffb-48d2-b060-d0f5a71096e0"), 65535, 0),
        altbeacon_key(bytes.fromhex("2f234454cf6d4a0fadf2f4911ba9ffa6"), 1, 2),
        eddystone_uid_key(bytes(range(10)), bytes(range(6))),
        eid_key(bytes.fromhex("0011223344556677")),
    ]
    assert [check_device_key(k) for k in keys] == keys
    with pytest.raises(ValueError, match="an ephemeral id is 8 bytes, got 7"):
        eid_key(bytes(7))
