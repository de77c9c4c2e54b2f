"""Secrets: files holding them are 0600, they come from files or the
environment (never required on the command line), and example values are
refused at start with a way to make real ones."""

import os
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from omnizone.broker.secrets import HOW_TO_MAKE_ONE, PlaceholderSecret
from omnizone.server.adapters.db_write import make_engine
from omnizone.server.adapters.webpush import VapidKeys
from omnizone.server.cli import server_app
from omnizone.server.runtime import ServerRuntime

from .conftest import ROOT, STORE, STORE_FILE, Broker
from .test_runtime import KEY, WAIT_S, settings_for


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> object:
    previous = os.umask(0o022)  # what most shells have: files 0644 unless asked
    yield None
    os.umask(previous)


def test_the_database_and_its_wal_and_shm_are_0600(tmp_path: Path, open_umask: object) -> None:
    database = tmp_path / "omnizone.db"
    engine = make_engine(f"sqlite:///{database}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (x)"))
        connection.execute(text("INSERT INTO t VALUES (1)"))
        files = [p for p in tmp_path.iterdir() if p.name.startswith(database.name)]
        assert {p.name for p in files} >= {"omnizone.db", "omnizone.db-wal", "omnizone.db-shm"}
        assert {p.name: _mode(p) for p in files} == {p.name: 0o600 for p in files}
    engine.dispose()


def test_an_existing_readable_database_is_made_private(tmp_path: Path, open_umask: object) -> None:
    database = tmp_path / "old.db"
    database.touch(mode=0o644)
    wal = tmp_path / "old.db-wal"
    wal.touch(mode=0o644)
    make_engine(f"sqlite:///{database}").dispose()
    assert (_mode(database), _mode(wal)) == (0o600, 0o600)


def test_the_vapid_key_is_0600_and_a_readable_one_is_tightened(
    tmp_path: Path, open_umask: object
) -> None:
    key = tmp_path / "vapid.pem"
    VapidKeys(key)
    assert _mode(key) == 0o600
    key.chmod(0o644)
    VapidKeys(key)
    assert _mode(key) == 0o600


@pytest.mark.parametrize("placeholder", ["change-me", "CHANGE-ME", "<a long random key>"])
def test_an_example_api_key_is_refused_at_start_with_how_to_make_one(
    broker: Broker, tmp_path: Path, placeholder: str
) -> None:
    runtime = ServerRuntime(settings_for(broker, tmp_path, api_keys={placeholder: ["admin"]}))
    with pytest.raises(PlaceholderSecret, match="example value") as refused:
        runtime.start()
    assert HOW_TO_MAKE_ONE in str(refused.value)


def test_an_example_broker_password_is_refused_at_start(broker: Broker, tmp_path: Path) -> None:
    runtime = ServerRuntime(settings_for(broker, tmp_path, mqtt_password="change-me"))
    with pytest.raises(PlaceholderSecret, match="broker password"):
        runtime.start()


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("OMNIZONE_")}


def test_the_cli_refuses_an_example_key_from_a_file_and_warns_about_flags(
    tmp_path: Path,
) -> None:
    keys = tmp_path / "keys"
    keys.write_text("# staff keys\nchange-me:read,admin\n")
    database = ["--database-url", f"sqlite:///{tmp_path / 'x.db'}"]
    from_file = CliRunner().invoke(
        server_app, ["run", *database, "--api-key-file", str(keys)], env=_clean_env()
    )
    assert from_file.exit_code == 2
    assert "example value" in from_file.output and "token_urlsafe" in from_file.output
    flag = CliRunner().invoke(
        server_app, ["run", *database, "--api-key", "change-me:read"], env=_clean_env()
    )
    assert flag.exit_code == 2 and "--api-key puts a secret on the command line" in flag.output
    missing = CliRunner().invoke(
        server_app, ["run", *database, "--mqtt-password-file", str(tmp_path / "nope")]
    )
    assert missing.exit_code == 2 and "cannot read" in missing.output


@pytest.mark.e2e
def test_server_run_takes_its_secrets_from_files_and_keeps_them_out_of_ps(
    broker: Broker, tmp_path: Path
) -> None:
    password = broker.users["omnizone-server"]
    (tmp_path / "mqtt-password").write_text(password + "\n")
    (tmp_path / "api-keys").write_text(f"{KEY}:read\n")
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
        "--mqtt-password-file",
        str(tmp_path / "mqtt-password"),
        "--api-port",
        "0",
        "--api-key-file",
        str(tmp_path / "api-keys"),
        "--store",
        str(STORE_FILE),
    ]
    process = subprocess.Popen(
        command, cwd=ROOT, env=_clean_env(), stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        assert "API on http://" in line, line
        api_url = line.split("API on ")[1].split(" ")[0]
        stores = httpx.get(f"{api_url}/api/v1/stores", headers={"X-API-Key": KEY}, timeout=WAIT_S)
        assert stores.status_code == 200 and stores.json()[0]["id"] == STORE
        cmdline = Path(f"/proc/{process.pid}/cmdline").read_bytes()
        assert password.encode() not in cmdline and KEY.encode() not in cmdline
        assert _mode(tmp_path / "cli.db") == 0o600
    finally:
        process.terminate()
        _, rest = process.communicate(timeout=WAIT_S)
    assert "command line" not in rest  # no warning: nothing secret was on it
