"""Both brokers, as real processes: authentication, topic ACLs, stop and restart."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from omnizone.broker import (
    MESSAGE_SIZE_LIMIT,
    BrokerAccounts,
    BrokerError,
    BrokerKind,
    RunningBroker,
    TlsFiles,
    free_port,
    port_is_free,
    start_broker,
)
from omnizone.broker.process import port_accepts
from omnizone.contract.topics import Kind, topic_for

STORE = "paris-rivoli"
ProbeFactory = Callable[..., Any]  # returns conftest.MqttProbe
MqttProbe = Any


def _gateway(broker: RunningBroker, gateway: str) -> tuple[str, str]:
    return broker.accounts.gateway_credentials(gateway)


def _pid_alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper counts as gone)."""
    try:
        os.kill(pid, 0)
        status = Path(f"/proc/{pid}/status").read_text()
    except (ProcessLookupError, FileNotFoundError):
        return False
    return "\nState:\tZ" not in status


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if text in cmdline:
                found.append(int(entry.name))
    return found


def test_wrong_password_is_refused(any_broker: RunningBroker, mqtt_probe: ProbeFactory) -> None:
    user, password = _gateway(any_broker, "gw-entrance")
    probe = mqtt_probe(any_broker, user, password + "x", connect=False)
    reason, _present = probe.connect()
    assert reason.is_failure


def test_unknown_user_and_anonymous_are_refused(
    any_broker: RunningBroker, mqtt_probe: ProbeFactory
) -> None:
    stranger = mqtt_probe(any_broker, "gw-nowhere", "whatever", connect=False)
    assert stranger.connect()[0].is_failure
    anonymous = mqtt_probe(any_broker, None, None, connect=False)
    assert anonymous.connect()[0].is_failure


def test_gateway_publishes_to_its_own_topic_and_server_receives(
    any_broker: RunningBroker, mqtt_probe: ProbeFactory
) -> None:
    server = mqtt_probe(any_broker, *any_broker.accounts.server_credentials)
    assert not server.subscribe("omnizone/v1/+/+/+").is_failure
    gateway = mqtt_probe(any_broker, *_gateway(any_broker, "gw-entrance"))
    topic = topic_for(STORE, "gw-entrance", Kind.BLE)
    gateway.publish(topic, b"batch-1")
    message = server.next_message()
    assert (message.topic, message.payload) == (topic, b"batch-1")


def test_gateway_cannot_publish_as_another_gateway(
    any_broker: RunningBroker, mqtt_probe: ProbeFactory
) -> None:
    server = mqtt_probe(any_broker, *any_broker.accounts.server_credentials)
    server.subscribe("omnizone/v1/#")
    gateway = mqtt_probe(any_broker, *_gateway(any_broker, "gw-entrance"))
    forged = topic_for(STORE, "gw-checkout", Kind.NFC)
    own = topic_for(STORE, "gw-entrance", Kind.HEALTH)
    for qos in (0, 1):
        gateway.publish(forged, f"forged-{qos}".encode(), qos=qos)
    # A later message from the same client arrives after anything published
    # before it, so once the marker is here the forged ones would have been too.
    gateway.publish(own, b"marker")
    message = server.next_message()
    assert (message.topic, message.payload) == (own, b"marker")
    assert server.messages.empty()


def test_gateway_cannot_overwrite_its_own_config(
    any_broker: RunningBroker, mqtt_probe: ProbeFactory
) -> None:
    server = mqtt_probe(any_broker, *any_broker.accounts.server_credentials)
    server.subscribe("omnizone/v1/#")
    gateway = mqtt_probe(any_broker, *_gateway(any_broker, "gw-entrance"))
    gateway.publish(topic_for(STORE, "gw-entrance", Kind.CONFIG), b"hijacked", qos=1)
    own = topic_for(STORE, "gw-entrance", Kind.HEALTH)
    gateway.publish(own, b"marker")
    message = server.next_message()
    assert (message.topic, message.payload) == (own, b"marker")
    assert server.messages.empty()


def test_gateway_reads_only_its_own_config(
    any_broker: RunningBroker, mqtt_probe: ProbeFactory
) -> None:
    gateway = mqtt_probe(any_broker, *_gateway(any_broker, "gw-entrance"))
    own_config = topic_for(STORE, "gw-entrance", Kind.CONFIG)
    assert not gateway.subscribe(own_config).is_failure
    # Whether the broker refuses these subscriptions (embedded) or accepts and
    # filters each message (Mosquitto), nothing else may reach the gateway.
    gateway.subscribe(topic_for(STORE, "gw-checkout", Kind.CONFIG))
    gateway.subscribe("omnizone/v1/#")
    server = mqtt_probe(any_broker, *any_broker.accounts.server_credentials)
    server.publish(topic_for(STORE, "gw-checkout", Kind.CONFIG), b"not yours", retain=True)
    server.publish(own_config, b"yours", retain=True)
    message = gateway.next_message()
    assert (message.topic, message.payload) == (own_config, b"yours")
    assert gateway.messages.empty()


