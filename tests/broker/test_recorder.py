"""The recorder account and ``sim record`` / ``sim replay`` on a real Mosquitto:
nothing lost, duplicated or reordered per gateway; the recorder publishes
nothing and reads no other store; a kill -9 loses at most the last second."""

from __future__ import annotations

import json
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from omnizone.broker import BrokerAccounts, RunningBroker, recorder_username
from omnizone.broker.accounts import Access, may_publish, may_subscribe, render_acl_file
from omnizone.broker.files import write_private
from omnizone.contract.messages import parse_message
from omnizone.contract.timefmt import wall_clock_ms
from omnizone.contract.topics import GATEWAY_KINDS, Kind, topic_for
from omnizone.sim.recording import read_recording
from omnizone.sim.recording.record import Recorder, RecorderError, RecorderOptions
from omnizone.sim.recording.replay import BrokerLogin, replay
from omnizone.store import StorePlan
from omnizone.suite.bench.record_replay import ble_payload
from tests.broker.conftest import REPO, WAIT_S, MqttProbe

STORE = "paris-rivoli"
GATEWAYS = ["gw-entrance", "gw-shoes", "gw-checkout"]
_PHONES = [f"ibeacon:f7826da6-4fa2-4e98-8024-bc5b71e0893e:1:{n}" for n in range(20)]


@pytest.fixture
def broker_accounts(rivoli_plan: StorePlan) -> BrokerAccounts:
    """The store's accounts with its recorder (overrides the conftest's)."""
    return BrokerAccounts.for_store(rivoli_plan, recorder=True)


def _payload(gateway: str, seq: int, rng: random.Random) -> bytes:
    heard = rng.sample(_PHONES, rng.randint(1, 5))
    return ble_payload(STORE, gateway, seq, 1_764_748_800_000 + seq * 1000, heard, rng)


@contextmanager
def _recording(broker: RunningBroker, accounts: BrokerAccounts, out: Path) -> Iterator[Recorder]:
    username, password = accounts.recorder_credentials(STORE)
    recorder = Recorder(RecorderOptions(STORE, out, broker.host, broker.port, username, password))
    stop = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            recorder.run(stop)
        except BaseException as error:  # reported by the test, not lost in the thread
            errors.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert recorder.subscribed.wait(WAIT_S) or errors, "the recorder did not subscribe"
    assert not errors, errors
    try:
        yield recorder
    finally:
        stop.set()
        thread.join(WAIT_S)
        assert not errors, errors


def _wait(condition: Callable[[], bool]) -> None:
    end = time.monotonic() + WAIT_S
    while not condition() and time.monotonic() < end:
        time.sleep(0.02)
    assert condition()


def _per_gateway(path: Path) -> dict[str, list[tuple[bytes, int, bool]]]:
    result: dict[str, list[tuple[bytes, int, bool]]] = {}
    for message in read_recording(path).messages:
        result.setdefault(message.topic.split("/")[3], []).append(
            (message.payload, message.qos, message.retain)
        )
    return result


def test_the_recorder_account_reads_its_stores_gateway_kinds_and_writes_nothing(
    broker_accounts: BrokerAccounts,
) -> None:
    user = recorder_username(STORE)
    rules = [r for r in broker_accounts.acl_rules() if r.username == user]
    assert {r.access for r in rules} == {Access.READ}
    assert {r.pattern for r in rules} == {
        f"omnizone/v1/{STORE}/+/{kind.value}" for kind in GATEWAY_KINDS
    }
    all_rules = broker_accounts.acl_rules()
    for kind in Kind:
        assert not may_publish(all_rules, user, topic_for(STORE, "gw-shoes", kind))
    assert may_subscribe(all_rules, user, f"omnizone/v1/{STORE}/+/ble")
    assert not may_subscribe(all_rules, user, "omnizone/v1/other-store/+/ble")
    assert not may_subscribe(all_rules, user, f"omnizone/v1/{STORE}/+/config")
    assert not may_subscribe(all_rules, user, "omnizone/v1/#")
    assert f"user {user}" in render_acl_file(broker_accounts)
    login = broker_accounts.clients_file()["recorders"]
    assert login == {STORE: {"username": user, "password": broker_accounts.recorders[STORE]}}


