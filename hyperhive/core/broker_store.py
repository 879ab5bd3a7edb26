"""The broker's durable mailbox: one sqlite file, one writer, no trio.

Every message is one row of ``messages`` and moves through these states::

    pending ──pop──▶ inflight ──ack──▶ acked ──vacuum──▶ (deleted)
       ▲                │
       └──requeue───────┤  (attempts < 1 + max_redeliveries)
                        ▼
                      dead ──replay──▶ pending (attempts reset to 0)
                        └───drop────▶ (deleted)

A row is *pending* while ``delivered_at`` and ``dead_at`` are NULL, *inflight* once delivered
and not yet acked, *acked* once ``acked_at`` is set and *dead* once ``dead_at`` is set.
``attempts`` counts deliveries, so a delivery is a redelivery when ``attempts > 1``.

The broker actor owns the one ``BrokerStore`` and calls it from a worker thread
(``trio.to_thread.run_sync``), one call at a time: the connection is opened with
``check_same_thread=False`` and is never shared. Writes are grouped (``send_many``) so one
fsync covers a whole batch; that, not sqlite itself, is what makes thousands of messages per
second possible under ``synchronous=FULL``.

Every ``sqlite3.Error`` leaves this module as ``StoreError``.
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any, Final

from hyperhive.core.sqlite import connect, migrate, transaction, translate
from hyperhive.errors import StoreError
from hyperhive.wire import DeadLetter, Delivery, Message

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Callable, Iterator, Sequence
    from pathlib import Path

__all__ = ["SCHEMA_VERSION", "BrokerStore", "raw_commit_rate"]

# _MIGRATIONS[n] takes a database from schema version n to n + 1 (PRAGMA user_version).
# Append new steps; never edit a released one.
_MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    (
        """
        CREATE TABLE messages (
            id           INTEGER PRIMARY KEY AUTOINCREMENT,
            sender       TEXT    NOT NULL,
            recipient    TEXT    NOT NULL,
            body         TEXT    NOT NULL,
            sent_at      REAL    NOT NULL,
            delivered_at REAL,
            acked_at     REAL,
            attempts     INTEGER NOT NULL DEFAULT 0,
            dead_at      REAL
        )
        """,
        # Partial indexes keep pop and ack O(log n) however much acked history piles up before
        # vacuum. A query only uses one if it repeats the index's WHERE terms verbatim.
        """
        CREATE INDEX messages_pending ON messages (recipient, id)
        WHERE delivered_at IS NULL AND dead_at IS NULL
        """,
        """
        CREATE INDEX messages_inflight ON messages (recipient, id)
        WHERE delivered_at IS NOT NULL AND acked_at IS NULL
        """,
        "CREATE INDEX messages_acked ON messages (acked_at) WHERE acked_at IS NOT NULL",
        "CREATE INDEX messages_dead ON messages (recipient, id) WHERE dead_at IS NOT NULL",
        # Only the operator's inbox is read as history (newest first); a full (recipient, id)
        # index would cost every insert a second b-tree write for that one reader.
        "CREATE INDEX messages_operator ON messages (id) WHERE recipient = 'operator'",
    ),
)
SCHEMA_VERSION: Final = len(_MIGRATIONS)

# Without ANALYZE statistics the planner may pick a worse index (or none). INDEXED BY pins each
# hot statement to its partial index, and makes it fail to prepare (so every test fails) if an
# edit ever stops that index from applying.
_PENDING: Final = "recipient = ? AND delivered_at IS NULL AND dead_at IS NULL"
_INFLIGHT: Final = "recipient = ? AND delivered_at IS NOT NULL AND acked_at IS NULL"
_BY_PENDING: Final = "messages INDEXED BY messages_pending"
_BY_INFLIGHT: Final = "messages INDEXED BY messages_inflight"

_INSERT: Final = "INSERT INTO messages (sender, recipient, body, sent_at) VALUES (?, ?, ?, ?)"
# pop is a SELECT then one executemany UPDATE: on sqlite 3.40 that is ~7x faster per call than
# the single `UPDATE ... WHERE id IN (SELECT ... LIMIT ?) RETURNING`, which costs ~70 us even
# for one row, and it hands the rows back in id order without sorting.
_OLDEST_PENDING: Final = f"""
    SELECT id, sender, recipient, body, sent_at, attempts FROM {_BY_PENDING}
    WHERE {_PENDING} ORDER BY id LIMIT ?