def test_server_writes_only_config_topics(
    any_broker: RunningBroker, mqtt_probe: ProbeFactory
) -> None:
    listener = mqtt_probe(any_broker, *any_broker.accounts.server_credentials)
    listener.subscribe("omnizone/v1/#")
    writer = mqtt_probe(any_broker, *any_broker.accounts.server_credentials)
    writer.publish(topic_for(STORE, "gw-entrance", Kind.BLE), b"forged by server")
    config = topic_for(STORE, "gw-entrance", Kind.CONFIG)
    writer.publish(config, b"config")
    message = listener.next_message()
    assert (message.topic, message.payload) == (config, b"config")
    assert listener.messages.empty()


def _drop_connection(probe: MqttProbe) -> None:
    """Vanish without DISCONNECT, as a gateway losing power: the broker fires the will."""
    probe.client.loop_stop()
    sock = probe.client.socket()
    assert sock is not None
    sock.close()


def test_gateway_will_on_its_own_status_is_delivered(
    any_broker: RunningBroker, mqtt_probe: ProbeFactory
) -> None:
    server = mqtt_probe(any_broker, *any_broker.accounts.server_credentials)
    server.subscribe("omnizone/v1/#")
    status = topic_for(STORE, "gw-entrance", Kind.STATUS)
    probe = mqtt_probe(any_broker, *_gateway(any_broker, "gw-entrance"), connect=False)
    probe.client.will_set(status, b"offline", qos=1, retain=True)
    assert not probe.connect()[0].is_failure
    _drop_connection(probe)
    message = server.next_message()
    assert (message.topic, message.payload) == (status, b"offline")


def test_gateway_will_on_another_gateways_topic_is_never_published(
    any_broker: RunningBroker, mqtt_probe: ProbeFactory
) -> None:
    server = mqtt_probe(any_broker, *any_broker.accounts.server_credentials)
    server.subscribe("omnizone/v1/#")
    probe = mqtt_probe(any_broker, *_gateway(any_broker, "gw-entrance"), connect=False)
    probe.client.will_set(topic_for(STORE, "gw-checkout", Kind.STATUS), b"offline", qos=1)
    reason, _present = probe.connect()
    # The embedded broker refuses the CONNECT; Mosquitto accepts it and drops the will.
    assert reason.is_failure or any_broker.kind == "mosquitto"
    if not reason.is_failure:
        _drop_connection(probe)
    # Connecting again with the same client id makes the broker finish the old
    # session (and any will) before its CONNACK; the marker then comes after it.
    again = mqtt_probe(any_broker, *_gateway(any_broker, "gw-entrance"), client_id=probe.client_id)
    marker = topic_for(STORE, "gw-entrance", Kind.HEALTH)
    again.publish(marker, b"m")
    assert server.next_message().topic == marker
    assert server.messages.empty()


def test_stop_leaves_no_process_and_frees_the_port(any_broker: RunningBroker) -> None:
    pid = any_broker.pid
    assert pid is not None and _pid_alive(pid)
    any_broker.stop()
    assert not _pid_alive(pid)
    assert _processes_mentioning(str(any_broker.run_dir)) == []
    assert not port_accepts(any_broker.host, any_broker.port)
    assert port_is_free(any_broker.host, any_broker.port)
    assert not any_broker.running


def test_restart_serves_the_same_port_again(
    any_broker: RunningBroker, mqtt_probe: ProbeFactory
) -> None:
    first_pid = any_broker.pid
    port = any_broker.port
    any_broker.restart()
    assert any_broker.pid != first_pid and any_broker.port == port
    server = mqtt_probe(any_broker, *any_broker.accounts.server_credentials)
    server.subscribe("omnizone/v1/+/+/status")
    topic = topic_for(STORE, "gw-shoes", Kind.STATUS)
    mqtt_probe(any_broker, *_gateway(any_broker, "gw-shoes")).publish(topic, b"online")
    assert server.next_message().payload == b"online"


def test_close_removes_a_run_dir_it_created(broker_accounts: BrokerAccounts) -> None:
    with start_broker(broker_accounts, prefer="embedded") as broker:
        run_dir = broker.run_dir
        assert (run_dir / "passwd").stat().st_mode & 0o077 == 0
    assert not run_dir.exists()


def test_busy_port_is_a_clear_error(
    any_broker: RunningBroker, broker_factory: Callable[..., RunningBroker]
) -> None:
    with pytest.raises(BrokerError, match="already in use"):
        broker_factory(any_broker.kind, port=any_broker.port)


