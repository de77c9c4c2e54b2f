"""Faults on a chain's real processes (issue 17): SIGKILL one of three NATS
nodes mid-stream, SIGKILL a worker, restart PostgreSQL.

One chain for the module: three nats-server nodes (JetStream, R3 stream),
a private PostgreSQL, an API node and two workers, all real processes on free
ports. Two kinds of traffic go through real gateway code over MQTT to
nats-server's MQTT listener, each gateway with its own account:

- NFC taps with a uid each, from one gateway per store (``Gateway`` of the
  issue 12 fault tests): every tap must be stored exactly once;
- the simulator's shoppers in both stores (registered app phones, the every-
  zone campaign): after every fault, no visit, decision or offer is stored twice.

Waits are bounded (``WAIT_S``) and never a pass/fail threshold on time.
"""

import asyncio
import contextlib
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from omnizone.broker.nats import find_nats_server
from tests.fault.conftest import WAIT_S, Gateway, until
from tests.fault.link import LinkProxy

pytestmark = [
    pytest.mark.fault,
    pytest.mark.e2e,
    # About eight minutes of three NATS nodes, PostgreSQL and four server
    # processes: they pass on the shared 2-core machine (docs/scaling.md,
    # "What the fault-test runs showed"), but take too long for CI.
    # Run them on purpose: OMNIZONE_CHAIN_FAULTS=1 pytest tests/fault/test_chain_faults.py
    pytest.mark.skipif(
        os.environ.get("OMNIZONE_CHAIN_FAULTS") != "1",
        reason="chain fault tests run with OMNIZONE_CHAIN_FAULTS=1 (minutes, many processes)",
    ),
]

LEASE_TTL_S = 5.0


class ChainRig:
    def __init__(self, tmp: Path) -> None:
        from omnizone.suite.chain.drive import StoreDrive
        from omnizone.suite.chain.harness import Chain
        from omnizone.suite.chain.stores import chain_store_files

        # s000 and s001 carry the simulated shoppers; s002 and s003 one tap
        # gateway each. With two workers, each holds one of each kind
        # (partitions 6, 9, 0, 3: domain.partitions.assign).
        files = chain_store_files(4, tmp / "stores")
        # The default lease TTL (5 s): with the members read from the bucket's
        # stream it holds on the loaded machine (it needed 15 s before; docs/scaling.md).
        self.chain = Chain(
            files,
            workers=0,
            run_dir=tmp / "chain",
            extra_env={"OMNIZONE_CHAIN_LEASE_TTL_S": str(LEASE_TTL_S)},
        )
        self.chain.start()
        self.chain.add_every_zone_campaign()
        plans = list(self.chain.plans.values())
        self.drive = StoreDrive(
            plans[:2],
            self.chain.accounts,
            "127.0.0.1",
            self.chain.nats.mqtt_port(0),
            self.chain.api_url,
            tmp / "drive",
            shoppers_per_store=5,
            duration_s=3600,
            speed=5.0,
        )
        self.drive.register()  # before the workers start: they load the devices then
        self.chain.add_workers(2)
        self.drive.start()
        # The tap gateways reach the cluster through the store's "internet link",
        # a forwarder the link test cuts (tests/fault/link.py).
        self.link = LinkProxy("127.0.0.1", self.chain.nats.mqtt_port(0))
        broker: Any = SimpleNamespace(host=self.link.host, port=self.link.port)
        self.gateways = [
            Gateway(
                plan, plan.gateways[0].id, tmp / f"taps-{plan.id}.db", broker, self.chain.accounts
            )
            for plan in plans[2:]
        ]
        for gateway in self.gateways:
            gateway.start()

    def close(self) -> None:
        for gateway in self.gateways:
            with contextlib.suppress(Exception):
                gateway.stop()
        with contextlib.suppress(Exception):
            self.drive.stop(flush_timeout_s=5)
        self.link.close()
        self.chain.close()

    @contextlib.contextmanager
    def streaming(self, every_s: float = 0.02) -> Iterator[None]:
        stop = threading.Event()

        def produce() -> None:
            while not stop.is_set():
                for gateway in self.gateways:
                    gateway.tap()
                stop.wait(every_s)

        thread = threading.Thread(target=produce, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def tap_counts(self) -> dict[str, int]:
        from sqlalchemy import create_engine, text

        engine = create_engine(self.chain.postgres.url)
        try:
            with engine.connect() as db:
                rows = db.execute(text("SELECT uid, count(*) FROM nfc_taps GROUP BY uid"))
                return {str(uid): int(n) for uid, n in rows}
        except Exception:
            return {}
        finally:
            engine.dispose()

    def assert_exactly_once(self) -> None:
        produced = [uid for g in self.gateways for uid in g.produced]
        assert len(set(produced)) == len(produced)
        assert until(lambda: set(self.tap_counts()) >= set(produced), WAIT_S * 2), (
            f"missing: {len(set(produced) - set(self.tap_counts()))} of {len(produced)}; "
            f"{self.chain.counts()}"
        )
        assert until(lambda: all(g.outbox.depth() == 0 for g in self.gateways), WAIT_S)
        counts = self.tap_counts()
        assert {uid: counts.get(uid) for uid in produced} == dict.fromkeys(produced, 1)
        stored = self.chain.counts()
        assert stored.duplicate_keys == 0
        assert stored.duplicate_visits == 0, stored
        assert stored.duplicate_decisions == 0, stored
        assert stored.duplicate_offers == 0, stored
        assert not self.drive.errors

    def stream_leader(self) -> int:
        """Index of the node leading the gateway stream (the one worth killing)."""
        import nats

        async def ask() -> str:
            nc = await nats.connect(
                self.chain.nats.urls,
                user=self.chain.accounts.server_username,
                password=self.chain.accounts.server_password,
            )
            try:
                info = await nc.jetstream().stream_info("GATEWAYS")
                assert info.cluster is not None and info.cluster.leader is not None
                return str(info.cluster.leader)
            finally:
                await nc.close()

        return self.chain.nats.names.index(asyncio.run(ask()))


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChainRig]:
    if find_nats_server() is None:
        pytest.skip("needs the nats-server binary")
    if shutil.which("initdb") is None and not list(
        Path("/usr/lib/postgresql").glob("*/bin/initdb")
    ):
        pytest.skip("needs PostgreSQL's binaries")
    made = ChainRig(tmp_path_factory.mktemp("chain"))
    try:
        yield made
    finally:
        made.close()


