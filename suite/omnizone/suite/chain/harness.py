"""A chain on one machine: three NATS nodes, PostgreSQL, workers and an API node.

Every part is a real process: ``nats-server`` nodes (``omnizone.broker.nats``),
a private PostgreSQL (``postgres.py``), and ``omnizone server run --role …``
processes for the API node and each worker, so a fault test can SIGKILL any
of them. The demo, ``bench chain`` and ``tests/fault/test_chain_*`` use it.
"""

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text

from omnizone.broker import BrokerAccounts, new_password
from omnizone.broker.nats import DEFAULT_PARTITIONS, NatsCluster
from omnizone.lifecycle import Started
from omnizone.store import StorePlan, load_store
from omnizone.suite.chain.postgres import PostgresProcess
from omnizone.suite.measured import every_zone_campaign

START_TIMEOUT_S = 400.0
_READY = "omnizone server: API on "

#: Every zone entry is worth an offer: the chain measures delivery, not campaign rules.
EVERY_ZONE_CAMPAIGN = every_zone_campaign(
    "chain-every-zone", "Chain: every zone entry", "Chain offer"
)


@dataclass
class ServerNode:
    """One ``omnizone server run`` process of the chain."""

    role: str
    name: str
    env: dict[str, str]
    folder: Path
    process: subprocess.Popen[bytes] | None = None
    api_url: str | None = None
    summary: dict[str, Any] | None = None
    cpu_before_exit_s: float | None = None
    _out: Any = None
    _err: Any = None
    _offset: int = 0

    @property
    def err_log(self) -> Path:
        return self.folder / f"{self.name}.err.log"

    @property
    def out_log(self) -> Path:
        return self.folder / f"{self.name}.out.json"

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout_s: float = START_TIMEOUT_S) -> None:
        self.launch()
        self.wait_ready(timeout_s)

    def launch(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._out = self.out_log.open("wb")
        self._err = self.err_log.open("ab")
        self._offset = self.err_log.stat().st_size
        self.summary = None
        self.process = subprocess.Popen(
            [sys.executable, "-m", "omnizone.suite", "server", "run", "--json"],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=self._err,
            start_new_session=True,
        )

    def wait_ready(self, timeout_s: float = START_TIMEOUT_S) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout_s
        while True:
            lines = self.err_log.read_bytes()[self._offset :].decode(errors="replace")
            for line in lines.splitlines():
                if line.startswith(_READY):
                    self.api_url = line[len(_READY) :].split(" ", 1)[0]
                    return
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited while starting:\n{lines[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{self.name} did not start in {timeout_s:g} s:\n{lines[-3000:]}"
                )
            time.sleep(0.1)

    def cpu_s(self) -> float | None:
        """User + system CPU seconds of the process so far (Linux /proc)."""
        if self.process is None:
            return None
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks

    def kill(self) -> None:
        """SIGKILL: a crash, nothing finished, nothing given back."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self._close_files()

    def stop(self, timeout_s: float = 60.0) -> dict[str, Any] | None:
        """SIGTERM, then the ``--json`` summary it prints."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.cpu_before_exit_s = self.cpu_s()
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._close_files()
        with contextlib.suppress(OSError, ValueError):
            self.summary = json.loads(self.out_log.read_text().strip().splitlines()[-1])
        return self.summary

    def _close_files(self) -> None:
        for handle in (self._out, self._err):
            if handle is not None:
                handle.close()
        self._out = self._err = None


@dataclass
class ChainCounts:
    """What PostgreSQL holds after a run: every figure the fault tests check."""

    received: int
    gaps: int
    """Sequence numbers missing inside each gateway epoch's stored run (reserved
    wills that were never published left out)."""
    duplicate_keys: int
    visits: int
    duplicate_visits: int
    decisions: int
    duplicate_decisions: int
    offers: int
    duplicate_offers: int
    dead_letters: int
    by_store: dict[str, int] = field(default_factory=dict)


class Chain(Started):
    """Start with ``with Chain(store_files, workers=2) as chain:``."""

    def __init__(
        self,
        store_files: Sequence[Path],
        *,
        workers: int = 2,
        nats_nodes: int = 3,
        partitions: int = DEFAULT_PARTITIONS,
        run_dir: Path | None = None,
        localizer: str = "grid",
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        self.store_files = list(store_files)
        self.plans: dict[str, StorePlan] = {}
        for path in self.store_files:
            plan = load_store(path)
            self.plans[plan.id] = plan
        self._owns = run_dir is None
        self.run_dir = (
            Path(tempfile.mkdtemp(prefix="omnizone-chain-")) if run_dir is None else run_dir
        )
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.partitions = partitions
        self.api_key = secrets.token_urlsafe(24)
        gateways = {
            gw.id: (plan.id, new_password()) for plan in self.plans.values() for gw in plan.gateways
        }
        self.accounts = BrokerAccounts("omnizone-server", new_password(), gateways=gateways)
        self.nats = NatsCluster(
            self.accounts, nodes=nats_nodes, partitions=partitions, run_dir=self.run_dir / "nats"
        )
        # Its own temporary home: PostgreSQL runs as its own user, which may
        # not enter the run directory (pytest makes those 0700).
        self.postgres = PostgresProcess()
        self._worker_count = workers
        self._localizer = localizer
        self._extra_env = dict(extra_env or {})
        self.api: ServerNode | None = None
        self.workers: list[ServerNode] = []

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        try:
            self.nats.start()
            self.postgres.start()
            # The API node first: it upgrades the schema before any worker starts.
            self.api = self._node("api", "api")
            self.api.start()
            self.add_workers(self._worker_count)
        except BaseException:
            self.close()
            raise

    def add_workers(self, count: int = 1) -> list[ServerNode]:
        """Start ``count`` more workers side by side; returns once all serve."""
        nodes = [self._node("worker", f"worker-{len(self.workers) + i}") for i in range(count)]
        self.workers.extend(nodes)
        for node in nodes:
            node.launch()
        for node in nodes:
            node.wait_ready()
        return nodes

    def close(self) -> None:
        for node in [*self.workers, *([self.api] if self.api else [])]:
            with contextlib.suppress(Exception):
                node.stop()
        self.nats.close()
        self.postgres.close()
        if self._owns:
            shutil.rmtree(self.run_dir, ignore_errors=True)

    # -- what callers use -----------------------------------------------------------

    @property
    def api_url(self) -> str:
        assert self.api is not None and self.api.api_url is not None
        return self.api.api_url

    def add_every_zone_campaign(self) -> None:
        """The campaign that makes every zone entry an offer, in every store."""
        for store, plan in self.plans.items():
            campaign = {
                **EVERY_ZONE_CAMPAIGN,
                "id": f"chain-every-zone-{store}",
                "trigger": {"kind": "zone_entered", "zones": [z.id for z in plan.zones]},
            }
            httpx.post(
                f"{self.api_url}/api/v1/stores/{store}/campaigns",
                json=campaign,
                headers={"X-API-Key": self.api_key},
                timeout=30,
            ).raise_for_status()

    def received(self) -> int:
        """Messages stored so far (cheap: what a wait polls)."""
        engine = create_engine(self.postgres.url)
        try:
            with engine.connect() as db:
                return int(db.execute(text("SELECT count(*) FROM received_messages")).scalar() or 0)
        finally:
            engine.dispose()

    def counts(self) -> ChainCounts:
        engine = create_engine(self.postgres.url)
        try:
            with engine.connect() as db:

                def one(sql: str) -> int:
                    return int(db.execute(text(sql)).scalar() or 0)

                by_store = {
                    row[0]: int(row[1])
                    for row in db.execute(
                        text("SELECT store, count(*) FROM received_messages GROUP BY store")
                    )
                }
                return ChainCounts(
                    received=one("SELECT count(*) FROM received_messages"),
                    # A number missing right after a birth ("online" status) is the
                    # reserved will of a connection whose node died before
                    # publishing it: not a message the gateway produced.
                    gaps=one(
                        "SELECT count(*) FROM (SELECT store, gateway, epoch,"
                        " generate_series(min(seq), max(seq)) AS s FROM received_messages"
                        " GROUP BY store, gateway, epoch) AS g WHERE NOT EXISTS ("
                        " SELECT 1 FROM received_messages r WHERE r.store = g.store"
                        " AND r.gateway = g.gateway AND r.epoch = g.epoch AND r.seq = g.s)"
                        " AND NOT EXISTS (SELECT 1 FROM received_messages b"
                        " WHERE b.store = g.store AND b.gateway = g.gateway"
                        " AND b.epoch = g.epoch AND b.seq = g.s - 1 AND b.kind = 'status')"
                    ),
                    duplicate_keys=one(
                        "SELECT count(*) FROM (SELECT 1 FROM received_messages"
                        " GROUP BY store, gateway, epoch, seq HAVING count(*) > 1) AS d"
                    ),
                    visits=one("SELECT count(*) FROM visits"),
                    duplicate_visits=one(
                        "SELECT count(*) FROM (SELECT 1 FROM visits"
                        " GROUP BY store, device, zone, entered_ms HAVING count(*) > 1) AS d"
                    ),
                    decisions=one("SELECT count(*) FROM offer_decisions"),
                    duplicate_decisions=one(
                        "SELECT count(*) FROM (SELECT 1 FROM offer_decisions"
                        " GROUP BY store, campaign_id, shopper_id, trigger, at_ms"
                        " HAVING count(*) > 1) AS d"
                    ),
                    offers=one("SELECT count(*) FROM offers"),
                    duplicate_offers=one(
                        # One moment (a zone entered at a time) of one shopper
                        # is one offer of a campaign; a message may complete
                        # several moments, so its publish time is not the key.
                        "SELECT count(*) FROM (SELECT 1 FROM offers"
                        " GROUP BY shopper_id, campaign_id, content->'trigger'->>'zone',"
                        " content->'trigger'->>'at_ms' HAVING count(*) > 1) AS d"
                    ),
                    dead_letters=one("SELECT count(*) FROM dead_letters"),
                    by_store=by_store,
                )
        finally:
            engine.dispose()

    # -- internals ------------------------------------------------------------------

    def _node(self, role: str, name: str) -> ServerNode:
        env = dict(os.environ)
        env.update(
            {
                "OMNIZONE_ROLE": role,
                "OMNIZONE_DATABASE_URL": self.postgres.url,
                "OMNIZONE_API_KEYS": json.dumps({self.api_key: ["read", "admin"]}),
                "OMNIZONE_API_PORT": "0",
                "OMNIZONE_STORE_FILES": json.dumps([str(p) for p in self.store_files]),
                "OMNIZONE_NATS_URLS": json.dumps(self.nats.urls),
                "OMNIZONE_NATS_USERNAME": self.accounts.server_username,
                "OMNIZONE_NATS_PASSWORD": self.accounts.server_password,
                "OMNIZONE_CHAIN_PARTITIONS": str(self.partitions),
                "OMNIZONE_CHAIN_WORKER_ID": name,
                "OMNIZONE_CAMPAIGN_FILES": "[]",
                "OMNIZONE_OPEN_ROUTE_RATE_PER_MINUTE": "0",
                "OMNIZONE_VAPID_KEY_FILE": str(self.run_dir / "vapid.pem"),
                "OMNIZONE_SURVEY_DIR": str(self.run_dir / "surveys"),
                "OMNIZONE_LOCALIZER": self._localizer,
                "OMNIZONE_RADIO_CHECK_INTERVAL_S": "0",
                "OMNIZONE_CHAIN_STREAM_REPLICAS": str(min(3, len(self.nats.names))),
            }
        )
        env.update(self._extra_env)
        return ServerNode(role, name, env, self.run_dir / "nodes")
