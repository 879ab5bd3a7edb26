"""What surfaces hold to reach the broker (`MessagesHandle`), and the broker's vacuum actor.

`MessagesHandle` has one typed method per message the broker takes (`hyperhive.core.broker`),
so no surface builds a broker message or touches the store. `BrokerVacuum` is the hourly sweep
of acked messages as an actor of its own: its timer posts a tick into its mailbox, and each
tick asks the broker to delete what aged out.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING

import attrs
import trio

from actors import ActorError, ActorStatistics, MailboxFull, Reply
from hyperhive.core.broker import (
    MAX_RECV,
    MAX_WAIT_SECONDS,
    Ack,
    BrokerMsg,
    CountMail,
    DropDead,
    ListDeadLetters,
    ReadInbox,
    ReadInflight,
    ReadPending,
    ReadPendingPage,
    ReadRecent,
    Receive,
    Release,
    ReplayDead,
    Requeue,
    Resume,
    SendMessages,
    Vacuum,
)
from hyperhive.errors import BadRequest, HyperhiveError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from actors import Mailbox
    from hyperhive import wire

__all__ = [
    "CALL_TIMEOUT",
    "RETENTION_SECONDS",
    "VACUUM_INTERVAL",
    "BrokerVacuum",
    "MessagesHandle",
    "VacuumTick",
]

LOGGER = logging.getLogger("hyperhive.broker")
# Generous: a call waits behind one group commit (an fsync) at worst, but a loaded disk can
# stall for seconds and a false timeout is worse than a slow answer.
CALL_TIMEOUT = 30.0


class MessagesHandle:
    """What surfaces hold to reach the broker: one typed method per message it takes."""

    def __init__(self, mailbox: Mailbox[BrokerMsg]) -> None:
        self._mailbox = mailbox

    async def send(self, sender: str, recipient: str, body: str) -> wire.Message:
        """Store a message durably; returns once it is committed.

        Raises:
            UnknownAgent: no such recipient (nothing was stored).
            LimitReached, BadRequest: refused (nothing was stored); the text says why.
        """
        (result,) = await self.send_many(sender, [(recipient, body)])
        if isinstance(result, HyperhiveError):
            raise result
        return result

    async def send_many(
        self, sender: str, items: Sequence[tuple[str, str]]
    ) -> list[wire.Message | HyperhiveError]:
        """Store `(recipient, body)` items in order, in one commit; one result per item."""
        return await self._mailbox.call(
            lambda reply: SendMessages(sender, tuple(items), reply), timeout=CALL_TIMEOUT
        )

    async def recv(
        self,
        recipient: str,
        *,
        max: int = 1,
        wait_seconds: float = 0.0,
        alive: Callable[[], bool] = lambda: True,
        on_park: Callable[[], None] = lambda: None,
    ) -> tuple[wire.Delivery, ...]:
        """Up to `max` messages, waiting up to `wait_seconds` for the first (both capped).

        `alive` tells the broker whether the caller can still take mail; a parked recv whose
        caller is gone is answered empty instead of being handed messages. `on_park` is called
        (without blocking) if the recv has to wait. Deliveries that reach no caller (it was
        cancelled just then) are released back to pending.
        """
        # Written so that NaN (which Python's json accepts) fails the check too.
        if not (max >= 1 and wait_seconds >= 0):
            raise BadRequest("recv needs max >= 1 and wait_seconds >= 0")
        max = min(max, MAX_RECV)
        wait_seconds = min(wait_seconds, MAX_WAIT_SECONDS)
        return await self._mailbox.call(
            lambda reply: Receive(recipient, max, wait_seconds, reply, alive, on_park),
            timeout=wait_seconds + CALL_TIMEOUT,
            on_lost=lambda deliveries: self._release_nowait(recipient, deliveries),
        )

    async def release(self, recipient: str, deliveries: Sequence[wire.Delivery]) -> int:
        """Give back deliveries that never reached their client (uncounted, back to pending)."""
        ids = tuple(d.id for d in deliveries)
        return await self._mailbox.call(
            lambda reply: Release(recipient, ids, reply), timeout=CALL_TIMEOUT
        )

    def _release_nowait(self, recipient: str, deliveries: Sequence[wire.Delivery]) -> None:
        # Runs inside a cancelled call, so it must not block; a full broker mailbox leaves the
        # messages in flight, where the next requeue_inflight still finds them.
        if deliveries:
            with contextlib.suppress(MailboxFull):
                ids = tuple(d.id for d in deliveries)
                self._mailbox.cast_nowait(Release(recipient, ids, Reply()))

    async def ack_turn(self, recipient: str) -> int:
        """Ack everything delivered to `recipient` and not yet acked."""
        return await self._mailbox.call(lambda reply: Ack(recipient, reply), timeout=CALL_TIMEOUT)

    async def requeue_inflight(self, recipient: str) -> int:
        """Put `recipient`'s unacked deliveries back, to be redelivered flagged."""
        return await self._mailbox.call(
            lambda reply: Requeue(recipient, reply), timeout=CALL_TIMEOUT
        )

    async def operator_inbox(self, limit: int) -> list[wire.Message]:
        """The newest `limit` messages to the operator, newest first."""
        return await self._mailbox.call(lambda reply: ReadInbox(limit, reply), timeout=CALL_TIMEOUT)

    async def recent(self, limit: int) -> list[wire.Message]:
        """The newest `limit` messages between anyone, newest first (the dashboard's flow)."""
        return await self._mailbox.call(
            lambda reply: ReadRecent(limit, reply), timeout=CALL_TIMEOUT
        )

    async def pending(self, recipient: str, limit: int = 100) -> list[wire.Delivery]:
        """`recipient`'s oldest `limit` messages not yet delivered (nothing is taken)."""
        return await self._mailbox.call(
            lambda reply: ReadPending(recipient, limit, reply), timeout=CALL_TIMEOUT
        )

    async def inflight(self, recipient: str) -> list[wire.Delivery]:
        """`recipient`'s delivered, unacked messages, oldest first (diagnostics)."""
        return await self._mailbox.call(
            lambda reply: ReadInflight(recipient, reply), timeout=CALL_TIMEOUT
        )

    async def pending_page(self, recipient: str, limit: int) -> tuple[list[wire.Message], int]:
        """`recipient`'s oldest `limit` waiting messages, and how many wait in all."""
        return await self._mailbox.call(
            lambda reply: ReadPendingPage(recipient, limit, reply), timeout=CALL_TIMEOUT
        )

    async def mail_counts(self) -> dict[str, tuple[int, int]]:
        """(pending, in flight) message counts per recipient (absent: none)."""
        return await self._mailbox.call(CountMail, timeout=CALL_TIMEOUT)

    def resume(self, recipient: str) -> None:
        """`recipient` was resumed: its waiting recvs answer now (never blocks; a full broker
        mailbox leaves them to their next poll)."""
        with contextlib.suppress(MailboxFull):
            self._mailbox.cast_nowait(Resume(recipient))

    async def dead_letters(self, recipient: str | None = None) -> list[wire.DeadLetter]:
        """Dead letters, oldest first, for one recipient or all."""
        return await self._mailbox.call(
            lambda reply: ListDeadLetters(recipient, reply), timeout=CALL_TIMEOUT
        )

    async def replay_dead(self, id: int) -> wire.Message:
        """Put dead letter `id` back in its recipient's inbox (StoreError if it is none)."""
        return await self._mailbox.call(lambda reply: ReplayDead(id, reply), timeout=CALL_TIMEOUT)

    async def drop_dead(self, id: int) -> None:
        """Delete dead letter `id` for good (StoreError if it is none)."""
        await self._mailbox.call(lambda reply: DropDead(id, reply), timeout=CALL_TIMEOUT)

    async def vacuum(self, older_than: float) -> int:
        """Delete messages acked more than `older_than` seconds ago; returns how many."""
        return await self._mailbox.call(
            lambda reply: Vacuum(older_than, reply), timeout=CALL_TIMEOUT
        )


