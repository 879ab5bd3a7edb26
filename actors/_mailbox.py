"""Bounded mailboxes with cast (fire and forget) and call (request and reply).

A `Mailbox` outlives the actor that reads it: whoever builds the supervision tree creates it,
hands `mailbox.inbox` to the actor and the mailbox itself to the `ChildSpec`. Messages queued
while the actor restarts are delivered to the next incarnation, in order.

Delivery is at most once: a message the actor has taken and was handling when it crashed is
lost. A `call` in that position does not wait for its timeout; it fails at once with
`ActorCrashed` (or `ActorStopped` when the actor stopped without answering).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

import attrs
import trio

from actors._errors import ActorCrashed, ActorError, ActorStopped, ActorTimeout, MailboxFull
from actors._stats import MailboxStatistics

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["Inbox", "Mailbox", "Reply"]

M = TypeVar("M")
T = TypeVar("T")


class Reply(Generic[T]):
    """The answer slot of one `Mailbox.call`; the actor answers with `send` or `fail`.

    Answering never blocks. Only the first answer counts, and answering after the caller gave
    up is harmless.
    """

    def __init__(self) -> None:
        self._answered = trio.Event()
        self._value: T | None = None
        self._error: BaseException | None = None
        self._on_answer: Callable[[Reply[Any]], None] | None = None
        self._abandoned = False
        self._on_lost: Callable[[T], None] | None = None

    @property
    def answered(self) -> bool:
        """Whether `send` or `fail` has been called."""
        return self._answered.is_set()

    @property
    def abandoned(self) -> bool:
        """Whether the caller stopped waiting (timed out or was cancelled) before an answer.

        An actor holding a request for a long time (a long-poll) checks this before doing work
        whose result only the caller could use, such as handing it messages.
        """
        return self._abandoned

    def send(self, value: T) -> None:
        """Answer the caller with `value` (to its `on_lost`, if it already gave up)."""
        if not self.answered:
            self._value = value
            self._settle()
            if self._abandoned and self._on_lost is not None:
                self._on_lost(value)

    def fail(self, exc: BaseException) -> None:
        """Make the caller's `call` raise `exc`."""
        if not self.answered:
            self._error = exc
            self._settle()

    @property
    def _answered_with_value(self) -> bool:
        return self.answered and self._error is None

    def _settle(self) -> None:
        self._answered.set()
        if self._on_answer is not None:
            self._on_answer(self)
            self._on_answer = None

    async def _wait(self) -> T:
        await self._answered.wait()
        if self._error is not None:
            raise self._error
        return cast("T", self._value)


@attrs.frozen
class _Envelope(Generic[M]):
    message: M
    reply: Reply[Any] | None


class Inbox(Generic[M]):
    """The actor's end of a mailbox. Stateless, so one object serves every incarnation."""

    def __init__(self, mailbox: Mailbox[M]) -> None:
        self._mailbox = mailbox

    def __aiter__(self) -> Inbox[M]:
        return self

    async def __anext__(self) -> M:
        return await self._mailbox._receive()

    def receive_nowait(self) -> M:
        """The next queued message without waiting, for actors that drain a batch at once.

        Raises `trio.WouldBlock` when nothing is queued or a stop was requested (the next
        ``async for`` step then ends the loop).
        """
        return self._mailbox._receive_nowait()


