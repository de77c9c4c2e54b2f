"""Request bodies are bounded on every route, a 422 does not echo a huge input,
and the open routes are rate limited per client address: over real HTTP, on
the started server."""

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from omnizone.server.entrypoints.limits import (
    DEFAULT_MAX_REQUEST_BYTES,
    RateSettings,
    TokenBuckets,
)
from omnizone.server.runtime import ServerRuntime
from omnizone.server.service.layouts import MAX_IMAGE_BYTES

from .conftest import STORE, Broker
from .test_runtime import KEY, WAIT_S, settings_for

pytestmark = pytest.mark.e2e

ADMIN = {"X-API-Key": KEY}


@pytest.fixture
def server(broker: Broker, tmp_path: Path) -> Iterator[str]:
    # Three registrations at once, then (practically) never another one.
    settings = settings_for(broker, tmp_path, open_route_rate_per_minute=0.001, open_route_burst=3)
    with ServerRuntime(settings) as runtime:
        assert runtime.api_url is not None
        yield runtime.api_url


def _raw_request(url: str, head: bytes, body_start: bytes) -> tuple[int, bytes]:
    """Send the head and the first body bytes only; the answer's status and body."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=WAIT_S) as sock:
        sock.sendall(head + body_start)
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer.partition(b"\r\n\r\n")[2]) < 10:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    status = int(answer.split(b" ", 2)[1])
    return status, answer.partition(b"\r\n\r\n")[2]


def test_a_declared_huge_body_gets_413_before_it_is_sent(server: str) -> None:
    head = (
        f"POST /api/v1/shoppers HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {100 * 1024 * 1024}\r\n\r\n"
    ).encode()
    status, body = _raw_request(server, head, b'{"store": "')
    assert status == 413
    assert f"more than {DEFAULT_MAX_REQUEST_BYTES} bytes" in body.decode(errors="replace")


def test_a_streamed_body_over_the_limit_gets_413(server: str) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"store": "'
        for _ in range(40):
            yield b"a" * 65536  # 2.5 MiB in all, no Content-Length

    response = httpx.post(
        f"{server}/api/v1/stores/{STORE}/layouts",
        content=chunks(),
        headers={**ADMIN, "Content-Type": "application/json"},
        timeout=WAIT_S,
    )
    assert response.status_code == 413
    assert "more than" in response.json()["detail"]


def test_the_floor_image_upload_takes_more_than_the_default_but_not_without_end(
    server: str,
) -> None:
    url = f"{server}/api/v1/stores/{STORE}/floor-images"
    headers = {**ADMIN, "Content-Type": "image/png"}
    image = b"\x89PNG\r\n\x1a\n" + b"\0" * (2 * DEFAULT_MAX_REQUEST_BYTES)
    accepted = httpx.post(url, content=image, headers=headers, timeout=WAIT_S)
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["bytes"] == len(image)
    too_big = httpx.post(url, content=b"\0" * (MAX_IMAGE_BYTES + 1), headers=headers)
    assert too_big.status_code == 413


def test_a_validation_error_does_not_echo_a_huge_input(server: str) -> None:
    huge_key = "k" * 300_000
    bodies = [
        {"store": STORE, huge_key: 1},  # the field name is echoed in "loc"
        {"store": ["a" * 100] * 5000},  # the value is echoed in "input"
    ]
    for body in bodies:
        sent = json.dumps(body)
        response = httpx.post(f"{server}/api/v1/shoppers", content=sent, timeout=WAIT_S)
        assert response.status_code == 422
        assert len(response.content) < 5000 < len(sent)
        [error] = response.json()["detail"]
        assert error["loc"][0] == "body" and error["msg"]


def test_registration_is_rate_limited_per_address_with_retry_after(server: str) -> None:
    statuses = [
        httpx.post(f"{server}/api/v1/shoppers", json={"store": STORE}).status_code for _ in range(4)
    ]
    assert statuses == [201, 201, 201, 429]
    refused = httpx.post(f"{server}/api/v1/shoppers", json={"store": STORE})
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
    assert "too many requests" in refused.json()["detail"]
    # Routes that need a key are not limited, nor the webhook's bucket shared.
    assert httpx.get(f"{server}/api/v1/stores", headers=ADMIN).status_code == 200


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_refills_at_its_rate_and_says_how_long_to_wait() -> None:
    clock = FakeClock()
    buckets = TokenBuckets(RateSettings(per_minute=60, burst=2), clock)
    assert [buckets.take("a"), buckets.take("a")] == [0, 0]
    assert buckets.take("a") == pytest.approx(1.0)
    assert buckets.take("b") == 0  # another address has its own bucket
    clock.now += 0.5
    assert buckets.take("a") == pytest.approx(0.5)
    clock.now += 0.5
    assert buckets.take("a") == 0


def test_buckets_are_bounded_in_number() -> None:
    clock = FakeClock()
    buckets = TokenBuckets(RateSettings(per_minute=1, burst=1, max_clients=3), clock)
    assert buckets.take("first") == 0
    for address in ("b", "c", "d"):
        buckets.take(address)
    assert buckets.take("first") == 0  # forgotten, so it starts full again
    assert buckets.take("d") > 0


def test_the_simulated_app_waits_out_the_rate_limit(broker: Broker, tmp_path: Path) -> None:
    from omnizone.sim.app_client import register_app_phones

    # Two at once, then one every 3 s: the third phone is told to wait (429).
    settings = settings_for(broker, tmp_path, open_route_rate_per_minute=20, open_route_burst=2)
    with ServerRuntime(settings) as runtime:
        assert runtime.api_url is not None
        phones = register_app_phones(runtime.api_url, STORE, 3)
        assert len({p.shopper_id for p in phones}) == 3
