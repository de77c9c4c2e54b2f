"""FCM (HTTP v1, OAuth2 through google-auth) and APNs (HTTP/2 over TLS, ES256
provider token) against local servers that check the request shape."""

import datetime as dt
import ipaddress
import json
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import h2.config
import h2.connection
import h2.events
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from omnizone.server.adapters.db import make_engine
from omnizone.server.adapters.mobile_push import (
    FCM_SCOPE,
    ApnsChannel,
    ApnsKey,
    FcmChannel,
    GoogleServiceAccount,
)
from omnizone.server.adapters.offer_db import OfferRepository
from omnizone.server.service.delivery import OfferDelivery, PushReceipt
from tests.server.delivery.conftest import (
    WAIT_S,
    Recorded,
    RecordingServer,
    Responder,
    draft,
    unb64url,
    verify_es256,
)

PROJECT = "omnizone-test"
SA_EMAIL = "push@omnizone-test.iam.gserviceaccount.com"
TEAM_ID = "TEAM123456"
KEY_ID = "KEY1234567"
TOPIC = "com.omnizone.shopper"


@pytest.fixture
def repo(tmp_path: Path) -> OfferRepository:
    return OfferRepository(make_engine(f"sqlite:///{tmp_path / 'offers.db'}"))


class Receipts:
    """What the delivery reports per channel (its ``on_push`` hook)."""

    def __init__(self) -> None:
        self.got: list[PushReceipt] = []

    def __call__(self, _offer: Any, receipt: PushReceipt) -> None:
        self.got.append(receipt)


# -- FCM -------------------------------------------------------------------------------


def _verify_rs256(token: str, key: rsa.RSAPublicKey) -> dict[str, Any]:
    header, claims, signature = token.split(".")
    key.verify(
        unb64url(signature), f"{header}.{claims}".encode(), padding.PKCS1v15(), hashes.SHA256()
    )
    assert json.loads(unb64url(header))["alg"] == "RS256"
    decoded: dict[str, Any] = json.loads(unb64url(claims))
    return decoded


