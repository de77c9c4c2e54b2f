"""``omnizone bench chain``: a retail chain on one cluster, measured per worker count.

For each worker count: a fresh chain (three nats-server nodes with the R3
stream, a private PostgreSQL, an API node, the workers, all real processes),
``stores`` copies of the example store (10 gateways each), ``shoppers``
registered app phones per store, each holding a WebSocket to the API node and
acknowledging offers like the reference app, and the every-zone campaign.

The load: every gateway publishes one BLE message a second (its one-second
window) with what it hears of the store's shoppers, who stay in a zone for a
while (about 20 s) and walk to another; RSSI is log-distance path loss from
the gateway to the shopper with shadowing. The messages are the wire
contract's, with the phones' real rotating ids, but they are published by
one load process straight into NATS with JetStream's publish acknowledgement
(``omnizone.v1.<store>.<gateway>.ble``, the subject nats-server's MQTT
listener gives a gateway's topic), not by 500 simulated gateways over MQTT:
on a 2-core machine the simulator itself would be the bottleneck. The MQTT
path is what the demo and the fault tests drive.

Printed per worker count: messages per second ingested and localized,
worker CPU seconds per 1,000 messages, the partition balance (most over least
loaded worker, in messages), offer latency p50/p99 (gateway message publish
to the phone), lost and duplicated counts; and a projection from the measured
per-store cost to 5,000 stores.

``lost_messages`` is what JetStream acknowledged to the load process but
PostgreSQL did not hold when the settle wait ended: on a machine that cannot
keep up, those are still in the stream (a backlog, not a loss); the run then
also says ``kept_up: false``. ``lost_offers`` are offers stored but not at a
phone when the bench stopped waiting.
"""

import asyncio
import math
import random
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from omnizone.contract import BleMessage, BleSighting, dump_message
from omnizone.contract.timefmt import wall_clock_ms
from omnizone.server import bootstrap
from omnizone.sim.app_client import register_app_phones
from omnizone.sim.shoppers import AppPhone
from omnizone.store import StorePlan
from omnizone.store.geometry import centroid
from omnizone.suite.bench.offers import Arrivals, _Phones, _wait_for_offers
from omnizone.suite.chain.harness import Chain, ChainCounts
from omnizone.suite.chain.stores import chain_store_files
from omnizone.suite.demo import _run_directory

TX_POWER_1M = -59.0
PATH_LOSS_EXPONENT = 2.2
SHADOWING_DB = 3.0
HEARD_ABOVE_DBM = -95.0
DWELL_S = (12.0, 30.0)
PROJECTED_STORES = 5000
REGISTER_THREADS = 4
"""Stores whose phones are registered at the same time."""
TARGET_CPU_UTILISATION = 0.7
"""A projection plans workers and NATS nodes to run at most this busy."""


