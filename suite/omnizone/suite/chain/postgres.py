"""A private PostgreSQL server for the chain demo, bench and fault tests.

Its own data directory, port and socket, started with the machine's binaries
(Debian's ``postgresql``), restartable (the fault tests restart it), removed
on ``close``. It never touches a server it did not start."""

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from omnizone.broker import free_port
from omnizone.lifecycle import Started


def postgres_binaries() -> Path | None:
    """The folder with initdb and pg_ctl: on PATH, or Debian's versioned folder.
    (``tests/postgres_instance.py`` finds its server's binaries here too.)"""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    return Path(versions[0]).parent if versions else None


def as_postgres_user() -> list[str]:
    """PostgreSQL refuses to run as root: then run its commands as ``postgres``."""
    if os.geteuid() != 0:
        return []
    return ["runuser", "-u", "postgres", "--"]


class PostgresProcess(Started):
    """initdb once, then start / stop / restart any number of times."""

    def __init__(self, home: Path | None = None, *, fsync: bool = True) -> None:
        binaries = postgres_binaries()
        if binaries is None:
            raise RuntimeError("PostgreSQL's initdb was not found: run ./setup.sh")
        self._bin = binaries
        self._run_as = as_postgres_user()
        self._owns = home is None
        self.home = Path(tempfile.mkdtemp(prefix="omnizone-chain-pg-")) if home is None else home
        self.home.mkdir(parents=True, exist_ok=True)
        self.data, self.sockets, self.log = (
            self.home / "data",
            self.home / "run",
            self.home / "pg.log",
        )
        self.sockets.mkdir(exist_ok=True)
        if self._run_as:
            shutil.chown(self.home, "postgres")
            shutil.chown(self.sockets, "postgres")
        self.port = free_port()
        self._fsync = fsync
        self._initialised = False

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://omnizone@127.0.0.1:{self.port}/omnizone"

    def _run(self, *command: str) -> None:
        try:
            subprocess.run([*self._run_as, *command], check=True, capture_output=True, timeout=120)
        except subprocess.CalledProcessError as error:
            detail = (error.stderr or b"").decode(errors="replace")
            tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"private PostgreSQL failed: {detail}\n{tail}") from error

    def start(self) -> None:
        if not self._initialised:
            self._run(str(self._bin / "initdb"), "-D", str(self.data), "-U", "omnizone",
                      "--auth=trust", "-E", "UTF8")  # fmt: skip
        options = (
            f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 "
            f"-c max_connections=200 -c fsync={'on' if self._fsync else 'off'}"
        )
        self._run(str(self._bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
                  "-w", "-t", "60", "-o", options, "start")  # fmt: skip
        if not self._initialised:
            self._run(str(self._bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port),
                      "-U", "omnizone", "omnizone")  # fmt: skip
            self._initialised = True

    def stop(self, mode: str = "fast") -> None:
        """``immediate`` is a crash: no checkpoint, clients cut off."""
        self._run(str(self._bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def restart(self) -> None:
        self.stop("immediate")
        self.start()

    def close(self) -> None:
        if self._initialised:
            with contextlib.suppress(RuntimeError):
                self.stop("immediate")
        if self._owns:
            shutil.rmtree(self.home, ignore_errors=True)