def test_fcm_sends_with_an_oauth_token_from_the_service_account_and_drops_gone_tokens(
    tmp_path: Path,
    repo: OfferRepository,
    recording_server: Callable[[Responder], RecordingServer],
) -> None:
    def respond(request: Recorded) -> tuple[int, dict[str, str], bytes]:
        json_type = {"Content-Type": "application/json"}
        if request.path == "/token":
            token = {"access_token": "ya29.local", "expires_in": 3600, "token_type": "Bearer"}
            return 200, json_type, json.dumps(token).encode()
        if json.loads(request.body)["message"]["token"] == "fcm-gone":
            error = {
                "error": {
                    "code": 404,
                    "status": "NOT_FOUND",
                    "details": [
                        {
                            "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                            "errorCode": "UNREGISTERED",
                        }
                    ],
                }
            }
            return 404, json_type, json.dumps(error).encode()
        return 200, json_type, json.dumps({"name": f"projects/{PROJECT}/messages/1"}).encode()

    google = recording_server(respond)
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    account = tmp_path / "service-account.json"
    account.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": PROJECT,
                "private_key_id": "k1",
                "private_key": sa_key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                ).decode(),
                "client_email": SA_EMAIL,
                "client_id": "1",
                "token_uri": f"{google.url}/token",
            }
        )
    )
    credentials = GoogleServiceAccount(account)
    assert credentials.project_id == PROJECT
    channel = FcmChannel(PROJECT, credentials, repo, base_url=google.url)
    receipts = Receipts()
    delivery = OfferDelivery(repo, channels=[channel], on_push=receipts)
    try:
        delivery.register_push_token("alice", "fcm", "fcm-ok")
        delivery.register_push_token("alice", "fcm", "fcm-gone")
        first = delivery.publish("alice", draft(1, image="https://cdn.example/j.jpg"))
        assert delivery.settle(WAIT_S)
        delivery.publish("alice", draft(2))
        assert delivery.settle(WAIT_S)
    finally:
        delivery.close()
        channel.close()

    requests = google.wait_for(4)
    token_requests = [r for r in requests if r.path == "/token"]
    sends = [r for r in requests if r.path != "/token"]
    assert len(token_requests) == 1  # the access token is reused until it expires
    form = {k: v[0] for k, v in parse_qs(token_requests[0].body.decode()).items()}
    assert form["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    claims = _verify_rs256(form["assertion"], sa_key.public_key())
    # google-auth signs for Google's token audience whatever the token_uri
    assert (claims["iss"], claims["scope"], claims["aud"]) == (
        SA_EMAIL,
        FCM_SCOPE,
        "https://oauth2.googleapis.com/token",
    )

    assert [r.path for r in sends] == [f"/v1/projects/{PROJECT}/messages:send"] * 3
    assert all(r.headers["authorization"] == "Bearer ya29.local" for r in sends)
    message = json.loads(sends[0].body)["message"]
    assert message["notification"] == {
        "title": "Offer 1",
        "body": first.body,
        "image": "https://cdn.example/j.jpg",
    }
    assert all(isinstance(v, str) for v in message["data"].values())
    assert json.loads(message["data"]["offer"]) == first.wire()
    assert message["data"]["seq"] == "1" and message["android"]["priority"] == "HIGH"
    assert message["android"]["ttl"].endswith("s")
    assert repo.push_tokens("alice", "fcm") == ["fcm-ok"]
    assert [(r.sent, r.removed, r.failed) for r in receipts.got] == [(1, 1, 0), (1, 0, 0)]


# -- APNs ------------------------------------------------------------------------------


@dataclass
class H2Request:
    alpn: str | None
    headers: dict[str, str]
    body: bytes


H2Responder = Callable[[H2Request], tuple[int, bytes]]


def _self_signed() -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


class H2Server:
    """An HTTP/2-only TLS server (ALPN h2), as APNs is, built on the h2 library."""

    def __init__(self, tmp_path: Path, respond: H2Responder) -> None:
        cert, key = _self_signed()
        (tmp_path / "cert.pem").write_bytes(cert)
        (tmp_path / "key.pem").write_bytes(key)
        self.ca_pem = cert.decode()
        self._tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._tls.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
        self._tls.set_alpn_protocols(["h2"])
        self._respond = respond
        self.requests: list[H2Request] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"https://127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            tls = self._tls.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError):
            conn.close()
            return
        alpn = tls.selected_alpn_protocol()
        h2c = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        )
        h2c.initiate_connection()
        tls.sendall(h2c.data_to_send())
        streams: dict[int, H2Request] = {}
        with tls:
            while True:
                try:
                    data = tls.recv(65535)
                except OSError:
                    return
                if not data:
                    return
                for event in h2c.receive_data(data):
                    if isinstance(event, h2.events.RequestReceived):
                        headers = {str(k): str(v) for k, v in event.headers or []}
                        streams[event.stream_id or 0] = H2Request(alpn, headers, b"")
                    elif isinstance(event, h2.events.DataReceived):
                        stream = event.stream_id or 0
                        streams[stream].body += event.data or b""
                        h2c.acknowledge_received_data(event.flow_controlled_length or 0, stream)
                    elif isinstance(event, h2.events.StreamEnded):
                        stream = event.stream_id or 0
                        request = streams.pop(stream)
                        self.requests.append(request)
                        status, body = self._respond(request)
                        headers_out = [
                            (":status", str(status)),
                            ("apns-id", f"id-{len(self.requests)}"),
                            ("content-length", str(len(body))),
                        ]
                        h2c.send_headers(stream, headers_out, end_stream=not body)
                        if body:
                            h2c.send_data(stream, body, end_stream=True)
                    elif isinstance(event, h2.events.ConnectionTerminated):
                        return
                tls.sendall(h2c.data_to_send())

    def close(self) -> None:
        self._listener.close()


@pytest.fixture
def apns_server(tmp_path: Path) -> Iterator[Callable[[H2Responder], H2Server]]:
    servers: list[H2Server] = []

    def make(respond: H2Responder) -> H2Server:
        server = H2Server(tmp_path, respond)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