# Retention of acked messages (the seeds' hourly vacuum of acked > 30 days).
VACUUM_INTERVAL = 3600.0
RETENTION_SECONDS = 30 * 86400.0


@attrs.frozen
class VacuumTick:
    """The broker vacuum's timer: time for a sweep."""


class BrokerVacuum:
    """The hourly sweep of acked messages, as an actor: its timer posts `VacuumTick` into its
    own mailbox, and each tick asks the broker (`Vacuum`) to delete what aged out.

    Unacked, inflight and dead rows are never touched. Runs on trio's clock without drift.
    Accepts: `VacuumTick`.
    """

    def __init__(
        self,
        mailbox: Mailbox[VacuumTick],
        messages: MessagesHandle,
        *,
        interval: float = VACUUM_INTERVAL,
        retention: float = RETENTION_SECONDS,
    ) -> None:
        self._mailbox = mailbox
        self._messages = messages
        self._interval = interval
        self._retention = retention
        self._removed = 0
        self._last_error: str | None = None

    def statistics(self) -> ActorStatistics:
        return ActorStatistics.of(
            self._mailbox.statistics(), last_error=self._last_error, removed=self._removed
        )

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._tick)
            task_status.started()
            async for _ in self._mailbox.inbox:
                await self._sweep()
            nursery.cancel_scope.cancel()

    async def _tick(self) -> None:
        next_run = trio.current_time() + self._interval
        while True:
            await trio.sleep_until(next_run)
            with contextlib.suppress(MailboxFull):
                self._mailbox.cast_nowait(VacuumTick())
            next_run += self._interval

    async def _sweep(self) -> None:
        try:
            removed = await self._messages.vacuum(self._retention)
        except (HyperhiveError, ActorError) as exc:
            self._last_error = repr(exc)
            LOGGER.warning("vacuum failed (%s); the next one tries again", exc)
            return
        self._removed += removed
        if removed:
            LOGGER.info(
                "vacuum removed %d acked message(s) older than %ds", removed, self._retention
            )