def test_a_recorder_username_taken_by_a_gateway_is_refused() -> None:
    with pytest.raises(ValueError, match="already taken"):
        BrokerAccounts(
            "omnizone-server",
            "server-pw",
            {recorder_username("s1"): ("s1", "pw")},
            recorders={"s1": "rec-pw"},
        )


def test_record_then_replay_loses_duplicates_and_reorders_nothing_per_gateway(
    broker_factory: Callable[..., RunningBroker],
    broker_accounts: BrokerAccounts,
    mqtt_probe: Callable[..., MqttProbe],
    tmp_path: Path,
) -> None:
    live = broker_factory("mosquitto")
    rng = random.Random(1)
    sent: dict[str, list[bytes]] = {gw: [] for gw in GATEWAYS}
    with _recording(live, broker_accounts, tmp_path / "live.ozrec") as recorder:
        gateways = {
            gw: mqtt_probe(live, *broker_accounts.gateway_credentials(gw)) for gw in GATEWAYS
        }
        for seq in range(150):
            for gw, probe in gateways.items():
                payload = _payload(gw, seq, rng)
                sent[gw].append(payload)
                probe.client.publish(topic_for(STORE, gw, Kind.BLE), payload, qos=1)
        status = topic_for(STORE, "gw-shoes", Kind.STATUS)
        gateways["gw-shoes"].publish(status, b'{"retained": "kept as such"}', retain=True)
        sent["gw-shoes"].append(b'{"retained": "kept as such"}')
        _wait(lambda: recorder.stats.messages == sum(map(len, sent.values())))
    recorded = _per_gateway(tmp_path / "live.ozrec")
    assert {gw: [p for p, _q, _r in rows] for gw, rows in recorded.items()} == sent
    assert recorded["gw-shoes"][-1][2] is True, "the retained status is recorded as retained"
    assert all(qos == 1 for rows in recorded.values() for _p, qos, _r in rows)

    fresh = broker_factory("mosquitto")
    with _recording(fresh, broker_accounts, tmp_path / "replayed.ozrec") as again:
        stats = replay(
            [tmp_path / "live.ozrec"],
            BrokerLogin(fresh.host, fresh.port),
            broker_accounts.all_gateway_credentials(),
            speed=0,
        )
        assert dict(stats.published) == {gw: len(rows) for gw, rows in sent.items()}
        _wait(lambda: again.stats.messages == sum(map(len, sent.values())))
    # Message for message, per gateway: same payloads, same order, QoS and retain.
    assert _per_gateway(tmp_path / "replayed.ozrec") == recorded


