"""One server process: schema, MQTT ingest worker and the HTTP API together.

``ServerRuntime`` is what ``omnizone server run`` and the demo start; it runs
uvicorn in a background thread so callers (and tests) keep their own thread.
"""

import logging
import socket
import threading
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Self

import httpx
import uvicorn
from fastapi import FastAPI

from omnizone.server.adapters import schema
from omnizone.server.adapters.db import SqlRepository
from omnizone.server.adapters.layout_db import LayoutRepository
from omnizone.server.adapters.mqtt_ingest import MqttIngest
from omnizone.server.adapters.shopper_db import ShopperRepository
from omnizone.server.entrypoints.analytics_api import analytics_routes
from omnizone.server.entrypoints.api import create_app
from omnizone.server.entrypoints.dashboard import DashboardPart, mount_dashboard
from omnizone.server.entrypoints.shopper_api import shopper_router
from omnizone.server.entrypoints.shopper_app import mount_shopper_app
from omnizone.server.offers_setup import OffersPart, build_offers
from omnizone.server.service.device_identity import RegisteredDevices
from omnizone.server.service.gateways import GatewayAdmin
from omnizone.server.service.ingest import IngestService
from omnizone.server.service.layouts import LayoutService, apply_saved_layouts
from omnizone.server.service.live_map import LiveMap
from omnizone.server.service.locators import make_locators
from omnizone.server.service.queries import StoreQueries
from omnizone.server.service.retention import SightingRetention
from omnizone.server.service.shoppers import ShopperService
from omnizone.server.settings import ServerSettings, check_api_keys
from omnizone.store import StorePlan, load_store

log = logging.getLogger(__name__)

STARTUP_TIMEOUT_S = 30.0


