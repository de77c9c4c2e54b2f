"""Run a broker as a child process: start, wait until it listens, stop.

Both brokers (Mosquitto and the embedded amqtt one) are separate processes so
``stop()`` always leaves nothing running, whatever state the broker is in.
"""

from __future__ import annotations

import contextlib
import ctypes
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO


class BrokerError(RuntimeError):
    """The broker could not be started (or is not available)."""


def port_accepts(host: str, port: int, timeout_s: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def port_is_free(host: str, port: int) -> bool:
    """True when a server could bind ``host:port`` now (as brokers do, with SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def log_tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(log is empty)"


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the broker gets SIGTERM if the process that started it dies."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


class BrokerProcess:
    """One broker command line, restartable: start() / stop() any number of times."""

    def __init__(
        self,
        kind: str,
        argv: Sequence[str],
        *,
        host: str,
        port: int,
        log_path: Path,
        env: dict[str, str] | None = None,
        extra_ports: Sequence[int] = (),
        start_timeout_s: float = 10.0,
        stop_timeout_s: float = 5.0,
        ready_marker: bytes | None = None,
    ) -> None:
        self.kind = kind
        # Mosquitto opens each listen socket before loading its certificate, so an
        # accepting port does not prove the broker survived start-up; its log line does.
        self.ready_marker = ready_marker
        self.argv = list(argv)
        self.host = host
        self.port = port
        self.extra_ports = tuple(extra_ports)
        self.log_path = log_path
        self.env = env
        self.start_timeout_s = start_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._log_start = 0

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        if self.running:
            return
        for port in (self.port, *self.extra_ports):
            if not port_is_free(self.host, port):
                raise BrokerError(
                    f"cannot start {self.kind} broker: {self.host}:{port} is already in use"
                )
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self._log_start = self._log.tell()
        # PDEATHSIG is tied to the thread that forks: only use it from the main
        # thread, where it means "the starting process died".
        in_main = threading.current_thread() is threading.main_thread()
        preexec = _die_with_parent if sys.platform.startswith("linux") and in_main else None
        self._proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=self.env,
            # Ctrl-C in a terminal must not kill the broker before its owner
            # has shut down its clients; the owner stops it explicitly.
            start_new_session=True,
            preexec_fn=preexec,
        )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.start_timeout_s
        while True:
            code = self._proc.poll()
            if code is not None:
                raise BrokerError(
                    f"{self.kind} broker exited with code {code} while starting on "
                    f"{self.host}:{self.port}; last lines of {self.log_path}:\n"
                    f"{log_tail(self.log_path)}"
                )
            if (
                all(port_accepts(self.host, p) for p in (self.port, *self.extra_ports))
                and self._logged_ready()
            ):
                return
            if time.monotonic() > deadline:
                raise BrokerError(
                    f"{self.kind} broker did not accept connections on {self.host}:{self.port} "
                    f"within {self.start_timeout_s:g} s; last lines of {self.log_path}:\n"
                    f"{log_tail(self.log_path)}"
                )
            time.sleep(0.05)

    def _logged_ready(self) -> bool:
        if self.ready_marker is None:
            return True
        try:
            return self.ready_marker in self.log_path.read_bytes()[self._log_start :]
        except OSError:
            return False

    def stop(self) -> None:
        """SIGTERM (lets Mosquitto save its persistence file), SIGKILL after a timeout."""
        proc, self._proc = self._proc, None
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
