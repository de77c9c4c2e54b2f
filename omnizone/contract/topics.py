"""The MQTT topic tree: ``omnizone/v1/{store}/{gateway}/{kind}``.

A gateway publishes only below its own ``{store}/{gateway}``; the server
publishes the retained ``config`` topic to it. Keeping topic construction here
means the broker ACLs, the gateway and the server can never disagree.
"""

import re
from dataclasses import dataclass
from enum import StrEnum

TOPIC_ROOT = "omnizone/v1"

# Store and gateway ids become topic levels and database keys: keep them to a
# safe, readable alphabet (no MQTT wildcards, no slashes, no spaces).
IDENTIFIER_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
_IDENTIFIER = re.compile(IDENTIFIER_PATTERN)


class Kind(StrEnum):
    BLE = "ble"
    NFC = "nfc"
    RFID = "rfid"
    STATUS = "status"
    HEALTH = "health"
    CONFIG = "config"
    ACK = "ack"


GATEWAY_KINDS = frozenset({Kind.BLE, Kind.NFC, Kind.RFID, Kind.STATUS, Kind.HEALTH})
#: What the server sends to one gateway: its retained config and the retained
#: "stored up to" acknowledgement of what the server has committed.
SERVER_KINDS = frozenset({Kind.CONFIG, Kind.ACK})


@dataclass(frozen=True, slots=True)
class GatewayTopic:
    store: str
    gateway: str
    kind: Kind

    def __str__(self) -> str:
        return topic_for(self.store, self.gateway, self.kind)


def check_identifier(value: str, what: str) -> str:
    if not _IDENTIFIER.match(value):
        raise ValueError(
            f"{what} {value!r} is not a valid identifier: use 1-63 characters "
            "from a-z, 0-9, '-' and '_', starting with a letter or digit"
        )
    return value


def topic_for(store: str, gateway: str, kind: Kind | str) -> str:
    check_identifier(store, "store id")
    check_identifier(gateway, "gateway id")
    return f"{TOPIC_ROOT}/{store}/{gateway}/{Kind(kind).value}"


def parse_topic(topic: str) -> GatewayTopic:
    """Split a concrete topic; raises ValueError saying what is wrong with it."""
    parts = topic.split("/")
    root = "/".join(parts[:2])
    if root != TOPIC_ROOT or len(parts) != 5:
        raise ValueError(
            f"topic {topic!r} is not of the form {TOPIC_ROOT}/<store>/<gateway>/<kind>"
        )
    store, gateway, kind = parts[2], parts[3], parts[4]
    check_identifier(store, "store id in topic")
    check_identifier(gateway, "gateway id in topic")
    try:
        parsed_kind = Kind(kind)
    except ValueError:
        known = ", ".join(k.value for k in Kind)
        raise ValueError(f"topic {topic!r} has unknown kind {kind!r} (known: {known})") from None
    return GatewayTopic(store, gateway, parsed_kind)


def subscription_filter(store: str = "+", gateway: str = "+", kind: str = "+") -> str:
    """An MQTT filter below the root; '+' levels match any store/gateway/kind."""
    return f"{TOPIC_ROOT}/{store}/{gateway}/{kind}"


def gateway_acl_patterns(store: str, gateway: str) -> tuple[list[str], str]:
    """(topics the gateway may publish, the one topic it may read) for a broker ACL.

    One write pattern per gateway kind rather than ``…/#``: a gateway must not
    be able to overwrite the retained config the server sends it.
    """
    base = f"{TOPIC_ROOT}/{check_identifier(store, 'store id')}/"
    base += check_identifier(gateway, "gateway id")
    writes = [f"{base}/{kind.value}" for kind in sorted(GATEWAY_KINDS)]
    return writes, f"{base}/{Kind.CONFIG.value}"


def gateway_read_patterns(store: str, gateway: str) -> list[str]:
    """Every topic a gateway may read: its own config and its own ack, never another's."""
    _writes, config = gateway_acl_patterns(store, gateway)
    return [config, topic_for(store, gateway, Kind.ACK)]


def server_write_patterns() -> list[str]:
    """What the server account may write: each gateway's config and ack, nothing else."""
    return [f"{TOPIC_ROOT}/+/+/{kind.value}" for kind in (Kind.CONFIG, Kind.ACK)]


def recorder_read_patterns(store: str) -> list[str]:
    """What a store's recorder account may read: every gateway kind of that store only."""
    check_identifier(store, "store id")
    return [subscription_filter(store, "+", kind.value) for kind in sorted(GATEWAY_KINDS)]
