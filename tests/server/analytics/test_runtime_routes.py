"""The analytics routes are part of the real server process (uvicorn, MQTT
ingest, the offers part), behind its API keys."""

from pathlib import Path

import httpx
import pytest

from omnizone.server.runtime import ServerRuntime
from omnizone.server.settings import ServerSettings

from ..conftest import Broker
from .conftest import STORE, STORE_FILE

pytestmark = pytest.mark.e2e

KEY = "runtime-analytics-123"


def test_the_server_serves_the_analytics_views(broker: Broker, tmp_path: Path) -> None:
    settings = ServerSettings(
        database_url=f"sqlite:///{tmp_path / 'server.db'}",
        mqtt_host=broker.host,
        mqtt_port=broker.port,
        mqtt_password=broker.users["omnizone-server"],  # type: ignore[arg-type]
        api_port=0,
        api_keys={KEY: ["read"]},
        store_files=[STORE_FILE],
        localizer="nearest",
        vapid_key_file=tmp_path / "vapid.pem",
    )
    with ServerRuntime(settings) as runtime:
        base = f"{runtime.api_url}/api/v1/stores/{STORE}/analytics"
        assert httpx.get(f"{base}/visits").status_code == 401
        index = httpx.get(base, headers={"X-API-Key": KEY}).json()
        assert index["last_event_ms"] is None and "campaigns" in index["views"]
        visits = httpx.get(f"{base}/visits", headers={"X-API-Key": KEY}).json()
        assert all(z["visits"] == 0 for z in visits["zones"])
        # The campaigns the offers part seeded from the shipped file, with their figures.
        campaigns = httpx.get(f"{base}/campaigns", headers={"X-API-Key": KEY}).json()
        assert "welcome" in {c["campaign_id"] for c in campaigns["campaigns"]}
        csv = httpx.get(f"{base}/funnel", params={"format": "csv"}, headers={"X-API-Key": KEY})
        assert csv.text.startswith("step,label,trips,shoppers,rate\n")