class ServerRuntime:
    def __init__(
        self, settings: ServerSettings, *, stores: Mapping[str, StorePlan] | None = None
    ) -> None:
        self.settings = settings
        self._stores = dict(stores) if stores is not None else None
        self._repository: SqlRepository | None = None
        self._retention: SightingRetention | None = None
        self._ingest: IngestService | None = None
        self._shoppers: ShopperService | None = None
        self._offers: OffersPart | None = None
        self._dashboard: DashboardPart | None = None
        self._mqtt: MqttIngest | None = None
        self._uvicorn: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._api_url: str | None = None

    # -- what callers use -----------------------------------------------------------

    @property
    def api_url(self) -> str:
        if self._api_url is None:
            raise RuntimeError("the server is not running: call start() first")
        return self._api_url

    @property
    def ingest(self) -> IngestService:
        if self._ingest is None:
            raise RuntimeError("the server is not running: call start() first")
        return self._ingest

    @property
    def mqtt(self) -> MqttIngest:
        if self._mqtt is None:
            raise RuntimeError("the server is not running: call start() first")
        return self._mqtt

    @property
    def repository(self) -> SqlRepository:
        if self._repository is None:
            raise RuntimeError("the server is not running: call start() first")
        return self._repository

    def start(self) -> None:
        """Start everything; returns once the API answers ``GET /health``."""
        if self._api_url is not None:
            return
        s = self.settings
        keys = check_api_keys(s.api_keys)  # fail before anything is started
        stores = self._stores
        if stores is None:
            plans = [load_store(path) for path in s.store_files]
            stores = {plan.id: plan for plan in plans}
        try:
            self._repository = SqlRepository.from_url(s.database_url, create=False)
            schema.upgrade(self._repository.engine)  # migrations, before any table is touched
            if s.sighting_retention_days > 0:
                self._retention = SightingRetention(
                    self._repository.prune_sightings, s.sighting_retention_days
                )
                self._retention.start()
            self._repository.start_background_checkpoints()
            # The newest layout saved in the dashboard's editor replaces the file's plan.
            layouts = LayoutRepository(self._repository.engine)
            stores, layout_versions = apply_saved_layouts(stores, layouts)
            self._shoppers = self._shopper_service(stores, self._repository)
            self._offers = build_offers(s, stores, self._repository.engine, self._shoppers)
            self._ingest = IngestService(
                stores,
                self._repository,
                locators=make_locators(stores, s.localizer),
                identity=RegisteredDevices(self._shoppers),
            )
            self._ingest.placement_listeners.append(self._offers.engine.on_placement)
            self._ingest.try_on_listeners.append(self._offers.engine.on_try_on)
            self._mqtt = MqttIngest(
                self._ingest,
                host=s.mqtt_host,
                port=s.mqtt_port,
                username=s.mqtt_username,
                password=s.mqtt_password.get_secret_value() if s.mqtt_password else None,
                tls_ca=s.mqtt_tls_ca,
                client_id=s.mqtt_client_id,
            )
            self._mqtt.start()
            queries = StoreQueries(stores, self._repository, self._ingest.event_time)
            mqtt = self._mqtt
            gateways = GatewayAdmin(stores, self._repository, mqtt.publish_retained)
            shoppers = self._shoppers
            ingest = self._ingest
            self._dashboard = dashboard = DashboardPart(
                keys,
                LayoutService(stores, layout_versions, layouts),
                LiveMap(stores, self._ingest.live, self._ingest.event_time),
            )
            app = create_app(
                queries,
                keys,
                mqtt_connected=lambda: mqtt.connected,
                gateways=gateways,
                ingest_counters=lambda: ingest.counters,
                routers=[
                    lambda require: shopper_router(shoppers, require),
                    *self._offers.routers,
                    dashboard.router,
                    analytics_routes(stores, self._repository.engine, shoppers),
                ],
            )
            mount_shopper_app(app)
            mount_dashboard(app)
            self._serve(app)
        except BaseException:
            self.stop()
            raise

    def _shopper_service(
        self, stores: Mapping[str, StorePlan], repository: SqlRepository
    ) -> ShopperService:
        """Registered phones and their consent; erasure and export reach the
        location history too."""
        s = self.settings
        secret = s.webhook_secret.get_secret_value().encode() if s.webhook_secret else None
        shoppers = ShopperService(
            list(stores),
            ShopperRepository(repository.engine),
            eid_policy=s.eid_policy(),
            webhook_secret=secret,
        )
        shoppers.erase_listeners.append(repository.erase_device)
        shoppers.export_providers["location"] = repository.device_history
        return shoppers

    @property
    def offers(self) -> OffersPart:
        if self._offers is None:
            raise RuntimeError("the server is not running: call start() first")
        return self._offers

    @property
    def dashboard(self) -> DashboardPart:
        if self._dashboard is None:
            raise RuntimeError("the server is not running: call start() first")
        return self._dashboard

    @property
    def shoppers(self) -> ShopperService:
        if self._shoppers is None:
            raise RuntimeError("the server is not running: call start() first")
        return self._shoppers

    def stop(self) -> None:
        """Stop the API, drain and stop ingest, close the database. Idempotent."""
        if self._offers is not None:
            self._offers.close()  # closes the live offer sockets, or uvicorn waits for them
        if self._dashboard is not None:
            self._dashboard.close()  # and the live map sockets
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True
        if self._thread is not None:
            self._thread.join()
        if self._socket is not None:
            self._socket.close()
        if self._mqtt is not None:
            self._mqtt.stop()
        if self._retention is not None:
            self._retention.stop()
            self._retention = None
        if self._repository is not None:
            self._repository.close()
        self._uvicorn = self._thread = self._socket = None
        self._mqtt = None
        self._offers = None
        self._dashboard = None
        self._shoppers = None
        self._repository = None
        self._ingest = None
        self._api_url = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- internals ------------------------------------------------------------------

    def _serve(self, app: FastAPI) -> None:
        host, port = self.settings.api_host, self.settings.api_port
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as error:
            sock.close()
            raise OSError(f"cannot listen on {host}:{port}: {error.strerror}") from None
        self._socket = sock
        bound_port = sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
        server = uvicorn.Server(config)
        self._uvicorn = server
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="omnizone-api", daemon=True
        )
        self._thread.start()
        url_host = f"[{host}]" if ":" in host else host
        url = f"http://{url_host}:{bound_port}"
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if not self._thread.is_alive():
                raise RuntimeError(f"the API server on {host}:{bound_port} exited during start-up")
            if server.started:
                try:
                    if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the API on {url} did not answer within {STARTUP_TIMEOUT_S}s")
            time.sleep(0.02)
        self._api_url = url
        log.info("API listening on %s", url)
