"""`GET /dashboard/stream`: the hub's events as Server-Sent Events (docs/web-ui.md).

One event per frame::

    id: <boot>.<seq>
    data: {"seq": 42, "at": 1730000000.0, "kind": "sent", ...}

``boot`` names the daemon process (seqs restart with it). A stream starts with a ``hello``
frame (``{"kind": "hello", "boot", "seq", "resumed"}``): the seq it continues after. A browser
reconnecting sends ``Last-Event-ID``; from the same boot the stream replays the remembered
events after it (and a ``gap`` frame for any the hub no longer remembers), from another boot it
says ``resumed: false`` and the page reloads its snapshot. A client that reads too slowly is
never waited for: the hub drops its events and hands it one ``gap`` frame
(``first_seq``..``last_seq``) in their place, after which the page reloads its snapshot.

``/agent/<name>/inbox/stream`` is the same stream kept to the events that change that agent's
inbox or loose ends (`concerns`), with the same ids, resume and gap frames: the agent's page
reloads its inbox when one arrives.

The pure parts (`frame`, `parse_last_event_id`, `resume_frames`, `concerns`) are tested
without trio.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from typing import TYPE_CHECKING, Final

import orjson
import trio

from hyperhive import wire

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Sequence

    from hyperhive.web.ops import DashboardOps

__all__ = [
    "HEARTBEAT",
    "RETRY_MS",
    "FrameCache",
    "concerns",
    "event_stream",
    "frame",
    "parse_last_event_id",
    "resume_frames",
]

RETRY_MS: Final = 1000
# A comment line this often: proxies keep the connection, and a vanished client is noticed.
HEARTBEAT: Final = 15.0
# How far back a reconnecting page can be replayed (the hub remembers about this many).
REPLAY: Final = 1000


def frame(boot: str, seq: int, data: bytes) -> bytes:
    """One SSE frame; `data` is a JSON object on one line (JSON never holds a raw newline)."""
    return b"id: %s.%d\ndata: %s\n\n" % (boot.encode(), seq, data)


def _json(obj: object) -> bytes:
    return orjson.dumps(obj)


def event_frame(boot: str, event: wire.Event) -> bytes:
    return frame(boot, event.seq, wire.encode_event(event).rstrip(b"\n"))


class FrameCache:
    """Encodes each hub event once for every stream that sends it (a bounded memo by seq).

    Gap frames are per subscriber and reuse the seq of an event they stand for, so they are
    never cached.
    """

    def __init__(self, boot: str, size: int = 4096) -> None:
        self._boot = boot
        self._size = size
        self._frames: OrderedDict[int, bytes] = OrderedDict()

    def encode(self, event: wire.Event) -> bytes:
        if isinstance(event.payload, wire.EventGap):
            return event_frame(self._boot, event)
        cached = self._frames.get(event.seq)
        if cached is None:
            cached = self._frames[event.seq] = event_frame(self._boot, event)
            if len(self._frames) > self._size:
                self._frames.popitem(last=False)
        return cached


def parse_last_event_id(value: str | None, boot: str) -> int | None:
    """The seq a reconnecting client saw last, if it saw it from this daemon process."""
    if not value:
        return None
    their_boot, _, seq = value.strip().partition(".")
    if their_boot != boot or not seq.isdigit() or len(seq) > 18:
        return None
    return int(seq)


def resume_frames(
    boot: str, after: int | None, history: wire.HistoryReply
) -> tuple[bytes, list[wire.Event]]:
    """The hello frame, and the remembered events to replay (a gap event first if needed)."""
    since = history.seq if after is None else after
    hello = {"kind": "hello", "boot": boot, "seq": since, "resumed": after is not None}
    start = frame(boot, since, _json(hello))
    if after is None or after >= history.seq:
        return start, []
    replay = [event for event in history.events if event.seq > after]
    first = replay[0].seq if replay else history.seq + 1
    if first > after + 1:
        gap = wire.Event(first - 1, 0.0, wire.EventGap(after + 1, first - 1))
        replay.insert(0, gap)
    return start, replay


def concerns(name: str, payload: wire.EventPayload) -> bool:
    """Whether an event changes what `name`'s page shows in its inbox or loose ends: mail to it
    stored, leased (taken), dead-lettered; its questions (asked or asked of it) and reminders;
    and every gap (the page reloads then)."""
    match payload:
        case wire.EventGap():
            return True
        case wire.MessageSent(message=message):
            return message.recipient == name
        case wire.MessageDelivered(recipient=who) | wire.MessageDeadLettered(recipient=who):
            return who == name
        case wire.QuestionAdded(question=q) | wire.QuestionResolved(question=q):
            return name in (q.asker, q.target)
        case (
            wire.ReminderSet(reminder=r)
            | wire.ReminderFired(reminder=r)
            | wire.ReminderFailed(reminder=r)
        ):
            return r.owner == name
        case wire.ReminderCancelled(owner=owner):
            return owner == name
    return False


async def event_stream(
    ops: DashboardOps,
    last_event_id: str | None,
    cache: FrameCache,
    keep: Callable[[wire.Event], bool] | None = None,
) -> AsyncIterator[bytes]:
    """The body of one `/dashboard/stream` response (see the module docstring); with `keep`,
    only the events it keeps (the hello frame and the seqs are the same).

    Resource handling: the hub subscription is dropped when the client goes (the generator is
    closed) or the app stops.
    """
    subscriber = await ops.subscribe()
    ops.stats.streams += 1
    try:
        history = await ops.history(REPLAY)
        hello, replay = resume_frames(
            ops.boot, parse_last_event_id(last_event_id, ops.boot), history
        )
        if keep is not None:
            replay = [event for event in replay if keep(event)]
        yield b"retry: %d\n\n" % RETRY_MS + hello + b"".join(map(cache.encode, replay))
        floor = history.seq
        while True:
            # Under load events are already queued: take them without a timed wait.
            batch: Sequence[wire.Event] = subscriber.take_nowait()
            if not batch:
                with trio.move_on_after(HEARTBEAT):
                    batch = await subscriber.next_batch()
            if not batch:
                yield b": ping\n\n"
                continue
            chunk = b"".join(
                cache.encode(event)
                for event in batch
                if event.seq > floor and (keep is None or keep(event))
            )
            if chunk:
                yield chunk
    finally:
        ops.stats.streams -= 1
        with contextlib.suppress(Exception):
            ops.unsubscribe(subscriber)