def run_chain_bench(
    *,
    stores: int = 50,
    gateways_per_store: int = 10,
    shoppers_per_store: int = 50,
    workers: Sequence[int] = (1, 2),
    duration_s: float = 60.0,
    settle_s: float = 60.0,
    partitions: int = 16,
    run_dir: Path | None = None,
) -> dict[str, Any]:
    if not workers or any(w < 1 for w in workers):
        raise ValueError("--workers: give positive counts, e.g. 1,2")
    if shoppers_per_store < 1 or duration_s <= 0:
        raise ValueError("--shoppers-per-store and --duration must be positive")
    runs = []
    with _run_directory(run_dir) as folder:
        files = chain_store_files(stores, folder / "stores", gateways_per_store=gateways_per_store)
        for count in workers:
            runs.append(
                _one_run(
                    files,
                    count,
                    shoppers_per_store,
                    duration_s,
                    settle_s,
                    partitions,
                    folder / f"workers-{count}",
                )
            )
    result: dict[str, Any] = {
        "stores": stores,
        "gateways_per_store": gateways_per_store,
        "shoppers_per_store": shoppers_per_store,
        "duration_s": duration_s,
        "partitions": partitions,
        "nats_nodes": 3,
        "stream_replicas": 3,
        "load": "one BLE message per gateway per second, published with JetStream acks "
        "into the gateways' NATS subjects (not over MQTT)",
        "runs": runs,
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    base = next((r for r in runs if r["workers"] == min(workers)), None)
    for run in runs:
        if base is not None and base["worker_cpu_s_per_1000_messages"]:
            run["cost_growth_vs_fewest_workers"] = round(
                run["worker_cpu_s_per_1000_messages"] / base["worker_cpu_s_per_1000_messages"] - 1,
                3,
            )
    result["projection_5000_stores"] = _projection(runs[-1], stores, gateways_per_store)
    return result


def _one_run(
    files: Sequence[Path],
    workers: int,
    shoppers: int,
    duration_s: float,
    settle_s: float,
    partitions: int,
    folder: Path,
) -> dict[str, Any]:
    with Chain(files, workers=0, partitions=partitions, run_dir=folder) as chain:
        chain.add_every_zone_campaign()
        # Side by side: 2,500 phones one after another took longer than the run.
        with ThreadPoolExecutor(REGISTER_THREADS) as pool:
            registered = pool.map(
                lambda store: register_app_phones(chain.api_url, store, shoppers), chain.plans
            )
            phones = dict(zip(chain.plans, registered, strict=True))
        chain.add_workers(workers)  # after the phones: a worker loads the devices at start
        launched = {w.name: w.cpu_s() or 0.0 for w in chain.workers}
        # Taking a partition builds its stores' localizers and loads their state:
        # a one-off cost per take-over, reported apart from the per-message cost.
        bound = _wait_partitions_bound(chain, partitions, settle_s)
        every = [p for store_phones in phones.values() for p in store_phones]
        arrivals = Arrivals()
        clients = _Phones(chain.api_url, every, arrivals)
        clients.start()
        cpu_start = {w.name: w.cpu_s() or 0.0 for w in chain.workers}
        nats_cpu_start = _nats_cpu(chain)
        published, publish_errors, started_ms = asyncio.run(_publish(chain, phones, duration_s))
        ingested_at = _wait_ingested(chain, published, settle_s)
        storage = bootstrap.open_storage(chain.postgres.url)
        try:
            sent = _wait_for_offers(storage.offers, every, clients, 15.0)
        finally:
            storage.close()
        clients.stop()
        worker_cpu = {w.name: (w.cpu_s() or 0.0) - cpu_start[w.name] for w in chain.workers}
        nats_cpu = _nats_cpu(chain) - nats_cpu_start
        counts = chain.counts()
        rows = _rows_written(chain)
        summaries = {w.name: w.stop() or {} for w in chain.workers}
    handled = {name: int(s.get("chain", {}).get("handled", 0)) for name, s in summaries.items()}
    total_handled = sum(handled.values())
    cpu_total = sum(worker_cpu.values())
    latencies = sorted(
        arrivals.first_ms[offer] - pub
        for offer, (pub, _shopper, _created) in sent.items()
        if offer in arrivals.first_ms and pub is not None
    )
    deciding = sorted(c - p for p, _s, c in sent.values() if p is not None)
    delivering = sorted(
        arrivals.first_ms[o] - c for o, (_p, _s, c) in sent.items() if o in arrivals.first_ms
    )
    received = len(set(sent) & set(arrivals.first_ms))
    span_s = max(1e-3, ((ingested_at or wall_clock_ms()) - started_ms) / 1000)
    loads = [handled[name] for name in sorted(handled)]
    return {
        "workers": workers,
        "messages_published": published,
        "publish_errors": publish_errors,
        "messages_ingested": counts.received,
        "messages_per_s_ingested_and_localized": round(counts.received / span_s, 1),
        "messages_per_s_offered": round(published / duration_s, 1),
        "kept_up": ingested_at is not None and (ingested_at - started_ms) / 1000 <= duration_s + 5,
        "seconds_to_ingest_all": round(span_s, 1) if ingested_at is not None else None,
        "worker_cpu_s": {k: round(v, 2) for k, v in worker_cpu.items()},
        "worker_cpu_s_taking_partitions": {
            k: round(cpu_start[k] - launched[k], 2) for k in launched
        },
        "partitions_bound_before_traffic": bound,
        "worker_cpu_s_per_1000_messages": round(cpu_total / max(1, total_handled) * 1000, 3),
        "nats_cpu_s_per_1000_messages": round(nats_cpu / max(1, counts.received) * 1000, 3),
        "messages_by_worker": handled,
        "partition_balance": round(max(loads) / min(loads), 3)
        if loads and min(loads) > 0
        else None,
        "offers_sent": len(sent),
        "offers_received": received,
        "offer_latency_p50_ms": _pct(latencies, 0.5),
        "offer_latency_p99_ms": _pct(latencies, 0.99),
        "publish_to_stored_p50_ms": _pct(deciding, 0.5),
        "publish_to_stored_p99_ms": _pct(deciding, 0.99),
        "stored_to_phone_p50_ms": _pct(delivering, 0.5),
        "stored_to_phone_p99_ms": _pct(delivering, 0.99),
        "lost_messages": max(0, published - counts.received),
        "lost_offers": len(sent) - received,
        "duplicated": _duplicated(counts) + arrivals.duplicates,
        "duplicates": {
            "messages": counts.duplicate_keys,
            "visits": counts.duplicate_visits,
            "decisions": counts.duplicate_decisions,
            "offers": counts.duplicate_offers,
            "offers_at_phones": arrivals.duplicates,
        },
        "visits": counts.visits,
        "decisions": counts.decisions,
        "dead_letters": counts.dead_letters,
        "rows_written_per_message": round(rows / max(1, counts.received), 2),
        "websocket_clients": arrivals.connected,
        "client_errors": arrivals.errors[:3],
    }


def _duplicated(counts: ChainCounts) -> int:
    return (
        counts.duplicate_keys
        + counts.duplicate_visits
        + counts.duplicate_decisions
        + counts.duplicate_offers
    )


def _pct(values: list[int], q: float) -> float | None:
    if not values:
        return None
    return float(values[min(len(values) - 1, round(q * (len(values) - 1)))])


def _nats_cpu(chain: Chain) -> float:
    import os

    total = 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    for process in chain.nats.processes:
        if process.pid is None:
            continue
        try:
            stat = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(stat[11]) + int(stat[12])) / ticks
    return total


