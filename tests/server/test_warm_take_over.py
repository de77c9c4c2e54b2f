"""A store taken over by another chain worker (issue 17): its filter is warmed
from the messages the last owner committed, so the placements go on as if
nobody had died; a cold filter would place differently."""

import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path

import pytest

from omnizone.broker.accounts import BrokerAccounts
from omnizone.broker.nats import NatsCluster, find_nats_server
from omnizone.server.adapters.db import SqlRepository
from omnizone.server.adapters.nats_link import NatsLink
from omnizone.server.adapters.nats_worker import NatsWorker
from omnizone.server.service.ingest import InboundMessage, IngestService, Outcome
from omnizone.server.service.locators import ZonePlacement, make_locator
from omnizone.store import StorePlan

from .conftest import STORE
from .test_ingest_batch import _recording, _walk


def _service(plan: StorePlan, repo: SqlRepository) -> IngestService:
    return IngestService({plan.id: plan}, repo, locators={plan.id: make_locator(plan, "grid")})


def _placed_after(
    plan: StorePlan, repo: SqlRepository, warm: list[InboundMessage], rest: list[InboundMessage]
) -> tuple[list[tuple[str, ZonePlacement]], int]:
    """What a new owner places from ``rest`` on, having warmed on ``warm``."""
    taker = _service(plan, repo)
    placed = _recording(taker)
    taken = taker.warm(warm) if warm else 0
    for start in range(0, len(rest), 10):
        outcomes = taker.handle_batch(rest[start : start + 10])
        assert {o.outcome for o in outcomes} == {Outcome.ACCEPTED}
    return placed, taken


def test_a_warmed_take_over_places_what_the_last_owner_would_have(
    plan: StorePlan, tmp_path: Path
) -> None:
    messages = _walk(plan, 60, seed=3)
    cut = 300 + 3  # mid-window: three of the second's gateways were committed
    done, rest = messages[:cut], messages[cut:]

    # The owner that never died: every message, its placements after the cut.
    steady = _service(plan, SqlRepository.from_url(f"sqlite:///{tmp_path / 'steady.db'}"))
    steady_placed = _recording(steady)
    for start in range(0, len(messages), 10):
        steady.handle_batch(messages[start : start + 10])
    after = [p for p in steady_placed if p[1].at_ms > rest[0].received_ms - 1000]

    def died_at_cut(name: str) -> SqlRepository:
        repo = SqlRepository.from_url(f"sqlite:///{tmp_path / name}.db")
        owner = _service(plan, repo)
        for start in range(0, len(done), 10):
            owner.handle_batch(done[start : start + 10])
        return repo

    warmed, taken = _placed_after(plan, died_at_cut("warm"), done, rest)
    cold, _ = _placed_after(plan, died_at_cut("cold"), [], rest)

    assert taken == len(done)
    assert [p for p in warmed if p[1].at_ms > rest[0].received_ms - 1000] == after
    assert warmed != cold, "the walk should leave a cold filter placing differently"
    assert steady.present(STORE) != {}


def test_warming_stops_at_the_first_message_not_stored_and_counts_nothing(
    plan: StorePlan, tmp_path: Path
) -> None:
    messages = _walk(plan, 10, seed=5)
    repo = SqlRepository.from_url(f"sqlite:///{tmp_path / 'o.db'}")
    owner = _service(plan, repo)
    owner.handle_batch(messages[:40])
    taker = _service(plan, repo)
    before = replace(taker.counters)
    bad = InboundMessage(messages[0].topic, b"{not json", messages[0].received_ms)
    assert taker.warm([bad, *messages[:40], *messages[40:60], *messages[:5]]) == 41
    assert taker.counters == before
    # What it stopped at comes through the consumer as new, and is stored.
    outcomes = taker.handle_batch(messages[40:60])
    assert {o.outcome for o in outcomes} == {Outcome.ACCEPTED}


@pytest.mark.skipif(find_nats_server() is None, reason="needs nats-server")
def test_a_worker_taking_a_partition_through_a_cluster_warms_on_what_was_stored(
    plan: StorePlan, tmp_path: Path
) -> None:
    """Three real nats-server nodes: worker one consumes the first half and
    stops; worker two takes the partition, warms its filter on the stream and
    places the second half as an owner that never stopped does."""
    messages = _walk(plan, 40, seed=11)
    cut = 200 + 4
    done, rest = messages[:cut], messages[cut:]
    steady = _service(plan, SqlRepository.from_url(f"sqlite:///{tmp_path / 'steady.db'}"))
    steady_placed = _recording(steady)
    for start in range(0, len(messages), 10):
        steady.handle_batch(messages[start : start + 10])
    boundary = rest[0].received_ms - 1000
    after = [p for p in steady_placed if p[1].at_ms > boundary]

    accounts = BrokerAccounts("omnizone-server", "server-pw-0123456789", gateways={})
    repo = SqlRepository.from_url(f"sqlite:///{tmp_path / 'chain.db'}")
    made: list[tuple[IngestService, list[tuple[str, ZonePlacement]]]] = []

    def ingest_for(stores: Mapping[str, StorePlan]) -> IngestService:
        service = _service(plan, repo) if stores else IngestService({}, repo)
        made.append((service, _recording(service)))
        return service

    with NatsCluster(accounts, nodes=3, partitions=4, run_dir=tmp_path / "nats") as cluster:
        link = NatsLink(
            cluster.urls,
            name="warm-test",
            username=accounts.server_username,
            password=accounts.server_password,
        )
        link.start()

        def publish(batch: list[InboundMessage]) -> None:
            async def send() -> None:
                js = link.client.jetstream()
                for m in batch:
                    await js.publish(m.topic.replace("/", "."), m.payload)

            link.run(send(), 60)

        def worker(name: str) -> NatsWorker:
            w = NatsWorker(
                {plan.id: plan}, ingest_for, link, worker_id=name, partitions=4,
                stream="WARM_TEST", lease_ttl_s=5.0, heartbeat_s=0.3,
            )  # fmt: skip
            w.start()
            return w

        first = worker("w1")
        try:
            publish(done)
            _wait(lambda: first.counters.accepted >= len(done))
        finally:
            first.stop()
        publish(rest)
        second = worker("w2")
        try:
            _wait(lambda: second.counters.accepted >= len(rest))
            # (a duplicate may come too: an ack of worker one's lost on its way out)
            assert second.counters.warmed >= len(done)
        finally:
            second.stop()
            link.stop()
    taken_over = [placed for service, placed in made[-4:] if service.stores]
    assert len(taken_over) == 1
    assert [p for p in taken_over[0] if p[1].at_ms > boundary] == after


def _wait(done: Callable[[], bool], timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, "the worker did not get there in time"
        time.sleep(0.1)
