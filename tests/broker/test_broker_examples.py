"""The example files in config/mosquitto/ stay correct and in step with the contract."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from omnizone.broker import MESSAGE_SIZE_LIMIT, BrokerAccounts, find_mosquitto, free_port
from omnizone.broker.accounts import parse_acl, render_password_file
from omnizone.broker.process import BrokerProcess
from omnizone.contract.topics import Kind, topic_for
from omnizone.store import StorePlan

EXAMPLES = Path(__file__).resolve().parents[2] / "config" / "mosquitto"


def test_example_acl_matches_the_example_store(rivoli_plan: StorePlan) -> None:
    rules = parse_acl((EXAMPLES / "acl.example").read_text(), source="acl.example")
    assert rules == BrokerAccounts.for_store(rivoli_plan).acl_rules()


def _localized_conf(
    text: str, folder: Path, tls_files: tuple[Path, Path, Path]
) -> tuple[str, int, int]:
    """The production example with paths under ``folder`` and free ports; nothing else changed."""
    ca, cert, key = tls_files
    plain, tls = free_port(), free_port()
    replace = {
        "password_file": str(folder / "passwd"),
        "acl_file": str(EXAMPLES / "acl.example"),
        "persistence_location": f"{folder}/",
        "log_dest": "stderr",
        "certfile": str(cert),
        "keyfile": str(key),
        "cafile": str(ca),
        "user": "root",
    }
    out = []
    for line in text.splitlines():
        key_word, _, value = line.partition(" ")
        if key_word in replace:
            line = f"{key_word} {replace[key_word]}"
        elif key_word == "listener":
            port = plain if value.startswith("1883") else tls
            line = f"listener {port} 127.0.0.1"
        out.append(line)
    return "\n".join(out) + "\n", plain, tls


@pytest.fixture
def production_broker(
    tmp_path: Path, broker_accounts: BrokerAccounts, tls_files: tuple[Path, Path, Path]
) -> Iterator[tuple[BrokerProcess, int]]:
    binary = find_mosquitto()
    if binary is None:
        pytest.skip("mosquitto is not installed")
    conf_text, plain, tls = _localized_conf(
        (EXAMPLES / "mosquitto.conf").read_text(), tmp_path, tls_files
    )
    (tmp_path / "passwd").write_text(render_password_file(broker_accounts))
    conf = tmp_path / "omnizone.conf"
    conf.write_text(conf_text)
    process = BrokerProcess(
        "mosquitto",
        [binary, "-c", str(conf)],
        host="127.0.0.1",
        port=plain,
        extra_ports=(tls,),
        log_path=tmp_path / "broker.log",
    )
    process.start()
    yield process, tls
    process.stop()


class _BrokerView:
    """What MqttProbe needs from a RunningBroker."""

    def __init__(self, process: BrokerProcess, accounts: BrokerAccounts) -> None:
        self.host, self.port, self.accounts = process.host, process.port, accounts


def test_production_example_runs_and_enforces_accounts(
    production_broker: tuple[BrokerProcess, int],
    broker_accounts: BrokerAccounts,
    tls_files: tuple[Path, Path, Path],
    mqtt_probe: Callable[..., Any],
) -> None:
    process, tls_port = production_broker
    broker: Any = _BrokerView(process, broker_accounts)
    ca = tls_files[0]
    server = mqtt_probe(broker, *broker_accounts.server_credentials)
    server.subscribe("omnizone/v1/+/+/+")
    gateway = mqtt_probe(
        broker, *broker_accounts.gateway_credentials("gw-checkout"), port=tls_port, tls_ca=ca
    )
    gateway.publish(topic_for("paris-rivoli", "gw-entrance", Kind.BLE), b"forged")
    own = topic_for("paris-rivoli", "gw-checkout", Kind.BLE)
    gateway.publish(own, b"x" * (MESSAGE_SIZE_LIMIT + 1))
    gateway.publish(own, b"ok")
    message = server.next_message()
    assert (message.topic, message.payload) == (own, b"ok")
    assert server.messages.empty()
    anonymous = mqtt_probe(broker, None, None, port=tls_port, tls_ca=ca, connect=False)
    assert anonymous.connect()[0].is_failure


def test_example_message_size_limit_is_the_contract_bound() -> None:
    lines = (EXAMPLES / "mosquitto.conf").read_text().splitlines()
    assert f"message_size_limit {MESSAGE_SIZE_LIMIT}" in lines
