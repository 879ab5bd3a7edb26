"""The dashboard event hub's bookkeeping: sequence numbers, history and per-subscriber buffers.

Pure and synchronous; the hub actor wraps it. ``EventLog`` numbers every event (``seq`` 1, 2,
3, ... for the life of the process) and keeps the newest ``history`` of them for ``History``
requests. Each subscriber gets a ``SubscriberQueue``: bounded, so a slow dashboard never slows
the producer, and honest, so a subscriber that fell behind learns exactly which seqs it missed.

A client joins without losing or repeating anything by subscribing first, then asking for the
history snapshot, then discarding feed frames whose ``seq`` is at or below the snapshot's
``seq``. That rule is safe for gap frames too, because a gap frame carries the seq of the *last*
event it stands for (see ``SubscriberQueue.take``).
"""

from __future__ import annotations

import itertools
from collections import deque

import attrs

from hyperhive.wire import Event, EventGap, EventPayload

__all__ = ["EventLog", "SubscriberQueue"]


class EventLog:
    """Assigns each event the next ``seq`` and remembers the newest ``history`` events."""

    def __init__(self, *, history: int = 1000, boot: str = "") -> None:
        self.boot = boot  # the daemon process these seqs belong to, on every frame
        if history < 1:
            raise ValueError(f"history must be >= 1, got {history}")
        # Plain tuples: the hub records two events per message, and most are never read, so
        # the frozen `Event` is built only when someone asks (a subscriber or a snapshot).
        self._events: deque[tuple[int, float, EventPayload]] = deque(maxlen=history)
        self._seq = 0

    def append(self, payload: EventPayload, at: float) -> Event:
        """Frame ``payload`` as the next event, stamped ``at`` (wall-clock seconds)."""
        return Event(self.record(payload, at), at, payload, self.boot)

    def record(self, payload: EventPayload, at: float) -> int:
        """Like `append`, for when nobody needs the framed event now; returns its seq."""
        self._seq += 1
        self._events.append((self._seq, at, payload))
        return self._seq

    @property
    def seq(self) -> int:
        """The last seq assigned; 0 before the first event."""
        return self._seq

    def snapshot(self, limit: int) -> tuple[int, list[Event]]:
        """The current seq and the newest ``limit`` remembered events, oldest first."""
        if limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        skip = max(0, len(self._events) - limit)
        kept = itertools.islice(self._events, skip, None)
        boot = self.boot
        return self._seq, [Event(seq, at, payload, boot) for seq, at, payload in kept]


@attrs.define
class _Gap:
    first_seq: int
    last_seq: int
    at: float
    boot: str


class SubscriberQueue:
    """One subscriber's backlog: at most ``capacity`` events, never blocking ``offer``.

    Once full it drops every further event until the subscriber calls ``take``, remembering
    the dropped range; ``take`` reports it as one ``EventGap`` frame in their place. The gap
    is always the newest entry, since nothing is queued behind a drop. ``dropped`` counts the
    events dropped over the queue's lifetime, for statistics.
    """

    dropped: int

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self._capacity = capacity
        self._events: deque[Event] = deque()
        self._gap: _Gap | None = None
        self.dropped = 0

    def offer(self, event: Event) -> None:
        """Queue ``event``, or drop it and widen the gap if the queue is full."""
        if self._gap is None and len(self._events) < self._capacity:
            self._events.append(event)
            return
        self.dropped += 1
        if self._gap is None:
            self._gap = _Gap(event.seq, event.seq, event.at, event.boot)
        else:
            self._gap.last_seq = event.seq
            self._gap.at = event.at

    def take(self) -> list[Event]:
        """Everything queued, oldest first, leaving the queue empty.

        If events were dropped, the last frame is ``Event(seq=last_seq, at=<at of the last
        dropped event>, payload=EventGap(first_seq, last_seq))``. Its seq is the last dropped
        one, so frames stay in seq order and "discard frames with seq <= snapshot seq" never
        throws away news of events past the snapshot.
        """
        taken = list(self._events)
        self._events.clear()
        if self._gap is not None:
            gap, self._gap = self._gap, None
            gap_event = EventGap(gap.first_seq, gap.last_seq)
            taken.append(Event(gap.last_seq, gap.at, gap_event, gap.boot))
        return taken

    def __len__(self) -> int:
        """How many frames ``take`` would return now (a pending gap counts as one)."""
        return len(self._events) + (self._gap is not None)
