"""``omnizone demo --chain``: the cluster version of the demo on one machine.

Three nats-server nodes (JetStream, the R3 gateway stream, an MQTT listener
each), a private PostgreSQL, an API node and several workers, every one a
real process; the simulator drives several stores, each gateway logging in
to nats-server's MQTT listener with its own account (docs/scaling.md).
"""

import threading
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from omnizone.suite.chain.drive import StoreDrive
from omnizone.suite.chain.harness import Chain
from omnizone.suite.chain.stores import chain_store_files
from omnizone.suite.demo import _run_directory


def run_chain_demo(
    console: Console,
    *,
    stores: int = 6,
    workers: int = 2,
    shoppers_per_store: int = 10,
    duration_s: float | None = None,
    speed: float = 5.0,
    run_dir: Path | None = None,
) -> dict[str, Any]:
    """Until ``duration_s`` wall seconds pass or Ctrl-C; then a summary."""
    with _run_directory(run_dir) as folder:
        files = chain_store_files(stores, folder / "stores")
        console.print(
            f"[bold]omnizone demo --chain[/]: starting 3 NATS nodes, PostgreSQL, an API node "
            f"and {workers} workers for {stores} stores…"
        )
        started = time.monotonic()
        with Chain(files, workers=0, run_dir=folder / "chain") as chain:
            chain.add_every_zone_campaign()
            drive = StoreDrive(
                list(chain.plans.values()),
                chain.accounts,
                "127.0.0.1",
                chain.nats.mqtt_port(0),
                chain.api_url,
                folder / "drive",
                shoppers_per_store=shoppers_per_store,
                duration_s=(duration_s or 3600) * speed + 60,
                speed=speed,
            )
            drive.register()
            chain.add_workers(workers)
            drive.start()
            console.print(
                f"API [cyan]{chain.api_url}[/] (X-API-Key: {chain.api_key}); NATS "
                f"{', '.join(chain.nats.urls)}; gateways on MQTT port {chain.nats.mqtt_port(0)}; "
                f"up in {time.monotonic() - started:.0f} s. Ctrl-C to stop."
            )
            stop = threading.Event()
            try:
                while not stop.wait(5 if duration_s is None else min(5.0, duration_s)):
                    counts = chain.counts()
                    console.print(
                        f"ingested {counts.received} messages, {counts.visits} visits, "
                        f"{counts.offers} offers; workers alive: "
                        f"{sum(w.alive for w in chain.workers)}"
                    )
                    if duration_s is not None and time.monotonic() - started > duration_s:
                        break
            except KeyboardInterrupt:
                pass
            drive.stop(flush_timeout_s=30)
            counts = chain.counts()
            summaries = {w.name: w.stop() or {} for w in chain.workers}
            return {
                "stores": stores,
                "workers": workers,
                "nats_nodes": len(chain.nats.names),
                "shoppers_per_store": shoppers_per_store,
                "speed": speed,
                "wall_s": round(time.monotonic() - started, 1),
                "messages_ingested": counts.received,
                "sequence_gaps": counts.gaps,
                "duplicate_messages": counts.duplicate_keys,
                "visits": counts.visits,
                "duplicate_visits": counts.duplicate_visits,
                "decisions": counts.decisions,
                "offers": counts.offers,
                "duplicate_offers": counts.duplicate_offers,
                "dead_letters": counts.dead_letters,
                "messages_by_worker": {
                    name: s.get("chain", {}).get("handled") for name, s in summaries.items()
                },
                "simulation_errors": drive.errors[:5],
            }
