"""Pure parts of the broker package: accounts, hashes, ACL files, topic matching, config."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from omnizone.broker import RunFiles, TlsFiles
from omnizone.broker.accounts import (
    SERVER_USERNAME,
    Access,
    AclRule,
    BrokerAccounts,
    filter_within,
    hash_password,
    may_publish,
    may_receive,
    may_subscribe,
    parse_acl,
    parse_password_file,
    render_acl_file,
    render_password_file,
    topic_matches,
    verify_password,
)
from omnizone.broker.mosquitto import render_mosquitto_conf
from omnizone.contract.topics import gateway_acl_patterns
from omnizone.store import StorePlan

# Written by `mosquitto_passwd -b passwd alice s3cret` (Mosquitto 2.0.11).
MOSQUITTO_PASSWD_LINE = (
    "alice:$7$101$yBEcyXS4F3Srh9Va$x7F7XWDrXzGrUA5ogzH3tDuflCO2eZCILUaC9wMyRRqWePq7jN5s"
    "+VlltmZgxUgJLFftHSgYyyHREv9t+U+u7w=="
)


def test_for_store_gives_every_gateway_its_own_strong_password(rivoli_plan: StorePlan) -> None:
    accounts = BrokerAccounts.for_store(rivoli_plan)
    assert set(accounts.gateways) == {gw.id for gw in rivoli_plan.gateways}
    assert {store for store, _pw in accounts.gateways.values()} == {"paris-rivoli"}
    passwords = accounts.passwords()
    assert next(iter(passwords)) == SERVER_USERNAME
    assert len(set(passwords.values())) == len(passwords) == len(rivoli_plan.gateways) + 1
    assert all(len(pw) >= 32 for pw in passwords.values())


def test_for_store_uses_given_passwords(rivoli_plan: StorePlan) -> None:
    accounts = BrokerAccounts.for_store(rivoli_plan, passwords=lambda user: f"pw-{user}")
    assert accounts.server_credentials == (SERVER_USERNAME, f"pw-{SERVER_USERNAME}")
    assert accounts.gateway_credentials("gw-shoes") == ("gw-shoes", "pw-gw-shoes")
    with pytest.raises(KeyError, match="gw-attic"):
        accounts.gateway_credentials("gw-attic")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"server_username": "a:b", "server_password": "x"}, "without ':'"),
        ({"server_username": "srv", "server_password": ""}, "empty"),
        ({"server_username": "srv", "server_password": "a\nb"}, "line break"),
        (
            {"server_username": "srv", "server_password": "x", "gateways": {"GW": ("s", "p")}},
            "gateway id",
        ),
        (
            {"server_username": "srv", "server_password": "x", "gateways": {"gw": ("s/x", "p")}},
            "store id",
        ),
        (
            {"server_username": "gw", "server_password": "x", "gateways": {"gw": ("s", "p")}},
            "also a gateway",
        ),
    ],
)
def test_invalid_accounts_are_rejected_with_a_reason(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        BrokerAccounts(**kwargs)  # type: ignore[arg-type]


def test_gateway_acl_comes_from_the_contract() -> None:
    accounts = BrokerAccounts("srv", "x", {"gw-a": ("store-1", "p"), "gw-b": ("store-2", "q")})
    rules = accounts.acl_rules()
    for gateway, store in (("gw-a", "store-1"), ("gw-b", "store-2")):
        writes, read = gateway_acl_patterns(store, gateway)
        assert [r for r in rules if r.username == gateway] == [
            *(AclRule(gateway, Access.WRITE, write) for write in writes),
            AclRule(gateway, Access.READ, read),
            AclRule(gateway, Access.READ, f"omnizone/v1/{store}/{gateway}/ack"),
        ]
        assert not any(w.endswith("/config") for w in writes)
        assert not any(w.endswith("/ack") for w in writes)
    assert [r for r in rules if r.username == "srv"] == [
        AclRule("srv", Access.READ, "omnizone/v1/#"),
        AclRule("srv", Access.WRITE, "omnizone/v1/+/+/config"),
        AclRule("srv", Access.WRITE, "omnizone/v1/+/+/ack"),
    ]


def test_acl_file_round_trips(rivoli_plan: StorePlan) -> None:
    accounts = BrokerAccounts.for_store(rivoli_plan)
    text = render_acl_file(accounts)
    assert "user gw-entrance\ntopic write omnizone/v1/paris-rivoli/gw-entrance/ble\n" in text
    assert "gw-entrance/#" not in text
    assert parse_acl(text) == accounts.acl_rules()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("topic read a/#", "outside a 'user' block"),
        ("user gw\npattern read a/%u", "unsupported ACL directive 'pattern'"),
        ("user gw\ntopic deny a/b", "'deny' rules"),
        ("user gw\ntopic read a/#/b", "not a valid MQTT topic filter"),
        ("user\n", "needs a username"),
    ],
)
def test_acl_parser_refuses_what_it_cannot_enforce(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_acl(text, source="acl")


def test_acl_short_topic_form_means_readwrite() -> None:
    assert parse_acl("user gw\ntopic a/b") == [AclRule("gw", Access.READWRITE, "a/b")]


def test_password_hash_matches_mosquitto_passwd() -> None:
    user, encoded = MOSQUITTO_PASSWD_LINE.split(":", 1)
    assert verify_password("s3cret", encoded)
    assert not verify_password("s3cret ", encoded)
    salt = "yBEcyXS4F3Srh9Va"
    import base64

    assert hash_password("s3cret", salt=base64.b64decode(salt)) == encoded
    assert parse_password_file(MOSQUITTO_PASSWD_LINE + "\n# comment\n") == {user: encoded}


@pytest.mark.skipif(
    subprocess.run(["which", "mosquitto_passwd"], capture_output=True).returncode != 0,
    reason="mosquitto_passwd is not installed",
)
def test_our_verifier_accepts_fresh_mosquitto_passwd_output(tmp_path: Path) -> None:
    path = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(path), "bob", "p@ss:w0rd"], check=True)
    (user, encoded) = parse_password_file(path.read_text()).popitem()
    assert user == "bob" and verify_password("p@ss:w0rd", encoded)


@pytest.mark.parametrize(
    "encoded", ["", "$6$abc$def", "$7$x$AAAA$AAAA", "$7$101$!!$AAAA", "$7$0$AA==$AA=="]
)
def test_verify_rejects_other_formats(encoded: str) -> None:
    assert not verify_password("anything", encoded)


def test_password_file_lists_every_account_once(rivoli_plan: StorePlan) -> None:
    accounts = BrokerAccounts.for_store(rivoli_plan)
    users = parse_password_file(render_password_file(accounts))
    assert users.keys() == accounts.passwords().keys()
    assert all(verify_password(accounts.passwords()[u], h) for u, h in users.items())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("alice", "expected 'user:"),
        ("alice:$6$x$y", "PBKDF2"),
        ("a:$7$1$AA==$AA==\na:$7$1$AA==$AA==", "twice"),
    ],
)
def test_password_file_errors_name_the_line(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_password_file(text, source="passwd")


@pytest.mark.parametrize(
    ("topic_filter", "topic", "expected"),
    [
        ("a/b/#", "a/b/c/d", True),
        ("a/b/#", "a/b", True),
        ("a/+/c", "a/b/c", True),
        ("a/+/c", "a/b/d", False),
        ("a/+", "a/b/c", False),
        ("a/b", "a/b/c", False),
        ("#", "$SYS/x", False),
        ("a/b/c", "a/b", False),
    ],
)
def test_topic_matches(topic_filter: str, topic: str, expected: bool) -> None:
    assert topic_matches(topic_filter, topic) is expected


@pytest.mark.parametrize(
    ("subscription", "pattern", "expected"),
    [
        ("o/v1/s/g/config", "o/v1/s/g/config", True),
        ("o/v1/+/+/config", "o/v1/s/g/config", False),
        ("o/v1/#", "o/v1/s/g/config", False),
        ("o/v1/+/+/ble", "o/v1/#", True),
        ("o/v1", "o/v1/#", True),
        ("o/v1/s/g/#", "o/v1/s/g/config", False),
        ("o/v1/s/g/ble", "o/v1/+/+/ble", True),
        ("o/v1/s/+/ble", "o/v1/+/g/ble", False),
    ],
)
def test_filter_within(subscription: str, pattern: str, expected: bool) -> None:
    assert filter_within(subscription, pattern) is expected


def test_access_checks_per_user() -> None:
    accounts = BrokerAccounts("srv", "x", {"gw-a": ("s", "p"), "gw-b": ("s", "q")})
    rules = accounts.acl_rules()
    assert may_publish(rules, "gw-a", "omnizone/v1/s/gw-a/ble")
    assert not may_publish(rules, "gw-a", "omnizone/v1/s/gw-b/ble")
    assert not may_publish(rules, None, "omnizone/v1/s/gw-a/ble")
    assert may_receive(rules, "gw-a", "omnizone/v1/s/gw-a/config")
    assert not may_receive(rules, "gw-a", "omnizone/v1/s/gw-a/ble")
    assert may_subscribe(rules, "srv", "omnizone/v1/+/+/+")
    assert not may_subscribe(rules, "srv", "#")
    assert may_publish(rules, "srv", "omnizone/v1/s/gw-a/config")
    assert not may_publish(rules, "srv", "omnizone/v1/s/gw-a/status")


def test_mosquitto_conf_locks_down_and_persists(tmp_path: Path) -> None:
    files = RunFiles(tmp_path)
    conf = render_mosquitto_conf(host="127.0.0.1", port=18830, files=files)
    lines = conf.splitlines()
    for expected in (
        "allow_anonymous false",
        f"password_file {files.password_file}",
        f"acl_file {files.acl_file}",
        "persistence true",
        f"persistence_location {files.data_dir}/",
        "listener 18830 127.0.0.1",
    ):
        assert expected in lines
    assert "certfile" not in conf
    tls = TlsFiles(
        certfile=tmp_path / "c.pem", keyfile=tmp_path / "k.pem", cafile=tmp_path / "ca.pem"
    )
    with_tls = render_mosquitto_conf(host="0.0.0.0", port=1883, files=files, tls=tls).splitlines()
    tail = with_tls[with_tls.index("listener 8883 0.0.0.0") :]
    assert f"certfile {tmp_path / 'c.pem'}" in tail and f"cafile {tmp_path / 'ca.pem'}" in tail


def test_importing_the_package_does_not_import_amqtt_or_paho() -> None:
    code = (
        "import sys, omnizone.broker; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('amqtt', 'paho')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
