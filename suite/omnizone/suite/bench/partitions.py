"""``omnizone bench partitions``: raw sightings in one plain table against day
partitions on PostgreSQL (migration 0015, docs/scaling.md): the retention
limit's prune of one day of sightings (DELETE in batches vs dropping the
day's partition), the VACUUM the DELETE leaves behind, and the cost of a
batch of the ingest's COPY into each table.

Two schemas of one database: ``plain`` (migrated to 0014) and ``by_day``
(head), each filled with the same sightings spread evenly over ``days`` UTC
days. Times: wall, this process's CPU (``time.process_time``) and, on the
private server the bench starts itself, the CPU of every server process
(``/proc``: the backend, the WAL writer, the checkpointer ...)."""

import os
import statistics
import time
from collections.abc import Callable
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from typing import Any

DAY_MS = 86_400_000
T0 = 1_796_083_200_000  # 2026-12-01T00:00:00Z
_TICKS = os.sysconf("SC_CLK_TCK")


def _server_cpu_s(postmaster: int | None) -> float | None:
    """utime + stime of the postmaster and its children (the server's CPU)."""
    if postmaster is None:
        return None
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(entry.name), int(fields[1])
        if pid == postmaster or ppid == postmaster:
            total += int(fields[11]) + int(fields[12])
    return total / _TICKS


def _timed(postmaster: int | None, work: Callable[[], Any]) -> tuple[Any, dict[str, Any]]:
    server0, cpu0, wall0 = _server_cpu_s(postmaster), time.process_time(), time.perf_counter()
    result = work()
    wall, cpu, server1 = (
        time.perf_counter() - wall0,
        time.process_time() - cpu0,
        _server_cpu_s(postmaster),
    )
    server = None if server0 is None or server1 is None else round(server1 - server0, 3)
    return result, {"wall_s": round(wall, 3), "client_cpu_s": round(cpu, 3), "server_cpu_s": server}


def run_partitions_bench(
    sightings: int = 2_000_000,
    days: int = 5,
    batches: int = 20,
    messages_per_batch: int = 10,
    items_per_message: int = 200,
    database_url: str | None = None,
) -> dict[str, Any]:
    from sqlalchemy import create_engine, text

    from omnizone.server.adapters import schema
    from omnizone.server.adapters.db import SqlRepository, make_engine

    if sightings < days or days < 2 or batches < 1:
        raise ValueError("--days must be at least 2, --sightings at least --days, --batches >= 1")
    with ExitStack() as stack:
        postmaster: int | None = None
        if database_url is None:
            from omnizone.suite.chain.postgres import PostgresProcess

            server = PostgresProcess()
            stack.callback(server.close)
            server.start()
            database_url = server.url
            postmaster = int((server.data / "postmaster.pid").read_text().split()[0])
        if not database_url.startswith("postgresql"):
            raise ValueError(
                "--database-url must be a PostgreSQL URL (partitions are PostgreSQL's)"
            )
        admin = create_engine(database_url)
        stack.callback(admin.dispose)
        result: dict[str, Any] = {
            "sightings": sightings,
            "days": days,
            "rows_per_day": sightings // days,
            "copy_batch_rows": messages_per_batch * items_per_message,
            "batches": batches,
        }
        for layout in ("plain", "by_day"):
            with admin.begin() as db:
                db.execute(text(f"DROP SCHEMA IF EXISTS bench_{layout} CASCADE"))
                db.execute(text(f"CREATE SCHEMA bench_{layout}"))
            engine = make_engine(f"{database_url}?options=-csearch_path%3Dbench_{layout}")
            stack.callback(engine.dispose)
            repo = SqlRepository(engine)
            schema.upgrade(engine, "0014" if layout == "plain" else "head")
            made = repo.prepare_sighting_partitions(T0, ahead=days + 1)
            with engine.begin() as db:
                db.execute(
                    text(
                        "INSERT INTO received_messages (store, gateway, seq, kind, sent_ms,"
                        " received_ms, items, duplicates)"  # ids 1 .. days (a new sequence)
                        " SELECT 's', 'fill', d, 'ble', 1, 2, 1, 0 FROM generate_series(1, :days) d"
                    ),
                    {"days": days},
                )
            _, fill = _timed(postmaster, partial(_fill, engine, sightings, days))
            with engine.connect() as db:
                db.execution_options(isolation_level="AUTOCOMMIT").execute(
                    text("VACUUM ANALYZE ble_sightings")
                )
            # the ingest's COPY: batches of messages into the last day
            per_batch = [
                _timed(
                    postmaster,
                    partial(
                        _copy_batch, repo, days + 1 + n * messages_per_batch, messages_per_batch,
                        items_per_message, T0 + (days - 1) * DAY_MS,
                    ),
                )[1]
                for n in range(batches)
            ]  # fmt: skip
            pruned, prune = _timed(postmaster, partial(repo.prune_sightings, T0 + DAY_MS))
            with engine.connect() as db:
                db = db.execution_options(isolation_level="AUTOCOMMIT")
                _, vacuum = _timed(postmaster, partial(db.execute, text("VACUUM ble_sightings")))
                left = db.execute(text("SELECT count(*) FROM ble_sightings")).scalar_one()
            result[layout] = {
                "partitions_made": made,
                "fill": fill,
                "copy_batch_median": {
                    k: (
                        None
                        if per_batch[0][k] is None
                        else round(statistics.median(b[k] for b in per_batch), 4)
                    )
                    for k in per_batch[0]
                },
                "prune_one_day": {**prune, "rows": pruned},
                "vacuum_after_prune": vacuum,
                "rows_left": left,
            }
            with admin.begin() as db:
                db.execute(text(f"DROP SCHEMA bench_{layout} CASCADE"))
        return result


def _copy_batch(repo: Any, first_seq: int, messages: int, items: int, day_ms: int) -> None:
    """One ingest transaction of ``messages`` BLE messages of ``items`` sightings."""
    from omnizone.contract import BleSighting
    from omnizone.server.service.ports.ingest import ReceivedKey

    with repo.transaction() as tx:
        for seq in range(first_seq, first_seq + messages):
            start = day_ms + seq * 1000
            tx.record_received(ReceivedKey("s", "g", seq), "ble", start, start, items)
            sightings = [
                BleSighting(
                    device=f"eid:{i:016x}",
                    window_start_ms=start,
                    window_ms=1000,
                    count=3,
                    rssi_mean=-60.0,
                    rssi_max=-58.0,
                )
                for i in range(items)
            ]
            tx.add_ble_sightings("s", "g", seq, sightings)


def _fill(engine: Any, sightings: int, days: int) -> None:
    from sqlalchemy import text

    with engine.begin() as db:
        db.execute(
            text(
                "INSERT INTO ble_sightings (message_id, store, gateway, device, window_start_ms,"
                " window_ms, count, rssi_mean, rssi_max)"
                " SELECT 1 + n % :days, 's', 'g', 'eid:' || (n % 5000),"
                " :t0 + (n % :days) * :day + (n / :days) % :day, 1000, 3, -60, -58"
                " FROM generate_series(0, :rows - 1) AS n"
            ),
            {"days": days, "t0": T0, "day": DAY_MS, "rows": sightings},
        )
