"""The alerts API in the whole server (issue 18 point 7): shoppers heard by a
gateway fill a zone over its capacity; GET /alerts lists the alert (JSON and
CSV) and the signed webhook receives it once."""

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest

from omnizone.server.domain.identity import SIGNATURE_HEADER, check_webhook_signature
from omnizone.server.runtime import ServerRuntime
from omnizone.store import StorePlan

from .conftest import STORE
from .test_bootstrap import ADMIN, WAIT_S, Server, settings_for

SECRET = "alert-webhook-secret-0001"


class _Receiver(BaseHTTPRequestHandler):
    bodies: ClassVar[list[tuple[bytes, str]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).bodies.append((body, self.headers[SIGNATURE_HEADER]))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def hook_url() -> Iterator[str]:
    _Receiver.bodies = []
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{receiver.server_address[1]}/alerts"
    receiver.shutdown()
    receiver.server_close()


def test_a_zone_over_capacity_is_listed_and_sent_signed(
    plan: StorePlan, tmp_path: Path, hook_url: str
) -> None:
    settings = settings_for(
        tmp_path,
        alert_webhook_url=hook_url,
        alert_webhook_secret=SECRET,
        push_endpoint_allow=["127.0.0.1"],
        alert_check_interval_s=0,  # checked by the API here; the loop is test_alert_loop's
    )
    with (
        ServerRuntime(settings, stores={plan.id: plan}) as runtime,
        httpx.Client(base_url=runtime.api_url, timeout=WAIT_S) as client,
    ):
        server = Server(runtime, client)
        rules = {"zone_capacity": {"womenswear": 2}, "gateway_silent_s": None}
        put = client.put(f"/api/v1/stores/{STORE}/alerts/rules", json=rules, headers=ADMIN)
        assert put.status_code == 200, put.text
        quiet = client.get(f"/api/v1/stores/{STORE}/alerts", headers=ADMIN)
        assert quiet.status_code == 200 and quiet.json()["active"] == []
        server.walk([server.phone() for _ in range(3)], windows=15)
        answer = client.get(f"/api/v1/stores/{STORE}/alerts", headers=ADMIN)
        assert answer.status_code == 200, answer.text
        active = answer.json()["active"]
        assert [(a["key"], a["value"]) for a in active] == [("occupancy:womenswear", 3)]
        again = client.get(f"/api/v1/stores/{STORE}/alerts?format=csv", headers=ADMIN)
        assert again.headers["content-type"].startswith("text/csv")
        assert again.text.splitlines()[1].startswith("occupancy:womenswear,occupancy,womenswear")
        assert client.get(f"/api/v1/stores/{STORE}/alerts").status_code == 401
        assert client.get("/api/v1/stores/nowhere/alerts", headers=ADMIN).status_code == 404
        assert runtime.parts.alert_loop is not None
        # the loop's round sends the log's changes: the raise, once
        for _ in range(2):
            runtime.parts.alert_loop.run_once()
    assert len(_Receiver.bodies) == 1  # raised once, though asked and sent twice
    body, signature = _Receiver.bodies[0]
    check_webhook_signature(SECRET.encode(), body, signature)
    sent = json.loads(body)
    assert sent["type"] == "alert.raised" and sent["alert"]["key"] == "occupancy:womenswear"
