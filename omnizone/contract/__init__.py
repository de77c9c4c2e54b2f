"""The omnizone wire contract: MQTT topics and versioned message schemas.

Gateway, server and simulator all import this package and nothing else defines
a message shape. It depends on pydantic only, so it installs on a gateway;
``omnizone.contract.eid`` (the phones' rotating id, not imported here) also
needs ``cryptography`` for AES-128.
"""

from omnizone.contract.ack import AckMessage, ack_topic, dump_ack, parse_ack
from omnizone.contract.config import (
    BleConfig,
    GatewayConfig,
    NfcConfig,
    RfidConfig,
    dump_config,
    parse_config,
)
from omnizone.contract.messages import (
    LEGACY_EPOCH,
    MAX_SEQ,
    SCHEMA_VERSION,
    BeaconTelemetry,
    BleMessage,
    BleSighting,
    ContractError,
    GatewayMessage,
    GatewayState,
    HealthMessage,
    NfcMessage,
    NfcTap,
    RfidItem,
    RfidMessage,
    RfidRead,
    StatusMessage,
    TryOn,
    dump_message,
    parse_message,
)
from omnizone.contract.timefmt import datetime_to_ms, ms_to_datetime, wall_clock_ms
from omnizone.contract.topics import (
    TOPIC_ROOT,
    GatewayTopic,
    Kind,
    gateway_acl_patterns,
    gateway_read_patterns,
    parse_topic,
    server_write_patterns,
    subscription_filter,
    topic_for,
)

__all__ = [
    "LEGACY_EPOCH",
    "MAX_SEQ",
    "SCHEMA_VERSION",
    "TOPIC_ROOT",
    "AckMessage",
    "BeaconTelemetry",
    "BleConfig",
    "BleMessage",
    "BleSighting",
    "ContractError",
    "GatewayConfig",
    "GatewayMessage",
    "GatewayState",
    "GatewayTopic",
    "HealthMessage",
    "Kind",
    "NfcConfig",
    "NfcMessage",
    "NfcTap",
    "RfidConfig",
    "RfidItem",
    "RfidMessage",
    "RfidRead",
    "StatusMessage",
    "TryOn",
    "ack_topic",
    "datetime_to_ms",
    "dump_ack",
    "dump_config",
    "dump_message",
    "gateway_acl_patterns",
    "gateway_read_patterns",
    "ms_to_datetime",
    "parse_ack",
    "parse_config",
    "parse_message",
    "parse_topic",
    "server_write_patterns",
    "subscription_filter",
    "topic_for",
    "wall_clock_ms",
]
