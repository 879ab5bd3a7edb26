"""The event hub actor: one ordered stream of dashboard events.

Every state change the dashboard, the TUI or a `subscribe` client cares about is published here
as an `wire.EventPayload`; the hub stamps it with a monotonic per-process `seq` and a wall-clock
time, keeps a bounded history and fans it out to subscribers.

The seeds' subscribe / buffer / snapshot / dedupe dance works against it: a client subscribes
first, reads `history` second (which returns the seq it is current to), and drops buffered
events with `seq <= history.seq`, so nothing is lost and nothing is shown twice.

A slow subscriber never slows the hive: each has a bounded queue, and when it is full the hub
drops events for that subscriber only and later hands it an `EventGap(first_seq, last_seq)`
marker in their place.

Surfaces and actors reach it through `EventsHandle`.

Accepts: `Publish`, `AddSubscriber`, `RemoveSubscriber`, `ReadHistory`.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, TypeAlias

import attrs
import trio

from actors import ActorStatistics, Mailbox, MailboxFull, Reply
from hyperhive import wire
from hyperhive.core.event_log import EventLog, SubscriberQueue
from hyperhive.errors import InternalError

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Sequence

    from hyperhive.clock import WallClock

__all__ = [
    "CALL_TIMEOUT",
    "EventHub",
    "EventsHandle",
    "HubMsg",
    "Publish",
    "Subscriber",
    "boot_id",
    "preview",
]

LOGGER = logging.getLogger("hyperhive.events")
# Per-subscriber backlog before it starts missing events. A browser tab that is asleep should
# cost the hive a bounded amount of memory, not an ever-growing queue.
SUBSCRIBER_CAPACITY = 1024
CALL_TIMEOUT = 30.0


def boot_id(started_at: float) -> str:
    """The name of a daemon process, from when it started: every event frame, history reply
    and dashboard stream id carries it, since seqs start again at 1 with each process."""
    return f"{started_at:.6f}".replace(".", "")


@attrs.frozen
class Publish:
    """Append these payloads to the stream, in order."""

    payloads: Sequence[wire.EventPayload]


class Subscriber:
    """A live feed handed to one client: a bounded queue and a wake-up signal."""

    def __init__(self, capacity: int) -> None:
        self.queue = SubscriberQueue(capacity)
        self._ready = trio.Event()

    def offer(self, event: wire.Event) -> None:
        self.queue.offer(event)
        self._ready.set()

    async def batches(self) -> AsyncGenerator[list[wire.Event], None]:
        """Yield what is queued each time something arrives (gap markers included)."""
        while True:
            yield await self.next_batch()

    def take_nowait(self) -> list[wire.Event]:
        """Whatever is queued now (gap markers included), possibly nothing."""
        return self.queue.take()

    async def next_batch(self) -> list[wire.Event]:
        """Wait for what is queued next (gap markers included), never an empty list.

        Cancellation: safe; a cancelled wait takes nothing, so nothing is lost.
        """
        while True:
            await self._ready.wait()
            self._ready = trio.Event()
            if events := self.queue.take():
                return events


@attrs.frozen
class AddSubscriber:
    reply: Reply[Subscriber]
    capacity: int = SUBSCRIBER_CAPACITY


@attrs.frozen
class RemoveSubscriber:
    subscriber: Subscriber


@attrs.frozen
class ReadHistory:
    limit: int
    reply: Reply[wire.HistoryReply]


HubMsg: TypeAlias = Publish | AddSubscriber | RemoveSubscriber | ReadHistory


class EventsHandle:
    """What surfaces and actors hold to reach the hub."""

    def __init__(self, mailbox: Mailbox[HubMsg], boot: str = "") -> None:
        self._mailbox = mailbox
        self.boot = boot  # this daemon process (`boot_id`)

    def publish(self, *payloads: wire.EventPayload) -> None:
        """Publish without ever blocking; a full hub mailbox drops (and logs) the batch."""
        if not payloads:
            return
        try:
            self._mailbox.cast_nowait(Publish(payloads))
        except MailboxFull:
            LOGGER.warning("event hub is full; dropped %d event(s)", len(payloads))

    async def history(self, limit: int) -> wire.HistoryReply:
        """The hub's remembered events and the seq they are current to."""
        return await self._mailbox.call(
            lambda reply: ReadHistory(limit, reply), timeout=CALL_TIMEOUT
        )

    async def subscribe(self) -> Subscriber:
        """A live feed of every event from now on."""
        return await self._mailbox.call(AddSubscriber, timeout=CALL_TIMEOUT)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        """Stop feeding `subscriber` (never blocks)."""
        # A full hub will drop the subscriber's events anyway; it is collected on a later try.
        with contextlib.suppress(MailboxFull):
            self._mailbox.cast_nowait(RemoveSubscriber(subscriber))


