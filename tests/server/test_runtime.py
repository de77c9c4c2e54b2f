"""The whole server process: runtime (ingest + API) and the `server run` command."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from typer.testing import CliRunner

from omnizone.contract.eid import EidParams, eid_device_key
from omnizone.server.adapters import schema
from omnizone.server.cli import server_app
from omnizone.server.runtime import ServerRuntime
from omnizone.server.settings import MissingApiKey, ServerSettings

from .conftest import DEVICE_A, ROOT, STORE, STORE_FILE, T0, Broker, ble

pytestmark = pytest.mark.e2e

KEY = "runtime-key-123456"
WAIT_S = 20.0  # only bounds a hang


def settings_for(broker: Broker, tmp_path: Path, **extra: object) -> ServerSettings:
    values: dict[str, object] = {
        "database_url": f"sqlite:///{tmp_path / 'server.db'}",
        "mqtt_host": broker.host,
        "mqtt_port": broker.port,
        "mqtt_password": broker.users["omnizone-server"],
        "api_port": 0,
        "api_keys": {KEY: ["read", "admin"]},
        "store_files": [STORE_FILE],
        # The runtime's plumbing, not localization: one message places a device
        # at once with the nearest-gateway locator (the HMM waits for windows).
        "localizer": "nearest",
    }
    values.update(extra)
    return ServerSettings(**values)  # type: ignore[arg-type]


def our_threads() -> list[str]:
    return [
        t.name
        for t in threading.enumerate()
        if t.name.startswith("omnizone-") or "paho" in t.name.lower()
    ]


def test_runtime_ingests_and_serves_then_stops_cleanly(broker: Broker, tmp_path: Path) -> None:
    before = our_threads()
    with ServerRuntime(settings_for(broker, tmp_path)) as runtime:
        assert runtime.mqtt.wait_connected(WAIT_S)
        assert httpx.get(f"{runtime.api_url}/health").json()["mqtt_connected"] is True
        # a shopper app registers and consents; its phone advertises a rotating id
        phone = httpx.post(f"{runtime.api_url}/api/v1/shoppers", json={"store": STORE}).json()
        auth = {"Authorization": f"Bearer {phone['token']}"}
        consent = {"location_analytics": True, "personalized_offers": False}
        httpx.put(f"{runtime.api_url}/api/v1/me/consent", json=consent, headers=auth)
        eid = EidParams(
            bytes.fromhex(phone["eid_key"]),
            phone["eid_rotation_exponent"],
            phone["eid_clock_offset_s"],
        )
        on_air = eid_device_key(eid, T0)
        publisher = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="gw")
        publisher.username_pw_set("gw-test", broker.users["gw-test"])
        publisher.connect(broker.host, broker.port)
        publisher.loop_start()
        publisher.publish(*ble("gw-denim", 0, T0, {on_air: -60}), qos=1).wait_for_publish(WAIT_S)
        publisher.publish(*ble("gw-denim", 1, T0, {DEVICE_A: -60}), qos=1).wait_for_publish(WAIT_S)
        publisher.disconnect()
        publisher.loop_stop()
        headers = {"X-API-Key": KEY}
        url = f"{runtime.api_url}/api/v1/stores/{STORE}/occupancy"
        deadline = time.monotonic() + WAIT_S
        while True:
            body = httpx.get(url, headers=headers).json()
            devices = {z["zone"]: z["devices"] for z in body["zones"] if z["devices"]}
            if devices or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        assert devices == {"denim": 1}  # the registered phone; the unknown id is dropped
        assert body["at_ms"] == T0
        visits = httpx.get(f"{runtime.api_url}/api/v1/stores/{STORE}/visits", headers=headers)
        assert {v["device"] for v in visits.json()} == {phone["shopper_id"]}
        stats = httpx.get(f"{runtime.api_url}/api/v1/ingest/stats", headers=headers).json()
        assert stats["unresolved_dropped"] == 1  # DEVICE_A: no phone has that id
        # the schema was built by the migrations, at start
        assert schema.current_revision(runtime.repository.engine) == schema.head_revision()
        api_url = runtime.api_url
    runtime.stop()  # idempotent
    assert our_threads() == before
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{api_url}/health")


def test_runtime_refuses_to_start_without_an_api_key(broker: Broker, tmp_path: Path) -> None:
    before = our_threads()
    runtime = ServerRuntime(settings_for(broker, tmp_path, api_keys={}))
    with pytest.raises(MissingApiKey, match="OMNIZONE_API_KEYS"):
        runtime.start()
    assert our_threads() == before


def test_cli_without_key_says_how_to_set_one(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIZONE_")}
    result = CliRunner().invoke(
        server_app, ["run", "--database-url", f"sqlite:///{tmp_path / 'x.db'}"], env=env
    )
    assert result.exit_code == 2
    assert "no API key configured" in result.output and "--api-key" in result.output


def test_cli_run_serves_until_sigterm(broker: Broker, tmp_path: Path) -> None:
    command = [
        sys.executable,
        "-c",
        "from omnizone.server.cli import server_app; server_app()",
        "run",
        "--database-url",
        f"sqlite:///{tmp_path / 'cli.db'}",
        "--mqtt-host",
        broker.host,
        "--mqtt-port",
        str(broker.port),
        "--mqtt-password",
        broker.users["omnizone-server"],
        "--api-port",
        "0",
        "--api-key",
        f"{KEY}:read",
        "--store",
        str(STORE_FILE),
        "--json",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIZONE_")}
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        assert "API on http://" in line, line
        api_url = line.split("API on ")[1].split(" ")[0]
        stores = httpx.get(f"{api_url}/api/v1/stores", headers={"X-API-Key": KEY})
        assert stores.status_code == 200 and stores.json()[0]["id"] == STORE
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=WAIT_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0
    assert json.loads(out) == {"accepted": 0, "duplicates": 0, "dead_lettered": 0, "gaps": 0}
