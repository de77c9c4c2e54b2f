"""A gateway refuses the example password and warns loudly without TLS."""

import asyncio
import logging
from pathlib import Path

import certifi
import pytest
from typer.testing import CliRunner

from omnizone.gateway.cli import gateway_app
from omnizone.gateway.doctor import check_secrets
from omnizone.gateway.runner import run_gateway
from omnizone.gateway.settings import GatewayConfigError, check_password, load_gateway_settings

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "gateway.example.yaml"


def _config(tmp_path: Path, password: str, tls: str = "") -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(
        "store: paris-rivoli\ngateway: gw-entrance\n"
        f"broker_host: 127.0.0.1\nbroker_port: 9\npassword: {password}\n{tls}"
        f"outbox_path: {tmp_path / 'outbox.db'}\nble:\n  enabled: false\n"
    )
    return path


def test_gateway_run_refuses_the_example_file_and_says_how_to_make_a_password() -> None:
    done = CliRunner().invoke(gateway_app, ["run", "-c", str(EXAMPLE)])
    assert done.exit_code == 2
    assert "change-me" in done.output and "token_urlsafe" in done.output


def test_a_placeholder_password_is_refused_before_anything_starts(tmp_path: Path) -> None:
    settings = load_gateway_settings(_config(tmp_path, "changeme"))
    with pytest.raises(GatewayConfigError, match="example value"):
        check_password(settings)
    with pytest.raises(GatewayConfigError):
        asyncio.run(run_gateway(settings))
    assert not (tmp_path / "outbox.db").exists()


def test_the_gateway_logs_a_warning_when_it_connects_without_tls(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = load_gateway_settings(_config(tmp_path, "a-real-password-123"))
    stop = asyncio.Event()
    stop.set()
    with caplog.at_level(logging.WARNING, logger="omnizone.gateway"):
        asyncio.run(run_gateway(settings, stop))
    [warning] = [r for r in caplog.records if "NO TLS" in r.getMessage()]
    assert warning.levelno == logging.WARNING and "127.0.0.1:9" in warning.getMessage()


def test_doctor_warns_without_tls_and_fails_an_example_password(tmp_path: Path) -> None:
    plain = {f.check: f for f in check_secrets(load_gateway_settings(_config(tmp_path, "p")))}
    assert plain["tls"].verdict == "warn" and "NO TLS" in plain["tls"].detail
    assert "password" not in plain
    tls = _config(tmp_path, "password", tls=f"tls_ca: {certifi.where()}\n")
    found = {f.check: f for f in check_secrets(load_gateway_settings(tls))}
    assert found["tls"].verdict == "ok" and found["password"].verdict == "fail"
