"""``omnizone server ...``: run the server (ingest + API) in the foreground.

Heavy dependencies (FastAPI, SQLAlchemy, paho) are imported inside the
commands so ``omnizone --help`` works on a gateway-only install.
"""

import json
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer

server_app = typer.Typer(
    help="The omnizone server: MQTT ingest, zone visits and the HTTP API.",
    no_args_is_help=True,
)


@server_app.callback()
def _group() -> None:
    """The omnizone server: MQTT ingest, zone visits and the HTTP API."""


def _parse_api_keys(values: list[str]) -> dict[str, list[str]]:
    keys: dict[str, list[str]] = {}
    for value in values:
        key, _, scopes = value.partition(":")
        if not key:
            raise typer.BadParameter(f"{value!r}: expected KEY or KEY:scope[,scope]")
        keys[key] = [s.strip() for s in scopes.split(",") if s.strip()] or ["read"]
    return keys


def _read_api_key_file(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ValueError(f"--api-key-file: cannot read {path}: {error.strerror}") from None
    lines = [line.strip() for line in text.splitlines()]
    keys = [line for line in lines if line and not line.startswith("#")]
    if not keys:
        raise ValueError(f"--api-key-file: {path} holds no KEY:scope line")
    return keys


@server_app.command("run")
def run(
    database_url: Annotated[
        str | None, typer.Option(help="SQLAlchemy URL [env OMNIZONE_DATABASE_URL]")
    ] = None,
    mqtt_host: Annotated[str | None, typer.Option(help="broker host [127.0.0.1]")] = None,
    mqtt_port: Annotated[int | None, typer.Option(help="broker port [1883]")] = None,
    mqtt_username: Annotated[str | None, typer.Option(help="broker user [omnizone-server]")] = None,
    mqtt_password: Annotated[
        str | None,
        typer.Option(
            help="broker password (visible in `ps`: prefer --mqtt-password-file or env "
            "OMNIZONE_MQTT_PASSWORD)"
        ),
    ] = None,
    mqtt_password_file: Annotated[
        Path | None, typer.Option(help="file whose first line is the broker password")
    ] = None,
    mqtt_tls_ca: Annotated[
        Path | None, typer.Option(help="CA file: connect to the broker with TLS")
    ] = None,
    api_host: Annotated[str | None, typer.Option(help="API bind address [127.0.0.1]")] = None,
    api_port: Annotated[int | None, typer.Option(help="API port [8600]")] = None,
    api_key: Annotated[
        list[str] | None,
        typer.Option(
            help="KEY:scope[,scope] (scopes: read, admin); repeatable (visible in `ps`: "
            "prefer --api-key-file or env OMNIZONE_API_KEYS)"
        ),
    ] = None,
    api_key_file: Annotated[
        Path | None,
        typer.Option(help="file with one KEY:scope[,scope] per line (# comments)"),
    ] = None,
    store: Annotated[list[Path] | None, typer.Option(help="store file (YAML); repeatable")] = None,
    role: Annotated[
        str | None,
        typer.Option(
            help="all (one process: MQTT ingest + API), worker (consume the chain's NATS "
            "stream) or api (API + WebSockets, offers through NATS) [env OMNIZONE_ROLE; all]"
        ),
    ] = None,
    nats_url: Annotated[
        list[str] | None,
        typer.Option(
            help="NATS URL of the chain (worker, api); repeatable [env OMNIZONE_NATS_URLS]"
        ),
    ] = None,
    nats_password_file: Annotated[
        Path | None, typer.Option(help="file whose first line is the NATS password")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="print one JSON object with the final stats")
    ] = False,
) -> None:
    """Run ingest and the API until Ctrl-C (or SIGTERM)."""
    from pydantic import ValidationError

    from omnizone.broker.secrets import read_secret_file
    from omnizone.server.runtime import ServerRuntime
    from omnizone.server.settings import ServerSettings
    from omnizone.store import StoreConfigError

    visible = [
        f"warning: {flag} puts a secret on the command line, where every local user sees "
        f"it (ps, /proc); use {flag}-file or the environment instead"
        for flag, given in (("--mqtt-password", mqtt_password), ("--api-key", api_key))
        if given
    ]
    try:
        if mqtt_password_file is not None:
            mqtt_password = read_secret_file(mqtt_password_file, "--mqtt-password-file")
        if api_key_file is not None:
            api_key = [*(api_key or []), *_read_api_key_file(api_key_file)]
        nats_password = (
            read_secret_file(nats_password_file, "--nats-password-file")
            if nats_password_file is not None
            else None
        )
    except ValueError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    overrides: dict[str, Any] = {
        "database_url": database_url,
        "mqtt_host": mqtt_host,
        "mqtt_port": mqtt_port,
        "mqtt_username": mqtt_username,
        "mqtt_password": mqtt_password,
        "mqtt_tls_ca": mqtt_tls_ca,
        "api_host": api_host,
        "api_port": api_port,
        "api_keys": _parse_api_keys(api_key) if api_key else None,
        "store_files": store,
        "role": role,
        "nats_urls": nats_url,
        "nats_password": nats_password,
    }
    try:
        settings = ServerSettings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as error:
        typer.echo(f"error: invalid server settings: {error}", err=True)
        raise typer.Exit(2) from None
    runtime = ServerRuntime(settings)
    try:
        runtime.start()
    except (ValueError, StoreConfigError, OSError, RuntimeError) as error:
        for warning in visible:
            typer.echo(warning, err=True)
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None

    done = threading.Event()

    def _terminate(_signum: int, _frame: FrameType | None) -> None:
        done.set()

    previous = signal.signal(signal.SIGTERM, _terminate)
    typer.echo(
        f"omnizone server: API on {runtime.api_url} (docs at {runtime.api_url}/docs), "
        + (
            f"ingesting from mqtt://{settings.mqtt_host}:{settings.mqtt_port}"
            if settings.role == "all"
            else f"role {settings.role} on {', '.join(settings.nats_urls)}"
        )
        + "; Ctrl-C to stop",
        err=True,
    )
    for warning in visible:  # after the first line, which scripts wait for
        typer.echo(warning, err=True)
    try:
        while not done.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        counters = runtime.ingest.counters
        worker = runtime.worker
        runtime.stop()
    summary: dict[str, Any] = {
        "accepted": counters.accepted,
        "duplicates": counters.duplicates,
        "dead_lettered": counters.dead_lettered,
        "gaps": counters.gaps,
    }
    if worker is not None:
        summary["chain"] = {
            "handled": worker.counters.handled,
            "accepted": worker.counters.accepted,
            "duplicates": worker.counters.duplicates,
            "dead_lettered": worker.counters.dead_lettered,
            "partitions_acquired": worker.counters.acquired,
            "redelivered": worker.counters.redelivered,
            "warmed": worker.counters.warmed,
            "warm_cpu_s": round(worker.counters.warm_cpu_s, 3),
            "storage_errors": worker.counters.storage_errors,
            "by_store": worker.counters.by_store,
        }
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        typer.echo(f"stopped: {summary}", err=True)


