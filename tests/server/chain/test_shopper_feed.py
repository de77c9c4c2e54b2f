"""The shopper change feed on real processes (issue 17, docs/scaling.md):
three nats-server nodes, a private PostgreSQL, an API node and a worker.

A worker loads the devices and consents when it starts. Without the feed, a
shopper erased or whose consent was revoked on the API node afterwards is
still resolved and tracked by the worker, and one registered afterwards is
not known to it at all. Every wait is a bounded poll on a condition.
"""

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import nats
import pytest

from omnizone.broker import free_port
from omnizone.broker.accounts import BrokerAccounts
from omnizone.broker.nats import NatsCluster, find_nats_server
from omnizone.contract.eid import eid_device_key
from omnizone.server.domain.identity import Consent
from omnizone.server.domain.partitions import partition_of
from omnizone.server.runtime import ServerRuntime
from omnizone.server.settings import ServerSettings
from omnizone.store import StorePlan
from omnizone.suite.chain.postgres import postgres_binaries
from tests.postgres_instance import postgres_server
from tests.server.conftest import STORE, ble
from tests.server.identity.test_erasure_and_consent_in_the_server import rows_about
from tests.server.test_bootstrap import ADMIN, VIP, Phone

pytestmark = [
    pytest.mark.skipif(find_nats_server() is None, reason="needs nats-server"),
    pytest.mark.skipif(postgres_binaries() is None, reason="needs PostgreSQL (./setup.sh)"),
]

WAIT_S = 90.0  # only bounds a hang (the shared machine is slow to elect leaders)
PARTITIONS = 16
GATEWAY = "gw-womenswear"


def until(condition: Callable[[], object], what: str, wait_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + wait_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {wait_s:.0f} s: {what}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, plan: StorePlan) -> Iterator[NatsCluster]:
    gateways = {g.id: (STORE, f"pw-{g.id}-0123456789") for g in plan.gateways}
    accounts = BrokerAccounts("omnizone-server", "server-pw-0123456789", gateways=gateways)
    made = NatsCluster(
        accounts, nodes=3, partitions=PARTITIONS, run_dir=tmp_path_factory.mktemp("nats")
    )
    made.start()
    yield made
    made.close()


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    with postgres_server() as url:
        yield url


def chain_settings(
    tmp: Path, role: str, cluster: NatsCluster, database: str, **extra: object
) -> ServerSettings:
    values: dict[str, object] = {
        "role": role,
        "database_url": database,
        "api_port": 0,
        "mqtt_port": free_port(),  # the chain roles speak NATS, not MQTT
        "api_keys": {ADMIN["X-API-Key"]: ["admin"]},
        "campaign_files": [],
        "vapid_key_file": tmp / "vapid.pem",
        "localizer": "nearest",  # plumbing: one window places a device
        "nats_urls": cluster.urls,
        "nats_username": cluster.accounts.server_username,
        "nats_password": cluster.accounts.server_password,
        "chain_partitions": PARTITIONS,
        "chain_worker_id": f"{role}-feed-test",
    }
    values.update(extra)
    return ServerSettings(**values)  # type: ignore[arg-type]


def register(api: httpx.Client, *, location: bool, offers: bool) -> Phone:
    made = api.post("/api/v1/shoppers", json={"store": STORE})
    assert made.status_code == 201, made.text
    phone = Phone.registered(made.json())
    set_consent(api, phone, location=location, offers=offers)
    return phone


def set_consent(api: httpx.Client, phone: Phone, *, location: bool, offers: bool) -> None:
    body = {"location_analytics": location, "personalized_offers": offers}
    answer = api.put("/api/v1/me/consent", json=body, headers=phone.auth)
    assert answer.status_code == 200, answer.text


def publish_windows(
    cluster: NatsCluster, phones: list[Phone], windows: int, first_seq: int
) -> None:
    """The gateway hears every phone's current rotating id, ``windows`` times,
    on core NATS: nats-server maps each message into the store's partition."""
    import asyncio

    async def send() -> None:
        nc = await nats.connect(
            cluster.urls,
            user=cluster.accounts.server_username,
            password=cluster.accounts.server_password,
        )
        start = time.time_ns() // 1_000_000 // 1000 * 1000
        for n in range(windows):
            at_ms = start + (n + 1) * 1000
            heard = {eid_device_key(p.eid, at_ms): -55.0 for p in phones}
            topic, payload = ble(GATEWAY, first_seq + n, at_ms, heard, epoch=7)
            await nc.publish(topic.replace("/", "."), payload)
        await nc.flush()
        await nc.close()

    asyncio.run(send())