def test_qos1_message_for_offline_server_survives_mosquitto_restart(
    mosquitto_broker: RunningBroker, mqtt_probe: ProbeFactory
) -> None:
    broker = mosquitto_broker
    credentials = broker.accounts.server_credentials
    ingest = mqtt_probe(broker, *credentials, client_id="ingest-1", clean_session=False)
    ingest.subscribe("omnizone/v1/+/+/ble", qos=1)
    ingest.disconnect()

    topic = topic_for(STORE, "gw-denim", Kind.BLE)
    gateway = mqtt_probe(broker, *_gateway(broker, "gw-denim"))
    gateway.publish(topic, b"queued while the server was away", qos=1)  # PUBACKed
    gateway.disconnect()

    broker.restart()

    again = mqtt_probe(
        broker, *credentials, client_id="ingest-1", clean_session=False, connect=False
    )
    reason, session_present = again.connect()
    assert not reason.is_failure and session_present
    message = again.next_message()
    assert (message.topic, message.payload, message.qos) == (
        topic,
        b"queued while the server was away",
        1,
    )


@pytest.mark.parametrize("kind", ["mosquitto", "embedded"])
def test_tls_listener_authenticates(
    kind: BrokerKind,
    broker_factory: Callable[..., RunningBroker],
    mqtt_probe: ProbeFactory,
    tls_files: tuple[Path, Path, Path],
) -> None:
    ca, cert, key = tls_files
    broker = broker_factory(kind, tls=TlsFiles(certfile=cert, keyfile=key, port=free_port()))
    assert broker.tls is not None
    gateway = mqtt_probe(broker, *_gateway(broker, "gw-menswear"), port=broker.tls.port, tls_ca=ca)
    server = mqtt_probe(broker, *broker.accounts.server_credentials)
    server.subscribe("omnizone/v1/+/gw-menswear/+")
    topic = topic_for(STORE, "gw-menswear", Kind.RFID)
    gateway.publish(topic, b"over tls")
    assert server.next_message().payload == b"over tls"
    bad = mqtt_probe(broker, "gw-menswear", "wrong", port=broker.tls.port, tls_ca=ca, connect=False)
    assert bad.connect()[0].is_failure


@pytest.mark.parametrize("kind", ["mosquitto", "embedded"])
def test_broker_dying_at_start_is_reported_with_its_log(
    kind: BrokerKind, broker_factory: Callable[..., RunningBroker], tmp_path: Path
) -> None:
    missing = TlsFiles(certfile=tmp_path / "no.crt", keyfile=tmp_path / "no.key", port=free_port())
    run_dir = tmp_path / "dying"
    with pytest.raises(BrokerError, match=r"exited with code \d+ while starting") as error:
        broker_factory(kind, tls=missing, run_dir=run_dir)
    assert "no.crt" in str(error.value)  # the log tail says what is wrong
    assert _processes_mentioning(str(run_dir)) == []


def test_broker_stops_when_its_starter_dies(tmp_path: Path) -> None:
    code = (
        "import sys, pathlib; from omnizone.broker import BrokerAccounts, start_broker\n"
        "acc = BrokerAccounts('srv', 'pw', {})\n"
        "b = start_broker(acc, prefer='embedded', run_dir=pathlib.Path(sys.argv[1]))\n"
        "print(b.pid, flush=True)\n"
        "import os; os._exit(0)  # no stop(), no cleanup\n"
    )
    run_dir = tmp_path / "orphan"
    out = subprocess.run(
        [sys.executable, "-c", code, str(run_dir)], capture_output=True, text=True, check=True
    )
    pid = int(out.stdout.strip())
    # PDEATHSIG delivers SIGTERM at once; give the broker a bounded time to exit.
    deadline = time.monotonic() + 10
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _pid_alive(pid)


def test_a_publish_above_the_size_limit_is_dropped_and_its_neighbours_arrive(
    any_broker: RunningBroker, mqtt_probe: ProbeFactory
) -> None:
    server = mqtt_probe(any_broker, *any_broker.accounts.server_credentials)
    server.subscribe("omnizone/v1/#")
    gateway = mqtt_probe(any_broker, *_gateway(any_broker, "gw-entrance"))
    topic = topic_for(STORE, "gw-entrance", Kind.BLE)
    largest = b"a" * MESSAGE_SIZE_LIMIT
    gateway.publish(topic, b"before")
    gateway.publish(topic, b"b" * (MESSAGE_SIZE_LIMIT + 1))
    gateway.publish(topic, largest)
    gateway.publish(topic, b"after")
    received = [server.next_message().payload for _ in range(3)]
    assert received == [b"before", largest, b"after"]
    assert server.messages.empty()
    if any_broker.kind == "embedded":  # Mosquitto logs the drop at debug level only
        assert "message_size_limit" in any_broker.log_file.read_text(errors="replace")