@server_app.command("migrate")
def migrate(
    database_url: Annotated[
        str | None, typer.Option(help="SQLAlchemy URL [env OMNIZONE_DATABASE_URL]")
    ] = None,
    check: Annotated[
        bool,
        typer.Option(
            "--check", help="change nothing: exit 1 when the database is not at the newest schema"
        ),
    ] = False,
) -> None:
    """Upgrade the database schema to this version's (the server also does it at start).

    A database made before migrations existed is recognised and stamped, not
    recreated. Back up before upgrading a store's database."""
    from pydantic import ValidationError
    from sqlalchemy.exc import SQLAlchemyError

    from omnizone.server.adapters import schema
    from omnizone.server.adapters.db import make_engine
    from omnizone.server.settings import ServerSettings

    try:
        overrides: dict[str, Any] = {"database_url": database_url} if database_url else {}
        settings = ServerSettings(**overrides)
    except ValidationError as error:
        typer.echo(f"error: invalid server settings: {error}", err=True)
        raise typer.Exit(2) from None
    try:
        engine = make_engine(settings.database_url)
    except (SQLAlchemyError, ValueError) as error:
        typer.echo(f"error: {settings.database_url}: {error}", err=True)
        raise typer.Exit(2) from None
    try:
        before = schema.current_revision(engine)
        head = schema.head_revision()
        if check:
            drift = schema.differences(engine) if before == head else []
            report: dict[str, Any] = {
                "current": before,
                "head": head,
                "up_to_date": before == head and not drift,
            }
            if drift:
                report["differences"] = [str(d) for d in drift]
            typer.echo(json.dumps(report))
            raise typer.Exit(0 if report["up_to_date"] else 1)
        after = schema.upgrade(engine)
        typer.echo(json.dumps({"from": before, "to": after, "head": head}))
    except SQLAlchemyError as error:
        typer.echo(f"error: {settings.database_url}: {error}", err=True)
        raise typer.Exit(2) from None
    finally:
        engine.dispose()
