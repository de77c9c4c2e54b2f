"""Files of one broker instance: credentials, config, data and log, in one run directory."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from omnizone.broker.accounts import BrokerAccounts, render_acl_file, render_password_file
from omnizone.contract.messages import MAX_PAYLOAD_BYTES

MESSAGE_SIZE_LIMIT = MAX_PAYLOAD_BYTES
"""The largest PUBLISH payload either broker accepts, in bytes (1 MiB).

It is the wire contract's own bound (``MAX_PAYLOAD_BYTES``): the server refuses
anything larger anyway, so the broker need not carry, queue or persist it.
Mosquitto drops a larger message (``message_size_limit``); the embedded broker
does the same. A gateway batch of ``MAX_ITEMS`` sightings fits well inside it.
"""


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """Server certificate for the TLS listener; cafile is also used to verify clients."""

    certfile: Path
    keyfile: Path
    cafile: Path | None = None
    port: int = 8883
    require_certificate: bool = False


@dataclass(frozen=True, slots=True)
class RunFiles:
    """Where one broker instance keeps its files (all inside its run directory)."""

    run_dir: Path

    @property
    def password_file(self) -> Path:
        return self.run_dir / "passwd"

    @property
    def acl_file(self) -> Path:
        return self.run_dir / "acl"

    @property
    def data_dir(self) -> Path:
        return self.run_dir / "data"

    @property
    def log_file(self) -> Path:
        return self.run_dir / "broker.log"

    def config_file(self, kind: str) -> Path:
        return self.run_dir / ("mosquitto.conf" if kind == "mosquitto" else "embedded.json")


def write_private(path: Path, text: str) -> None:
    """Credentials files: readable by the owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(path, 0o600)


def write_credentials(accounts: BrokerAccounts, files: RunFiles) -> None:
    write_private(files.password_file, render_password_file(accounts))
    write_private(files.acl_file, render_acl_file(accounts))
