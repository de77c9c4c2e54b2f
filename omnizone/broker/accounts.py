"""Broker accounts and topic ACLs, rendered as Mosquitto files.

Pure functions over plain data: who may connect with which password, and which
topics each account may write or read. The gateway rules come only from
``omnizone.contract.topics.gateway_acl_patterns`` so the broker, the gateway and
the server can never disagree about the topic tree. The same two files feed
both brokers: Mosquitto reads them natively, the embedded broker parses them
with ``parse_password_file`` / ``parse_acl`` below.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import TYPE_CHECKING

from omnizone.contract.topics import (
    TOPIC_ROOT,
    Kind,
    check_identifier,
    gateway_acl_patterns,
    gateway_read_patterns,
    recorder_read_patterns,
    server_write_patterns,
)

if TYPE_CHECKING:
    from omnizone.store import StorePlan

SERVER_USERNAME = "omnizone-server"
RECORDER_PREFIX = "omnizone-recorder-"
"""A store's recorder logs in as ``omnizone-recorder-<store id>``."""


def recorder_username(store_id: str) -> str:
    """The username of a store's recorder account (``sim record``)."""
    return RECORDER_PREFIX + check_identifier(store_id, "store id")


# What the server account may do: read everything the gateways send, write
# only the retained per-gateway config and ack topics.
SERVER_READ_PATTERN = f"{TOPIC_ROOT}/#"
SERVER_WRITE_PATTERN = f"{TOPIC_ROOT}/+/+/{Kind.CONFIG.value}"
SERVER_WRITE_PATTERNS = tuple(server_write_patterns())

# Mosquitto 2.x PBKDF2-SHA512 password hashes ("$7$"): same parameters as
# mosquitto_passwd so files we write are indistinguishable from its output.
PBKDF2_ITERATIONS = 101
_SALT_BYTES = 12
_HASH_BYTES = 64

PasswordSource = Callable[[str], str]
"""Gives the password for a username (gateway id or server username)."""


class Access(StrEnum):
    READ = "read"
    WRITE = "write"
    READWRITE = "readwrite"

    @property
    def reads(self) -> bool:
        return self in (Access.READ, Access.READWRITE)

    @property
    def writes(self) -> bool:
        return self in (Access.WRITE, Access.READWRITE)


@dataclass(frozen=True, slots=True)
class AclRule:
    username: str
    access: Access
    pattern: str


def new_password(_username: str = "") -> str:
    """A strong random password (192 bits, URL-safe: no ':' or whitespace)."""
    return secrets.token_urlsafe(24)


def check_username(value: str) -> str:
    """Usernames become keys of the password file: no ':', '#', spaces or control chars."""
    if not value or len(value) > 128 or any(c in value for c in ":#") or not value.isprintable():
        raise ValueError(
            f"broker username {value!r} must be 1-128 printable characters without ':' or '#'"
        )
    if any(c.isspace() for c in value):
        raise ValueError(f"broker username {value!r} must not contain whitespace")
    return value


def _check_password(password: str, username: str) -> str:
    if not password:
        raise ValueError(f"password for broker user {username!r} is empty")
    if "\n" in password or "\r" in password or "\x00" in password:
        raise ValueError(f"password for broker user {username!r} contains a line break or NUL")
    return password