class FakeTime:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_apns_speaks_http2_with_an_es256_provider_token_and_drops_gone_tokens(
    repo: OfferRepository, apns_server: Callable[[H2Responder], H2Server]
) -> None:
    expired_once = {"done": False}

    def respond(request: H2Request) -> tuple[int, bytes]:
        device = request.headers[":path"].rsplit("/", 1)[-1]
        if device == "d" * 64:
            return 410, json.dumps({"reason": "Unregistered", "timestamp": 1}).encode()
        if device == "e" * 64:
            return 400, json.dumps({"reason": "BadDeviceToken"}).encode()
        if device == "f" * 64 and not expired_once["done"]:
            expired_once["done"] = True
            return 403, json.dumps({"reason": "ExpiredProviderToken"}).encode()
        return 200, b""

    server = apns_server(respond)
    p8 = ec.generate_private_key(ec.SECP256R1())
    pem = p8.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    clock = FakeTime()
    key = ApnsKey(pem, KEY_ID, TEAM_ID, clock_s=clock)
    channel = ApnsChannel(
        key,
        TOPIC,
        repo,
        base_url=server.url,
        verify=ssl.create_default_context(cadata=server.ca_pem),
    )
    for device in ("a" * 64, "d" * 64, "e" * 64):
        repo.save_push_token("alice", "apns", device, 0)
    receipts = Receipts()
    delivery = OfferDelivery(repo, channels=[channel], on_push=receipts)
    try:
        offer = delivery.publish("alice", draft(1, image="https://cdn.example/j.jpg"))
        assert delivery.settle(WAIT_S)
        clock.now += 51 * 60  # past the provider token's reuse window
        repo.save_push_token("alice", "apns", "f" * 64, 0)
        delivery.publish("alice", draft(2))
        assert delivery.settle(WAIT_S)
    finally:
        delivery.close()
        channel.close()

    assert all(r.alpn == "h2" for r in server.requests)
    first = server.requests[0]
    assert first.headers[":method"] == "POST"
    assert first.headers[":path"] == f"/3/device/{'a' * 64}"
    assert first.headers["apns-topic"] == TOPIC
    assert first.headers["apns-push-type"] == "alert"
    assert first.headers["apns-priority"] == "10"
    assert first.headers["apns-expiration"] == str(offer.expires_ms // 1000)
    assert first.headers["apns-collapse-id"] == offer.offer_id
    body = json.loads(first.body)
    assert body["aps"]["alert"] == {"title": "Offer 1", "body": offer.body}
    assert body["aps"]["mutable-content"] == 1
    assert body["offer"] == offer.wire()

    scheme, _, jwt = first.headers["authorization"].partition(" ")
    assert scheme == "bearer"
    header, claims = verify_es256(jwt, p8.public_key())
    assert header == {"alg": "ES256", "kid": KEY_ID}
    assert claims == {"iss": TEAM_ID, "iat": int(1_800_000_000.0)}
    tokens = [r.headers["authorization"] for r in server.requests]
    assert len(set(tokens[:3])) == 1  # reused within the first batch
    later = verify_es256(tokens[3].partition(" ")[2], p8.public_key())[1]
    assert later["iat"] == int(clock.now)

    # the second offer: a (kept), then f: refused once as expired, retried with a new token
    assert [r.headers[":path"][-64:] for r in server.requests[3:]] == [
        "a" * 64,
        "f" * 64,
        "f" * 64,
    ]
    assert tokens[4] != tokens[5]
    assert repo.push_tokens("alice", "apns") == ["a" * 64, "f" * 64]
    assert [(r.sent, r.removed, r.failed) for r in receipts.got] == [(1, 2, 0), (2, 0, 0)]


def test_an_apns_key_that_is_not_p256_is_refused(tmp_path: Path) -> None:
    rsa_pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(ValueError, match="APNs needs an EC P-256 key"):
        ApnsKey(rsa_pem, KEY_ID, TEAM_ID)
    with pytest.raises(ValueError, match="not a PEM"):
        ApnsKey(b"garbage", KEY_ID, TEAM_ID)
    (tmp_path / "sa.json").write_text('{"type": "authorized_user"}')
    with pytest.raises(ValueError, match="type 'service_account'"):
        GoogleServiceAccount(tmp_path / "sa.json")
