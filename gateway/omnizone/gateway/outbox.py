"""Durable store-and-forward outbox.

Every message gets its sequence number and is written to SQLite (WAL) before
anything tries to publish it; a row is deleted only once the server has
acknowledged committing it (the retained ``ack`` topic, not the broker's
PUBACK). The sequence counter lives in the same file, so it survives restarts
and power cuts. So does the outbox's epoch, drawn at random when the file is
created: a new file (a replaced SD card) numbers from 0 again under a new
epoch, and the server never takes its messages for duplicates. When the
outbox is full the oldest rows go first, and that loss is counted — never
silent.
"""

import secrets
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL
);
INSERT OR IGNORE INTO meta (key, value) VALUES ('next_seq', 0), ('dropped', 0), ('session', 0);
"""
#: Epochs are drawn from 1 .. 2**62: 0 is the epoch of outboxes made before
#: epochs existed (their stored messages carry none), and the wire allows < 2**63.
_EPOCH_BITS = 62


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    seq: int
    topic: str
    payload: bytes


class Outbox:
    def __init__(self, path: str | Path, max_messages: int = 100_000) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_messages = max_messages
        self._lock = threading.RLock()  # builders may read depth/dropped
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: a power cut must not lose an acknowledged-to-the-reader event.
        self._db.execute("PRAGMA synchronous=FULL")
        existed = self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
        ).fetchone()
        self._db.executescript(_SCHEMA)
        # An outbox from before epochs keeps epoch 0: its stored rows say none.
        epoch = 0 if existed else secrets.randbits(_EPOCH_BITS) + 1
        self._db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('epoch', ?)", (epoch,))
        self.epoch = self._meta("epoch")
        self._depth = int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def append(self, build: Callable[[int], tuple[str, bytes]]) -> int:
        """Reserve the next sequence number, build the message with it, store it."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                seq = self._take_seqs(1)
                topic, payload = build(seq)
                self._db.execute(
                    "INSERT INTO outbox (seq, topic, payload) VALUES (?, ?, ?)",
                    (seq, topic, payload),
                )
                dropped = self._enforce_bound()
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._depth += 1 - dropped
            return seq

    def reserve(self, count: int) -> int:
        """Take `count` consecutive sequence numbers without storing a message
        (a session's birth and will); returns the first."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            first = self._take_seqs(count)
            self._db.execute("COMMIT")
            return first

    def next_session(self) -> int:
        with self._lock:
            self._db.execute("UPDATE meta SET value = value + 1 WHERE key = 'session'")
            return self._meta("session")

    def pending(self, after_seq: int = -1, limit: int = 100) -> list[OutboxEntry]:
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, topic, payload FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?",
                (after_seq, limit),
            ).fetchall()
        return [OutboxEntry(seq, topic, bytes(payload)) for seq, topic, payload in rows]

    def remove(self, seq: int) -> bool:
        """Forget an acknowledged message; False if it was already gone."""
        return self.remove_range(seq, seq) > 0

    def remove_range(self, first: int, last: int) -> int:
        """Forget every message from ``first`` to ``last`` inclusive (the server
        committed them); how many were still here. One indexed delete, whatever
        the width of the range."""
        with self._lock:
            removed = self._db.execute(
                "DELETE FROM outbox WHERE seq BETWEEN ? AND ?", (first, last)
            ).rowcount
            self._depth -= removed
        return int(removed)

    def seqs_between(self, first: int, last: int) -> list[int]:
        """The stored sequence numbers in ``first`` .. ``last`` (ascending)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq FROM outbox WHERE seq BETWEEN ? AND ? ORDER BY seq", (first, last)
            ).fetchall()
        return [int(seq) for (seq,) in rows]

    def depth(self) -> int:
        return self._depth

    def dropped(self) -> int:
        with self._lock:
            return self._meta("dropped")

    def _meta(self, key: str) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return int(row[0])

    def _take_seqs(self, count: int) -> int:
        first = self._meta("next_seq")
        self._db.execute("UPDATE meta SET value = ? WHERE key = 'next_seq'", (first + count,))
        return first

    def _enforce_bound(self) -> int:
        excess = self._depth + 1 - self.max_messages
        if excess <= 0:
            return 0
        self._db.execute(
            "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox ORDER BY seq LIMIT ?)",
            (excess,),
        )
        self._db.execute("UPDATE meta SET value = value + ? WHERE key = 'dropped'", (excess,))
        return excess