"""
_DELIVER: Final = "UPDATE messages SET delivered_at = ?, attempts = attempts + 1 WHERE id = ?"
_HAS_PENDING: Final = f"SELECT 1 FROM {_BY_PENDING} WHERE {_PENDING} LIMIT 1"
_PENDING_COUNTS: Final = f"""
    SELECT recipient, count(*) FROM {_BY_PENDING}
    WHERE delivered_at IS NULL AND dead_at IS NULL GROUP BY recipient
"""
_INFLIGHT_COUNTS: Final = f"""
    SELECT recipient, count(*) FROM {_BY_INFLIGHT}
    WHERE delivered_at IS NOT NULL AND acked_at IS NULL GROUP BY recipient
"""
_PENDING_ROWS: Final = f"""
    SELECT id, sender, recipient, body, sent_at FROM {_BY_PENDING}
    WHERE {_PENDING} ORDER BY id LIMIT ?
"""
_PENDING_COUNT: Final = f"SELECT count(*) FROM {_BY_PENDING} WHERE {_PENDING}"
_ACK: Final = f"UPDATE {_BY_INFLIGHT} SET acked_at = ? WHERE {_INFLIGHT}"
_KILL: Final = f"""
    UPDATE {_BY_INFLIGHT} SET delivered_at = NULL, dead_at = ?
    WHERE {_INFLIGHT} AND attempts >= ?
    RETURNING id, sender, recipient, body, sent_at, attempts, dead_at
"""
_REQUEUE: Final = f"UPDATE {_BY_INFLIGHT} SET delivered_at = NULL WHERE {_INFLIGHT}"
_VACUUM: Final = """
    DELETE FROM messages INDEXED BY messages_acked WHERE acked_at IS NOT NULL AND acked_at < ?
"""
_DEAD_COLUMNS: Final = "id, sender, recipient, body, sent_at, attempts, dead_at"
_DEAD_ALL: Final = f"""
    SELECT {_DEAD_COLUMNS} FROM messages INDEXED BY messages_dead
    WHERE dead_at IS NOT NULL ORDER BY id
"""
_DEAD_FOR: Final = f"""
    SELECT {_DEAD_COLUMNS} FROM messages INDEXED BY messages_dead
    WHERE recipient = ? AND dead_at IS NOT NULL ORDER BY id
"""
_REPLAY: Final = """
    UPDATE messages SET dead_at = NULL, attempts = 0 WHERE id = ? AND dead_at IS NOT NULL
    RETURNING id, sender, recipient, body, sent_at
"""
_DROP: Final = "DELETE FROM messages WHERE id = ? AND dead_at IS NOT NULL"
_RECENT_OPERATOR: Final = """
    SELECT id, sender, recipient, body, sent_at FROM messages INDEXED BY messages_operator
    WHERE recipient = 'operator' ORDER BY id DESC LIMIT ?
"""
# Anyone else's history is a diagnostic read: a walk down the primary key is good enough.
_RECENT: Final = """
    SELECT id, sender, recipient, body, sent_at FROM messages
    WHERE recipient = ? ORDER BY id DESC LIMIT ?
"""
_RECENT_ALL: Final = """
    SELECT id, sender, recipient, body, sent_at FROM messages ORDER BY id DESC LIMIT ?
"""
_INFLIGHT_ROWS: Final = f"""
    SELECT id, sender, recipient, body, sent_at, attempts FROM {_BY_INFLIGHT}
    WHERE {_INFLIGHT} ORDER BY id