def test_changes_on_the_api_node_reach_a_running_worker(
    cluster: NatsCluster, database: str, plan: StorePlan, tmp_path: Path
) -> None:
    stores = {plan.id: plan}
    api_settings = chain_settings(tmp_path / "api", "api", cluster, database)
    with (
        ServerRuntime(api_settings, stores=stores) as api_node,
        httpx.Client(base_url=api_node.api_url, timeout=30) as api,
    ):
        made = api.post(f"/api/v1/stores/{STORE}/campaigns", json=VIP, headers=ADMIN)
        assert made.status_code == 201, made.text
        # Known to the worker when it starts (it reads them from PostgreSQL).
        erased = register(api, location=True, offers=True)
        revoked = register(api, location=True, offers=True)

        worker_settings = chain_settings(tmp_path / "worker", "worker", cluster, database)
        with ServerRuntime(worker_settings, stores=stores) as worker_node:
            worker = worker_node.worker
            assert worker is not None
            k = partition_of(STORE, PARTITIONS)
            until(lambda: k in worker.ingests, f"the worker holds partition {k}")
            on_worker = worker_node.shoppers
            assert on_worker.consent(erased.shopper_id) == Consent(True, True)

            # After the worker started, all on the API node: one registration
            # with consent, one erasure, one revocation.
            joined = register(api, location=True, offers=True)
            gone = api.delete("/api/v1/me", headers=erased.auth)
            assert gone.status_code == 204, gone.text
            set_consent(api, revoked, location=False, offers=False)

            until(
                lambda: on_worker.consent(joined.shopper_id) == Consent(True, True),
                "the worker knows the shopper registered after it started, and their consent",
            )
            until(lambda: on_worker.is_erased(erased.shopper_id), "the worker saw the erasure")
            until(
                lambda: on_worker.consent(revoked.shopper_id) == Consent(False, False),
                "the worker saw the revocation",
            )

            # Now the gateway hears all three phones.
            publish_windows(cluster, [erased, revoked, joined], windows=3, first_seq=1)
            engine = worker_node.parts.storage.sql.engine
            until(
                lambda: rows_about(engine, joined.shopper_id).get("visits", 0) > 0,
                "a visit of the shopper registered after the worker started",
            )
            until(
                lambda: rows_about(engine, joined.shopper_id).get("offers", 0) > 0,
                "an offer for the shopper registered after the worker started",
            )
            until(lambda: worker.counters.accepted == 3, "every window ingested")
            assert worker_node.parts.engine.drain(30)

            left = {t: n for t, n in rows_about(engine, erased.shopper_id).items() if n}
            assert left == {}, f"rows about the erased shopper: {left}"
            tracked = {
                t: n
                for t, n in rows_about(engine, revoked.shopper_id).items()
                if n and t not in ("shoppers", "shopper_consents")
            }
            assert tracked == {}, f"rows about the shopper who revoked consent: {tracked}"
            feed = worker_node.shopper_feed
            assert feed is not None and feed.counters.gaps == 0


