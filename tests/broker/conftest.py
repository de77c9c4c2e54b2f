"""Broker fixtures: a real broker process per test on a free port, and MQTT probes.

Fixtures (candidates to lift into tests/conftest.py):
- ``rivoli_plan``: the example store plan.
- ``broker_accounts``: BrokerAccounts for it (random passwords).
- ``broker_factory``: ``(kind, **start_broker kwargs) -> RunningBroker``; all closed at teardown.
- ``mosquitto_broker`` / ``embedded_broker`` / ``any_broker`` (parametrized over both kinds).
- ``tls_files``: (ca, cert, key) for 127.0.0.1 made with openssl (session scope).
- ``mqtt_probe``: ``(broker, username, password, *, client_id=None, clean_session=True,
  connect=True) -> MqttProbe`` — a paho 2.x client with a message queue; disconnected at teardown.
"""

from __future__ import annotations

import itertools
import queue
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from omnizone.broker import BrokerAccounts, BrokerKind, RunningBroker, find_mosquitto, start_broker
from omnizone.store import StorePlan, load_store

REPO = Path(__file__).resolve().parents[2]
WAIT_S = 10.0  # upper bound on waits for broker round trips; never a pass/fail threshold


class MqttProbe:
    """A blocking view over a paho client: connect, subscribe, publish, collect messages."""

    _ids = itertools.count()

    def __init__(
        self,
        broker: RunningBroker,
        username: str | None,
        password: str | None,
        *,
        client_id: str | None = None,
        clean_session: bool = True,
        port: int | None = None,
        tls_ca: Path | None = None,
    ) -> None:
        self.broker = broker
        self.port = port or broker.port
        self.client_id = client_id or f"probe-{next(self._ids)}"
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            clean_session=clean_session,
            protocol=mqtt.MQTTv311,
            reconnect_on_failure=False,
        )
        if username is not None:
            self.client.username_pw_set(username, password)
        if tls_ca is not None:
            self.client.tls_set(ca_certs=str(tls_ca))
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self._connack: queue.Queue[tuple[ReasonCode, bool]] = queue.Queue()
        self._subacks: dict[int, list[ReasonCode]] = {}
        self._suback_event = threading.Condition()
        self._disconnected = threading.Event()
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.on_disconnect = self._on_disconnect

    def _on_connect(self, _c: Any, _u: Any, flags: Any, reason: ReasonCode, _p: Any) -> None:
        self._connack.put((reason, bool(flags.session_present)))

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        self.messages.put(message)

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, reasons: list[ReasonCode], _p: Any) -> None:
        with self._suback_event:
            self._subacks[mid] = reasons
            self._suback_event.notify_all()

    def _on_disconnect(self, *_args: Any) -> None:
        self._disconnected.set()

    def connect(self) -> tuple[ReasonCode, bool]:
        """(CONNACK reason, session present). A refusal is returned, not raised."""
        self._disconnected.clear()
        self.client.connect(self.broker.host, self.port, keepalive=30)
        self.client.loop_start()
        return self._connack.get(timeout=WAIT_S)

    def subscribe(self, topic_filter: str, qos: int = 1) -> ReasonCode:
        result, mid = self.client.subscribe(topic_filter, qos)
        assert result == mqtt.MQTT_ERR_SUCCESS and mid is not None
        with self._suback_event:
            assert self._suback_event.wait_for(lambda: mid in self._subacks, timeout=WAIT_S)
            return self._subacks[mid][0]

    def publish(self, topic: str, payload: bytes | str, qos: int = 1, retain: bool = False) -> None:
        """Returns once the broker acknowledged (QoS 1) or the packet was sent (QoS 0)."""
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(timeout=WAIT_S)
        assert info.is_published(), f"publish to {topic} was not acknowledged"

    def next_message(self) -> mqtt.MQTTMessage:
        return self.messages.get(timeout=WAIT_S)

    def disconnect(self) -> None:
        if self.client.is_connected():
            self.client.disconnect()
            self._disconnected.wait(timeout=WAIT_S)
        self.client.loop_stop()


@pytest.fixture(scope="session")
def rivoli_plan() -> StorePlan:
    return load_store(REPO / "config" / "stores" / "rivoli.yaml")


@pytest.fixture
def broker_accounts(rivoli_plan: StorePlan) -> BrokerAccounts:
    return BrokerAccounts.for_store(rivoli_plan)


@pytest.fixture
def broker_factory(
    broker_accounts: BrokerAccounts, tmp_path: Path
) -> Iterator[Callable[..., RunningBroker]]:
    started: list[RunningBroker] = []

    def start(kind: BrokerKind, **kwargs: Any) -> RunningBroker:
        if kind == "mosquitto" and find_mosquitto() is None:
            pytest.skip("mosquitto is not installed")
        kwargs.setdefault("run_dir", tmp_path / f"{kind}-{len(started)}")
        broker = start_broker(kwargs.pop("accounts", broker_accounts), prefer=kind, **kwargs)
        started.append(broker)
        return broker

    yield start
    for broker in started:
        broker.close()


@pytest.fixture
def mosquitto_broker(broker_factory: Callable[..., RunningBroker]) -> RunningBroker:
    return broker_factory("mosquitto")


@pytest.fixture
def embedded_broker(broker_factory: Callable[..., RunningBroker]) -> RunningBroker:
    return broker_factory("embedded")


@pytest.fixture(params=["mosquitto", "embedded"])
def any_broker(
    request: pytest.FixtureRequest, broker_factory: Callable[..., RunningBroker]
) -> RunningBroker:
    return broker_factory(request.param)


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(ca cert, server cert, server key) for 127.0.0.1, made with the openssl CLI."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    folder = tmp_path_factory.mktemp("tls")
    ca_key, ca, key, csr, cert = (
        folder / n for n in ("ca.key", "ca.crt", "server.key", "server.csr", "server.crt")
    )
    ext = folder / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")

    def run(*args: str | Path) -> None:
        subprocess.run([openssl, *map(str, args)], check=True, capture_output=True)

    common = ["-newkey", "rsa:2048", "-nodes"]
    run("req", "-x509", *common, "-days", "2", "-subj", "/CN=omnizone test CA", "-keyout", ca_key,
        "-out", ca)  # fmt: skip
    run("req", *common, "-subj", "/CN=127.0.0.1", "-keyout", key, "-out", csr)
    run("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-days", "2",
        "-extfile", ext, "-out", cert)  # fmt: skip
    return ca, cert, key


@pytest.fixture
def mqtt_probe() -> Iterator[Callable[..., MqttProbe]]:
    probes: list[MqttProbe] = []

    def make(
        broker: RunningBroker,
        username: str | None,
        password: str | None,
        *,
        connect: bool = True,
        **kwargs: Any,
    ) -> MqttProbe:
        probe = MqttProbe(broker, username, password, **kwargs)
        probes.append(probe)
        if connect:
            reason, _present = probe.connect()
            assert not reason.is_failure, f"{username} could not connect: {reason}"
        return probe

    yield make
    for probe in probes:
        probe.disconnect()