@dataclass(frozen=True)
class BrokerAccounts:
    """The server account, one account per gateway (username = gateway id)
    and, optionally, one recorder account per store.

    Gateway ids are usernames, so they must be unique across all stores that
    share one broker. A recorder (``recorder_username(store)``) may read that
    store's gateway topics and write nothing: it records traffic for replay.
    """

    server_username: str
    server_password: str
    gateways: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    """gateway id -> (store id, password)"""
    recorders: Mapping[str, str] = field(default_factory=dict)
    """store id -> recorder password"""

    def __post_init__(self) -> None:
        check_username(self.server_username)
        _check_password(self.server_password, self.server_username)
        for gateway_id, (store_id, password) in self.gateways.items():
            check_identifier(gateway_id, "gateway id")
            check_identifier(store_id, f"store id of gateway {gateway_id!r}")
            _check_password(password, gateway_id)
        if self.server_username in self.gateways:
            raise ValueError(
                f"server username {self.server_username!r} is also a gateway id; pick another"
            )
        for store_id, password in self.recorders.items():
            username = recorder_username(store_id)
            _check_password(password, username)
            if username in self.gateways or username == self.server_username:
                raise ValueError(f"recorder username {username!r} is already taken; pick another")
        # Freeze the mappings: accounts are handed to several threads/processes.
        object.__setattr__(self, "gateways", MappingProxyType(dict(self.gateways)))
        object.__setattr__(self, "recorders", MappingProxyType(dict(self.recorders)))

    @classmethod
    def for_store(
        cls,
        plan: StorePlan,
        passwords: PasswordSource | None = None,
        *,
        server_username: str = SERVER_USERNAME,
        recorder: bool = False,
    ) -> BrokerAccounts:
        """One account per gateway of the store (and its recorder when asked);
        random passwords unless given."""
        source = passwords or new_password
        store_id = plan.store.id
        return cls(
            server_username=server_username,
            server_password=source(server_username),
            gateways={gw.id: (store_id, source(gw.id)) for gw in plan.gateways},
            recorders={store_id: source(recorder_username(store_id))} if recorder else {},
        )

    @property
    def server_credentials(self) -> tuple[str, str]:
        return self.server_username, self.server_password

    def all_gateway_credentials(self) -> dict[str, tuple[str, str]]:
        """gateway id -> (username, password), for a whole simulated fleet."""
        return {gateway: self.gateway_credentials(gateway) for gateway in self.gateways}

    def gateway_credentials(self, gateway_id: str) -> tuple[str, str]:
        """(username, password) a gateway connects with."""
        try:
            _store, password = self.gateways[gateway_id]
        except KeyError:
            known = ", ".join(sorted(self.gateways)) or "none"
            raise KeyError(
                f"no broker account for gateway {gateway_id!r} (known: {known})"
            ) from None
        return gateway_id, password

    def recorder_credentials(self, store_id: str) -> tuple[str, str]:
        """(username, password) the store's recorder connects with."""
        try:
            return recorder_username(store_id), self.recorders[store_id]
        except KeyError:
            known = ", ".join(sorted(self.recorders)) or "none"
            raise KeyError(
                f"no recorder account for store {store_id!r} (stores with one: {known})"
            ) from None

    def passwords(self) -> dict[str, str]:
        """username -> clear password, server first."""
        result = {self.server_username: self.server_password}
        result.update({gw: password for gw, (_store, password) in self.gateways.items()})
        result.update({recorder_username(s): pw for s, pw in self.recorders.items()})
        return result

    def acl_rules(self) -> list[AclRule]:
        rules = [
            AclRule(self.server_username, Access.READ, SERVER_READ_PATTERN),
            *(AclRule(self.server_username, Access.WRITE, p) for p in SERVER_WRITE_PATTERNS),
        ]
        for gateway_id, (store_id, _password) in sorted(self.gateways.items()):
            writes, _config = gateway_acl_patterns(store_id, gateway_id)
            rules.extend(AclRule(gateway_id, Access.WRITE, write) for write in writes)
            rules.extend(
                AclRule(gateway_id, Access.READ, read)
                for read in gateway_read_patterns(store_id, gateway_id)
            )
        for store_id in sorted(self.recorders):
            username = recorder_username(store_id)
            rules.extend(
                AclRule(username, Access.READ, read) for read in recorder_read_patterns(store_id)
            )
        return rules

    def clients_file(self) -> dict[str, object]:
        """What ``omnizone sim run --accounts`` and ``sim record --accounts`` read:
        each gateway's password and each store's recorder login (clear text:
        write it 0600, hand it to the simulator or the recorder only)."""
        return {
            "gateways": {gw: password for gw, (_store, password) in self.gateways.items()},
            "recorders": {
                store: {"username": recorder_username(store), "password": password}
                for store, password in self.recorders.items()
            },
        }


# -- password file ---------------------------------------------------------


def hash_password(
    password: str, *, salt: bytes | None = None, iterations: int = PBKDF2_ITERATIONS
) -> str:
    """Mosquitto 2.x ``$7$`` PBKDF2-SHA512 hash, as mosquitto_passwd writes it."""
    salt = secrets.token_bytes(_SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, _HASH_BYTES)
    b64 = base64.b64encode
    return f"$7${iterations}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, encoded: str) -> bool:
    """True when ``password`` matches a ``$7$`` hash; False for any other format."""
    parts = encoded.split("$")
    if len(parts) != 5 or parts[0] != "" or parts[1] != "7":
        return False
    try:
        iterations = int(parts[2])
        salt = base64.b64decode(parts[3], validate=True)
        expected = base64.b64decode(parts[4], validate=True)
    except (ValueError, binascii.Error):
        return False
    if iterations < 1 or not expected:
        return False
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, len(expected))
    return hmac.compare_digest(digest, expected)


def render_password_file(accounts: BrokerAccounts) -> str:
    lines = [f"{user}:{hash_password(pw)}" for user, pw in accounts.passwords().items()]
    return "\n".join(lines) + "\n"


