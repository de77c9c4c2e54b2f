"""One server process: the parts ``bootstrap.build_server`` wires, running.

``ServerRuntime`` is what ``omnizone server run``, the demo and the
benchmarks start. It owns what runs: the MQTT connection, the sighting
retention, the watch on the stores' radio files (``radio_check_interval_s``),
the database's background checkpoints and uvicorn, which it runs
in a background thread so callers (and tests) keep their own thread. What
the server is made of, and who listens to whom, is ``bootstrap.py``'s.
"""

import gc
import logging
import socket
import threading
import time
from collections.abc import Mapping

import httpx
import uvicorn
from fastapi import FastAPI

from omnizone.lifecycle import Started
from omnizone.server.adapters.db import SqlRepository
from omnizone.server.adapters.mqtt_ingest import MqttIngest
from omnizone.server.adapters.nats_link import NatsLink
from omnizone.server.adapters.nats_offers import NatsOfferFanout, NatsOfferRelay
from omnizone.server.adapters.nats_shopper_feed import ShopperFeed
from omnizone.server.adapters.nats_worker import NatsWorker
from omnizone.server.bootstrap import ServerParts, build_server
from omnizone.server.entrypoints.dashboard import DashboardPart
from omnizone.server.service.ingest import IngestService
from omnizone.server.service.shoppers import ShopperService
from omnizone.server.settings import ServerSettings
from omnizone.store import StorePlan

log = logging.getLogger(__name__)

#: Generation-1 collections between two full ones (Python's default: 10).
FULL_COLLECTION_EVERY = 100

STARTUP_TIMEOUT_S = 30.0


