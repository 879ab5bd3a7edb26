"""The agent's events bus: every stream event and harness note, live and in a sqlite history.

`open_event_bus` yields an `EventBus`. `publish` never blocks: it stamps the event with the
next ``seq`` (monotonic across restarts, taken from the history on open) and the wall clock,
hands it to every live subscriber, and queues it for the history writer, which commits what
is queued in one transaction (group commit) on a worker thread. The agent's web page reads
`history` for the backlog and `subscribe` for what follows, dropping anything with a seq it
has already shown.

History is kept by age (`KEEP_SECONDS`, 7 days); `vacuum` deletes older rows and runs once an
hour while the bus is open. A subscriber that cannot keep up is cut off (its iterator ends
with `Subscription.lagged` set) rather than slowing the harness down; it reconnects and
backfills from the history.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
from typing import TYPE_CHECKING, Any, Final

import attrs
import trio

from hyperhive.errors import StoreError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping
    from pathlib import Path

    from hyperhive.clock import WallClock

__all__ = ["KEEP_SECONDS", "EventBus", "LiveEvent", "Subscription", "open_event_bus"]

KEEP_SECONDS: Final = 7 * 24 * 3600.0
VACUUM_EVERY: Final = 3600.0
_QUEUE: Final = 4096
_log = logging.getLogger(__name__)

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS events (
    seq  INTEGER PRIMARY KEY,
    at   REAL NOT NULL,
    kind TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_at ON events (at);
"""


@attrs.frozen
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


class EventBus:
    """See the module docstring. Build it with `open_event_bus`."""

    def __init__(self, conn: sqlite3.Connection | None, clock: WallClock, next_seq: int) -> None:
        self._conn = conn
        self._clock = clock
        self._seq = next_seq
        self._subscribers: list[Subscription] = []
        self._to_writer, self._writer_inbox = trio.open_memory_channel[LiveEvent](_QUEUE)
        self.dropped = 0  # events that never reached the history (the writer fell behind)
        self._writer_done = trio.Event()
        self._queued_seq = 0
        self._written_seq = 0
        self._progress = trio.Event()

    def publish(self, kind: str, data: Mapping[str, Any]) -> LiveEvent:
        """Stamp, fan out and queue one event. Never blocks."""
        event = LiveEvent(self._seq, self._clock.now(), kind, data)
        self._seq += 1
        self._subscribers = [s for s in self._subscribers if s._offer(event)]
        if self._conn is not None:
            try:
                self._to_writer.send_nowait(event)
                self._queued_seq = event.seq
            except (trio.WouldBlock, trio.ClosedResourceError):
                self.dropped += 1
        return event

    def note(self, text: str) -> LiveEvent:
        """A line of harness commentary (shown on the agent's page and logged)."""
        _log.info("%s", text)
        return self.publish("note", {"text": text})

    def subscribe(self, capacity: int = 1024) -> Subscription:
        """A feed of every event published from now on."""
        subscription = Subscription(capacity)
        self._subscribers.append(subscription)
        return subscription

    @property
    def last_seq(self) -> int:
        return self._seq - 1

    async def history(self, limit: int = 500, *, after_seq: int = 0) -> list[LiveEvent]:
        """The newest `limit` stored events with seq > `after_seq`, oldest first."""
        if self._conn is None:
            return []
        conn = self._conn
        rows = await trio.to_thread.run_sync(
            lambda: conn.execute(
                "SELECT seq, at, kind, data FROM events WHERE seq > ? ORDER BY seq DESC LIMIT ?",
                (after_seq, limit),
            ).fetchall()
        )
        return [LiveEvent(seq, at, kind, json.loads(data)) for seq, at, kind, data in rows[::-1]]

    async def flush(self) -> None:
        """Wait until every event published so far is in the history (or was dropped)."""
        target = self._queued_seq
        while self._conn is not None and self._written_seq < target:
            await self._progress.wait()

    async def vacuum(self, keep_seconds: float = KEEP_SECONDS) -> int:
        """Delete events older than `keep_seconds`; returns how many went."""
        if self._conn is None:
            return 0
        conn, cutoff = self._conn, self._clock.now() - keep_seconds

        def sweep() -> int:
            with conn:
                return conn.execute("DELETE FROM events WHERE at < ?", (cutoff,)).rowcount

        return await trio.to_thread.run_sync(sweep)

    async def _write_forever(self) -> None:
        assert self._conn is not None
        conn = self._conn
        async for first in self._writer_inbox:
            batch = [first]
            while True:
                try:
                    batch.append(self._writer_inbox.receive_nowait())
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
            rows = [(e.seq, e.at, e.kind, _dumps(e.data)) for e in batch]
            try:
                await trio.to_thread.run_sync(_insert, conn, rows)
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
    return json.dumps(data, default=str, ensure_ascii=False)


def _open(path: Path) -> tuple[sqlite3.Connection, int]:
    try:
        conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(_SCHEMA)
        conn.isolation_level = "DEFERRED"  # back to implicit transactions for `with conn`
        (top,) = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open the events history {path}: {exc}") from exc
    return conn, int(top) + 1


@contextlib.asynccontextmanager
async def open_event_bus(path: Path | None, clock: WallClock) -> AsyncIterator[EventBus]:
    """An events bus writing its history to `path` (None: live feed only).

    Resource handling: on exit, what is queued is written (bounded by 5 s), subscribers' feeds
    end and the database is closed.
    """
    conn, next_seq = (None, 1) if path is None else await trio.to_thread.run_sync(_open, path)
    bus = EventBus(conn, clock, next_seq)
    try:
        async with trio.open_nursery() as nursery:
            if conn is not None:
                nursery.start_soon(bus._write_forever)
                nursery.start_soon(bus._vacuum_forever)
            try:
                yield bus
            finally:
                bus._to_writer.close()
                if conn is not None:
                    with trio.move_on_after(5, shield=True):
                        await bus._writer_done.wait()
                nursery.cancel_scope.cancel()
    finally:
        bus._close()
        if conn is not None:
            conn.close()
