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

from omnizone.server.adapters.db import SqlRepository
from omnizone.server.adapters.mqtt_ingest import MqttIngest
from omnizone.server.entrypoints.api import create_app
from omnizone.server.service.gateways import GatewayAdmin
from omnizone.server.service.ingest import IngestService
from omnizone.server.service.locators import make_locators
from omnizone.server.service.queries import StoreQueries
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
        self._ingest: IngestService | None = None
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
            self._repository = SqlRepository.from_url(s.database_url)
            self._ingest = IngestService(
                stores, self._repository, locators=make_locators(stores, s.localizer)
            )
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
            app = create_app(
                queries, keys, mqtt_connected=lambda: mqtt.connected, gateways=gateways
            )
            self._serve(app)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the API, drain and stop ingest, close the database. Idempotent."""
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True
        if self._thread is not None:
            self._thread.join()
        if self._socket is not None:
            self._socket.close()
        if self._mqtt is not None:
            self._mqtt.stop()
        if self._repository is not None:
            self._repository.close()
        self._uvicorn = self._thread = self._socket = None
        self._mqtt = None
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
