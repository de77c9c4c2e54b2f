"""The embedded broker (amqtt) for machines without Mosquitto, run as a subprocess.

The parent side (``prepare_embedded``) writes the same password and ACL files
as for Mosquitto plus a small JSON config and returns a restartable
``BrokerProcess``; the child side (``main``) is ``python -m
omnizone.broker.embedded --config <file>``. amqtt is imported only in the child.

Not like Mosquitto: no persistence, so queued messages of offline persistent
sessions are lost when the embedded broker restarts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from omnizone.broker.accounts import BrokerAccounts
from omnizone.broker.files import MESSAGE_SIZE_LIMIT, RunFiles, TlsFiles, write_credentials
from omnizone.broker.process import BrokerError, BrokerProcess

_PLUGINS = "omnizone.broker.amqtt_plugins"


@dataclass(frozen=True, slots=True)
class EmbeddedConfig:
    host: str
    port: int
    password_file: str
    acl_file: str
    tls_port: int | None = None
    certfile: str | None = None
    keyfile: str | None = None
    cafile: str | None = None
    message_size_limit: int = MESSAGE_SIZE_LIMIT

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> EmbeddedConfig:
        return cls(**json.loads(text))


def amqtt_config(config: EmbeddedConfig) -> dict[str, Any]:
    """The amqtt 0.12 ``BrokerConfig`` dict: our plugins only, no anonymous access."""
    listeners: dict[str, Any] = {
        "default": {"type": "tcp", "bind": f"{config.host}:{config.port}"},
    }
    if config.tls_port is not None:
        listeners["tls"] = {
            "type": "tcp",
            "bind": f"{config.host}:{config.tls_port}",
            "ssl": True,
            "certfile": config.certfile,
            "keyfile": config.keyfile,
            "cafile": config.cafile,
        }
    return {
        "listeners": listeners,
        "plugins": {
            f"{_PLUGINS}.PasswordFileAuthPlugin": {
                "password_file": config.password_file,
                "acl_file": config.acl_file,
            },
            f"{_PLUGINS}.AclTopicPlugin": {"acl_file": config.acl_file},
        },
    }


def prepare_embedded(
    accounts: BrokerAccounts,
    *,
    run_dir: Path,
    host: str,
    port: int,
    tls: TlsFiles | None = None,
    start_timeout_s: float = 15.0,
    message_size_limit: int = MESSAGE_SIZE_LIMIT,
) -> BrokerProcess:
    if tls is not None and tls.require_certificate:
        raise BrokerError("the embedded broker cannot require client certificates; use Mosquitto")
    files = RunFiles(run_dir)
    write_credentials(accounts, files)
    config = EmbeddedConfig(
        host=host,
        port=port,
        password_file=str(files.password_file.resolve()),
        acl_file=str(files.acl_file.resolve()),
        tls_port=tls.port if tls else None,
        certfile=str(tls.certfile.resolve()) if tls else None,
        keyfile=str(tls.keyfile.resolve()) if tls else None,
        cafile=str(tls.cafile.resolve()) if tls and tls.cafile else None,
        message_size_limit=message_size_limit,
    )
    conf_file = files.config_file("embedded")
    conf_file.write_text(config.to_json(), encoding="utf-8")
    # The child must import this very omnizone, even when run from a checkout.
    base = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (base, env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return BrokerProcess(
        "embedded",
        [sys.executable, "-m", "omnizone.broker.embedded", "--config", str(conf_file.resolve())],
        host=host,
        port=port,
        log_path=files.log_file,
        env=env,
        extra_ports=(tls.port,) if tls is not None else (),
        start_timeout_s=start_timeout_s,
    )


class _SnapshotDict(dict[str, Any]):
    """amqtt 0.12 iterates its subscription table across ``await`` (the
    broadcast loop, a new session's retained messages), so a client that
    subscribes meanwhile (every gateway subscribes to its ack topic) crashes
    the iteration with "dictionary changed size during iteration": the
    broadcast task dies and the broker drops messages it has acknowledged.
    Iterating over a snapshot keeps the table's meaning and ends the race."""

    def __iter__(self) -> Iterator[str]:
        return iter(list(super().keys()))

    def items(self) -> Any:
        return list(super().items())

    def keys(self) -> Any:
        return list(super().keys())

    def values(self) -> Any:
        return list(super().values())


def _bounded_broker(config: EmbeddedConfig) -> Any:
    """An amqtt Broker that drops a PUBLISH whose payload exceeds the size limit.

    amqtt 0.12 has no ``message_size_limit`` and its plugins' topic filter does
    not see the payload, so the check sits where amqtt hands a received
    message on: like Mosquitto with MQTT 3.1.1, the message is acknowledged
    and dropped, and the broker log says so.
    """
    from amqtt.broker import Broker

    limit = config.message_size_limit
    log = logging.getLogger("omnizone.broker")

    class BoundedBroker(Broker):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._subscriptions = _SnapshotDict(self._subscriptions)  # type: ignore[has-type]

        async def _handle_message_delivery(
            self, client_session: Any, handler: Any, wait_deliver: asyncio.Future[Any]
        ) -> bool:
            message = wait_deliver.result()
            data = getattr(message, "data", None)
            if data is not None and len(data) > limit:
                log.warning(
                    "dropped a PUBLISH of %d bytes from %s on %r: above message_size_limit %d",
                    len(data),
                    client_session.client_id,
                    message.topic,
                    limit,
                )
                return True
            handled: bool = await super()._handle_message_delivery(
                client_session, handler, wait_deliver
            )
            return handled

    return BoundedBroker(amqtt_config(config))


async def serve(config: EmbeddedConfig) -> None:
    """Run until SIGTERM/SIGINT, then shut the broker down cleanly."""
    broker = _bounded_broker(config)
    await broker.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    logging.getLogger("omnizone.broker").info(
        "embedded broker listening on %s:%d", config.host, config.port
    )
    await stop.wait()
    await broker.shutdown()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m omnizone.broker.embedded")
    parser.add_argument("--config", type=Path, required=True, help="JSON written by the launcher")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # amqtt logs every packet at INFO through some loggers; keep the log readable.
    logging.getLogger("amqtt").setLevel(logging.WARNING)
    logging.getLogger("transitions").setLevel(logging.WARNING)
    logging.getLogger("amqtt.broker.plugins").setLevel(logging.INFO)
    try:
        config = EmbeddedConfig.from_json(args.config.read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError) as exc:
        print(f"embedded broker: cannot read config {args.config}: {exc}", file=sys.stderr)
        return 2
    asyncio.run(serve(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
