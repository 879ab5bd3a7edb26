"""The agent's events bus: every stream event and harness note, live and in a sqlite history.

`open_event_bus` yields an `EventBus`. `publish` takes a typed live event (the host <-> harness
contract, `hyperhive.wire.harness`) and never blocks: it stamps the event with the
next ``seq`` (monotonic across restarts, taken from the history on open) and the wall clock,
hands it to every live subscriber, and queues it for the history writer, which commits what
is queued in one transaction (group commit) on a worker thread. The agent's web page reads
`history` for the backlog and `subscribe` for what follows, dropping anything with a seq it
has already shown.

History is kept by age (`KEEP_SECONDS`, 7 days); `vacuum` deletes older rows and runs once an
hour while the bus is open. A subscriber that cannot keep up is cut off (its iterator ends
with `Subscription.lagged` set) rather than slowing the harness down; it reconnects and
backfills from the history.

The history's sqlite connection belongs to one thread (`_DbThread`): it is opened, used and
closed there and nowhere else, so the writer, a `history` read and the hourly `vacuum` can
never run on it at the same time from different threads.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import queue
import sqlite3
import threading
from typing import TYPE_CHECKING, Any, Final, TypeVar

import outcome
import trio

from hyperhive.errors import StoreError
from hyperhive.value import value
from hyperhive.wire.codec import encode_live_event
from hyperhive.wire.harness import LiveEventPayload, Note

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Mapping
    from pathlib import Path

    from hyperhive.clock import WallClock

__all__ = ["KEEP_SECONDS", "EventBus", "LiveEvent", "Subscription", "open_event_bus"]

KEEP_SECONDS: Final = 7 * 24 * 3600.0
VACUUM_EVERY: Final = 3600.0
_QUEUE: Final = 4096
_log = logging.getLogger(__name__)
_T = TypeVar("_T")

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS events (
    seq  INTEGER PRIMARY KEY,
    at   REAL NOT NULL,
    kind TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_at ON events (at);
"""


@value
class LiveEvent:
    """One event: ``kind`` says how to read ``data`` (``stream`` is a raw stream-json line)."""

    seq: int
    at: float
    kind: str
    data: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "at": self.at, "kind": self.kind, "data": dict(self.data)}


class Subscription:
    """A live feed of events; iterate it. Ends when the bus closes or this reader lags."""

    def __init__(self, capacity: int) -> None:
        self._send, self._receive = trio.open_memory_channel[LiveEvent](capacity)
        self.lagged = False

    def _offer(self, event: LiveEvent) -> bool:
        try:
            self._send.send_nowait(event)
        except trio.WouldBlock:
            self.lagged = True
            self._send.close()
            return False
        except trio.ClosedResourceError:
            return False
        return True

    def __aiter__(self) -> AsyncIterator[LiveEvent]:
        return self._receive.__aiter__()

    def close(self) -> None:
        self._send.close()


