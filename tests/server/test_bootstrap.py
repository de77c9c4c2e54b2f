"""The composition root wires the server's parts to each other: gateway
messages reach the offer engine, its offers reach the phone with the
campaign's whole coupon code, the campaign report is one report, and a
shopper's erasure and export reach every part that holds something.

Everything here runs what ``bootstrap.build_server`` builds, in the
``ServerRuntime`` that ``omnizone server run`` starts, over real HTTP and
WebSocket, without a broker: messages are handed to ingest the way the MQTT
adapter hands them over."""

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from omnizone.contract.eid import EidParams, eid_device_key
from omnizone.server.bootstrap import ServerParts, build_server
from omnizone.server.domain.identity import Purpose
from omnizone.server.domain.offers.coupons import CODE_ALPHABET, CODE_LENGTH
from omnizone.server.runtime import ServerRuntime
from omnizone.server.settings import ServerSettings
from omnizone.store import StorePlan

from .conftest import STORE, ble

ADMIN = {"X-API-Key": "bootstrap-admin-0001"}
WAIT_S = 15.0  # only bounds a hang

VIP = {  # a fixed code with a dash in it: every offer gets it whole, plus a unique part
    "id": "vip-2025",
    "name": "VIP 2025",
    "priority": 10,
    "trigger": {"kind": "store_entered"},
    "content": {"title": "Welcome back", "coupon_code": "VIP-2025"},
    "holdout_fraction": 0,
}
SPRING = {  # a template: the decision fills in {code}
    "id": "spring-sale",
    "name": "Spring sale",
    "priority": 10,
    "trigger": {"kind": "zone_entered", "zones": ["womenswear"]},
    "content": {"title": "Spring sale", "coupon_code": "SPRING-SALE-{code}"},
    "holdout_fraction": 0,
}


@dataclass
class Phone:
    shopper_id: str
    token: str
    eid: EidParams

    @classmethod
    def registered(cls, body: dict[str, Any]) -> "Phone":
        """The phone as ``POST /api/v1/shoppers`` answered its registration."""
        eid = EidParams(
            bytes.fromhex(body["eid_key"]),
            body["eid_rotation_exponent"],
            body["eid_clock_offset_s"],
        )
        return cls(body["shopper_id"], body["token"], eid)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Server:
    runtime: ServerRuntime
    client: httpx.Client
    seq: int = 0

    @property
    def parts(self) -> ServerParts:
        return self.runtime.parts

    def live(self, phone: Phone, count: int) -> list[dict[str, Any]]:
        """The first ``count`` messages of the phone's live offer stream."""
        url = self.runtime.api_url.replace("http", "ws", 1)
        with connect(f"{url}/api/v1/me/offers/ws?token={phone.token}") as ws:
            return [json.loads(ws.recv(timeout=WAIT_S)) for _ in range(count)]

    def phone(self) -> Phone:
        """A registered app with consent to offers and to location analytics."""
        registered = self.client.post("/api/v1/shoppers", json={"store": STORE})
        assert registered.status_code == 201, registered.text
        body = registered.json()
        phone = Phone.registered(body)
        consent = {Purpose.PERSONALIZED_OFFERS.value: True, Purpose.LOCATION_ANALYTICS.value: True}
        changed = self.client.put("/api/v1/me/consent", json=consent, headers=phone.auth)
        assert changed.status_code == 200, changed.text
        return phone

    def walk(self, phones: list[Phone], windows: int) -> None:
        """The phones heard by the womenswear gateway, one window a second."""
        start = time.time_ns() // 1_000_000 // 1000 * 1000
        for n in range(1, windows + 1):
            at = start + n * 1000
            self.seq += 1
            heard = {eid_device_key(p.eid, at): -55.0 for p in phones}
            self.parts.ingest.handle(*ble("gw-womenswear", self.seq, at, heard), at)
        assert self.parts.engine.drain(WAIT_S)

    def inbox(self, phone: Phone) -> list[dict[str, Any]]:
        answer = self.client.get("/api/v1/me/offers", headers=phone.auth)
        assert answer.status_code == 200, answer.text
        offers: list[dict[str, Any]] = answer.json()
        return offers


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def settings_for(tmp_path: Path, **extra: object) -> ServerSettings:
    values: dict[str, object] = {
        "database_url": f"sqlite:///{tmp_path / 'server.db'}",
        "api_port": 0,
        "mqtt_port": _closed_port(),  # no broker: ingest is fed directly
        "api_keys": {ADMIN["X-API-Key"]: ["admin"]},
        "campaign_files": [],
        "vapid_key_file": tmp_path / "vapid.pem",
        # Plumbing, not localization: one message places a device at once.
        "localizer": "nearest",
    }
    values.update(extra)
    return ServerSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
