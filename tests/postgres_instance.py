"""A private PostgreSQL server for the tests: its own data directory, port and
socket, started with the machine's binaries (Debian's ``postgresql``, which
``setup.sh`` installs when missing) and stopped at the end. No test touches a
server it did not start."""

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from omnizone.broker import free_port
from omnizone.suite.chain.postgres import as_postgres_user, postgres_binaries


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yields a SQLAlchemy URL (psycopg) to a fresh database on a private server."""
    binaries = postgres_binaries()
    if binaries is None:
        raise RuntimeError(
            "PostgreSQL's initdb was not found: run ./setup.sh (installs postgresql)"
        )
    run_as = as_postgres_user()
    home = Path(tempfile.mkdtemp(prefix="omnizone-pg-"))
    data, sockets = home / "data", home / "run"
    sockets.mkdir()
    if run_as:
        shutil.chown(home, "postgres")
        shutil.chown(sockets, "postgres")
    port = free_port()
    log = home / "server.log"

    def run(*command: str) -> None:
        subprocess.run([*run_as, *command], check=True, capture_output=True, timeout=120)

    try:
        run(
            str(binaries / "initdb"),
            "-D",
            str(data),
            "-U",
            "omnizone",
            "--auth=trust",
            "-E",
            "UTF8",
        )
        run(
            str(binaries / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60",
            "-o", f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off",
            "start",
        )  # fmt: skip
        try:
            run(
                str(binaries / "createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-U",
                "omnizone",
                "omnizone",
            )
            yield f"postgresql+psycopg://omnizone@127.0.0.1:{port}/omnizone"
        finally:
            run(str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
    except subprocess.CalledProcessError as error:
        detail = (error.stderr or b"").decode(errors="replace")
        server_log = log.read_text(errors="replace") if log.exists() else ""
        raise RuntimeError(f"private PostgreSQL failed: {detail}\n{server_log}") from error
    finally:
        shutil.rmtree(home, ignore_errors=True)