def _gaps(rig: ChainRig) -> list[tuple[str, str, int, int, str | None]]:
    """The first missing (store, gateway, epoch, seq), with the kind stored just
    before each: what a failure message should name."""
    from sqlalchemy import create_engine, text

    engine = create_engine(rig.chain.postgres.url)
    try:
        with engine.connect() as db:
            rows = db.execute(
                text(
                    "SELECT g.store, g.gateway, g.epoch, g.s, (SELECT b.kind"
                    " FROM received_messages b WHERE b.store = g.store"
                    " AND b.gateway = g.gateway AND b.epoch = g.epoch"
                    " AND b.seq = g.s - 1) FROM (SELECT store, gateway, epoch,"
                    " generate_series(min(seq), max(seq)) AS s FROM received_messages"
                    " GROUP BY store, gateway, epoch) AS g WHERE NOT EXISTS (SELECT 1 FROM"
                    " received_messages r WHERE r.store = g.store AND r.gateway = g.gateway"
                    " AND r.epoch = g.epoch AND r.seq = g.s) ORDER BY 1, 2, 3, 4 LIMIT 20"
                )
            ).all()
            return [(str(r[0]), str(r[1]), int(r[2]), int(r[3]), r[4]) for r in rows]
    finally:
        engine.dispose()


def _visits_grow(rig: ChainRig) -> bool:
    return rig.chain.counts().visits > 0


def test_sigkill_the_stream_leader_of_three_nats_nodes_mid_stream(rig: ChainRig) -> None:
    leader = rig.stream_leader()
    with rig.streaming():
        time.sleep(2)
        rig.chain.nats.kill(leader)
        time.sleep(3)
        rig.chain.nats.restart(leader)
        time.sleep(2)
    rig.assert_exactly_once()
    assert until(lambda: _visits_grow(rig), WAIT_S)


def test_sigkill_a_worker_mid_stream_its_stores_are_taken_over(rig: ChainRig) -> None:
    victim = rig.chain.workers[0]
    survivors = [w for w in rig.chain.workers if w is not victim]
    with rig.streaming():
        time.sleep(2)
        victim.kill()
        time.sleep(LEASE_TTL_S + 5)  # the lease expires and a survivor takes the stores
    rig.assert_exactly_once()
    assert all(w.alive for w in survivors)
    rig.chain.workers.remove(victim)
    rig.chain.add_workers(1)  # back to two for the next test


def test_restart_postgresql_mid_stream(rig: ChainRig) -> None:
    with rig.streaming():
        time.sleep(2)
        rig.chain.postgres.restart()
        time.sleep(3)
    rig.assert_exactly_once()
    before: dict[str, Any] = rig.chain.counts().__dict__
    assert before["received"] > 0


def test_the_stores_internet_link_drops_mid_stream(rig: ChainRig) -> None:
    """The direct path (docs/scaling.md, "Gateways"): the link between the
    store's gateways and the cluster is cut for 15 s while they keep tapping.
    Their outboxes hold what they could not send; when the link is back they
    reconnect, send the backlog, and every tap is stored exactly once."""
    with rig.streaming():
        time.sleep(2)
        before = len([uid for g in rig.gateways for uid in g.produced])
        rig.link.cut()
        time.sleep(15)
        during = len([uid for g in rig.gateways for uid in g.produced]) - before
        backlog = sum(g.outbox.depth() for g in rig.gateways)
        rig.link.restore()
        time.sleep(3)
    assert during > 0 and backlog >= during  # nothing went while the link was down
    rig.assert_exactly_once()


def test_after_the_faults_every_gateway_message_is_stored_once(rig: ChainRig) -> None:
    """The simulated stores' gateways too: once they have drained their
    outboxes, every sequence number of every epoch is stored, none twice."""
    rig.drive.stop(flush_timeout_s=WAIT_S)
    assert until(lambda: rig.chain.counts().gaps == 0, WAIT_S), (rig.chain.counts(), _gaps(rig))
    stored = rig.chain.counts()
    assert stored.duplicate_keys == 0
    assert stored.duplicate_visits == 0, stored
    assert stored.duplicate_decisions == 0, stored
    assert stored.duplicate_offers == 0, stored
    assert stored.visits > 0 and stored.offers > 0, stored
