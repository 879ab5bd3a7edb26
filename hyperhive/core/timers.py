"""Timers as messages, and an outbox: how an actor waits for time and for other actors
without holding its state while it waits.

- `Ticker` sleeps on trio's clock until a wall-clock due time (re-reading the wall clock at
  least every `MAX_SLEEP`, since trio's clock stops while the host is suspended), then posts
  one tick into its actor's own mailbox. The actor handles the tick like any other message, in
  its one task, and tells the ticker the next due time. The ticker touches no state.
- `Outbox` is the actor's queue of work for another actor (telling an agent through the
  broker): the actor puts without ever waiting; the actor's sender task takes, does the slow
  call, and posts the outcome back into the mailbox as a message.

The schedule rules are plain functions (`due`, `sleep_seconds`), tested without trio.
"""

from __future__ import annotations

import collections
import math
from typing import TYPE_CHECKING, Final, Generic, NoReturn, TypeVar

import trio

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = ["MAX_SLEEP", "Outbox", "Ticker", "due", "sleep_seconds"]

T = TypeVar("T")
# The longest one sleep lasts before the wall clock is read again (host suspend, clock jumps).
MAX_SLEEP: Final = 3600.0


def due(schedule: Mapping[int, float], now: float) -> list[int]:
    """The ids whose time has come, earliest first (ties by id)."""
    return [id for at, id in sorted((at, id) for id, at in schedule.items()) if at <= now]


def sleep_seconds(next_at: float | None, now: float, max_sleep: float) -> float:
    """How long to sleep before the next due time: never negative, at most ``max_sleep``,
    forever (``inf``) when nothing is scheduled."""
    if next_at is None:
        return math.inf
    return min(max(0.0, next_at - now), max_sleep)


class Ticker:
    """Posts a tick (``post()``) once the wall-clock time `due_at` names has come.

    One tick per due time: after posting it waits for the actor to name the next one with
    `due_at` (None: nothing scheduled). ``post`` must not block (``cast_nowait``); a tick lost
    to a full mailbox is posted again after the next `MAX_SLEEP` at the latest.
    """

    def __init__(
        self, post: Callable[[], None], now: Callable[[], float], max_sleep: float = MAX_SLEEP
    ) -> None:
        self._post = post
        self._now = now
        self._max_sleep = max_sleep
        self._due: float | None = None
        self._changed = trio.Event()
        self.ticks = 0

    @property
    def next_due(self) -> float | None:
        """The due time the ticker waits for (None: nothing, or a tick is out)."""
        return self._due

    def due_at(self, when: float | None) -> None:
        """Wait for `when` (wall-clock seconds) from now on. Never blocks."""
        self._due = when
        self._changed.set()

    async def run(self) -> NoReturn:
        """Sleep, tick, repeat; never returns. Cancellation: safe, anywhere."""
        while True:
            self._changed = trio.Event()
            wait = sleep_seconds(self._due, self._now(), self._max_sleep)
            with trio.move_on_after(wait):
                await self._changed.wait()
                continue
            if self._due is not None and self._due <= self._now():
                self._due = None  # until the actor names the next one
                self.ticks += 1
                self._post()


class Outbox(Generic[T]):
    """An unbounded queue from an actor to its own sender task: `put` never waits.

    Its length is bounded by the actor's own state (one entry per question to tell, reminder
    to deliver), which is bounded by the limits (docs/limits.md).
    """

    def __init__(self) -> None:
        self._items: collections.deque[T] = collections.deque()
        self._ready = trio.Event()

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: T) -> None:
        """Queue `item` for the sender. Never blocks."""
        self._items.append(item)
        self._ready.set()

    async def take(self) -> T:
        """The oldest item, waiting for one. Cancellation: safe; nothing is taken."""
        while not self._items:
            self._ready = trio.Event()
            await self._ready.wait()
        return self._items.popleft()
