"""The ``sim record`` and ``sim replay`` commands: options, credentials,
signals and the terminal. The work is in ``record.py`` and ``replay.py``."""

import json
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

MEGABYTE = 1024 * 1024


def _fail(console: Console, message: str) -> typer.Exit:
    console.print(f"[red]{message}[/]", highlight=False)
    return typer.Exit(2)


def _accounts(path: Path) -> dict[str, Any]:
    """The accounts YAML (``omnizone demo`` writes one: docs/recording.md)."""
    import yaml

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ValueError(f"{path}: cannot read it ({error.strerror})") from None
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: not YAML ({error})") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a mapping with 'gateways' and/or 'recorders'")
    return raw


@contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """SIGINT and SIGTERM end the command cleanly (files closed, clients gone)."""
    stop = threading.Event()
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, lambda *_: stop.set())
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def record_command(
    store: Annotated[Path, typer.Option(help="the store file (its id names the topics)")],
    out: Annotated[
        Path, typer.Option(help="first file of the recording; rotated parts go beside it")
    ],
    broker_host: Annotated[str, typer.Option(help="MQTT broker host")] = "127.0.0.1",
    broker_port: Annotated[int, typer.Option(help="MQTT broker port")] = 1883,
    tls_ca: Annotated[str | None, typer.Option(help="CA file: use TLS")] = None,
    accounts: Annotated[
        Path | None,
        typer.Option(help="YAML with 'recorders: {<store>: {username, password}}'"),
    ] = None,
    username: Annotated[
        str | None, typer.Option(help="recorder username; default omnizone-recorder-<store>")
    ] = None,
    password_file: Annotated[
        Path | None, typer.Option(help="file holding the recorder's password")
    ] = None,
    rotate_mb: Annotated[float, typer.Option(help="start a new part at this size")] = 64.0,
    duration: Annotated[
        float | None, typer.Option(help="stop after this many seconds; omit: until Ctrl-C")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="print one JSON summary")] = False,
) -> None:
    """Record every gateway message of a store, with its receive time (docs/recording.md)."""
    from rich.live import Live

    from omnizone.broker import recorder_username
    from omnizone.broker.secrets import read_secret_file
    from omnizone.sim.recording.record import (
        Recorder,
        RecorderError,
        RecorderOptions,
        status_line,
    )
    from omnizone.store import StoreConfigError, load_store

    console = Console(stderr=True)
    try:
        plan = load_store(store)
        user = username or recorder_username(plan.store.id)
        if password_file is not None:
            password = read_secret_file(password_file, "--password-file")
        elif accounts is not None:
            entry = _accounts(accounts).get("recorders", {}).get(plan.store.id)
            if not isinstance(entry, dict) or "password" not in entry:
                raise ValueError(
                    f"{accounts}: no 'recorders: {{{plan.store.id}: {{username, password}}}}' "
                    "entry for this store"
                )
            user = username or str(entry.get("username", user))
            password = str(entry["password"])
        else:
            raise ValueError("give the recorder's login: --accounts FILE or --password-file FILE")
        if rotate_mb <= 0:
            raise ValueError(f"--rotate-mb must be positive, not {rotate_mb}")
    except (StoreConfigError, ValueError) as error:
        raise _fail(console, str(error)) from None
    options = RecorderOptions(
        store=plan.store.id,
        out=out,
        host=broker_host,
        port=broker_port,
        username=user,
        password=password,
        tls_ca=tls_ca,
        rotate_bytes=int(rotate_mb * MEGABYTE),
        duration_s=duration,
    )
    with (
        _stop_on_signals() as stop,
        Live(console=console, refresh_per_second=1, transient=True) as live,
    ):
        recorder = Recorder(
            options,
            on_tick=lambda stats: live.update(status_line(stats)),
            on_ready=lambda: console.print(
                f"recording store {plan.store.id} as {user} from {broker_host}:{broker_port} "
                f"into {out} (Ctrl-C to stop)",
                highlight=False,
            ),
        )
        try:
            stats = recorder.run(stop)
        except RecorderError as error:
            raise _fail(console, str(error)) from None
    if json_output:
        typer.echo(json.dumps(stats.as_json()))
    else:
        console.print(stats.as_json())


def replay_command(
    files: Annotated[
        list[Path], typer.Argument(help="recording files or folders (parts in any order)")
    ],
    accounts: Annotated[
        Path, typer.Option(help="YAML mapping 'gateways: {<gateway id>: <password>}'")
    ],
    speed: Annotated[
        float, typer.Option(help="recorded seconds per wall second; 0: as fast as possible")
    ] = 1.0,
    fast: Annotated[bool, typer.Option("--fast", help="same as --speed 0")] = False,
    shift_to_now: Annotated[
        bool, typer.Option(help="move every time in the payloads so the replay starts now")
    ] = False,
    broker_host: Annotated[str, typer.Option(help="MQTT broker host")] = "127.0.0.1",
    broker_port: Annotated[int, typer.Option(help="MQTT broker port")] = 1883,
    tls_ca: Annotated[str | None, typer.Option(help="CA file: use TLS")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="print one JSON summary")] = False,
) -> None:
    """Republish a recording as its gateways, in order, at the recorded pace."""
    from omnizone.sim.recording.format import RecordingError
    from omnizone.sim.recording.replay import BrokerLogin, ReplayError, replay

    console = Console(stderr=True)
    try:
        gateways = _accounts(accounts).get("gateways")
        if not isinstance(gateways, dict):
            raise ValueError(f"{accounts}: expected 'gateways: {{<gateway id>: <password>}}'")
        credentials = {str(gw): (str(gw), str(pw)) for gw, pw in gateways.items()}
        with _stop_on_signals() as stop:
            console.print(f"replaying {len(files)} path(s) at speed {0 if fast else speed}")
            stats = replay(
                files,
                BrokerLogin(broker_host, broker_port, tls_ca),
                credentials,
                speed=0 if fast else speed,
                shift_to_now=shift_to_now,
                stop=stop,
            )
    except (ValueError, RecordingError, ReplayError) as error:
        raise _fail(console, str(error)) from None
    if json_output:
        typer.echo(json.dumps(stats.as_json()))
    else:
        console.print(stats.as_json())
    if stats.stopped_early:
        raise typer.Exit(1)
