"""The worker's batch step: retried while storage is down, stopped when the lease goes."""

from typing import Any

from omnizone.server.adapters.nats_worker import handle_batch, topic_of
from omnizone.server.service.ingest import InboundMessage, IngestOutcome, Outcome


class _Flaky:
    """Stands in for IngestService.handle_batch: the storage is down for
    ``failures`` calls, and then nothing of the chunk is committed."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.handled: list[str] = []
        self.transactions = 0

    def handle_batch(self, messages: list[InboundMessage]) -> list[IngestOutcome]:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("PostgreSQL restarting")
        self.transactions += 1
        self.handled += [m.topic for m in messages]
        return [IngestOutcome(Outcome.ACCEPTED) for _ in messages]


def _batch(n: int) -> list[tuple[str, bytes]]:
    return [(f"omnizone/v1/s/g{i}/ble", b"{}") for i in range(n)]


def test_the_subject_of_a_partition_is_the_gateways_topic() -> None:
    assert topic_of("ozp.7.omnizone.v1.s000.s000-gw-shoes.ble") == (
        "omnizone/v1/s000/s000-gw-shoes/ble"
    )
    assert topic_of("omnizone.v1.s.g.nfc") == "omnizone/v1/s/g/nfc"


def test_a_message_is_retried_in_place_until_storage_is_back() -> None:
    ingest: Any = _Flaky(failures=3)
    errors: list[int] = []
    outcomes = handle_batch(
        ingest, _batch(3), 0, keep_going=lambda: True, retry_s=0, on_error=lambda: errors.append(1)
    )
    assert len(outcomes) == 3 and len(errors) == 3
    assert ingest.handled == [t for t, _ in _batch(3)]  # in order, none skipped


def test_a_batch_is_one_transaction_per_chunk() -> None:
    ingest: Any = _Flaky(failures=0)
    outcomes = handle_batch(ingest, _batch(450), 0, keep_going=lambda: True)
    assert len(outcomes) == 450 and ingest.transactions == 3  # 200 + 200 + 50
    assert ingest.handled == [t for t, _ in _batch(450)]


def test_a_lost_lease_stops_the_batch_and_leaves_the_rest_unacknowledged() -> None:
    ingest: Any = _Flaky(failures=0)
    allowed = iter([True, True, False])
    outcomes = handle_batch(ingest, _batch(5), 0, keep_going=lambda: next(allowed, False), most=2)
    assert len(outcomes) == 4  # two chunks of two committed; the fifth left for the next owner
    assert ingest.handled == [t for t, _ in _batch(4)]