def server(plan: StorePlan, tmp_path: Path) -> Iterator[Server]:
    with (
        ServerRuntime(settings_for(tmp_path), stores={plan.id: plan}) as runtime,
        httpx.Client(base_url=runtime.api_url, timeout=WAIT_S) as client,
    ):
        for campaign in (VIP, SPRING):
            made = client.post(f"/api/v1/stores/{STORE}/campaigns", json=campaign, headers=ADMIN)
            assert made.status_code == 201, made.text
        yield Server(runtime, client)


def _unique_part(code: str, head: str) -> str:
    assert code.startswith(head), f"{code!r} does not start with the campaign's {head!r}"
    tail = code.removeprefix(head)
    assert len(tail) == CODE_LENGTH and set(tail) <= set(CODE_ALPHABET), code
    return tail


def test_campaign_codes_reach_the_phone_whole_and_unique_per_offer(server: Server) -> None:
    phones = [server.phone() for _ in range(3)]
    server.walk(phones, windows=5)
    codes: dict[str, list[str]] = {"vip-2025": [], "spring-sale": []}
    for phone in phones:
        inbox = server.inbox(phone)
        assert sorted(o["campaign_id"] for o in inbox) == ["spring-sale", "vip-2025"]
        for offer in inbox:
            codes[offer["campaign_id"]].append(offer["coupon_code"])
        # The live stream carries the same codes the inbox lists.
        live = server.live(phone, len(inbox))
        assert [m["offer"]["coupon_code"] for m in live] == [o["coupon_code"] for o in inbox]
    vip = [_unique_part(code, "VIP-2025-") for code in codes["vip-2025"]]
    spring = [_unique_part(code, "SPRING-SALE-") for code in codes["spring-sale"]]
    assert len(set(vip)) == len(vip) == 3
    assert len(set(spring)) == len(spring) == 3


def test_the_campaign_routes_and_the_analytics_read_one_campaign_report(server: Server) -> None:
    phones = [server.phone() for _ in range(2)]
    server.walk(phones, windows=3)
    report = server.client.get(f"/api/v1/stores/{STORE}/campaigns/report", headers=ADMIN)
    view = server.client.get(f"/api/v1/stores/{STORE}/analytics/campaigns", headers=ADMIN)
    assert report.status_code == view.status_code == 200, (report.text, view.text)
    assert view.json()["campaigns"] == report.json()
    assert {(f["campaign_id"], f["sent"]) for f in report.json()} == {
        ("spring-sale", 2),
        ("vip-2025", 2),
    }


def test_export_and_erasure_reach_every_part_that_holds_the_shopper(server: Server) -> None:
    phone, other = server.phone(), server.phone()
    server.walk([phone, other], windows=3)
    server.parts.ingest.finish(STORE)
    export = server.client.get("/api/v1/me/export", headers=phone.auth)
    assert export.status_code == 200, export.text
    sections = export.json()
    assert sections["location"]["sightings"] and len(sections["offers"]["offers"]) == 2
    assert {d["campaign_id"] for d in sections["offer_decisions"]} == {"vip-2025", "spring-sale"}
    assert server.client.delete("/api/v1/me", headers=phone.auth).status_code == 204
    parts = server.parts
    assert parts.delivery.offers_after(phone.shopper_id) == []
    assert parts.engine.decisions(shopper_id=phone.shopper_id) == []
    assert parts.storage.sql.device_history(phone.shopper_id) == {"visits": [], "sightings": []}
    assert len(parts.delivery.offers_after(other.shopper_id)) == 2  # the other shopper keeps hers
    # The erased phone is no longer recognised: its broadcasts resolve to nobody.
    before = parts.ingest.counters
    unresolved, unconsented = before.unresolved_dropped, before.not_consented_dropped
    server.walk([phone], windows=2)
    assert parts.ingest.counters.unresolved_dropped == unresolved + 2
    assert parts.ingest.counters.not_consented_dropped == unconsented
    assert parts.delivery.offers_after(phone.shopper_id) == []


def _offer_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith(("offer-", "omnizone-"))}


def test_a_server_that_cannot_be_built_leaves_nothing_running(
    plan: StorePlan, tmp_path: Path
) -> None:
    before = _offer_threads()
    broken = settings_for(tmp_path, mqtt_tls_ca=tmp_path / "no-such-ca.pem")
    with pytest.raises(OSError):
        build_server(broken, {plan.id: plan})  # fails after delivery and the engine started
    deadline = time.monotonic() + WAIT_S
    while _offer_threads() - before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _offer_threads() - before == set()
