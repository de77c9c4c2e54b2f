"""The gateway's own MQTT session over TLS, and doctor's TLS diagnosis."""

import time
from collections.abc import Callable
from pathlib import Path

from omnizone.broker import RunningBroker, TlsFiles, free_port
from omnizone.contract import (
    AckMessage,
    HealthMessage,
    Kind,
    ack_topic,
    dump_ack,
    dump_message,
    topic_for,
)
from omnizone.gateway.doctor import check_broker
from omnizone.gateway.mqtt import BrokerAddress, MqttLink
from omnizone.gateway.outbox import Outbox
from omnizone.gateway.settings import GatewaySettings
from tests.broker.conftest import MqttProbe

STORE, GATEWAY = "paris-rivoli", "gw-menswear"
T0 = 1_795_251_600_000


def _tls_broker(
    factory: Callable[..., RunningBroker], files: tuple[Path, Path, Path]
) -> RunningBroker:
    _ca, cert, key = files
    return factory("mosquitto", tls=TlsFiles(certfile=cert, keyfile=key, port=free_port()))


def test_the_gateway_publishes_through_a_tls_listener(
    broker_factory: Callable[..., RunningBroker], tls_files: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    broker = _tls_broker(broker_factory, tls_files)
    assert broker.tls is not None
    user, password = broker.accounts.gateway_credentials(GATEWAY)
    outbox = Outbox(tmp_path / "outbox.db")
    outbox.append(
        lambda seq: (
            topic_for(STORE, GATEWAY, Kind.HEALTH),
            dump_message(
                HealthMessage(
                    store=STORE,
                    gateway=GATEWAY,
                    seq=seq,
                    sent_ms=T0,
                    uptime_s=1,
                    outbox_depth=0,
                    outbox_dropped=0,
                    version="test",
                )
            ),
        )
    )
    address = BrokerAddress("127.0.0.1", broker.tls.port, user, password, str(tls_files[0]))
    link = MqttLink(address, STORE, GATEWAY, outbox, lambda: T0, "test")
    # A row leaves the outbox on the server's ack, not the broker's PUBACK: play
    # the server, which has stored the health message (seq 0).
    server = MqttProbe(broker, broker.accounts.server_username, broker.accounts.server_password)
    server.connect()
    ack = AckMessage(
        store=STORE, gateway=GATEWAY, epoch=outbox.epoch, first_seq=0, last_seq=0, issued_ms=T0
    )
    server.publish(ack_topic(STORE, GATEWAY), dump_ack(ack), retain=True)
    server.disconnect()
    link.start()
    try:
        assert link.flush(15), link.last_error
        end = time.monotonic() + 10
        while len(link.acknowledged_seqs) < 2 and time.monotonic() < end:
            time.sleep(0.02)
        assert sorted(link.acknowledged_seqs) == [0, 1]  # the health message and the birth
    finally:
        link.stop()
        outbox.close()


def test_doctor_explains_a_tls_trust_failure(
    broker_factory: Callable[..., RunningBroker], tls_files: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    broker = _tls_broker(broker_factory, tls_files)
    assert broker.tls is not None
    _user, password = broker.accounts.gateway_credentials(GATEWAY)
    common = {
        "store": STORE,
        "gateway": GATEWAY,
        "password": password,
        "broker_host": "127.0.0.1",
        "broker_port": broker.tls.port,
    }
    (good,) = check_broker(GatewaySettings(**common, tls_ca=str(tls_files[0])))
    assert good.verdict == "ok", good
    (untrusted,) = check_broker(GatewaySettings(**common, tls_ca=str(tls_files[1])))
    assert untrusted.verdict == "fail" and "TLS" in untrusted.detail and "tls_ca" in untrusted.fix
