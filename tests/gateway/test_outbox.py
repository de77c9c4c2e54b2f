"""The durable outbox: one sequence counter, kept across restarts, bounded."""

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from omnizone.gateway.outbox import Outbox, OutboxEntry

TOPIC = "omnizone/v1/paris-rivoli/gw-entrance/ble"


def _msg(tag: str) -> Callable[[int], tuple[str, bytes]]:
    return lambda seq: (TOPIC, f"{tag}:{seq}".encode())


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    box = Outbox(tmp_path / "outbox.db")
    yield box
    box.close()


def test_seq_starts_at_zero_and_is_passed_to_the_builder(outbox: Outbox) -> None:
    assert outbox.append(_msg("a")) == 0
    assert outbox.pending() == [OutboxEntry(0, TOPIC, b"a:0")]


def test_seq_rises_by_one_across_appends_and_reservations(outbox: Outbox) -> None:
    seqs = [outbox.append(_msg("a"))]
    first_reserved = outbox.reserve(2)  # a session's birth and will
    seqs += [first_reserved, first_reserved + 1]
    seqs += [outbox.append(_msg("b")), outbox.append(_msg("c"))]
    seqs.append(outbox.reserve(1))
    seqs.append(outbox.append(_msg("d")))
    assert seqs == list(range(7))
    # Reserved numbers hold no row: only appended messages are pending.
    assert [e.seq for e in outbox.pending()] == [0, 3, 4, 6]


def test_a_builder_that_fails_consumes_no_sequence_number(outbox: Outbox) -> None:
    outbox.append(_msg("a"))

    def broken(seq: int) -> tuple[str, bytes]:
        raise RuntimeError("reader went away")

    with pytest.raises(RuntimeError):
        outbox.append(broken)
    assert outbox.append(_msg("b")) == 1
    assert outbox.depth() == 2


def test_counter_rows_and_sessions_survive_close_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "var" / "outbox.db"  # parent folders are created
    box = Outbox(path)
    box.append(_msg("a"))
    box.append(_msg("b"))
    box.reserve(2)
    assert box.remove(0)
    assert box.next_session() == 1
    box.close()

    again = Outbox(path)
    try:
        assert again.depth() == 1
        assert again.pending() == [OutboxEntry(1, TOPIC, b"b:1")]
        assert again.append(_msg("c")) == 4
        assert again.next_session() == 2
    finally:
        again.close()


def test_pending_pages_in_sequence_order(outbox: Outbox) -> None:
    for tag in "abcdef":
        outbox.append(_msg(tag))
    assert [e.seq for e in outbox.pending(limit=2)] == [0, 1]
    assert [e.seq for e in outbox.pending(after_seq=1, limit=3)] == [2, 3, 4]
    assert outbox.pending(after_seq=5) == []


def test_remove_is_true_once_then_false(outbox: Outbox) -> None:
    seq = outbox.append(_msg("a"))
    assert outbox.remove(seq) is True
    assert outbox.remove(seq) is False
    assert outbox.remove(999) is False
    assert outbox.depth() == 0


def test_when_full_the_oldest_go_first_and_are_counted(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "small.db", max_messages=3)
    for tag in "abcde":
        box.append(_msg(tag))
    assert [e.seq for e in box.pending()] == [2, 3, 4]
    assert box.depth() == 3
    assert box.dropped() == 2
    assert box.remove(2)
    box.append(_msg("f"))  # room again: nothing dropped
    assert box.dropped() == 2
    assert [e.seq for e in box.pending()] == [3, 4, 5]
    box.close()
    reopened = Outbox(tmp_path / "small.db", max_messages=3)
    try:
        assert (reopened.depth(), reopened.dropped()) == (3, 2)
    finally:
        reopened.close()


def test_a_smaller_bound_after_restart_trims_on_the_next_append(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", max_messages=10)
    for tag in "abcdef":
        box.append(_msg(tag))
    box.close()
    smaller = Outbox(tmp_path / "o.db", max_messages=4)
    try:
        smaller.append(_msg("g"))
        assert [e.seq for e in smaller.pending()] == [3, 4, 5, 6]
        assert (smaller.depth(), smaller.dropped()) == (4, 3)
    finally:
        smaller.close()


def test_a_new_outbox_draws_an_epoch_that_survives_reopening(tmp_path: Path) -> None:
    first = Outbox(tmp_path / "a.db")
    epoch = first.epoch
    first.close()
    again = Outbox(tmp_path / "a.db")
    replaced = Outbox(tmp_path / "b.db")  # a replaced SD card
    try:
        assert again.epoch == epoch
        assert 0 < epoch < 2**63
        assert replaced.epoch not in (0, epoch)
    finally:
        again.close()
        replaced.close()


def test_an_outbox_from_before_epochs_keeps_epoch_zero(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:  # what an outbox of the previous release held
        db.executescript(
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
            "CREATE TABLE outbox (seq INTEGER PRIMARY KEY, topic TEXT NOT NULL,"
            " payload BLOB NOT NULL);"
            "INSERT INTO meta VALUES ('next_seq', 42), ('dropped', 0), ('session', 3);"
        )
    box = Outbox(path)
    try:
        assert box.epoch == 0  # its stored rows carry no epoch, and mean epoch 0
        assert box.append(_msg("a")) == 42
    finally:
        box.close()


def test_remove_range_forgets_exactly_the_acknowledged_run(outbox: Outbox) -> None:
    for tag in "abcdef":
        outbox.append(_msg(tag))
    assert outbox.seqs_between(1, 3) == [1, 2, 3]
    assert outbox.remove_range(1, 3) == 3
    assert outbox.remove_range(2, 2**63 - 1) == 2  # 4 and 5; one delete, not a loop
    assert [e.seq for e in outbox.pending()] == [0]
    assert outbox.depth() == 1
