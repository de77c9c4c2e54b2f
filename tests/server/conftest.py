"""Shared fixtures: the example store, a real SQLite file, message builders and
(for integration tests) a private Mosquitto with password auth."""

import getpass
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from omnizone.contract import BleMessage, BleSighting, dump_message, topic_for
from omnizone.server.adapters.db import SqlRepository
from omnizone.server.service.ingest import IngestService
from omnizone.store import StorePlan, load_store

ROOT = Path(__file__).resolve().parents[2]
STORE_FILE = ROOT / "config" / "stores" / "rivoli.yaml"
STORE = "paris-rivoli"
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
DEVICE_A = "eid:0011223344556677"
DEVICE_B = "eid:8899aabbccddeeff"


@pytest.fixture(scope="session")
def plan() -> StorePlan:
    return load_store(STORE_FILE)


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[SqlRepository]:
    repository = SqlRepository.from_url(f"sqlite:///{tmp_path / 'omnizone.db'}")
    yield repository
    repository.close()


@pytest.fixture
def service(plan: StorePlan, repo: SqlRepository) -> IngestService:
    return IngestService({plan.id: plan}, repo)


def ble(
    gateway: str,
    seq: int,
    at_ms: int,
    sightings: dict[str, float],
    *,
    window_ms: int = 1000,
    store: str = STORE,
    epoch: int = 0,
) -> tuple[str, bytes]:
    """A BLE message whose window ends at ``at_ms``: device -> mean RSSI."""
    message = BleMessage(
        store=store,
        gateway=gateway,
        epoch=epoch,
        seq=seq,
        sent_ms=at_ms,
        items=[
            BleSighting(
                device=device,
                window_start_ms=at_ms - window_ms,
                window_ms=window_ms,
                count=3,
                rssi_mean=rssi,
                rssi_max=rssi + 2,
            )
            for device, rssi in sightings.items()
        ],
    )
    return topic_for(store, gateway, "ble"), dump_message(message)


# -- a private broker -----------------------------------------------------------


@dataclass(frozen=True)
class Broker:
    host: str
    port: int
    users: dict[str, str]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    passwd = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    if not Path(mosquitto).exists() or not Path(passwd).exists():
        pytest.skip("mosquitto is not installed")
    users = {"omnizone-server": "server-secret", "gw-test": "gateway-secret"}
    password_file = tmp_path / "passwd"
    for i, (user, password) in enumerate(users.items()):
        flags = ["-b", "-c"] if i == 0 else ["-b"]
        subprocess.run([passwd, *flags, str(password_file), user, password], check=True)
    password_file.chmod(0o600)
    port = _free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\n"
        "allow_anonymous false\n"
        f"password_file {password_file}\n"
        "persistence false\n"
        "log_dest stderr\n"
        # run as whoever runs the tests (as root mosquitto would switch to an
        # unprivileged user that cannot read pytest's private tmp_path)
        f"user {getpass.getuser()}\n"
    )
    log = (tmp_path / "mosquitto.log").open("wb")
    process = subprocess.Popen([mosquitto, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(200):
            if process.poll() is not None:
                log.flush()
                pytest.fail(f"mosquitto exited: {(tmp_path / 'mosquitto.log').read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.02)
        else:
            pytest.fail("mosquitto did not open its port")
        yield Broker("127.0.0.1", port, users)
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A private PostgreSQL server for this test session (tests/postgres_instance.py)."""
    from tests.postgres_instance import postgres_server

    with postgres_server() as url:
        yield url


@pytest.fixture
def postgres_schema_url(postgres_url: str) -> Iterator[str]:
    """A URL whose tables live in a fresh schema of the private server, dropped after."""
    import uuid

    from sqlalchemy import create_engine, text

    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres_url)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{postgres_url}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()