class Mailbox(Generic[M]):
    """A bounded queue of messages for one actor, with a stop flag its supervisor sets.

    `size` bounds the queue: once it holds `size` messages, `cast` waits (backpressure) and
    `cast_nowait` raises `MailboxFull`. Pick the smallest size that absorbs normal bursts.
    """

    def __init__(self, name: str, size: int = 64) -> None:
        if size < 1:
            raise ValueError(f"mailbox {name!r}: size must be >= 1, not {size}")
        self.name = name
        self._to_actor, self._from_senders = trio.open_memory_channel[_Envelope[M]](size)
        self._inbox = Inbox(self)
        self._stop_requested = False
        self._receivers: set[trio.CancelScope] = set()
        self._unanswered: set[Reply[Any]] = set()
        self._last_taken_at: float | None = None
        self._taken = 0

    def __repr__(self) -> str:
        stats = self.statistics()
        return f"<Mailbox {self.name!r} {stats.depth}/{stats.capacity}>"

    @property
    def inbox(self) -> Inbox[M]:
        """What the actor reads: ``async for msg in inbox:``.

        The loop ends when the supervisor calls `request_stop`, even if it is waiting for a
        message at that moment, so a well-behaved actor simply returns from ``run``. The
        same object works for every incarnation of the actor.
        """
        return self._inbox

    async def cast(self, msg: M) -> None:
        """Queue `msg` for the actor, waiting while the mailbox is full.

        Cancellation: safe; if cancelled, `msg` was not queued.
        """
        await self._to_actor.send(_Envelope(msg, None))

    def cast_nowait(self, msg: M) -> None:
        """Queue `msg` without waiting; raise `MailboxFull` if there is no room."""
        try:
            self._to_actor.send_nowait(_Envelope(msg, None))
        except trio.WouldBlock:
            raise MailboxFull(self.name) from None

    # A per-call timeout is part of the request contract (gen_server:call has one too): it
    # names the actor in ActorTimeout, where a caller's own cancel scope could not.
    async def call(
        self,
        make: Callable[[Reply[T]], M],
        *,
        timeout: float = 5.0,  # noqa: ASYNC109
        on_lost: Callable[[T], None] | None = None,
    ) -> T:
        """Send ``make(reply)`` and return what the actor passes to ``reply.send``.

        `timeout` covers both queueing and waiting. Raises `ActorTimeout` when it runs out,
        whatever the actor raised via ``reply.fail``, `ActorCrashed` as soon as the actor dies
        holding the request, and `ActorStopped` if it stops without answering.

        Cancellation: safe; the request may still be queued and handled, its answer dropped.
        An answer that reaches no one, because the call was cancelled or timed out just as it
        arrived or before it arrived, is passed to `on_lost` (from the actor's `reply.send`, in
        the second case), so a caller holding something that must be given back (say,
        messages leased to it) can give it back.
        """
        reply: Reply[T] = Reply()
        reply._on_lost = on_lost
        # move_on_after rather than fail_after: a TooSlowError the actor sends back through
        # reply.fail must reach the caller as itself, not as our timeout.
        received = False
        try:
            with trio.move_on_after(timeout):
                await self._to_actor.send(_Envelope(make(reply), reply))
                value = await reply._wait()
                received = True
                return value
        finally:
            reply._abandoned = not reply.answered
            if on_lost is not None and not received and reply._answered_with_value:
                on_lost(cast("T", reply._value))
        raise ActorTimeout(self.name, timeout)

    def request_stop(self) -> None:
        """Make the actor's inbox loop end, waking a receive in progress. Idempotent."""
        self._stop_requested = True
        for scope in self._receivers:
            scope.cancel(reason=f"mailbox {self.name!r} asked to stop")

    def statistics(self) -> MailboxStatistics:
        """A snapshot of how full the mailbox is and when its actor last took a message."""
        stats = self._to_actor.statistics()
        return MailboxStatistics(
            self.name,
            stats.current_buffer_used,
            int(stats.max_buffer_size),
            self._last_taken_at,
            self._taken,
        )

    # The supervisor calls these two around each incarnation of the actor.

    def _reset(self) -> None:
        self._stop_requested = False

    def _actor_exited(self, error: BaseException | None) -> None:
        pending = list(self._unanswered)
        self._unanswered.clear()
        for reply in pending:
            reply.fail(self._exit_error(error))

    def _exit_error(self, error: BaseException | None) -> ActorError:
        if error is None:
            return ActorStopped(self.name)
        crashed = ActorCrashed(self.name, error)
        crashed.__cause__ = error
        return crashed

    async def _receive(self) -> M:
        if self._stop_requested:
            await trio.lowlevel.checkpoint()
            raise StopAsyncIteration
        envelope = await self._receive_or_stop()
        if envelope is None:
            raise StopAsyncIteration
        return self._taken_now(envelope)

    def _receive_nowait(self) -> M:
        if self._stop_requested:
            raise trio.WouldBlock
        return self._taken_now(self._from_senders.receive_nowait())

    def _taken_now(self, envelope: _Envelope[M]) -> M:
        self._last_taken_at = trio.current_time()
        self._taken += 1
        if envelope.reply is not None and not envelope.reply.answered:
            self._unanswered.add(envelope.reply)
            envelope.reply._on_answer = self._unanswered.discard
        return envelope.message

    async def _receive_or_stop(self) -> _Envelope[M] | None:
        # Cancelling this scope loses nothing: a memory channel's receive is cancel-safe.
        with trio.CancelScope() as scope:
            self._receivers.add(scope)
            try:
                return await self._from_senders.receive()
            finally:
                self._receivers.discard(scope)
        return None