def test_a_missed_notice_is_caught_up_and_a_lost_stream_is_read_again(
    cluster: NatsCluster, database: str, plan: StorePlan, tmp_path: Path
) -> None:
    """A change whose notice never left its node (it died after its commit)
    reaches the worker with the next full re-read; a feed stream deleted and
    made again is noticed, re-read, and followed from its new start."""
    import asyncio

    from omnizone.server.adapters.db import make_engine
    from omnizone.server.adapters.shopper_db import ShopperRepository
    from omnizone.server.domain.identity import Purpose
    from omnizone.server.service.shoppers import ShopperService

    stores = {plan.id: plan}
    api_settings = chain_settings(tmp_path / "api", "api", cluster, database)
    worker_settings = chain_settings(
        tmp_path / "worker", "worker", cluster, database, chain_shopper_refresh_s=2.0
    )
    engine = make_engine(database)
    with (
        ServerRuntime(api_settings, stores=stores) as api_node,
        httpx.Client(base_url=api_node.api_url, timeout=30) as api,
        ServerRuntime(worker_settings, stores=stores) as worker_node,
    ):
        feed = worker_node.shopper_feed
        assert feed is not None
        on_worker = worker_node.shoppers
        # A node with no feed: its commits are never announced.
        silent = ShopperService([STORE], ShopperRepository(engine))
        quiet = silent.register(STORE).shopper_id
        silent.set_consent(quiet, {Purpose.LOCATION_ANALYTICS: True})
        until(
            lambda: on_worker.consent(quiet) == Consent(True, False),
            "the worker re-read a registration nobody announced",
        )
        assert feed.counters.full_refreshes >= 2  # the start, then at least one periodic

        async def delete_stream() -> None:
            nc = await nats.connect(
                cluster.urls,
                user=cluster.accounts.server_username,
                password=cluster.accounts.server_password,
            )
            await nc.jetstream().delete_stream(worker_settings.chain_shopper_stream)
            await nc.close()

        asyncio.run(delete_stream())
        until(lambda: feed.counters.stream_resets >= 1, "the worker noticed the new stream")
        applied = feed.counters.applied
        joined = register(api, location=True, offers=False)
        until(
            lambda: (
                feed.counters.applied > applied
                and on_worker.consent(joined.shopper_id) == Consent(True, False)
            ),
            "a notice on the new stream reached the worker",
        )
    engine.dispose()


def test_what_a_worker_wrote_before_the_erasure_reached_it_is_deleted_by_it(
    cluster: NatsCluster, database: str, plan: StorePlan, tmp_path: Path
) -> None:
    """The notice is late (the worker's feed thread is held): the worker
    stores sightings and a visit of a shopper the API node has already
    erased. When the notice comes, the worker's own erasure pass deletes them,
    and later windows of the phone store nothing."""
    import threading

    stores = {plan.id: plan}
    api_settings = chain_settings(tmp_path / "api", "api", cluster, database)
    worker_settings = chain_settings(tmp_path / "worker", "worker", cluster, database)
    with (
        ServerRuntime(api_settings, stores=stores) as api_node,
        httpx.Client(base_url=api_node.api_url, timeout=30) as api,
    ):
        erased = register(api, location=True, offers=False)
        with ServerRuntime(worker_settings, stores=stores) as worker_node:
            worker, feed = worker_node.worker, worker_node.shopper_feed
            assert worker is not None and feed is not None
            k = partition_of(STORE, PARTITIONS)
            until(lambda: k in worker.ingests, f"the worker holds partition {k}")
            engine = worker_node.parts.storage.sql.engine
            late = threading.Event()
            # Every re-read of the worker runs on this one thread: hold it.
            feed._apply.submit(late.wait, WAIT_S)
            try:
                gone = api.delete("/api/v1/me", headers=erased.auth)
                assert gone.status_code == 204, gone.text
                assert worker_node.shoppers.consent(erased.shopper_id) == Consent(True, False)
                accepted = worker.counters.accepted
                publish_windows(cluster, [erased], windows=2, first_seq=1001)
                until(lambda: worker.counters.accepted == accepted + 2, "the windows ingested")
                written = {t: n for t, n in rows_about(engine, erased.shopper_id).items() if n}
                assert written.get("visits", 0) > 0  # written after the erasure's deletes
            finally:
                late.set()
            until(lambda: worker_node.shoppers.is_erased(erased.shopper_id), "the notice came")
            until(
                lambda: not any(rows_about(engine, erased.shopper_id).values()),
                "the worker deleted what it wrote about the erased shopper",
            )
            accepted = worker.counters.accepted
            publish_windows(cluster, [erased], windows=2, first_seq=1003)
            until(lambda: worker.counters.accepted == accepted + 2, "the later windows ingested")
            left = {t: n for t, n in rows_about(engine, erased.shopper_id).items() if n}
            assert left == {}, f"rows about the erased shopper: {left}"


