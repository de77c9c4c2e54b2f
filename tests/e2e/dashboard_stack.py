"""A server with no broker behind it, for the dashboard's tests that need no
gateway traffic (login, editors, campaigns): ingest waits for a broker that
never answers, the API serves as usual."""

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Page

from omnizone.paths import shipped_config
from omnizone.server import bootstrap
from omnizone.server.runtime import ServerRuntime
from omnizone.server.settings import ServerSettings
from omnizone.store import load_store
from omnizone.suite.bench.analytics import WeekSpec, fill_week
from tests.e2e.dashboard_page import log_in, watched_page

ADMIN_KEY = "dashboard-admin-key"
READ_KEY = "dashboard-read-key"
POS_KEY = "dashboard-till-key"
STORE_FILE = shipped_config("stores/rivoli.yaml")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def staff_settings(database: Path, **extra: object) -> ServerSettings:
    values: dict[str, object] = {
        "database_url": f"sqlite:///{database}",
        "mqtt_port": _closed_port(),
        "api_port": 0,
        "api_keys": {ADMIN_KEY: ["read", "admin"], READ_KEY: ["read"], POS_KEY: ["pos"]},
        "store_files": [STORE_FILE],
        "campaign_files": [],
    }
    values.update(extra)
    return ServerSettings(**values)  # type: ignore[arg-type]


@contextmanager
def staff_server(database: Path, **extra: object) -> Iterator[ServerRuntime]:
    with ServerRuntime(staff_settings(database, **extra)) as server:
        yield server


@contextmanager
def filled_staff_server(database: Path, spec: WeekSpec) -> Iterator[ServerRuntime]:
    """A staff server over a new database the bench's generator filled with ``spec``."""
    storage = bootstrap.open_storage(f"sqlite:///{database}")
    fill_week(storage.sql.engine, load_store(STORE_FILE), spec)
    storage.close()
    with staff_server(database) as running:
        yield running


def store_id() -> str:
    return load_store(STORE_FILE).id


@contextmanager
def gateways_view(api_url: str) -> Iterator[tuple[Page, list[str]]]:
    """The dashboard's gateways view, logged in with the read key, in a real
    Chromium; yields the page and the page errors it has raised so far."""
    with watched_page(width=1600) as (page, errors):
        log_in(page, api_url, READ_KEY)
        page.get_by_test_id("nav-gateways").click()
        yield page, errors
