"""The omnizone wire contract: MQTT topics and versioned message schemas.

Gateway, server and simulator all import this package and nothing else defines
a message shape. It depends on pydantic only, so it installs on a gateway.
"""

from omnizone.contract.messages import (
    SCHEMA_VERSION,
    BleMessage,
    BleSighting,
    ContractError,
    GatewayMessage,
    GatewayState,
    HealthMessage,
    NfcMessage,
    NfcTap,
    RfidMessage,
    RfidRead,
    StatusMessage,
    dump_message,
    parse_message,
)
from omnizone.contract.timefmt import datetime_to_ms, ms_to_datetime
from omnizone.contract.topics import (
    TOPIC_ROOT,
    GatewayTopic,
    Kind,
    gateway_acl_patterns,
    parse_topic,
    subscription_filter,
    topic_for,
)

__all__ = [
    "SCHEMA_VERSION",
    "TOPIC_ROOT",
    "BleMessage",
    "BleSighting",
    "ContractError",
    "GatewayMessage",
    "GatewayState",
    "GatewayTopic",
    "HealthMessage",
    "Kind",
    "NfcMessage",
    "NfcTap",
    "RfidMessage",
    "RfidRead",
    "StatusMessage",
    "datetime_to_ms",
    "dump_message",
    "gateway_acl_patterns",
    "ms_to_datetime",
    "parse_message",
    "parse_topic",
    "subscription_filter",
    "topic_for",
]