"""


class BrokerStore:
    """Durable per-recipient queues with lease-style delivery and dead letters.

    Delivery is at-least-once: ``pop`` leases rows to their recipient, ``ack`` settles every
    lease of that recipient at the end of a good turn, and ``requeue_inflight`` (a harness
    starting up) returns unsettled leases to the queue in their original order.

    Dead letters: a message may be *redelivered* at most ``max_redeliveries`` (N) times, i.e.
    delivered at most 1 + N times. When ``requeue_inflight`` finds an inflight row that has
    already been delivered 1 + N times, that row becomes dead instead of pending. With N = 5 the
    sixth delivery is the last; failing to ack it dead-letters the message. N = 0 dead-letters a
    message at its first requeue.

    Resource handling: owns one sqlite connection until ``close``. Not thread-safe; one caller
    at a time, from any thread.

    Raises (every method): ``StoreError`` when sqlite fails, with a sentence saying what to
    check.
    """

    def __init__(self, path: Path, *, now: Callable[[], float], max_redeliveries: int = 5) -> None:
        if max_redeliveries < 0:
            raise ValueError(f"max_redeliveries must be >= 0, got {max_redeliveries}")
        self._path = path
        self._now = now
        self._max_attempts = 1 + max_redeliveries
        self._in_batch = False
        with contextlib.ExitStack() as on_failure:
            with translate(path, "open the message store"):
                self._conn = connect(path)
            on_failure.callback(self._conn.close)
            with self._write("create or migrate the message schema") as conn:
                migrate(conn, path, _MIGRATIONS, "message")
            on_failure.pop_all()

    def close(self) -> None:
        """Close the connection; later calls raise ``StoreError``. Closing twice is harmless."""
        with translate(self._path, "close the message store"):
            self._conn.close()

    def send_many(self, items: Sequence[tuple[str, str, str]]) -> list[Message]:
        """Store ``(sender, recipient, body)`` items in one transaction (one fsync).

        Returns the stored rows in the order given, ids ascending. All or nothing: if any item
        fails (e.g. text sqlite cannot encode), none is stored.
        """
        if not items:
            return []
        at = self._now()
        rows = [(sender, recipient, body, at) for sender, recipient, body in items]
        with self._write(f"store {len(rows)} message(s)") as conn:
            conn.executemany(_INSERT, rows)
            last: int = conn.execute("SELECT last_insert_rowid()").fetchone()[0]
        # AUTOINCREMENT gives each insert max(every id ever used) + 1, and we hold the write lock
        # for the whole batch, so the batch's ids are exactly last - n + 1 .. last.
        first = last - len(rows) + 1
        return [Message(first + i, *row) for i, row in enumerate(rows)]

    def pop(self, recipient: str, max: int) -> list[Delivery]:
        """Lease up to ``max`` of ``recipient``'s oldest pending messages, oldest first.

        Each popped row gets ``delivered_at = now`` and ``attempts + 1`` in one transaction.
        """
        if max < 1:
            raise ValueError(f"max must be >= 1, got {max}")
        at = self._now()
        with self._write(f"deliver messages to {recipient!r}") as conn:
            rows = conn.execute(_OLDEST_PENDING, (recipient, max)).fetchall()
            conn.executemany(_DELIVER, [(at, row[0]) for row in rows])
        # The rows were read before the UPDATE counted this delivery.
        return [_delivery((*row[:5], row[5] + 1)) for row in rows]

    def has_pending(self, recipient: str) -> bool:
        """Whether ``recipient`` has anything to pop."""
        with translate(self._path, f"check {recipient!r}'s inbox"):
            return self._conn.execute(_HAS_PENDING, (recipient,)).fetchone() is not None

    def pending_counts(self) -> dict[str, int]:
        """Pending messages per recipient; recipients with none are absent."""
        with translate(self._path, "count pending messages"):
            return dict(self._conn.execute(_PENDING_COUNTS).fetchall())

    def mail_counts(self) -> dict[str, tuple[int, int]]:
        """(pending, in flight) per recipient; recipients with neither are absent."""
        with translate(self._path, "count messages"):
            pending = dict(self._conn.execute(_PENDING_COUNTS).fetchall())
            inflight = dict(self._conn.execute(_INFLIGHT_COUNTS).fetchall())
        return {name: (pending.get(name, 0), inflight.get(name, 0)) for name in pending | inflight}

    def pending_page(self, recipient: str, limit: int) -> tuple[list[Message], int]:
        """``recipient``'s oldest ``limit`` pending messages, and how many are pending."""
        if limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        with translate(self._path, f"read {recipient!r}'s pending messages"):
            rows = self._conn.execute(_PENDING_ROWS, (recipient, limit)).fetchall()
            (total,) = self._conn.execute(_PENDING_COUNT, (recipient,)).fetchone()
        return [Message(*row) for row in rows], total

    def unacked_counts(self) -> dict[str, int]:
        """Messages not yet handled (pending or in flight, not dead) per recipient."""
        with translate(self._path, "count unhandled messages"):
            counts = dict(self._conn.execute(_PENDING_COUNTS).fetchall())
            for recipient, count in self._conn.execute(_INFLIGHT_COUNTS).fetchall():
                counts[recipient] = counts.get(recipient, 0) + count
        return counts

    def ack(self, recipient: str) -> int:
        """Settle every inflight lease of ``recipient`` (its turn ended well); returns how many."""
        with self._write(f"ack {recipient!r}'s turn") as conn:
            count: int = conn.execute(_ACK, (self._now(), recipient)).rowcount
        return count

    def release(self, recipient: str, ids: Sequence[int]) -> int:
        """Undo the delivery of ``ids`` to ``recipient``: back to pending, attempt not counted.

        For deliveries that never reached anyone (the client vanished while they were being
        handed over). Rows already acked are left alone. Returns how many were released.
        """
        if not ids:
            return 0
        marks = ",".join("?" * len(ids))
        with self._write(f"release {len(ids)} delivery(ies) to {recipient!r}") as conn:
            count: int = conn.execute(
                f"UPDATE {_BY_INFLIGHT} SET delivered_at = NULL, attempts = attempts - 1 "
                f"WHERE {_INFLIGHT} AND id IN ({marks})",
                (recipient, *ids),
            ).rowcount
        return count

    def requeue_inflight(self, recipient: str) -> tuple[int, list[DeadLetter]]:
        """Return ``recipient``'s unsettled leases to its queue, or dead-letter the exhausted.

        Requeued rows keep their id, so they are popped again before anything newer, each as a
        redelivery. Returns the number requeued and the rows that just became dead letters.
        """
        at = self._now()
        with self._write(f"requeue {recipient!r}'s inflight messages") as conn:
            dead = conn.execute(_KILL, (at, recipient, self._max_attempts)).fetchall()
            requeued: int = conn.execute(_REQUEUE, (recipient,)).rowcount
        dead.sort(key=lambda row: row[0])
        return requeued, [DeadLetter(*row) for row in dead]

    def vacuum(self, older_than: float) -> int:
        """Delete rows acked more than ``older_than`` seconds ago; returns how many.

        Pending, inflight and dead rows are never touched.
        """
        with self._write("delete old acked messages") as conn:
            count: int = conn.execute(_VACUUM, (self._now() - older_than,)).rowcount
        return count

    def dead_letters(self, recipient: str | None = None) -> list[DeadLetter]:
        """Dead letters, oldest id first, for one recipient or all."""
        with translate(self._path, "list dead letters"):
            if recipient is None:
                rows = self._conn.execute(_DEAD_ALL).fetchall()
            else:
                rows = self._conn.execute(_DEAD_FOR, (recipient,)).fetchall()
        return [DeadLetter(*row) for row in rows]

    def replay_dead(self, id: int) -> Message:
        """Make dead letter ``id`` pending again with its attempt count reset to 0.

        It keeps its id, so it is popped before newer messages to the same recipient.
        Raises ``StoreError`` if ``id`` is not a dead letter.
        """
        with self._write(f"replay dead letter {id}") as conn:
            row = conn.execute(_REPLAY, (id,)).fetchone()
        if row is None:
            raise StoreError(f"no dead letter with id {id}; list the dead letters to find it")
        return Message(*row)

    def drop_dead(self, id: int) -> None:
        """Delete dead letter ``id`` for good. Raises ``StoreError`` if it is not a dead letter."""
        with self._write(f"drop dead letter {id}") as conn:
            count = conn.execute(_DROP, (id,)).rowcount
        if count == 0:
            raise StoreError(f"no dead letter with id {id}; list the dead letters to find it")

    def recent_for(self, recipient: str, limit: int) -> list[Message]:
        """The newest ``limit`` messages to ``recipient``, newest first, whatever their state."""
        if limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        with translate(self._path, f"read messages to {recipient!r}"):
            if recipient == "operator":
                rows = self._conn.execute(_RECENT_OPERATOR, (limit,)).fetchall()
            else:
                rows = self._conn.execute(_RECENT, (recipient, limit)).fetchall()
        return [Message(*row) for row in rows]

    def recent(self, limit: int) -> list[Message]:
        """The newest ``limit`` messages between anyone, newest first (the dashboard's flow)."""
        if limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        with translate(self._path, "read recent messages"):
            rows = self._conn.execute(_RECENT_ALL, (limit,)).fetchall()
        return [Message(*row) for row in rows]

    def pending(self, recipient: str, limit: int) -> list[Delivery]:
        """``recipient``'s oldest ``limit`` messages not yet delivered (a peek: none is taken)."""
        with translate(self._path, f"read {recipient!r}'s pending messages"):
            rows = self._conn.execute(_OLDEST_PENDING, (recipient, max(0, limit))).fetchall()
        return [_delivery(row) for row in rows]

    def inflight(self, recipient: str) -> list[Delivery]:
        """``recipient``'s delivered, unacked messages, oldest first (diagnostics)."""
        with translate(self._path, f"read {recipient!r}'s inflight messages"):
            rows = self._conn.execute(_INFLIGHT_ROWS, (recipient,)).fetchall()
        return [_delivery(row) for row in rows]

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Group every write inside the block into one transaction (one fsync): group commit.

        All or nothing: an error anywhere in the block rolls back every write in it. Batches do
        not nest.
        """
        if self._in_batch:
            raise RuntimeError("BrokerStore.batch() does not nest")
        with translate(self._path, "commit a batch of writes"), transaction(self._conn):
            self._in_batch = True
            try:
                yield
            finally:
                self._in_batch = False

    @contextlib.contextmanager
    def _write(self, action: str) -> Iterator[sqlite3.Connection]:
        if self._in_batch:
            with translate(self._path, action):
                yield self._conn
            return
        with translate(self._path, action), transaction(self._conn):
            yield self._conn


def raw_commit_rate(path: Path, seconds: float) -> float:
    """One-row commits per second on a scratch database at ``path``, with the store's pragmas.

    The ceiling for a broker that committed every message on its own; the benchmark compares
    grouped throughput against it. Measures wall time, so call it from a benchmark, not a test.
    """
    with translate(path, "measure the commit rate"):
        conn = connect(path)
        try:
            conn.execute("CREATE TABLE IF NOT EXISTS commit_probe (x INTEGER)")
            commits, elapsed = 0, 0.0
            start = time.perf_counter()
            while commits == 0 or elapsed < seconds:
                with transaction(conn):
                    conn.execute("INSERT INTO commit_probe (x) VALUES (?)", (commits,))
                commits += 1
                elapsed = time.perf_counter() - start
        finally:
            conn.close()
    return commits / elapsed


def _delivery(row: Any) -> Delivery:
    id, sender, recipient, body, sent_at, attempts = row
    return Delivery(id, sender, recipient, body, sent_at, attempts, redelivered=attempts > 1)
