"""An MQTT broker for the demo, the tests and small deployments.

``start_broker`` runs Mosquitto when the binary is found, else the embedded
amqtt broker, each as a child process with per-gateway passwords and topic
ACLs derived from the wire contract. Importing this package imports neither
amqtt nor paho.
"""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Literal

from omnizone.broker.accounts import (
    SERVER_USERNAME,
    Access,
    AclRule,
    BrokerAccounts,
    hash_password,
    new_password,
    recorder_username,
    render_acl_file,
    render_password_file,
    verify_password,
)
from omnizone.broker.files import MESSAGE_SIZE_LIMIT, RunFiles, TlsFiles
from omnizone.broker.mosquitto import find_mosquitto
from omnizone.broker.process import BrokerError, BrokerProcess, free_port, port_is_free

BrokerKind = Literal["mosquitto", "embedded"]
Preference = Literal["auto", "mosquitto", "embedded"]

__all__ = [
    "MESSAGE_SIZE_LIMIT",
    "SERVER_USERNAME",
    "Access",
    "AclRule",
    "BrokerAccounts",
    "BrokerError",
    "BrokerKind",
    "Preference",
    "RunFiles",
    "RunningBroker",
    "TlsFiles",
    "choose_broker",
    "find_mosquitto",
    "free_port",
    "hash_password",
    "new_password",
    "port_is_free",
    "recorder_username",
    "render_acl_file",
    "render_password_file",
    "start_broker",
    "verify_password",
]


class RunningBroker:
    """A started broker process; restartable on the same port and run directory.

    ``stop()`` ends the process and keeps the run directory (so ``start()`` or
    ``restart()`` find the persisted sessions); ``close()`` / leaving the
    ``with`` block also removes the run directory if ``start_broker`` made it.
    """

    def __init__(
        self,
        kind: BrokerKind,
        process: BrokerProcess,
        *,
        accounts: BrokerAccounts,
        run_dir: Path,
        owns_run_dir: bool,
        tls: TlsFiles | None = None,
    ) -> None:
        self.kind: BrokerKind = kind
        self.accounts = accounts
        self.run_dir = run_dir
        self.tls = tls
        self._process = process
        self._owns_run_dir = owns_run_dir

    @property
    def host(self) -> str:
        return self._process.host

    @property
    def port(self) -> int:
        return self._process.port

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid

    @property
    def running(self) -> bool:
        return self._process.running

    @property
    def log_file(self) -> Path:
        return self._process.log_path

    def start(self) -> None:
        """Start again after ``stop()`` (no-op while running)."""
        self._process.start()

    def stop(self) -> None:
        self._process.stop()

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        if self._owns_run_dir:
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def __enter__(self) -> RunningBroker:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.running else "stopped"
        return f"<RunningBroker {self.kind} {self.url} {state} run_dir={self.run_dir}>"


def choose_broker(prefer: Preference = "auto") -> tuple[BrokerKind, str | None]:
    """(kind, mosquitto binary or None); raises BrokerError when the choice is impossible."""
    if prefer not in ("auto", "mosquitto", "embedded"):
        raise ValueError(f"prefer must be 'auto', 'mosquitto' or 'embedded', not {prefer!r}")
    binary = find_mosquitto() if prefer != "embedded" else None
    if binary is not None:
        return "mosquitto", binary
    if prefer == "mosquitto":
        raise BrokerError(
            "mosquitto not found on PATH or in /usr/sbin; install it "
            "(e.g. apt install mosquitto) or use the embedded broker"
        )
    if importlib.util.find_spec("amqtt") is None:
        raise BrokerError(
            "no MQTT broker available: mosquitto is not installed and the embedded "
            "broker needs amqtt (pip install 'omnizone[demo]')"
        )
    return "embedded", None


def start_broker(
    accounts: BrokerAccounts,
    *,
    port: int | None = None,
    run_dir: Path | None = None,
    prefer: Preference = "auto",
    host: str = "127.0.0.1",
    tls: TlsFiles | None = None,
    start_timeout_s: float = 15.0,
    message_size_limit: int = MESSAGE_SIZE_LIMIT,
) -> RunningBroker:
    """Start a broker enforcing ``accounts``; returns once it accepts connections.

    ``port`` defaults to a free one; ``run_dir`` (credentials, config, data,
    ``broker.log``) defaults to a fresh temporary directory removed by ``close()``.
    A PUBLISH whose payload exceeds ``message_size_limit`` bytes is dropped.
    """
    kind, binary = choose_broker(prefer)
    owns_run_dir = run_dir is None
    run_dir = Path(tempfile.mkdtemp(prefix=f"omnizone-{kind}-")) if run_dir is None else run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    port = free_port(host) if port is None else port
    if kind == "mosquitto":
        from omnizone.broker.mosquitto import prepare_mosquitto

        assert binary is not None
        process = prepare_mosquitto(
            accounts,
            run_dir=run_dir,
            host=host,
            port=port,
            binary=binary,
            tls=tls,
            start_timeout_s=start_timeout_s,
            message_size_limit=message_size_limit,
        )
    else:
        from omnizone.broker.embedded import prepare_embedded

        process = prepare_embedded(
            accounts,
            run_dir=run_dir,
            host=host,
            port=port,
            tls=tls,
            start_timeout_s=start_timeout_s,
            message_size_limit=message_size_limit,
        )
    broker = RunningBroker(
        kind, process, accounts=accounts, run_dir=run_dir, owns_run_dir=owns_run_dir, tls=tls
    )
    try:
        process.start()
    except BaseException:
        broker.close()
        raise
    return broker
