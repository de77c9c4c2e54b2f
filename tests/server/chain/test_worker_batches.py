"""The worker's batch step: retried while storage is down, stopped when the lease goes."""

from typing import Any

from omnizone.server.adapters.nats_worker import handle_batch, topic_of
from omnizone.server.service.ingest import IngestOutcome, Outcome


class _Flaky:
    """Stands in for IngestService.handle: the storage is down for ``failures`` calls."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.handled: list[str] = []

    def handle(self, topic: str, payload: bytes, received_ms: int) -> IngestOutcome:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("PostgreSQL restarting")
        self.handled.append(topic)
        return IngestOutcome(Outcome.ACCEPTED)


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


def test_a_lost_lease_stops_the_batch_and_leaves_the_rest_unacknowledged() -> None:
    ingest: Any = _Flaky(failures=0)
    allowed = iter([True, True, False])
    outcomes = handle_batch(ingest, _batch(5), 0, keep_going=lambda: next(allowed, False))
    assert len(outcomes) == 2
    assert ingest.handled == [t for t, _ in _batch(2)]
