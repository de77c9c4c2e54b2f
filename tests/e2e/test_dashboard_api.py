"""The dashboard's own routes on a real server: whoami, the running plan,
versioned layouts validated by the store model (applied at once, in every
part, and still after a restart), floor images, and the live WebSocket's
authentication."""

import base64
import json
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from omnizone.server.runtime import ServerRuntime
from tests.e2e.dashboard_stack import ADMIN_KEY, POS_KEY, READ_KEY, staff_server, store_id
from tests.server.conftest import T0, ble

STORE = store_id()
# A 1 x 1 PNG.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
TERRACE = {
    "id": "terrace",
    "name": "Terrace",
    "kind": "sales",
    "polygon": [[0, 20], [10, 20], [10, 24], [0, 24]],
}
TERRACE_GATEWAY = {"id": "gw-terrace", "position": [5, 22]}
TAG = "ibeacon:00000000-0000-0000-0000-000000000001:1:1"


def _headers(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


def _with_terrace(plan: dict) -> dict:  # type: ignore[type-arg]
    bigger = json.loads(json.dumps(plan))
    bigger["store"]["floor"]["depth_m"] = 24
    bigger["zones"].append(TERRACE)
    bigger["gateways"].append(TERRACE_GATEWAY)
    return bigger


def test_whoami_tells_the_page_what_a_key_may_do(tmp_path: Path) -> None:
    with staff_server(tmp_path / "o.db") as server, httpx.Client(base_url=server.api_url) as api:
        assert api.get("/api/v1/whoami", headers=_headers(ADMIN_KEY)).json() == {
            "scopes": ["admin", "read"],
            "read": True,
            "admin": True,
        }
        assert api.get("/api/v1/whoami", headers=_headers(READ_KEY)).json()["admin"] is False
        till = api.get("/api/v1/whoami", headers={"Authorization": f"Bearer {POS_KEY}"}).json()
        assert till == {"scopes": ["pos"], "read": False, "admin": False}
        assert api.get("/api/v1/whoami", headers=_headers("not-a-key")).status_code == 401
        assert api.get("/api/v1/whoami").status_code == 401
        assert api.get("/dashboard/").status_code == 200
        assert "text/javascript" in api.get("/dashboard/static/js/app.js").headers["content-type"]


def _feed_terrace(server: ServerRuntime, start: int, windows: int) -> list[str]:
    """A tag heard loud by the terrace's gateway only, one message a second;
    the outcome of each message."""
    outcomes = []
    for window in range(start, start + windows):
        at = T0 + window * 1000
        topic, payload = ble(TERRACE_GATEWAY["id"], window, at, {TAG: -45.0})
        outcomes.append(server.ingest.handle(topic, payload, at).outcome.value)
    return outcomes


def _live_zones(server: ServerRuntime) -> dict[str, int]:
    url = server.api_url.replace("http://", "ws://") + f"/api/v1/stores/{STORE}/live"
    with connect(url, additional_headers=_headers(READ_KEY), open_timeout=10) as socket:
        assert json.loads(socket.recv(timeout=10))["type"] == "hello"
        zones: dict[str, int] = json.loads(socket.recv(timeout=10))["zones"]
    return zones


def test_a_saved_layout_is_validated_versioned_and_runs_at_once_and_after_a_restart(
    tmp_path: Path,
) -> None:
    database = tmp_path / "o.db"
    url = f"/api/v1/stores/{STORE}/layouts"
    placed: list[str | None] = []
    with staff_server(database) as server, httpx.Client(base_url=server.api_url) as api:
        server.ingest.subscribe_to_placements(
            lambda _store, p: placed.append(p.zone) if p.device == TAG else None
        )
        found = api.get(f"/api/v1/stores/{STORE}/plan", headers=_headers(READ_KEY)).json()
        assert found["running_version"] is None and found["latest_version"] is None
        plan = found["plan"]
        assert {z["id"] for z in plan["zones"]} >= {"entrance", "shoes"}
        assert all(len(z["polygon"]) >= 3 for z in plan["zones"])

        # the terrace lies outside the 20 m floor: refused, and the answer names the zone
        outside = json.loads(json.dumps(plan))
        outside["zones"].append(TERRACE)
        refused = api.post(url, json={"plan": outside}, headers=_headers(ADMIN_KEY))
        assert refused.status_code == 422
        assert any("zones[10] (terrace).polygon" in p for p in refused.json()["detail"])
        overlapping = json.loads(json.dumps(plan))
        overlapping["zones"].append({**TERRACE, "polygon": [[1, 1], [4, 1], [4, 4]]})
        refused = api.post(url, json={"plan": overlapping}, headers=_headers(ADMIN_KEY))
        assert refused.status_code == 422
        assert "overlaps zones[1] (womenswear)" in refused.json()["detail"][0]
        renamed = json.loads(json.dumps(plan))
        renamed["store"]["id"] = "elsewhere"
        refused = api.post(url, json={"plan": renamed}, headers=_headers(ADMIN_KEY))
        assert refused.status_code == 422 and refused.json()["detail"][0].startswith("store.id")
        assert (
            api.post(url, json={"plan": plan, "extra": 1}, headers=_headers(ADMIN_KEY)).status_code
            == 422
        )
        assert api.post(url, json={"plan": plan}, headers=_headers(READ_KEY)).status_code == 403
        # before the save, the terrace's gateway is nobody's
        assert _feed_terrace(server, 1, 1) == ["dead_lettered"]

        saved = api.post(
            url, json={"plan": _with_terrace(plan), "note": "terrace"}, headers=_headers(ADMIN_KEY)
        )
        assert saved.status_code == 201, saved.text
        assert saved.json()["version"] == 1 and saved.json()["applies"].startswith("now")
        # the whole running server has the terrace at once, not only this route
        now = api.get(f"/api/v1/stores/{STORE}/plan", headers=_headers(READ_KEY)).json()
        assert now["running_version"] == 1 and now["latest_version"] == 1
        assert now["pending_restart"] is False
        assert "terrace" in {z["id"] for z in now["plan"]["zones"]}
        stores = api.get("/api/v1/stores", headers=_headers(READ_KEY)).json()
        assert "terrace" in {z["id"] for z in stores[0]["zones"]}
        assert _feed_terrace(server, 2, 15) == ["accepted"] * 15
        assert placed and placed[-1] == "terrace"  # the localizer places on the new floor
        occupancy = api.get(f"/api/v1/stores/{STORE}/occupancy", headers=_headers(READ_KEY))
        assert {z["zone"]: z["devices"] for z in occupancy.json()["zones"]}["terrace"] == 1
        assert _live_zones(server)["terrace"] == 1
        gateways = api.get(f"/api/v1/stores/{STORE}/gateways", headers=_headers(READ_KEY))
        assert {"gateway": "gw-terrace", "zone": "terrace"}.items() <= next(
            g for g in gateways.json() if g["gateway"] == "gw-terrace"
        ).items()

        # the terrace removed again: the stay there closes, its gateway is refused
        again = api.post(url, json={"plan": plan, "note": "undo"}, headers=_headers(ADMIN_KEY))
        assert again.json()["version"] == 2
        occupancy = api.get(f"/api/v1/stores/{STORE}/occupancy", headers=_headers(READ_KEY))
        assert "terrace" not in {z["zone"] for z in occupancy.json()["zones"]}
        assert "terrace" not in _live_zones(server)
        visits = api.get(f"/api/v1/stores/{STORE}/visits", headers=_headers(READ_KEY)).json()
        (stay,) = [v for v in visits if v["device"] == TAG]
        assert stay["zone"] == "terrace" and stay["status"] == "visit"
        assert stay["left_ms"] == T0 + 16 * 1000  # when it was last placed there
        assert server.ingest.present(STORE) == {}
        assert _feed_terrace(server, 17, 1) == ["dead_lettered"]
        letters = api.get("/api/v1/dead-letters", headers=_headers(ADMIN_KEY)).json()
        assert "gw-terrace" in letters[0]["reason"] and "not in the plan" in letters[0]["reason"]

        versions = api.get(url, headers=_headers(READ_KEY)).json()
        assert [(v["version"], v["note"], v["running"]) for v in versions] == [
            (2, "undo", True),
            (1, "terrace", False),
        ]
        # version 1 saved again becomes version 3, the newest, and runs
        one = api.get(f"{url}/1", headers=_headers(READ_KEY)).json()
        third = api.post(url, json={"plan": one["plan"]}, headers=_headers(ADMIN_KEY)).json()
        assert third["version"] == 3
        assert api.get(f"{url}/9", headers=_headers(READ_KEY)).status_code == 404

    # it survives a restart
    with staff_server(database) as server, httpx.Client(base_url=server.api_url) as api:
        now = api.get(f"/api/v1/stores/{STORE}/plan", headers=_headers(READ_KEY)).json()
        assert now["running_version"] == 3 and now["pending_restart"] is False
        assert "terrace" in {z["id"] for z in now["plan"]["zones"]}
        assert now["plan"]["store"]["floor"]["depth_m"] == 24
        stores = api.get("/api/v1/stores", headers=_headers(READ_KEY)).json()
        assert "terrace" in {z["id"] for z in stores[0]["zones"]}
        occupancy = api.get(f"/api/v1/stores/{STORE}/occupancy", headers=_headers(READ_KEY))
        assert "terrace" in {z["zone"] for z in occupancy.json()["zones"]}
        versions = api.get(url, headers=_headers(READ_KEY)).json()
        assert [v["running"] for v in versions] == [True, False, False]


def test_floor_images_are_raster_only_and_served_back(tmp_path: Path) -> None:
    url = f"/api/v1/stores/{STORE}/floor-images"
    with staff_server(tmp_path / "o.db") as server, httpx.Client(base_url=server.api_url) as api:
        admin = {**_headers(ADMIN_KEY), "Content-Type": "image/png"}
        made = api.post(url, content=PNG, headers=admin)
        assert made.status_code == 201, made.text
        image_id = made.json()["image_id"]
        back = api.get(f"{url}/{image_id}", headers=_headers(READ_KEY))
        assert back.content == PNG and back.headers["content-type"] == "image/png"
        svg = b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>"
        refused = api.post(url, content=svg, headers={**admin, "Content-Type": "image/svg+xml"})
        assert refused.status_code == 422 and refused.json()["detail"][0].startswith("Content-Type")
        refused = api.post(url, content=b"GIF89a....", headers=admin)
        assert refused.status_code == 422 and "not a image/png" in refused.json()["detail"][0]
        assert (
            api.post(url, content=PNG, headers={**admin, **_headers(READ_KEY)}).status_code == 403
        )
        plan = api.get(f"/api/v1/stores/{STORE}/plan", headers=_headers(READ_KEY)).json()["plan"]
        layouts = f"/api/v1/stores/{STORE}/layouts"
        unknown = api.post(
            layouts, json={"plan": plan, "image_id": 999}, headers=_headers(ADMIN_KEY)
        )
        assert unknown.status_code == 422 and unknown.json()["detail"][0].startswith("image_id")
        saved = api.post(
            layouts, json={"plan": plan, "image_id": image_id}, headers=_headers(ADMIN_KEY)
        )
        assert saved.status_code == 201
        found = api.get(f"/api/v1/stores/{STORE}/plan", headers=_headers(READ_KEY)).json()
        assert found["image_id"] == image_id


def _closed_with(url: str, first: str | None, headers: dict[str, str] | None = None) -> int:
    with connect(url, additional_headers=headers, open_timeout=10) as socket:
        if first is not None:
            socket.send(first)
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                socket.recv(timeout=15)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code


def test_the_live_socket_wants_a_read_key_first(tmp_path: Path) -> None:
    with staff_server(tmp_path / "o.db") as server:
        url = server.api_url.replace("http://", "ws://") + f"/api/v1/stores/{STORE}/live"
        auth = lambda key: json.dumps({"type": "auth", "key": key})  # noqa: E731
        assert _closed_with(url, "hello") == 4401
        assert _closed_with(url, auth("not-a-key")) == 4401
        assert _closed_with(url, auth(POS_KEY)) == 4403
        assert _closed_with(url.replace(STORE, "nowhere"), auth(READ_KEY)) == 4404
        for first, headers in ((auth(READ_KEY), None), (None, _headers(READ_KEY))):
            with connect(url, additional_headers=headers, open_timeout=10) as socket:
                if first:
                    socket.send(first)
                hello = json.loads(socket.recv(timeout=10))
                assert hello["type"] == "hello" and hello["interval_ms"] <= 1000
                one = json.loads(socket.recv(timeout=10))
                two = json.loads(socket.recv(timeout=10))
                assert one["type"] == two["type"] == "snapshot"
                assert two["seq"] > one["seq"]
                assert list(one["zones"]) == [
                    z["id"]
                    for z in server.dashboard.layouts.running_plan(STORE).model_dump()["zones"]
                ]
                assert one["dots"] == []
