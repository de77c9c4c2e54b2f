"""The topic tree: construction, parsing, and the ACL patterns a broker gets."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from omnizone.contract import (
    TOPIC_ROOT,
    GatewayTopic,
    Kind,
    gateway_acl_patterns,
    parse_topic,
    subscription_filter,
    topic_for,
)
from omnizone.contract.topics import GATEWAY_KINDS, IDENTIFIER_PATTERN

identifiers = st.from_regex(IDENTIFIER_PATTERN, fullmatch=True)


def test_topic_for_builds_the_documented_shape() -> None:
    assert topic_for("paris-rivoli", "gw-entrance", Kind.BLE) == (
        "omnizone/v1/paris-rivoli/gw-entrance/ble"
    )
    assert topic_for("paris-rivoli", "gw-entrance", "health").endswith("/health")
    assert TOPIC_ROOT == "omnizone/v1"


@pytest.mark.parametrize("kind", list(Kind))
def test_every_kind_round_trips(kind: Kind) -> None:
    topic = topic_for("s1", "gw_2", kind)
    assert parse_topic(topic) == GatewayTopic("s1", "gw_2", kind)
    assert str(parse_topic(topic)) == topic


@given(store=identifiers, gateway=identifiers, kind=st.sampled_from(list(Kind)))
def test_round_trip_for_any_valid_identifiers(store: str, gateway: str, kind: Kind) -> None:
    assert parse_topic(topic_for(store, gateway, kind)) == GatewayTopic(store, gateway, kind)


@pytest.mark.parametrize(
    ("topic", "expected"),
    [
        ("omnizone/v2/s/g/ble", "is not of the form omnizone/v1/<store>/<gateway>/<kind>"),
        ("other/v1/s/g/ble", "is not of the form"),
        ("omnizone/v1/s/g", "is not of the form"),
        ("omnizone/v1/s/g/ble/extra", "is not of the form"),
        ("omnizone/v1/s/g/", "unknown kind ''"),
        ("omnizone/v1/s/g/wifi", "unknown kind 'wifi'"),
        ("omnizone/v1/s/g/BLE", "unknown kind 'BLE'"),
        ("omnizone/v1/Paris/g/ble", "store id in topic 'Paris' is not a valid identifier"),
        ("omnizone/v1/+/g/ble", "store id in topic '+'"),
        ("omnizone/v1/s/#/ble", "gateway id in topic '#'"),
        ("omnizone/v1/s/gw 1/ble", "gateway id in topic 'gw 1'"),
        ("omnizone/v1//g/ble", "store id in topic ''"),
        ("omnizone/v1/s/-gw/ble", "gateway id in topic '-gw'"),
        ("omnizone/v1/s/" + "g" * 64 + "/ble", "is not a valid identifier"),
    ],
)
def test_bad_topics_are_rejected_saying_what_is_wrong(topic: str, expected: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_topic(topic)
    assert expected in str(caught.value)


@pytest.mark.parametrize(
    ("store", "gateway", "kind", "expected"),
    [
        ("Paris", "gw", "ble", "store id 'Paris' is not a valid identifier"),
        ("s", "gw/1", "ble", "gateway id 'gw/1' is not a valid identifier"),
        ("s", "+", "ble", "gateway id '+'"),
        ("s", "gw", "wifi", "'wifi' is not a valid Kind"),
    ],
)
def test_topic_for_refuses_bad_parts(store: str, gateway: str, kind: str, expected: str) -> None:
    with pytest.raises(ValueError) as caught:
        topic_for(store, gateway, kind)
    assert expected in str(caught.value)


def test_identifier_limits() -> None:
    assert parse_topic(topic_for("a", "0", "ble")).store == "a"
    assert parse_topic(topic_for("s", "g" * 63, "ble")).gateway == "g" * 63


def test_subscription_filter_defaults_to_every_store_gateway_and_kind() -> None:
    assert subscription_filter() == "omnizone/v1/+/+/+"
    assert subscription_filter(store="paris-rivoli") == "omnizone/v1/paris-rivoli/+/+"
    assert subscription_filter(kind="status") == "omnizone/v1/+/+/status"


def test_acl_lets_a_gateway_write_its_own_kinds_and_read_only_its_config() -> None:
    writes, read = gateway_acl_patterns("paris-rivoli", "gw-entrance")
    config = topic_for("paris-rivoli", "gw-entrance", Kind.CONFIG)
    assert read == config
    assert config not in writes
    assert sorted(writes) == sorted(
        topic_for("paris-rivoli", "gw-entrance", k) for k in GATEWAY_KINDS
    )
    for pattern in writes:
        assert "+" not in pattern and "#" not in pattern, pattern
        parsed = parse_topic(pattern)
        assert (parsed.store, parsed.gateway) == ("paris-rivoli", "gw-entrance")
        assert parsed.kind is not Kind.CONFIG


@given(store=identifiers, gateway=identifiers)
def test_acl_never_grants_writing_the_config_topic(store: str, gateway: str) -> None:
    writes, read = gateway_acl_patterns(store, gateway)
    assert parse_topic(read).kind is Kind.CONFIG
    assert all(parse_topic(w).kind in GATEWAY_KINDS for w in writes)
    assert Kind.CONFIG not in GATEWAY_KINDS


def test_acl_refuses_identifiers_that_would_widen_the_pattern() -> None:
    with pytest.raises(ValueError, match="store id '\\+'"):
        gateway_acl_patterns("+", "gw")
    with pytest.raises(ValueError, match="gateway id '#'"):
        gateway_acl_patterns("s", "#")