def test_notices_gone_from_the_stream_before_a_worker_read_them_are_re_read(
    cluster: NatsCluster, database: str, plan: StorePlan, tmp_path: Path
) -> None:
    """A notice removed from the stream before the worker read it (as the
    max age removes old ones): the sequence jumps, and the worker re-reads
    every shopper, so the shopper whose notice is gone is known all the same."""
    import asyncio
    import threading

    stores = {plan.id: plan}
    api_settings = chain_settings(tmp_path / "api", "api", cluster, database)
    worker_settings = chain_settings(tmp_path / "worker", "worker", cluster, database)
    stream = worker_settings.chain_shopper_stream

    async def drop_last_notice() -> int:
        nc = await nats.connect(
            cluster.urls,
            user=cluster.accounts.server_username,
            password=cluster.accounts.server_password,
        )
        js = nc.jetstream()
        seq = (await js.stream_info(stream)).state.last_seq
        await js.delete_msg(stream, seq)
        await nc.close()
        return seq

    def registered(api: httpx.Client) -> str:
        made = api.post("/api/v1/shoppers", json={"store": STORE})  # no consent: one notice
        assert made.status_code == 201, made.text
        return str(made.json()["shopper_id"])

    with (
        ServerRuntime(api_settings, stores=stores) as api_node,
        httpx.Client(base_url=api_node.api_url, timeout=30) as api,
        ServerRuntime(worker_settings, stores=stores) as worker_node,
    ):
        feed = worker_node.shopper_feed
        assert feed is not None
        until(lambda: feed.counters.full_refreshes == 1, "the worker's first full re-read")
        late = threading.Event()
        feed._apply.submit(late.wait, WAIT_S)  # the worker reads one notice, then waits
        try:
            first = registered(api)
            missed = registered(api)
            dropped = asyncio.run(drop_last_notice())  # the notice of ``missed``
            last = registered(api)
        finally:
            late.set()
        on_worker = worker_node.shoppers
        until(lambda: on_worker.consent(last) is not None, "the last notice applied")
        assert on_worker.consent(first) == on_worker.consent(missed) == Consent()
        assert feed.counters.gaps == 1, f"notice {dropped} was gone"
        assert feed.counters.full_refreshes == 2  # the start, and the gap


def test_the_node_holding_a_workers_feed_consumer_dies(
    cluster: NatsCluster, database: str, plan: StorePlan, tmp_path: Path
) -> None:
    """SIGKILL the NATS node that holds the worker's feed consumer: the worker
    makes the consumer again from the last notice it applied, and a change
    made on the API node meanwhile reaches it. Last in the module: it kills a
    node (restarted at the end)."""
    import asyncio

    stores = {plan.id: plan}
    api_settings = chain_settings(tmp_path / "api", "api", cluster, database)
    worker_settings = chain_settings(tmp_path / "worker", "worker", cluster, database)

    async def consumer_node(name: str) -> str:
        nc = await nats.connect(
            cluster.urls,
            user=cluster.accounts.server_username,
            password=cluster.accounts.server_password,
        )
        info = await nc.jetstream().consumer_info(worker_settings.chain_shopper_stream, name)
        await nc.close()
        assert info.cluster is not None and info.cluster.leader is not None
        return str(info.cluster.leader)

    killed: int | None = None
    try:
        with (
            ServerRuntime(api_settings, stores=stores) as api_node,
            httpx.Client(base_url=api_node.api_url, timeout=60) as api,
            ServerRuntime(worker_settings, stores=stores) as worker_node,
        ):
            feed = worker_node.shopper_feed
            assert feed is not None
            until(lambda: feed.consumer is not None, "the worker follows the feed")
            before = register(api, location=True, offers=False)
            until(
                lambda: worker_node.shoppers.consent(before.shopper_id) == Consent(True, False),
                "a notice before the kill",
            )
            assert feed.consumer is not None
            killed = cluster.names.index(asyncio.run(consumer_node(feed.consumer)))
            first = feed.consumer
            cluster.kill(killed)
            after = register(api, location=False, offers=True)
            until(
                lambda: worker_node.shoppers.consent(after.shopper_id) == Consent(False, True),
                "a notice after the kill",
            )
            assert feed.consumer != first  # made again, on a node alive
            assert feed.counters.gaps == 0 and feed.counters.stream_resets == 0
            assert feed.counters.full_refreshes == 1  # the start: the notices did it
    finally:
        if killed is not None:
            cluster.restart(killed)
