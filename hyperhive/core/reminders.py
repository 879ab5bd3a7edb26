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
the actor that owns the `ReminderStore`.

Accepts: `ScheduleReminder`, `CancelReminder`, `ListReminders`, `CountPending`.
Emits (to the event hub): `ReminderSet`, `ReminderFired`, `ReminderFailed`,
`ReminderCancelled`. Sends `ReminderDue` helper events through the broker.
"""

from __future__ import annotations

import datetime
import logging
import math
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Final, NoReturn, TypeAlias, TypeVar

import attrs
import trio

from actors import ActorError
from hyperhive import wire
from hyperhive.core.agent_files import UnsafeFile, write_file
from hyperhive.core.events import publish_nowait
from hyperhive.core.limits import Limits
from hyperhive.core.reminder_store import ReminderStore
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
    from collections.abc import Awaitable, Callable, Mapping
    from pathlib import Path

    from actors import Inbox, Mailbox, Reply
    from hyperhive.clock import WallClock
    from hyperhive.core.events import HubMsg
    from hyperhive.core.limits import LimitLog
    from hyperhive.core.listener import Identity

__all__ = [
    "MAX_DELAY_SECONDS",
    "STATE_MOUNT",
    "CancelReminder",
    "CountPending",
    "DueLoop",
    "ListReminders",
    "ReminderScheduler",
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
_R = TypeVar("_R")
STATE_MOUNT: Final = "/state"
MAX_DELAY_SECONDS: Final = 5 * 366 * 86400.0
# The scheduler re-reads the wall clock at least this often: trio's clock stops while the host
# is suspended, so one long sleep could fire a reminder late by the time spent suspended.
MAX_SLEEP: Final = 3600.0
RETRY_SECONDS: Final = 60.0
RETENTION_SECONDS: Final = 30 * 86400.0
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


def due(schedule: Mapping[int, float], now: float) -> list[int]:
    """The ids whose time has come, earliest first (ties by id)."""
    return [id for at, id in sorted((at, id) for id, at in schedule.items()) if at <= now]


def sleep_seconds(next_at: float | None, now: float, max_sleep: float) -> float:
    """How long to sleep before the next due time: never negative, at most ``max_sleep``,
    forever (``inf``) when nothing is scheduled."""
    if next_at is None:
        return math.inf
    return min(max(0.0, next_at - now), max_sleep)


class DueLoop:
    """The loop behind the reminder scheduler and the question watchdog.

    Sleeps on trio's clock until the soonest of some wall-clock due times (at most `MAX_SLEEP`,
    then it re-reads the wall clock) or until `poke` says the times changed, then calls
    ``on_wake``; runs ``vacuum`` at start and then once per `VACUUM_INTERVAL`. ``on_wake`` and
    ``vacuum`` take whatever lock they need themselves.
    """

    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now
        self._poked = trio.Event()

    def poke(self) -> None:
        """Wake the sleeping loop early: a sooner due time may have been added."""
        self._poked.set()

    async def run(
        self,
        times: Callable[[], Mapping[int, float]],
        *,
        vacuum: Callable[[], Awaitable[object]],
        on_wake: Callable[[], Awaitable[object]],
    ) -> NoReturn:
        """Loop until cancelled; ``times()`` is read afresh before every sleep."""
        next_vacuum = trio.current_time()
        while True:
            if trio.current_time() >= next_vacuum:
                await vacuum()
                next_vacuum = trio.current_time() + VACUUM_INTERVAL
            self._poked = trio.Event()
            wait = sleep_seconds(min(times().values(), default=None), self._now(), MAX_SLEEP)
            with trio.move_on_after(wait):
                await self._poked.wait()
            await on_wake()


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


RemindersMsg: TypeAlias = ScheduleReminder | CancelReminder | ListReminders | CountPending


class ReminderScheduler:
    """Owns the reminder store and delivers reminders when they come due.

    Args:
        inbox: the actor's mailbox receive end.
        path: the sqlite file.
        clock: wall clock for due times and stamps.
        send: ``send(recipient, body)`` stores a helper-event message from `wire.HELPER_SENDER`.
        known: whether an owner still exists (is registered).
        state_dir: the host state directory of an owner (`StatePaths.agent_state_dir`).
        to_hub: where dashboard events go.

    The schedule (id → due time) is kept in memory, loaded from the store on start. One task
    sleeps on trio's clock until the soonest due time (at most `MAX_SLEEP`, then it re-reads
    the wall clock) and is woken early when a sooner reminder is set. Store access is
    serialised by a lock, since that task and the inbox loop share the store.
    """

    def __init__(
        self,
        inbox: Inbox[RemindersMsg],
        *,
        path: Path,
        clock: WallClock,
        send: Callable[[str, str], Awaitable[object]],
        known: Callable[[str], bool],
        state_dir: Callable[[str], Path],
        to_hub: Mailbox[HubMsg],
        limits: Limits | None = None,
        limit_log: LimitLog | None = None,
    ) -> None:
        self._inbox = inbox
        self._limits = limits or Limits()
        self._limit_log = limit_log
        self._path = path
        self._clock = clock
        self._send = send
        self._known = known
        self._state_dir = state_dir
        self._to_hub = to_hub
        self._schedule: dict[int, float] = {}
        self._loop = DueLoop(clock.now)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Open the store, load the schedule, serve until asked to stop, close the store.

        Reminders that came due while the daemon was down fire as soon as it starts.

        Cancellation: a delivery cancelled after its inbox message was stored but before the
        row was marked is delivered again on the next start (at least once).
        """
        store = await trio.to_thread.run_sync(self._open)
        self._lock = trio.Lock()
        try:
            self._schedule = {r.id: r.due_at for r in await self._db(store.pending)}
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._serve_schedule, store)
                task_status.started()
                async for msg in self._inbox:
                    async with self._lock:
                        await self._dispatch(store, msg)
                nursery.cancel_scope.cancel()
        finally:
            store.close()

    def _open(self) -> ReminderStore:
        return ReminderStore(self._path, now=self._clock.now)

    async def _db(self, fn: Callable[..., _R], *args: object) -> _R:
        return await trio.to_thread.run_sync(fn, *args)

    async def _dispatch(self, store: ReminderStore, msg: RemindersMsg) -> None:
        try:
            match msg:
                case ScheduleReminder():
                    msg.reply.send(await self._on_schedule(store, msg))
                case CancelReminder():
                    msg.reply.send(await self._on_cancel(store, msg))
                case ListReminders(owner=owner, delivered=delivered, limit=limit):
                    reminders = await self._db(
                        lambda: store.listing(owner=owner, delivered=delivered, limit=limit)
                    )
                    msg.reply.send(reminders)
                case CountPending():
                    msg.reply.send(await self._db(store.pending_counts))
        except (HyperhiveError, ActorError) as exc:
            # Refusals, store errors and a broker that did not answer fail this call only.
            msg.reply.fail(exc)
        except Exception:
            # A bug, met on one request: that caller is told, the actor keeps serving (a
            # client's input must never count against the supervisor's restart intensity).
            LOGGER.exception("reminder request %s failed", type(msg).__name__)
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
        if await self._db(store.pending_count, msg.owner) >= cap:
            if self._limit_log is not None:
                self._limit_log.hit(msg.owner, "pending_reminders", f"{cap} reminders pending")
            raise LimitReached(
                f"you have {cap} pending reminders (the pending_reminders limit); nothing was "
                "scheduled. Cancel some with cancel_loose_end first"
            )
        reminder = await self._db(store.add, msg.owner, request.message, due_at, request.file_path)
        self._schedule[reminder.id] = due_at
        self._loop.poke()
        publish_nowait(self._to_hub, [wire.ReminderSet(reminder)])
        return reminder

    async def _on_cancel(self, store: ReminderStore, msg: CancelReminder) -> wire.Reminder:
        reminder = await self._db(store.get, msg.id)
        if reminder is None:
            raise NotFound(f"no reminder #{msg.id}; see your loose ends for the pending ones")
        if refusal := cancel_refusal(reminder, msg.by):
            raise NotAllowed(refusal)
        if reminder.state == "delivered":
            raise NotFound(f"reminder #{msg.id} was already delivered; nothing to cancel")
        deleted = await self._db(store.delete_undelivered, msg.id)
        if deleted is None:
            raise NotFound(f"reminder #{msg.id} was already delivered; nothing to cancel")
        self._schedule.pop(msg.id, None)
        publish_nowait(self._to_hub, [wire.ReminderCancelled(msg.id, deleted.owner, msg.by.name)])
        return deleted

    # -- the schedule ------------------------------------------------------------------------

    async def _serve_schedule(self, store: ReminderStore) -> None:
        async def vacuum() -> None:
            async with self._lock:
                await self._db(store.vacuum, RETENTION_SECONDS)

        async def fire_due() -> None:
            for id in due(self._schedule, self._clock.now()):
                await self._fire(store, id)

        await self._loop.run(lambda: self._schedule, vacuum=vacuum, on_wake=fire_due)

    async def _fire(self, store: ReminderStore, id: int) -> None:
        """Deliver reminder `id`. The lock is held only around store calls: writing the file
        into the agent's directory and sending through the broker happen without it, so a slow
        disk or a busy broker never stalls `remind`, `whoami` or loose ends for anyone."""
        async with self._lock:
            reminder = await self._db(store.get, id)
        if reminder is None or reminder.state != "pending":
            self._schedule.pop(id, None)  # cancelled meanwhile
            return
        try:
            event = await self._prepare(reminder)
            await self._send(reminder.owner, wire.encode_helper_event(event))
        except (BadRequest, UnknownAgent) as exc:
            LOGGER.warning("reminder #%d for %s failed: %s", id, reminder.owner, exc)
            failure: str | None = str(exc)
        except (HyperhiveError, ActorError) as exc:
            # The broker did not answer, or the owner's inbox is full: try again later.
            LOGGER.warning("reminder #%d not delivered yet (%s); retrying", id, exc)
            self._schedule[id] = self._clock.now() + RETRY_SECONDS
            return
        except Exception:
            # A bug: retrying would only repeat it every minute, forever. Fail it, once.
            LOGGER.exception("reminder #%d for %s hit an internal error", id, reminder.owner)
            failure = "internal error (logged); the reminder could not be delivered"
        else:
            failure = None
        async with self._lock:
            if failure is None:
                self._publish(await self._db(store.mark_delivered, id), wire.ReminderFired)
            else:
                self._publish(await self._db(store.mark_failed, id, failure), wire.ReminderFailed)
        self._schedule.pop(id, None)

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
        size = await trio.to_thread.run_sync(
            write_state_file, state_dir, relative, reminder.message
        )
        return wire.ReminderDue(
            reminder.id, pointer_line(reminder.id, relative, size), f"{STATE_MOUNT}/{relative}"
        )

    def _publish(
        self,
        reminder: wire.Reminder | None,
        event: type[wire.ReminderFired] | type[wire.ReminderFailed],
    ) -> None:
        if reminder is not None:
            publish_nowait(self._to_hub, [event(reminder)])