def parse_password_file(text: str, *, source: str = "password file") -> dict[str, str]:
    """username -> hash; raises ValueError naming the line that is wrong."""
    users: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, encoded = line.partition(":")
        if not sep or not user or not encoded.startswith("$7$"):
            raise ValueError(f"{source}:{number}: expected 'user:$7$...' (PBKDF2-SHA512 hash)")
        if user in users:
            raise ValueError(f"{source}:{number}: user {user!r} appears twice")
        users[user] = encoded
    return users


# -- ACL file ----------------------------------------------------------------


def render_acl_file(accounts: BrokerAccounts) -> str:
    """A Mosquitto ``acl_file``: one ``user`` block per account."""
    out = [
        "# Generated by omnizone.broker from the store plan; do not edit by hand.",
        f"# A gateway may write only its own {TOPIC_ROOT}/<store>/<gateway>/<kind> topics",
        "# (ble, health, nfc, rfid, status) and read only its own .../config and .../ack,",
        "# which it cannot overwrite; the server reads everything and writes config and ack.",
        "# A store's recorder reads that store's gateway kinds and writes nothing.",
    ]
    current: str | None = None
    for rule in accounts.acl_rules():
        if rule.username != current:
            out += ["", f"user {rule.username}"]
            current = rule.username
        out.append(f"topic {rule.access.value} {rule.pattern}")
    return "\n".join(out) + "\n"


def parse_acl(text: str, *, source: str = "acl file") -> list[AclRule]:
    """The subset of Mosquitto's ACL syntax we render (``user`` + ``topic`` lines).

    ``pattern`` lines and rules outside a ``user`` block are refused rather
    than silently ignored, so the embedded broker never grants more than the
    file says.
    """
    rules: list[AclRule] = []
    user: str | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        rest = rest.strip()
        if word == "user":
            if not rest:
                raise ValueError(f"{source}:{number}: 'user' needs a username")
            user = check_username(rest)
        elif word == "topic":
            if user is None:
                raise ValueError(
                    f"{source}:{number}: 'topic' outside a 'user' block is not supported"
                )
            access_word, _, pattern = rest.partition(" ")
            pattern = pattern.strip()
            if access_word not in {a.value for a in Access} or not pattern:
                if access_word == "deny":
                    raise ValueError(f"{source}:{number}: 'deny' rules are not supported")
                # Mosquitto's short form "topic <pattern>" means readwrite.
                access_word, pattern = Access.READWRITE.value, rest
            check_filter(pattern, f"{source}:{number}")
            rules.append(AclRule(user, Access(access_word), pattern))
        else:
            raise ValueError(f"{source}:{number}: unsupported ACL directive {word!r}")
    return rules


# -- topic matching ----------------------------------------------------------


def check_filter(topic_filter: str, where: str = "topic filter") -> str:
    levels = topic_filter.split("/")
    for index, level in enumerate(levels):
        if ("#" in level and (level != "#" or index != len(levels) - 1)) or (
            "+" in level and level != "+"
        ):
            raise ValueError(f"{where}: {topic_filter!r} is not a valid MQTT topic filter")
    return topic_filter


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT filter matching ('a/#' also matches 'a'; wildcards skip '$' topics)."""
    filter_levels = topic_filter.split("/")
    topic_levels = topic.split("/")
    if topic.startswith("$") and filter_levels[0] in ("+", "#"):
        return False
    for index, level in enumerate(filter_levels):
        if level == "#":
            return True
        if index >= len(topic_levels):
            return False
        if level != "+" and level != topic_levels[index]:
            return False
    return len(filter_levels) == len(topic_levels)


def filter_within(subscription: str, pattern: str) -> bool:
    """True when every topic ``subscription`` can match is also matched by ``pattern``."""
    sub = subscription.split("/")
    allowed = pattern.split("/")
    for index, level in enumerate(sub):
        if index >= len(allowed):
            return False
        granted = allowed[index]
        if granted == "#":
            return True
        if level == "#":
            return False
        if granted == "+":
            continue
        if level == "+" or level != granted:
            return False
    return len(allowed) == len(sub) or (len(allowed) == len(sub) + 1 and allowed[-1] == "#")


def may_publish(rules: Iterable[AclRule], username: str | None, topic: str) -> bool:
    return any(
        r.username == username and r.access.writes and topic_matches(r.pattern, topic)
        for r in rules
    )


def may_receive(rules: Iterable[AclRule], username: str | None, topic: str) -> bool:
    return any(
        r.username == username and r.access.reads and topic_matches(r.pattern, topic) for r in rules
    )


def may_subscribe(rules: Iterable[AclRule], username: str | None, topic_filter: str) -> bool:
    """A subscription is granted only if it stays inside one readable pattern."""
    return any(
        r.username == username and r.access.reads and filter_within(topic_filter, r.pattern)
        for r in rules
    )