def test_parts_rotate_by_size_and_hour_and_replay_as_one_recording(
    broker_factory: Callable[..., RunningBroker],
    broker_accounts: BrokerAccounts,
    mqtt_probe: Callable[..., MqttProbe],
    tmp_path: Path,
) -> None:
    live = broker_factory("mosquitto")
    jump = [0]  # the recorder's clock, moved forward an hour mid-way

    def clock() -> int:
        return wall_clock_ms() + jump[0]

    username, password = broker_accounts.recorder_credentials(STORE)
    options = RecorderOptions(
        STORE, tmp_path / "parts" / "rivoli.ozrec", live.host, live.port, username, password,
        rotate_bytes=500,
    )  # fmt: skip
    (tmp_path / "parts").mkdir()
    recorder = Recorder(options, clock=clock)
    stop = threading.Event()
    thread = threading.Thread(target=recorder.run, args=(stop,), daemon=True)
    thread.start()
    assert recorder.subscribed.wait(WAIT_S)
    gateway = mqtt_probe(live, *broker_accounts.gateway_credentials("gw-denim"))
    rng = random.Random(4)
    sent = []
    for seq in range(60):
        if seq == 30:
            jump[0] = 3_600_000
        payload = _payload("gw-denim", seq, rng)
        gateway.publish(topic_for(STORE, "gw-denim", Kind.BLE), payload)
        sent.append(payload)
        time.sleep(0.05)  # spread over flushes, so parts fill up
    _wait(lambda: recorder.stats.messages == len(sent))
    stop.set()
    thread.join(WAIT_S)
    files = sorted((tmp_path / "parts").iterdir())
    assert len(files) >= 3
    assert tmp_path / "parts" / "rivoli.0001.ozrec" in files
    hours = {read_recording(f).header.started_ms // 3_600_000 for f in files}
    assert len(hours) == 2, "a new hour starts a new part"
    fresh = broker_factory("mosquitto")
    with _recording(fresh, broker_accounts, tmp_path / "again.ozrec") as again:
        replay(
            [tmp_path / "parts"],
            BrokerLogin(fresh.host, fresh.port),
            broker_accounts.all_gateway_credentials(),
            speed=0,
        )
        _wait(lambda: again.stats.messages == len(sent))
    assert [m.payload for m in read_recording(tmp_path / "again.ozrec").messages] == sent


def test_a_publish_with_the_recorder_login_never_reaches_a_subscriber(
    mosquitto_broker: RunningBroker,
    broker_accounts: BrokerAccounts,
    mqtt_probe: Callable[..., MqttProbe],
) -> None:
    server = mqtt_probe(mosquitto_broker, *broker_accounts.server_credentials)
    server.subscribe("omnizone/v1/#")
    recorder = mqtt_probe(mosquitto_broker, *broker_accounts.recorder_credentials(STORE))
    for kind in Kind:
        # MQTT 3.1.1 acknowledges a denied publish and drops it.
        recorder.publish(topic_for(STORE, "gw-shoes", kind), b"forged")
    gateway = mqtt_probe(mosquitto_broker, *broker_accounts.gateway_credentials("gw-shoes"))
    gateway.publish(topic_for(STORE, "gw-shoes", Kind.BLE), b"real")
    # The gateway's message, sent after every forged one, is the first and only one.
    first = server.next_message()
    assert (first.topic, first.payload) == (topic_for(STORE, "gw-shoes", Kind.BLE), b"real")
    assert server.messages.empty()
    # MQTT 5 says so: the broker answers "not authorized".
    reasons: queue.Queue[ReasonCode] = queue.Queue()
    v5 = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    v5.username_pw_set(*broker_accounts.recorder_credentials(STORE))
    v5.on_publish = lambda _c, _u, _mid, reason, _p: reasons.put(reason)
    v5.connect(mosquitto_broker.host, mosquitto_broker.port)
    v5.loop_start()
    try:
        v5.publish(topic_for(STORE, "gw-shoes", Kind.BLE), b"forged", qos=1)
        assert reasons.get(timeout=WAIT_S).getName() == "Not authorized"
    finally:
        v5.disconnect()
        v5.loop_stop()


def test_the_recorder_hears_nothing_of_another_store_nor_any_config(
    broker_factory: Callable[..., RunningBroker],
    broker_accounts: BrokerAccounts,
    mqtt_probe: Callable[..., MqttProbe],
) -> None:
    two_stores = BrokerAccounts(
        broker_accounts.server_username,
        broker_accounts.server_password,
        {**broker_accounts.gateways, "gw-other": ("other-store", "other-pw")},
        recorders=broker_accounts.recorders,
    )
    broker = broker_factory("mosquitto", accounts=two_stores)
    recorder = mqtt_probe(broker, *two_stores.recorder_credentials(STORE))
    # Mosquitto grants these and filters every message by the read ACL.
    for topic_filter in ("omnizone/v1/other-store/+/+", f"omnizone/v1/{STORE}/+/config", "#"):
        recorder.subscribe(topic_filter)
    own = topic_for(STORE, "gw-shoes", Kind.BLE)
    assert not recorder.subscribe(own).is_failure
    other = mqtt_probe(broker, *two_stores.gateway_credentials("gw-other"))
    for kind in sorted(GATEWAY_KINDS):
        other.publish(topic_for("other-store", "gw-other", kind), b"not yours")
    server = mqtt_probe(broker, *two_stores.server_credentials)
    server.publish(topic_for(STORE, "gw-shoes", Kind.CONFIG), b"not yours", retain=True)
    mqtt_probe(broker, *two_stores.gateway_credentials("gw-shoes")).publish(own, b"yours")
    message = recorder.next_message()
    assert (message.topic, message.payload) == (own, b"yours")
    assert recorder.messages.empty()


def _start_recorder_process(
    broker: RunningBroker, accounts: BrokerAccounts, tmp_path: Path, out: Path
) -> subprocess.Popen[str]:
    accounts_file = tmp_path / "accounts.yaml"
    write_private(accounts_file, yaml.safe_dump(accounts.clients_file()))
    process = subprocess.Popen(
        [sys.executable, "-m", "omnizone.suite", "sim", "record",
         "--store", str(REPO / "config" / "stores" / "rivoli.yaml"), "--out", str(out),
         "--broker-port", str(broker.port), "--accounts", str(accounts_file), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert process.stderr is not None
    line = process.stderr.readline()
    assert line.startswith("recording store"), line + process.stderr.read()  # subscribed
    return process


@pytest.mark.fault
def test_kill_9_loses_at_most_the_last_second(
    mosquitto_broker: RunningBroker,
    broker_accounts: BrokerAccounts,
    mqtt_probe: Callable[..., MqttProbe],
    tmp_path: Path,
) -> None:
    out = tmp_path / "killed.ozrec"
    process = _start_recorder_process(mosquitto_broker, broker_accounts, tmp_path, out)
    gateway = mqtt_probe(mosquitto_broker, *broker_accounts.gateway_credentials("gw-shoes"))
    rng = random.Random(2)
    acked: list[tuple[float, bytes]] = []
    try:
        for seq in range(80):  # four seconds at 20 a second
            payload = _payload("gw-shoes", seq, rng)
            gateway.publish(topic_for(STORE, "gw-shoes", Kind.BLE), payload)
            acked.append((time.monotonic(), payload))
            time.sleep(0.05)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        process.wait(WAIT_S)
    recording = read_recording(out)
    kept = {m.payload for m in recording.messages}
    must_be_kept = [p for at, p in acked if at < killed_at - 1.5]
    assert len(must_be_kept) > 20
    missing = [p for p in must_be_kept if p not in kept]
    assert not missing, f"{len(missing)} messages acknowledged > 1.5 s before the kill are lost"
    assert [m.payload for m in recording.messages] == [p for _at, p in acked][: len(kept)]


def test_sigterm_closes_the_file_and_prints_the_summary(
    mosquitto_broker: RunningBroker,
    broker_accounts: BrokerAccounts,
    mqtt_probe: Callable[..., MqttProbe],
    tmp_path: Path,
) -> None:
    out = tmp_path / "stopped.ozrec"
    process = _start_recorder_process(mosquitto_broker, broker_accounts, tmp_path, out)
    gateway = mqtt_probe(mosquitto_broker, *broker_accounts.gateway_credentials("gw-entrance"))
    rng = random.Random(3)
    payloads = [_payload("gw-entrance", seq, rng) for seq in range(10)]
    for payload in payloads:
        gateway.publish(topic_for(STORE, "gw-entrance", Kind.BLE), payload)
    _wait(lambda: len(read_recording(out).messages) == len(payloads))
    process.send_signal(signal.SIGTERM)
    stdout, _stderr = process.communicate(timeout=WAIT_S)
    assert process.returncode == 0
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["per_gateway"] == {"gw-entrance": 10}
    recording = read_recording(out)
    assert recording.truncated_bytes == 0
    assert [m.payload for m in recording.messages] == payloads
    assert [parse_message(m.topic, m.payload).seq for m in recording.messages] == list(range(10))


def test_a_refused_login_says_so_and_leaves_no_file(
    mosquitto_broker: RunningBroker, tmp_path: Path
) -> None:
    out = tmp_path / "refused.ozrec"
    options = RecorderOptions(
        STORE, out, mosquitto_broker.host, mosquitto_broker.port, recorder_username(STORE), "wrong"
    )
    with pytest.raises(RecorderError, match=r"refused the recorder .* Not authorized"):
        Recorder(options).run(threading.Event())
    assert not out.exists()


def test_sim_replay_command_shifts_to_now_and_reports_per_gateway(
    mosquitto_broker: RunningBroker,
    broker_accounts: BrokerAccounts,
    mqtt_probe: Callable[..., MqttProbe],
    tmp_path: Path,
) -> None:
    from typer.testing import CliRunner

    from omnizone.sim.recording import RecordedMessage, RecordingHeader, write_recording
    from omnizone.suite.cli import app

    rng = random.Random(6)
    t0 = 1_764_748_800_000
    messages = [
        RecordedMessage(t0 + seq * 1000 + n, topic_for(STORE, gw, Kind.BLE), _payload(gw, seq, rng))
        for seq in range(5)
        for n, gw in enumerate(GATEWAYS)
    ]
    path = tmp_path / "old.ozrec"
    write_recording(path, RecordingHeader(store=STORE, started_ms=t0), messages)
    accounts_file = tmp_path / "accounts.yaml"
    write_private(accounts_file, yaml.safe_dump(broker_accounts.clients_file()))
    server = mqtt_probe(mosquitto_broker, *broker_accounts.server_credentials)
    server.subscribe(f"omnizone/v1/{STORE}/+/ble")
    before_ms = wall_clock_ms()
    result = CliRunner().invoke(
        app,
        ["sim", "replay", str(path), "--accounts", str(accounts_file), "--fast",
         "--shift-to-now", "--broker-port", str(mosquitto_broker.port), "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["per_gateway"] == {gw: {"planned": 5, "published": 5} for gw in GATEWAYS}
    received = [server.next_message() for _ in messages]
    for original, message in zip(messages, received, strict=True):
        old = parse_message(original.topic, original.payload)
        new = parse_message(message.topic, bytes(message.payload))
        assert new.sent_ms - old.sent_ms == summary["shifted_ms"]
        assert (new.gateway, new.seq) == (old.gateway, old.seq)
    assert summary["shifted_ms"] >= before_ms - t0


def test_the_recorder_reconnects_after_the_broker_restarts(
    mosquitto_broker: RunningBroker,
    broker_accounts: BrokerAccounts,
    mqtt_probe: Callable[..., MqttProbe],
    tmp_path: Path,
) -> None:
    out = tmp_path / "restart.ozrec"
    topic = topic_for(STORE, "gw-menswear", Kind.BLE)
    login = broker_accounts.gateway_credentials("gw-menswear")
    with _recording(mosquitto_broker, broker_accounts, out) as recorder:
        before = mqtt_probe(mosquitto_broker, *login)
        for n in range(5):
            before.publish(topic, f"before-{n}".encode())
        _wait(lambda: recorder.stats.messages == 5)
        before.disconnect()
        mosquitto_broker.restart()
        after = mqtt_probe(mosquitto_broker, *login)
        # The recorder has a clean session: what is sent before it is back is
        # not for it. Send until one arrives.
        end = time.monotonic() + WAIT_S
        n = 0
        while recorder.stats.messages == 5 and time.monotonic() < end:
            after.publish(topic, f"after-{n}".encode())
            n += 1
            time.sleep(0.2)
        _wait(lambda: recorder.stats.messages > 5)
        assert recorder.stats.reconnects >= 1
    payloads = [m.payload for m in read_recording(out).messages]
    assert payloads[:5] == [f"before-{n}".encode() for n in range(5)]
    assert payloads[5:] and all(p.startswith(b"after-") for p in payloads[5:])
