"""Whatever arrives on a topic, parse_message answers with a message or a
ContractError — never another exception that would stop an ingest worker."""

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from omnizone.contract import (
    ContractError,
    GatewayMessage,
    dump_message,
    parse_message,
    topic_for,
)
from omnizone.contract.topics import GATEWAY_KINDS

TOPICS = [topic_for("paris-rivoli", "gw-entrance", kind) for kind in sorted(GATEWAY_KINDS)]
FIELDS = [
    "v", "kind", "store", "gateway", "seq", "sent_ms", "items", "state", "session", "version",
    "uptime_s", "outbox_depth", "outbox_dropped", "readers", "cpu_temp_c", "device",
    "window_start_ms", "window_ms", "count", "rssi_mean", "rssi_max", "tx_power", "tap_point",
    "uid", "at_ms", "ndef_uri", "reader", "antenna", "epc", "rssi",
]  # fmt: skip

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
    | st.sampled_from(["ble", "nfc", "rfid", "status", "health", "paris-rivoli", "gw-entrance"])
    | st.sampled_from([1, 2, 0, 1_767_225_600_000, 1_767_225_600, -1])
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), inner, max_size=6)
    ),
    max_leaves=30,
)
# Objects shaped like envelopes, so validation gets past the first check.
envelopes = st.fixed_dictionaries(
    {
        "v": st.sampled_from([1, 1, 2, "1", None, True]),
        "kind": st.sampled_from(["ble", "nfc", "rfid", "status", "health", "config", "x"]),
        "store": st.sampled_from(["paris-rivoli", "other", "", "Paris"]),
        "gateway": st.sampled_from(["gw-entrance", "gw-x"]),
        "seq": st.integers(min_value=-2, max_value=2**64) | st.text(max_size=3),
        "sent_ms": st.sampled_from([1_767_225_600_000, 1_767_225_600, 0, 1.5e12]),
    },
    optional={field: scalars | st.lists(scalars, max_size=2) for field in FIELDS[6:]},
)


def _parse_or_refuse(topic: str, payload: bytes) -> None:
    try:
        message = parse_message(topic, payload)
    except ContractError as error:
        assert error.topic == topic
        assert error.reason
        return
    # Accepted: then it must survive its own round trip.
    assert parse_message(topic, dump_message(message)) == message


@settings(max_examples=200, deadline=None)
@given(topic=st.sampled_from(TOPICS) | st.text(max_size=40), payload=st.binary(max_size=300))
def test_arbitrary_bytes_only_ever_raise_contract_errors(topic: str, payload: bytes) -> None:
    _parse_or_refuse(topic, payload)


@settings(max_examples=200, deadline=None)
@given(topic=st.sampled_from(TOPICS), value=json_values)
def test_arbitrary_json_only_ever_raises_contract_errors(topic: str, value: Any) -> None:
    _parse_or_refuse(topic, json.dumps(value).encode())


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(topic=st.sampled_from(TOPICS), value=envelopes)
def test_envelope_shaped_objects_only_ever_raise_contract_errors(
    topic: str, value: dict[str, Any]
) -> None:
    _parse_or_refuse(topic, json.dumps(value).encode())


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],  # `messages` is constant
)
@given(
    kind=st.sampled_from(sorted(GATEWAY_KINDS)),
    in_item=st.booleans(),
    field=st.sampled_from(FIELDS),
    value=json_values,
    delete=st.booleans(),
)
def test_valid_messages_with_one_field_tampered_only_ever_raise_contract_errors(
    messages: dict[str, GatewayMessage],
    kind: str,
    in_item: bool,
    field: str,
    value: Any,
    delete: bool,
) -> None:
    body = json.loads(dump_message(messages[kind]))
    target = body["items"][0] if in_item and "items" in body else body
    if delete:
        target.pop(field, None)
    else:
        target[field] = value
    _parse_or_refuse(topic_for("paris-rivoli", "gw-entrance", kind), json.dumps(body).encode())
