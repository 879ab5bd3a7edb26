"""Reminders: an agent asks to be woken later; the scheduler delivers at the due time.

The rules (docs/reminders.md):

- ``remind(message, delay_seconds | at, file_path?)``: exactly one of a delay or an ISO 8601
  time with a timezone; a time in the past is due at once.
- At the due time the owner gets a `wire.ReminderDue` helper event in its inbox. With
  ``file_path`` the message is written to that file in the owner's state directory instead
  (``/state/...`` or a relative path inside the container; the host path is
  `StatePaths.agent_state_dir`) and the event carries a pointer line. ``..`` and symlinks are
  refused: the write walks the path with ``O_NOFOLLOW`` from the state directory, so nothing
  outside it can be reached, even by a path that changes underneath.
- A delivery that cannot happen (owner removed, bad path, unwritable file) is recorded on the
  row as ``failed`` with its reason and published; nothing is dropped silently. A transient
  error (the broker not answering, the owner's inbox full) is retried a minute later; a bug is
  logged once with its traceback and fails the reminder, never retried forever.
- The file is written (and the inbox message sent) without holding the store's lock, so a
  hostile or slow state directory delays only that one delivery.
- Delivery is at least once: a crash between storing the inbox message and marking the row
  delivers it again on the next start.

The schedule decisions are plain functions (`due_at_for`, `due`, `sleep_seconds`,
`container_relative`); `write_state_file` is the one piece of file I/O; `ReminderScheduler` is
the actor that owns the `ReminderStore`, in one task with no lock: its `Ticker` posts
`DueTick` into its mailbox when the soonest reminder is due, and each due reminder goes to its
outbox, whose sender task writes the file, stores the inbox message through the broker and
posts `Delivered` back. Surfaces reach it through `RemindersHandle`.

Accepts: `ScheduleReminder`, `CancelReminder`, `ListReminders`, `CountPending` (and its own
`DueTick`, `Delivered`).
Emits (to the event hub): `ReminderSet`, `ReminderFired`, `ReminderFailed`,
`ReminderCancelled`. Sends `ReminderDue` helper events through the broker.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import math
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Final, TypeAlias

import attrs
import trio

from actors import ActorError, ActorStatistics, MailboxFull, Reply
from hyperhive import wire
from hyperhive.core.agent_files import UnsafeFile, write_file
from hyperhive.core.reminder_store import ReminderStore
from hyperhive.core.timers import MAX_SLEEP, Outbox, Ticker, due, sleep_seconds
from hyperhive.errors import (
    BadRequest,
    HyperhiveError,
    InternalError,
    LimitReached,
    NotAllowed,
    NotFound,
    UnknownAgent,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from actors import Mailbox
    from hyperhive.clock import WallClock
    from hyperhive.core.events import EventsHandle
    from hyperhive.core.limits import LimitLog, Limits
    from hyperhive.core.listener import Identity
    from hyperhive.core.messages import MessagesHandle
    from hyperhive.offload import Offload

__all__ = [
    "MAX_DELAY_SECONDS",
    "MAX_SLEEP",
    "STATE_MOUNT",
    "CancelReminder",
    "CountPending",
    "Delivered",
    "DueTick",
    "ListReminders",
    "ReminderScheduler",
    "RemindersHandle",
    "RemindersMsg",
    "ScheduleReminder",
    "cancel_refusal",
    "container_relative",
    "due",
    "due_at_for",
    "pointer_line",
    "sleep_seconds",
    "write_state_file",
]

LOGGER = logging.getLogger("hyperhive.reminders")
CALL_TIMEOUT: Final = 30.0
STATE_MOUNT: Final = "/state"
MAX_DELAY_SECONDS: Final = 5 * 366 * 86400.0
RETRY_SECONDS: Final = 60.0
RETENTION_SECONDS: Final = 30 * 86400.0
_INTERNAL: Final = "internal error (logged); the reminder could not be delivered"
VACUUM_INTERVAL: Final = 86400.0

# --------------------------------------------------------------------------------------------
# The rules
# --------------------------------------------------------------------------------------------


def due_at_for(now: float, *, delay_seconds: float | None, at: str | None) -> float:
    """The wall-clock due time of a `remind` request made at ``now``.

    Raises:
        BadRequest: neither or both given, a negative or absurd delay, an unparsable ``at`` or
            one without a timezone.
    """
    if (delay_seconds is None) == (at is None):
        raise BadRequest("remind needs exactly one of delay_seconds or at")
    if delay_seconds is not None:
        if not math.isfinite(delay_seconds) or delay_seconds < 0:
            raise BadRequest("delay_seconds must be a number of seconds, 0 or more")
        if delay_seconds > MAX_DELAY_SECONDS:
            raise BadRequest("delay_seconds is more than five years; pick a nearer time")
        return now + delay_seconds
    assert at is not None
    try:
        when = datetime.datetime.fromisoformat(at)
    except ValueError:
        raise BadRequest(
            f"at={at!r} is not an ISO 8601 time; write it like 2030-06-01T09:00:00Z"
        ) from None
    if when.tzinfo is None:
        raise BadRequest(f"at={at!r} has no timezone; add Z (UTC) or an offset such as +02:00")
    due_at = when.timestamp()
    if due_at - now > MAX_DELAY_SECONDS:
        raise BadRequest(f"at={at!r} is more than five years away; pick a nearer time")
    return due_at


def container_relative(file_path: str) -> PurePosixPath:
    """The path inside the state directory that a container path names.

    ``/state/notes/x.md`` and ``notes/x.md`` both give ``notes/x.md``.

    Raises:
        BadRequest: empty, outside ``/state``, naming the directory itself, or using ``..``.
    """
    if not file_path.strip() or "\0" in file_path:
        raise BadRequest("file_path is empty; give a file under /state")
    path = PurePosixPath(file_path)
    if path.is_absolute():
        if path.parts[:2] != ("/", STATE_MOUNT.strip("/")):
            raise BadRequest(
                f"file_path {file_path!r} is outside {STATE_MOUNT}; reminders write only into "
                "your state directory"
            )
        path = PurePosixPath(*path.parts[2:]) if len(path.parts) > 2 else PurePosixPath()
    if not path.parts:
        raise BadRequest(f"file_path {file_path!r} names the state directory itself; name a file")
    if ".." in path.parts:
        raise BadRequest(f"file_path {file_path!r} uses '..'; give a path inside {STATE_MOUNT}")
    return path


def pointer_line(id: int, relative: PurePosixPath, size: int) -> str:
    """The inbox text of a reminder whose message went to a file."""
    return f"reminder #{id}: its message ({size} bytes) is in {STATE_MOUNT}/{relative}"


def cancel_refusal(reminder: wire.Reminder, by: Identity) -> str | None:
    """Why `by` may not cancel `reminder`, or None if it may (its owner, manager, operator)."""
    if by.role in ("operator", "manager") or by.name == reminder.owner:
        return None
    owner = reminder.owner
    return f"reminder #{reminder.id} belongs to {owner}; only {owner} or the manager can cancel it"


def write_state_file(state_dir: Path, relative: PurePosixPath, text: str) -> int:
    """Write ``text`` to ``state_dir / relative`` as hostile ground allows; returns bytes written.

    `hyperhive.core.agent_files.write_file` does the work: missing directories are created, no
    symlink anywhere on the path is followed (even one swapped in while writing), and only a
    regular file with a single link is written (a FIFO or a hard link is refused, never opened
    for writing in a way that could block or clobber). Blocking: run it in a thread.

    Raises:
        BadRequest: a symlink or non-directory on the way, a leaf that is not a plain file, or
            the write failed; the text says which.
    """
    data = text.encode()
    try:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_file(state_dir, relative, data, shown_as=STATE_MOUNT)
    except UnsafeFile as exc:
        raise BadRequest(str(exc)) from exc
    except OSError as exc:
        raise BadRequest(f"could not write {STATE_MOUNT}/{relative}: {exc.strerror}") from exc
    return len(data)


# --------------------------------------------------------------------------------------------
# The actor
# --------------------------------------------------------------------------------------------


@attrs.frozen
class ScheduleReminder:
    owner: str
    request: wire.Remind
    reply: Reply[wire.Reminder]


@attrs.frozen
class CancelReminder:
    id: int
    by: Identity
    reply: Reply[wire.Reminder]


@attrs.frozen
class ListReminders:
    """Pending and failed reminders (``delivered`` adds delivered ones) of one owner or all."""

    owner: str | None
    delivered: bool
    limit: int
    reply: Reply[list[wire.Reminder]]


@attrs.frozen
class CountPending:
    reply: Reply[dict[str, int]]


@attrs.frozen
class DueTick:
    """The scheduler's own timer: the soonest reminder (or the daily vacuum) is due."""