class ServerRuntime(Started):
    def __init__(
        self, settings: ServerSettings, *, stores: Mapping[str, StorePlan] | None = None
    ) -> None:
        self.settings = settings
        self._stores = dict(stores) if stores is not None else None
        self._parts: ServerParts | None = None
        self._uvicorn: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._api_url: str | None = None
        self.nats: NatsLink | None = None
        self.worker: NatsWorker | None = None
        self.relay: NatsOfferRelay | None = None
        self.shopper_feed: ShopperFeed | None = None

    # -- what callers use -----------------------------------------------------------

    @property
    def api_url(self) -> str:
        if self._api_url is None:
            raise RuntimeError("the server is not running: call start() first")
        return self._api_url

    @property
    def parts(self) -> ServerParts:
        """Everything the server is made of (``bootstrap.ServerParts``)."""
        if self._parts is None:
            raise RuntimeError("the server is not running: call start() first")
        return self._parts

    @property
    def ingest(self) -> IngestService:
        return self.parts.ingest

    @property
    def mqtt(self) -> MqttIngest:
        return self.parts.mqtt

    @property
    def repository(self) -> SqlRepository:
        return self.parts.storage.sql

    @property
    def dashboard(self) -> DashboardPart:
        return self.parts.dashboard

    @property
    def shoppers(self) -> ShopperService:
        return self.parts.shoppers

    def start(self) -> None:
        """Start everything; returns once the API answers ``GET /health``."""
        if self._api_url is not None:
            return
        try:
            self._parts = parts = build_server(self.settings, self._stores)
            for retention in (parts.retention, parts.dead_letter_retention):
                if retention is not None:
                    retention.start()
            if parts.radio_watch is not None:
                parts.radio_watch.start()
            loop = parts.alert_loop
            # a chain worker ingests; the processes with the API check the alerts
            checks = self.settings.alert_check_interval_s > 0 and self.settings.role != "worker"
            if loop is not None and checks:
                loop.start()
            parts.storage.sql.start_background_checkpoints()
            if self.settings.role == "all":
                parts.mqtt.start()
            else:
                self._start_chain(parts)
            self._serve(parts.app)
        except BaseException:
            self.stop()
            raise
        # What start-up made (plans, filters, the app, the ORM's metadata) lives
        # as long as the process: out of the collector's sight, so that a full
        # collection walks only what came since. Full collections of the whole
        # heap took ~250 ms of the ingest thread's window every few seconds
        # (docs/benchmarks.md, "the window's cost cut").
        # And full collections a tenth as often (each costs the same, and
        # reference counting frees nearly everything ingest makes anyway).
        gc.collect()
        gc.freeze()
        young, middle, old = gc.get_threshold()
        gc.set_threshold(young, middle, max(old, FULL_COLLECTION_EVERY))

    def stop(self) -> None:
        """Stop the API, drain and stop ingest, close the database. Idempotent."""
        parts = self._parts
        if parts is not None:
            parts.close_live()  # the live sockets first, or uvicorn waits for them
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True
        if self._thread is not None:
            self._thread.join()
        if self._socket is not None:
            self._socket.close()
        if parts is not None:
            if parts.radio_watch is not None:  # before ingest stops: a reload flushes into it
                parts.radio_watch.stop()
            if parts.alert_loop is not None:
                parts.alert_loop.stop()
            parts.mqtt.stop()
            if self.worker is not None:
                self.worker.stop()
            if self.shopper_feed is not None:
                self.shopper_feed.stop()
            if self.nats is not None:
                self.nats.stop()
            self.worker = self.relay = self.nats = self.shopper_feed = None
            for retention in (parts.retention, parts.dead_letter_retention):
                if retention is not None:
                    retention.stop()
            parts.close()
        self._uvicorn = self._thread = self._socket = None
        self._parts = None
        self._api_url = None

    # -- internals ------------------------------------------------------------------

    def _start_chain(self, parts: ServerParts) -> None:
        """A chain role (docs/scaling.md): a worker consumes its partitions of
        the stream and fans its offers out; an API node relays them to the
        shoppers' sockets it holds."""
        s = self.settings
        password = s.nats_password.get_secret_value() if s.nats_password else None
        self.nats = link = NatsLink(
            s.nats_urls, name=f"omnizone-{s.role}", username=s.nats_username, password=password
        )
        link.start()
        # Registrations, consent changes and erasures made on any node reach
        # every other: published after the commit, re-read from the database.
        self.shopper_feed = feed = ShopperFeed(
            link,
            parts.shoppers,
            stream=s.chain_shopper_stream,
            replicas=s.chain_stream_replicas,
            max_age_s=s.chain_stream_max_age_s,
            refresh_s=s.chain_shopper_refresh_s,
        )
        parts.shoppers.subscribe_to_changes(feed.publish)
        feed.start()
        if s.role == "worker":
            assert parts.ingest_for is not None
            parts.offer_taps.append(NatsOfferFanout(link))
            self.worker = NatsWorker(
                dict(parts.stores),
                parts.ingest_for,
                link,
                worker_id=s.chain_worker_id,
                partitions=s.chain_partitions,
                stream=s.chain_stream,
                replicas=s.chain_stream_replicas,
                max_age_s=s.chain_stream_max_age_s,
                lease_ttl_s=s.chain_lease_ttl_s,
                heartbeat_s=s.chain_heartbeat_s,
                fetch_batch=s.chain_fetch_batch,
                ack_wait_s=s.chain_ack_wait_s,
                warm_s=s.chain_warm_s,
            )
            # An erasure (here or from the feed) reaches the partitions' ingests
            # first: their batch in hand is committed before any row is deleted.
            parts.shoppers.subscribe_to_erasure(self.worker.forget_device, first=True)
            self.worker.start()
        else:
            self.relay = NatsOfferRelay(link, parts.delivery.hand_to_live)
            self.relay.start()

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
                    # 503 is an answer too: the API is up, the broker not yet.
                    if httpx.get(f"{url}/health", timeout=2).status_code in (200, 503):
                        break
                except httpx.HTTPError:
                    pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the API on {url} did not answer within {STARTUP_TIMEOUT_S}s")
            time.sleep(0.02)
        self._api_url = url
        log.info("API listening on %s", url)