def _rows_written(chain: Chain) -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(chain.postgres.url)
    try:
        with engine.connect() as db:
            return sum(
                int(db.execute(text(f"SELECT count(*) FROM {table}")).scalar() or 0)
                for table in (
                    "received_messages",
                    "ble_sightings",
                    "visits",
                    "device_presence",
                    "offer_decisions",
                    "offers",
                )
            )
    finally:
        engine.dispose()


def _wait_partitions_bound(chain: Chain, partitions: int, timeout_s: float) -> bool:
    """True once every partition's durable consumer exists (a worker binds it
    after building the partition's ingest); False if not within ``timeout_s``."""
    import nats

    async def bound() -> int:
        nc = await nats.connect(
            chain.nats.urls,
            user=chain.accounts.server_username,
            password=chain.accounts.server_password,
        )
        try:
            infos = await nc.jetstream().consumers_info("GATEWAYS")
            return sum(1 for i in infos if (i.name or "").startswith("part-"))
        except Exception:
            return 0
        finally:
            await nc.close()

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if asyncio.run(bound()) >= partitions:
            time.sleep(2.0)  # the last one's first fetch
            return True
        time.sleep(1.0)
    return False


def _wait_ingested(chain: Chain, published: int, settle_s: float) -> int | None:
    """Wall ms when the last published message was stored; None if not by ``settle_s``."""
    deadline = time.monotonic() + settle_s
    while time.monotonic() < deadline:
        if chain.received() >= published:
            return wall_clock_ms()
        time.sleep(0.5)
    return None


class _Shopper:
    def __init__(self, phone: AppPhone, zones: list[tuple[float, float]], rng: random.Random):
        self.phone = phone
        self._zones = zones
        self._rng = rng
        self.at = rng.choice(zones)
        self.until_s = time.monotonic() + rng.uniform(*DWELL_S)

    def position(self, now_s: float) -> tuple[float, float]:
        if now_s >= self.until_s:
            self.at = self._rng.choice([z for z in self._zones if z != self.at])
            self.until_s = now_s + self._rng.uniform(*DWELL_S)
        return self.at