def preview(payload: wire.EventPayload, chars: int) -> wire.EventPayload:
    """`payload` with every agent-written text clipped to `chars` characters.

    Events are metadata: the stream and the history keep who, what and when, and a preview of
    the text, never a whole body (the stores have those). A clipped message body records its
    full size in `MessageSent.body_bytes`.
    """
    if type(payload) not in _WITH_TEXT:  # most events (deliveries) carry no agent text
        return payload
    match payload:
        case wire.MessageSent(message=message) if len(message.body) > chars:
            clipped = attrs.evolve(message, body=_clip(message.body, chars))
            return wire.MessageSent(clipped, body_bytes=len(message.body.encode()))
        case wire.QuestionAdded(question=q) | wire.QuestionResolved(question=q):
            clipped_q = _clip_question(q, chars)
            return payload if clipped_q is q else attrs.evolve(payload, question=clipped_q)
        case (
            wire.ReminderSet(reminder=r)
            | wire.ReminderFired(reminder=r)
            | wire.ReminderFailed(reminder=r)
        ) if len(r.message) > chars:
            return attrs.evolve(payload, reminder=attrs.evolve(r, message=_clip(r.message, chars)))
    return payload


_WITH_TEXT = frozenset(
    {
        wire.MessageSent,
        wire.QuestionAdded,
        wire.QuestionResolved,
        wire.ReminderSet,
        wire.ReminderFired,
        wire.ReminderFailed,
    }
)


def _clip(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[: chars - 1] + "…"


def _clip_question(q: wire.Question, chars: int) -> wire.Question:
    texts = (q.question, q.answer or "", *q.options)
    if all(len(text) <= chars for text in texts):
        return q
    return attrs.evolve(
        q,
        question=_clip(q.question, chars),
        options=tuple(_clip(option, chars) for option in q.options),
        answer=None if q.answer is None else _clip(q.answer, chars),
    )


class EventHub:
    """Assigns seqs, keeps history, fans out to subscribers.

    The `EventLog` (and so the seq counter) lives on this object, which the supervisor keeps
    across restarts of `run`, so seqs stay monotonic for the life of the process. Payloads are
    stored and sent as previews (`preview`); a history reply holds at most `reply_bytes` of
    encoded events, the newest ones.
    """

    def __init__(
        self,
        mailbox: Mailbox[HubMsg],
        clock: WallClock,
        *,
        history: int = 1000,
        preview_chars: int = 500,
        reply_bytes: int = 1024 * 1024,
        boot: str = "",
    ):
        self._mailbox = mailbox
        self._inbox = mailbox.inbox
        self._last_error: str | None = None
        self._clock = clock
        self._log = EventLog(history=history, boot=boot)
        self._subscribers: set[Subscriber] = set()
        self._preview_chars = preview_chars
        self._reply_bytes = reply_bytes

    @property
    def seq(self) -> int:
        """The last seq handed out."""
        return self._log.seq

    def statistics(self) -> ActorStatistics:
        """Queue, last message, last error; the last seq and the live subscribers."""
        return ActorStatistics.of(
            self._mailbox.statistics(),
            last_error=self._last_error,
            seq=self._log.seq,
            subscribers=len(self._subscribers),
        )

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve the hub until the supervisor asks it to stop."""
        task_status.started()
        async for msg in self._inbox:
            try:
                self._dispatch(msg)
            except Exception as exc:
                # A bug met on one message: its caller is told, the hub keeps its stream.
                self._last_error = repr(exc)
                LOGGER.exception("event hub failed on %s", type(msg).__name__)
                if isinstance(msg, AddSubscriber | ReadHistory):
                    msg.reply.fail(InternalError())

    def _dispatch(self, msg: HubMsg) -> None:
        match msg:
            case Publish():
                self._on_publish(msg)
            case AddSubscriber():
                self._on_subscribe(msg)
            case RemoveSubscriber():
                self._subscribers.discard(msg.subscriber)
            case ReadHistory():
                self._on_read_history(msg)

    def _on_publish(self, msg: Publish) -> None:
        now = self._clock.now()
        chars = self._preview_chars
        if not self._subscribers:
            for payload in msg.payloads:
                self._log.record(preview(payload, chars), now)
            return
        for payload in msg.payloads:
            event = self._log.append(preview(payload, chars), now)
            for subscriber in self._subscribers:
                subscriber.offer(event)

    def _on_subscribe(self, msg: AddSubscriber) -> None:
        subscriber = Subscriber(msg.capacity)
        self._subscribers.add(subscriber)
        msg.reply.send(subscriber)

    def _on_read_history(self, msg: ReadHistory) -> None:
        seq, events = self._log.snapshot(max(0, msg.limit))
        budget, keep = self._reply_bytes, len(events)
        while keep and budget >= len(line := wire.encode_event(events[keep - 1])):
            budget -= len(line)
            keep -= 1
        kept = events[keep:]
        msg.reply.send(
            wire.HistoryReply(seq=seq, events=tuple(kept), dropped=keep, boot=self._log.boot)
        )
