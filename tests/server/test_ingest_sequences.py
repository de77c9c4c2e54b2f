"""Outbox epochs and bounded sequence arithmetic in ingest (issue 12, points 1-2)."""

import json

import pytest

from omnizone.contract import MAX_SEQ, topic_for
from omnizone.server.adapters.db import SqlRepository
from omnizone.server.domain.sequence import MAX_COUNTED_GAP
from omnizone.server.service.ingest import IngestService, Outcome
from omnizone.server.service.ports import ReceivedKey

from .conftest import DEVICE_A, STORE, T0, ble

GW = "gw-shoes"
OLD, NEW = 11, 987_654_321


def test_a_new_outbox_numbering_from_zero_again_is_not_taken_for_duplicates(
    service: IngestService, repo: SqlRepository
) -> None:
    for seq in range(3):
        assert service.handle(*ble(GW, seq, T0 + seq * 1000, {DEVICE_A: -60}, epoch=OLD), T0)
    # The SD card is replaced: the same numbers again, under a new epoch.
    outcomes = [
        service.handle(*ble(GW, seq, T0 + 5000 + seq * 1000, {DEVICE_A: -60}, epoch=NEW), T0)
        for seq in range(3)
    ]
    assert [o.outcome for o in outcomes] == [Outcome.ACCEPTED] * 3
    assert [o.gap for o in outcomes] == [0, 0, 0]
    assert repo.received_keys(STORE) == [
        *(ReceivedKey(STORE, GW, seq, OLD) for seq in range(3)),
        *(ReceivedKey(STORE, GW, seq, NEW) for seq in range(3)),
    ]
    stats = repo.ingest_stats()
    assert (stats.ingested, stats.duplicates, stats.gaps) == (6, 0, 0)
    # And within one epoch a repeat is still a duplicate, acknowledged as such.
    again = service.handle(*ble(GW, 1, T0 + 6000, {DEVICE_A: -60}, epoch=NEW), T0)
    assert again.outcome is Outcome.DUPLICATE
    assert again.key == ReceivedKey(STORE, GW, 1, NEW)


def test_gaps_are_counted_per_epoch(service: IngestService, repo: SqlRepository) -> None:
    service.handle(*ble(GW, 100, T0, {DEVICE_A: -60}, epoch=OLD), T0)
    # A new epoch starting low is no gap and no late arrival of the old one.
    assert service.handle(*ble(GW, 0, T0 + 1000, {DEVICE_A: -60}, epoch=NEW), T0).gap == 0
    assert service.handle(*ble(GW, 3, T0 + 2000, {DEVICE_A: -60}, epoch=NEW), T0).gap == 2
    assert service.handle(*ble(GW, 101, T0 + 3000, {DEVICE_A: -60}, epoch=OLD), T0).gap == 0
    assert repo.ingest_stats().gaps == 2
    assert repo.sequence_heads() == {(STORE, GW, OLD): 101, (STORE, GW, NEW): 3}


@pytest.mark.parametrize("jump", [10**9, 10**12, MAX_SEQ - 10])
def test_a_far_future_seq_counts_once_and_does_not_poison_gap_detection(
    service: IngestService, repo: SqlRepository, jump: int
) -> None:
    for seq in range(5):
        service.handle(*ble(GW, seq, T0 + seq * 1000, {DEVICE_A: -60}), T0)
    far = service.handle(*ble(GW, jump, T0 + 6000, {DEVICE_A: -60}), T0)
    assert far.outcome is Outcome.ACCEPTED and far.gap == 1
    assert service.counters.seq_jumps == 1
    # The ordinary sequence goes on: no gap, then a real gap is still seen.
    assert service.handle(*ble(GW, 5, T0 + 7000, {DEVICE_A: -60}), T0).gap == 0
    assert service.handle(*ble(GW, 6, T0 + 8000, {DEVICE_A: -60}), T0).gap == 0
    assert service.handle(*ble(GW, 9, T0 + 9000, {DEVICE_A: -60}), T0).gap == 2
    assert service.counters.gaps == 3
    assert repo.ingest_stats().gaps == 3  # the jump's hole counts as one, the real gap as 2


def test_after_a_restart_a_far_seq_in_the_database_does_not_poison_gaps(
    plan: object, repo: SqlRepository
) -> None:
    from omnizone.store import StorePlan

    assert isinstance(plan, StorePlan)
    first = IngestService({plan.id: plan}, repo)
    first.handle(*ble(GW, 0, T0, {DEVICE_A: -60}), T0)
    first.handle(*ble(GW, 10**12, T0 + 1000, {DEVICE_A: -60}), T0)
    restarted = IngestService({plan.id: plan}, repo)
    assert restarted.handle(*ble(GW, 1, T0 + 2000, {DEVICE_A: -60}), T0).gap == 0
    assert restarted.handle(*ble(GW, 4, T0 + 3000, {DEVICE_A: -60}), T0).gap == 2


def _with_seq(seq: object, epoch: object = None) -> tuple[str, bytes]:
    topic, payload = ble(GW, 1, T0, {DEVICE_A: -60})
    body = json.loads(payload)
    body["seq"] = seq
    if epoch is not None:
        body["epoch"] = epoch
    return topic, json.dumps(body).encode()


@pytest.mark.parametrize(
    ("seq", "epoch", "reason"),
    [
        (-1, None, "seq: Input should be greater than or equal to 0"),
        (2**63, None, "seq: Input should be less than or equal to 9223372036854775807"),
        (10**30, None, "seq: Input should be less than or equal to 9223372036854775807"),
        (1, -5, "epoch: Input should be greater than or equal to 0"),
        (1, 2**64, "epoch: Input should be less than or equal to 9223372036854775807"),
    ],
)
def test_out_of_range_numbers_are_dead_lettered_with_the_reason_and_not_acknowledged(
    service: IngestService, repo: SqlRepository, seq: int, epoch: int | None, reason: str
) -> None:
    outcome = service.handle(*_with_seq(seq, epoch), T0)
    assert outcome.outcome is Outcome.DEAD_LETTERED
    assert outcome.reason is not None and reason in outcome.reason
    assert outcome.key is None  # nobody to tell: the numbers are not a message's identity
    assert repo.ingest_stats().ingested == 0


def test_a_dead_letter_with_an_in_range_identity_is_acknowledged(service: IngestService) -> None:
    topic = topic_for(STORE, GW, "ble")
    payload = b'{"v":1,"kind":"ble","store":"paris-rivoli","gateway":"gw-shoes","epoch":7,"seq":4}'
    outcome = service.handle(topic, payload, T0)
    assert outcome.outcome is Outcome.DEAD_LETTERED
    assert outcome.key == ReceivedKey(STORE, GW, 4, 7)


def test_wide_holes_in_the_statistics_count_as_one(
    service: IngestService, repo: SqlRepository
) -> None:
    service.handle(*ble(GW, 0, T0, {DEVICE_A: -60}), T0)
    service.handle(*ble(GW, MAX_COUNTED_GAP + 2, T0 + 1000, {DEVICE_A: -60}), T0)
    assert repo.ingest_stats().gaps == 1
    service.handle(*ble(GW, MAX_COUNTED_GAP + 4, T0 + 2000, {DEVICE_A: -60}), T0)
    assert repo.ingest_stats().gaps == 2