async def _publish(
    chain: Chain, phones: dict[str, list[AppPhone]], duration_s: float
) -> tuple[int, int, int]:
    """One BLE message per gateway per second for ``duration_s``; (acked, errors, start ms)."""
    import nats

    nc = await nats.connect(
        chain.nats.urls,
        user=chain.accounts.server_username,
        password=chain.accounts.server_password,
    )
    js = nc.jetstream()
    rng = random.Random(17)
    stores: list[tuple[StorePlan, list[_Shopper]]] = []
    for store, plan in chain.plans.items():
        zones = [centroid([(p[0], p[1]) for p in z.polygon]) for z in plan.zones]
        stores.append((plan, [_Shopper(p, zones, rng) for p in phones[store]]))
    seqs: dict[str, int] = {}
    epoch = rng.randrange(1, 2**31)
    published = errors = 0
    started_ms = wall_clock_ms()
    end = time.monotonic() + duration_s
    window_ms = 1000
    next_tick = time.monotonic()
    while time.monotonic() < end:
        next_tick += 1.0
        now_ms = wall_clock_ms()
        window_start = (now_ms // window_ms - 1) * window_ms
        now_s = time.monotonic()
        pending = []
        for plan, shoppers in stores:
            positions = [(s, s.position(now_s)) for s in shoppers]
            for gateway in plan.gateways:
                gx, gy = gateway.position
                items = []
                for shopper, (x, y) in positions:
                    distance = max(0.5, math.hypot(x - gx, y - gy))
                    rssi = (
                        TX_POWER_1M
                        - 10 * PATH_LOSS_EXPONENT * math.log10(distance)
                        + rng.gauss(0, SHADOWING_DB)
                    )
                    if rssi < HEARD_ABOVE_DBM:
                        continue
                    rssi = round(max(-127.0, min(20.0, rssi)), 1)
                    items.append(
                        BleSighting(
                            device=shopper.phone.eid.device_key(window_start + window_ms // 2),
                            window_start_ms=window_start,
                            window_ms=window_ms,
                            count=8,
                            rssi_mean=rssi,
                            rssi_max=min(20.0, rssi + 3),
                        )
                    )
                if not items:
                    continue
                seq = seqs.get(gateway.id, 0)
                seqs[gateway.id] = seq + 1
                message = BleMessage(
                    store=plan.id,
                    gateway=gateway.id,
                    epoch=epoch,
                    seq=seq,
                    sent_ms=wall_clock_ms(),
                    items=items,
                )
                subject = f"omnizone.v1.{plan.id}.{gateway.id}.ble"
                pending.append(js.publish(subject, dump_message(message), timeout=10))
        for outcome in await asyncio.gather(*pending, return_exceptions=True):
            if isinstance(outcome, BaseException):
                errors += 1
            else:
                published += 1
        await asyncio.sleep(max(0.0, next_tick - time.monotonic()))
    await nc.close()
    return published, errors, started_ms


def _projection(run: dict[str, Any], stores: int, gateways_per_store: int) -> dict[str, Any]:
    """From the measured per-message costs to ``PROJECTED_STORES`` stores."""
    rate = PROJECTED_STORES * gateways_per_store  # one message per gateway per second
    worker_cpu = run["worker_cpu_s_per_1000_messages"] / 1000 * rate
    nats_cpu = run["nats_cpu_s_per_1000_messages"] / 1000 * rate
    return {
        "stores": PROJECTED_STORES,
        "messages_per_s": rate,
        "from": f"the {run['workers']}-worker run at {stores} stores",
        "worker_cores": round(worker_cpu, 1),
        "workers_at_70_percent": math.ceil(worker_cpu / TARGET_CPU_UTILISATION),
        "nats_cores_all_nodes": round(nats_cpu, 1),
        "nats_nodes_of_8_cores_at_70_percent": max(
            3, math.ceil(nats_cpu / (8 * TARGET_CPU_UTILISATION))
        ),
        "postgresql_rows_per_s": round(run["rows_written_per_message"] * rate),
        "postgresql_transactions_per_s_at_most": rate,
        "assumes": "cost per message stays as measured (linear), one transaction per fetched "
        "chunk, 8-core NATS nodes, 70 % CPU",
    }