@attrs.frozen
class Delivered:
    """The sender's report on reminder `id`: delivered (`failure` None), failed for good, or
    to be tried again later (`retry`)."""

    id: int
    failure: str | None = None
    retry: bool = False


RemindersMsg: TypeAlias = (
    ScheduleReminder | CancelReminder | ListReminders | CountPending | DueTick | Delivered
)


class ReminderScheduler:
    """Owns the reminder store and delivers reminders when they come due.

    Args:
        mailbox: the actor's mailbox.
        path: the sqlite file.
        clock: wall clock for due times and stamps.
        offload: how store calls and file writes leave the trio thread.
        messages: the broker, for `ReminderDue` helper events from `wire.HELPER_SENDER`.
        known: whether an owner still exists (is registered).
        state_dir: the host state directory of an owner (`StatePaths.agent_state_dir`).
        events: where dashboard events go.
        limits, limit_log: the bounds and who hit them (docs/limits.md).

    The schedule (id -> due time) is kept in memory, loaded from the store on start.
    """

    def __init__(
        self,
        mailbox: Mailbox[RemindersMsg],
        *,
        path: Path,
        clock: WallClock,
        offload: Offload,
        messages: MessagesHandle,
        known: Callable[[str], bool],
        state_dir: Callable[[str], Path],
        events: EventsHandle,
        limits: Limits,
        limit_log: LimitLog,
    ) -> None:
        self._mailbox = mailbox
        self._path = path
        self._clock = clock
        self._offload = offload
        self._messages = messages
        self._known = known
        self._state_dir = state_dir
        self._events = events
        self._limits = limits
        self._limit_log = limit_log
        self._schedule: dict[int, float] = {}
        self._in_flight: set[int] = set()
        self._next_vacuum = 0.0
        self._outbox: Outbox[wire.Reminder] = Outbox()
        self._ticker = Ticker(self._tick, clock.now)
        self._last_error: str | None = None

    def statistics(self) -> ActorStatistics:
        """Queue, last message, last error; due timers and deliveries in flight."""
        return ActorStatistics.of(
            self._mailbox.statistics(),
            last_error=self._last_error,
            due_timers=len(self._schedule),
            delivering=len(self._in_flight),
        )

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Open the store, load the schedule, serve until asked to stop, close the store.

        Reminders that came due while the daemon was down fire as soon as it starts.

        Cancellation: a delivery cancelled after its inbox message was stored but before the
        row was marked is delivered again on the next start (at least once).
        """
        store = await self._offload(self._open)
        try:
            self._schedule = {r.id: r.due_at for r in await self._offload(store.pending)}
            self._next_vacuum = self._clock.now()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._ticker.run)
                nursery.start_soon(self._send_forever)
                self._reschedule()
                task_status.started()
                async for msg in self._mailbox.inbox:
                    await self._dispatch(store, msg)
                nursery.cancel_scope.cancel()
        finally:
            store.close()

    def _open(self) -> ReminderStore:
        return ReminderStore(self._path, now=self._clock.now)

    def _tick(self) -> None:
        with contextlib.suppress(MailboxFull):  # a full mailbox: the next tick comes anyway
            self._mailbox.cast_nowait(DueTick())

    def _reschedule(self) -> None:
        waiting = [at for id, at in self._schedule.items() if id not in self._in_flight]
        self._ticker.due_at(min([self._next_vacuum, *waiting]))

    async def _dispatch(self, store: ReminderStore, msg: RemindersMsg) -> None:
        try:
            match msg:
                case ScheduleReminder():
                    msg.reply.send(await self._on_schedule(store, msg))
                case CancelReminder():
                    msg.reply.send(await self._on_cancel(store, msg))
                case ListReminders(owner=owner, delivered=delivered, limit=limit):
                    reminders = await self._offload(
                        lambda: store.listing(owner=owner, delivered=delivered, limit=limit)
                    )
                    msg.reply.send(reminders)
                case CountPending():
                    msg.reply.send(await self._offload(store.pending_counts))
                case DueTick():
                    await self._on_tick(store)
                case Delivered():
                    await self._on_delivered(store, msg)
        except (HyperhiveError, ActorError) as exc:
            # Refusals and store errors fail this call only.
            if isinstance(msg, DueTick | Delivered):
                self._last_error = repr(exc)
                LOGGER.warning("reminders: %s", exc)
            else:
                msg.reply.fail(exc)
        except Exception as exc:
            # A bug, met on one request: that caller is told, the actor keeps serving (a
            # client's input must never count against the supervisor's restart intensity).
            self._last_error = repr(exc)
            LOGGER.exception("reminder request %s failed", type(msg).__name__)
            if not isinstance(msg, DueTick | Delivered):
                msg.reply.fail(InternalError())

    async def _on_schedule(self, store: ReminderStore, msg: ScheduleReminder) -> wire.Reminder:
        request = msg.request
        if not request.message.strip():
            raise BadRequest("the reminder message is empty")
        try:
            request.message.encode()
        except UnicodeEncodeError:
            raise BadRequest("the reminder message is not valid unicode text") from None
        size = len(request.message.encode())
        if size > self._limits.max_body_bytes:
            raise LimitReached(
                f"the reminder message is {size} bytes, more than the limit of "
                f"{self._limits.max_body_bytes} (max_body_bytes); nothing was scheduled"
            )
        due_at = due_at_for(self._clock.now(), delay_seconds=request.delay_seconds, at=request.at)
        if request.file_path is not None:
            container_relative(request.file_path)  # refuse a bad path now, not at the due time
        cap = self._limits.pending_reminders
        if await self._offload(store.pending_count, msg.owner) >= cap:
            self._limit_log.hit(msg.owner, "pending_reminders", f"{cap} reminders pending")
            raise LimitReached(
                f"you have {cap} pending reminders (the pending_reminders limit); nothing was "
                "scheduled. Cancel some with cancel_loose_end first"
            )
        reminder = await self._offload(
            store.add, msg.owner, request.message, due_at, request.file_path
        )
        self._schedule[reminder.id] = due_at
        self._reschedule()
        self._events.publish(wire.ReminderSet(reminder))
        return reminder

    async def _on_cancel(self, store: ReminderStore, msg: CancelReminder) -> wire.Reminder:
        reminder = await self._offload(store.get, msg.id)
        if reminder is None:
            raise NotFound(f"no reminder #{msg.id}; see your loose ends for the pending ones")
        if refusal := cancel_refusal(reminder, msg.by):
            raise NotAllowed(refusal)
        if reminder.state == "delivered":
            raise NotFound(f"reminder #{msg.id} was already delivered; nothing to cancel")
        deleted = await self._offload(store.delete_undelivered, msg.id)
        if deleted is None:
            raise NotFound(f"reminder #{msg.id} was already delivered; nothing to cancel")
        self._schedule.pop(msg.id, None)
        self._reschedule()
        self._events.publish(wire.ReminderCancelled(msg.id, deleted.owner, msg.by.name))
        return deleted

    # -- the schedule ------------------------------------------------------------------------

    async def _on_tick(self, store: ReminderStore) -> None:
        now = self._clock.now()
        if now >= self._next_vacuum:
            self._next_vacuum = now + VACUUM_INTERVAL
            await self._offload(store.vacuum, RETENTION_SECONDS)
        waiting = {id: at for id, at in self._schedule.items() if id not in self._in_flight}
        for id in due(waiting, now):
            reminder = await self._offload(store.get, id)
            if reminder is None or reminder.state != "pending":
                self._schedule.pop(id, None)  # cancelled meanwhile
                continue
            self._in_flight.add(id)
            self._outbox.put(reminder)
        self._reschedule()

    async def _on_delivered(self, store: ReminderStore, msg: Delivered) -> None:
        self._in_flight.discard(msg.id)
        if msg.retry:
            if msg.id in self._schedule:  # not cancelled meanwhile
                self._schedule[msg.id] = self._clock.now() + RETRY_SECONDS
        else:
            self._schedule.pop(msg.id, None)
            if msg.failure is None:
                self._publish(await self._offload(store.mark_delivered, msg.id), wire.ReminderFired)
            else:
                marked = await self._offload(store.mark_failed, msg.id, msg.failure)
                self._publish(marked, wire.ReminderFailed)
        self._reschedule()

    async def _send_forever(self) -> None:
        """The sender: write each due reminder's file, store its inbox message, report back.

        Writing into the agent's directory and sending through the broker happen here, never
        in the actor's own task, so a slow disk or a busy broker never stalls `remind`,
        `whoami` or loose ends for anyone.
        """
        while True:
            reminder = await self._outbox.take()
            await self._mailbox.cast(await self._deliver(reminder))

    async def _deliver(self, reminder: wire.Reminder) -> Delivered:
        id = reminder.id
        try:
            event = await self._prepare(reminder)
            await self._messages.send(
                wire.HELPER_SENDER, reminder.owner, wire.encode_helper_event(event)
            )
        except (BadRequest, UnknownAgent) as exc:
            LOGGER.warning("reminder #%d for %s failed: %s", id, reminder.owner, exc)
            return Delivered(id, failure=str(exc))
        except (HyperhiveError, ActorError) as exc:
            # The broker did not answer, or the owner's inbox is full: try again later.
            LOGGER.warning("reminder #%d not delivered yet (%s); retrying", id, exc)
            return Delivered(id, retry=True)
        except Exception:
            # A bug: retrying would only repeat it every minute, forever. Fail it, once.
            LOGGER.exception("reminder #%d for %s hit an internal error", id, reminder.owner)
            return Delivered(
                id, failure="internal error (logged); the reminder could not be delivered"
            )
        return Delivered(id)

    async def _prepare(self, reminder: wire.Reminder) -> wire.ReminderDue:
        """The helper event for a due reminder, writing its file first if it has one."""
        if not self._known(reminder.owner):
            raise UnknownAgent(
                f"{reminder.owner!r} is not a registered agent any more (destroyed?), so "
                "the reminder could not be delivered"
            )
        if reminder.file_path is None:
            return wire.ReminderDue(reminder.id, reminder.message)
        relative = container_relative(reminder.file_path)
        state_dir = self._state_dir(reminder.owner)
        size = await self._offload(write_state_file, state_dir, relative, reminder.message)
        return wire.ReminderDue(
            reminder.id, pointer_line(reminder.id, relative, size), f"{STATE_MOUNT}/{relative}"
        )

    def _publish(
        self,
        reminder: wire.Reminder | None,
        event: type[wire.ReminderFired] | type[wire.ReminderFailed],
    ) -> None:
        if reminder is not None:
            self._events.publish(event(reminder))


class RemindersHandle:
    """What surfaces hold to reach the reminder scheduler."""

    def __init__(self, mailbox: Mailbox[RemindersMsg]) -> None:
        self._mailbox = mailbox

    async def remind(self, owner: str, request: wire.Remind) -> wire.Reminder:
        """Schedule a reminder for `owner`; returns the stored row with its due time."""
        return await self._mailbox.call(
            lambda reply: ScheduleReminder(owner, request, reply), timeout=CALL_TIMEOUT
        )

    async def cancel(self, by: Identity, id: int) -> wire.Reminder:
        """Cancel (or dismiss, when it failed) reminder `id` as `by`."""
        return await self._mailbox.call(
            lambda reply: CancelReminder(id, by, reply), timeout=CALL_TIMEOUT
        )

    async def listing(
        self, *, owner: str | None = None, delivered: bool = False, limit: int = 200
    ) -> list[wire.Reminder]:
        """Pending and failed reminders (and delivered ones if asked), one owner's or all."""
        return await self._mailbox.call(
            lambda reply: ListReminders(owner, delivered, limit, reply), timeout=CALL_TIMEOUT
        )

    async def pending_counts(self) -> dict[str, int]:
        """Pending reminders per owner (the dashboard's per-agent count); absent means 0."""
        return await self._mailbox.call(CountPending, timeout=CALL_TIMEOUT)