class _DbThread:
    """One thread that owns one sqlite connection; `run` hands it work and awaits the answer.

    Jobs run one at a time, in the order given. Cancellation: a cancelled `run` stops waiting;
    its job still runs (the connection is never left half-used).
    """

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()
        self.conn: sqlite3.Connection | None = None

    @property
    def ident(self) -> int | None:
        return self._thread.ident

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            job()

    async def run(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        """`fn(conn)` on the owner thread."""
        token = trio.lowlevel.current_trio_token()
        done = trio.Event()
        box: list[outcome.Outcome[_T]] = []

        def job() -> None:
            if self.conn is None:
                box.append(outcome.Error(sqlite3.ProgrammingError("the history is closed")))
            else:
                box.append(outcome.capture(fn, self.conn))
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(done.set)

        self._jobs.put(job)
        await done.wait()
        return box[0].unwrap()

    async def open(self, path: Path) -> int:
        """Open the history at `path` on the owner thread; returns the next seq."""
        token = trio.lowlevel.current_trio_token()
        done = trio.Event()
        box: list[outcome.Outcome[tuple[sqlite3.Connection, int]]] = []

        def job() -> None:
            box.append(outcome.capture(_open, path))
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(done.set)

        self._jobs.put(job)
        await done.wait()
        self.conn, next_seq = box[0].unwrap()
        return next_seq

    def stop(self) -> None:
        """Close the connection on its thread and let the thread end (does not wait)."""

        def close() -> None:
            if self.conn is not None:
                self.conn.close()
                self.conn = None

        self._jobs.put(close)
        self._jobs.put(None)


class _InlineDb:
    """The history's connection on the trio thread, each job run right there: for tests under
    an autojump clock, which no worker thread may outrun (`open_event_bus(own_thread=False)`)."""

    def __init__(self) -> None:
        self.conn: sqlite3.Connection | None = None

    async def run(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        await trio.lowlevel.checkpoint()
        if self.conn is None:
            raise sqlite3.ProgrammingError("the history is closed")
        return fn(self.conn)

    async def open(self, path: Path) -> int:
        await trio.lowlevel.checkpoint()
        self.conn, next_seq = _open(path, check_same_thread=True)
        return next_seq

    def stop(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class EventBus:
    """See the module docstring. Build it with `open_event_bus`."""

    def __init__(self, db: _DbThread | _InlineDb | None, clock: WallClock, next_seq: int) -> None:
        self._db = db
        self._clock = clock
        self._seq = next_seq
        self._subscribers: list[Subscription] = []
        self._to_writer, self._writer_inbox = trio.open_memory_channel[LiveEvent](_QUEUE)
        self.dropped = 0  # events that never reached the history (the writer fell behind)
        self._writer_done = trio.Event()
        self._queued_seq = 0
        self._written_seq = 0
        self._progress = trio.Event()

    def publish(self, payload: LiveEventPayload) -> LiveEvent:
        """Stamp, fan out and queue one event (a `hyperhive.wire.harness` type). Never blocks."""
        kind, data = encode_live_event(payload)
        event = LiveEvent(self._seq, self._clock.now(), kind, data)
        self._seq += 1
        self._subscribers = [s for s in self._subscribers if s._offer(event)]
        if self._db is not None:
            try:
                self._to_writer.send_nowait(event)
                self._queued_seq = event.seq
            except (trio.WouldBlock, trio.ClosedResourceError):
                self.dropped += 1
        return event

    def note(self, text: str) -> LiveEvent:
        """A line of harness commentary (shown on the agent's page and logged)."""
        _log.info("%s", text)
        return self.publish(Note(text))

    def subscribe(self, capacity: int = 1024) -> Subscription:
        """A feed of every event published from now on."""
        subscription = Subscription(capacity)
        self._subscribers.append(subscription)
        return subscription

    @property
    def last_seq(self) -> int:
        return self._seq - 1

    async def history(
        self, limit: int = 500, *, after_seq: int = 0, before_seq: int | None = None
    ) -> list[LiveEvent]:
        """The newest `limit` stored events with `after_seq` < seq < `before_seq`, oldest
        first."""
        if self._db is None:
            return []
        before = before_seq if before_seq is not None else 2**63 - 1
        rows = await self._db.run(
            lambda conn: conn.execute(
                "SELECT seq, at, kind, data FROM events WHERE seq > ? AND seq < ?"
                " ORDER BY seq DESC LIMIT ?",
                (after_seq, before, limit),
            ).fetchall()
        )
        return [LiveEvent(seq, at, kind, _loads(data)) for seq, at, kind, data in rows[::-1]]

    async def flush(self) -> None:
        """Wait until every event published so far is in the history (or was dropped)."""
        target = self._queued_seq
        while self._db is not None and self._written_seq < target:
            await self._progress.wait()

    async def vacuum(self, keep_seconds: float = KEEP_SECONDS) -> int:
        """Delete events older than `keep_seconds`; returns how many went."""
        if self._db is None:
            return 0
        cutoff = self._clock.now() - keep_seconds

        def sweep(conn: sqlite3.Connection) -> int:
            with conn:
                return conn.execute("DELETE FROM events WHERE at < ?", (cutoff,)).rowcount

        return await self._db.run(sweep)

    async def _write_forever(self) -> None:
        assert self._db is not None
        db = self._db
        async for first in self._writer_inbox:
            batch = [first]
            while True:
                try:
                    batch.append(self._writer_inbox.receive_nowait())
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
            rows = [(e.seq, e.at, e.kind, _dumps(e.data)) for e in batch]
            try:
                await db.run(functools.partial(_insert, rows=rows))
            except sqlite3.Error as exc:
                self.dropped += len(rows)
                _log.warning("events history write failed (%s); %d events lost", exc, len(rows))
            self._written_seq = batch[-1].seq
            self._progress.set()
            self._progress = trio.Event()
        self._writer_done.set()

    async def _vacuum_forever(self) -> None:
        while True:
            try:
                await self.vacuum()
            except sqlite3.Error as exc:
                _log.warning("events history vacuum failed: %s", exc)
            await trio.sleep(VACUUM_EVERY)

    def _close(self) -> None:
        for subscription in self._subscribers:
            subscription.close()
        self._subscribers.clear()


def _insert(conn: sqlite3.Connection, rows: list[tuple[int, float, str, str]]) -> None:
    with conn:
        conn.executemany("INSERT OR REPLACE INTO events VALUES (?, ?, ?, ?)", rows)


def _dumps(data: Mapping[str, Any]) -> str:
    """JSON for the history; what cannot be encoded (too deep, say) is stored as a marker."""
    try:
        return json.dumps(data, default=str, ensure_ascii=False)
    except (ValueError, TypeError, RecursionError) as exc:
        return json.dumps({"unencodable": exc.__class__.__name__})


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return {"undecodable": True}


def _open(path: Path, *, check_same_thread: bool = True) -> tuple[sqlite3.Connection, int]:
    try:
        # check_same_thread stays on: only the owner thread may touch it (`_DbThread`).
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=check_same_thread)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(_SCHEMA)
        conn.isolation_level = "DEFERRED"  # back to implicit transactions for `with conn`
        (top,) = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open the events history {path}: {exc}") from exc
    return conn, int(top) + 1


@contextlib.asynccontextmanager
async def open_event_bus(
    path: Path | None, clock: WallClock, *, own_thread: bool = True
) -> AsyncIterator[EventBus]:
    """An events bus writing its history to `path` (None: live feed only).

    With `own_thread` (the harness) the history's connection lives on a thread of its own;
    without it (tests under an autojump clock) on the trio thread, every call inline.

    Resource handling: on exit, what is queued is written (bounded by 5 s), subscribers' feeds
    end and the database is closed.
    """
    db: _DbThread | _InlineDb | None = None
    if path is not None:
        db = _DbThread(f"events-db:{path.name}") if own_thread else _InlineDb()
    try:
        next_seq = 1 if db is None or path is None else await db.open(path)
        bus = EventBus(db, clock, next_seq)
        try:
            async with trio.open_nursery() as nursery:
                if db is not None:
                    nursery.start_soon(bus._write_forever)
                    nursery.start_soon(bus._vacuum_forever)
                try:
                    yield bus
                finally:
                    bus._to_writer.close()
                    if db is not None:
                        with trio.move_on_after(5, shield=True):
                            await bus._writer_done.wait()
                    nursery.cancel_scope.cancel()
        finally:
            bus._close()
    finally:
        if db is not None:
            db.stop()
