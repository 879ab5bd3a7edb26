"""The handle every surface (sockets, dashboard, TUI, MCP) uses to reach the hive.

Surfaces call methods here; the methods call actors through their mailboxes. Nothing outside an
actor touches its state, and no surface decides anything a sibling surface would decide
differently: identity checks live in `hyperhive.core.surfaces`, the rules live here and in the
actors.
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from actors import ChildStatistics, MailboxFull, Reply, SupervisorStatistics
from hyperhive import __version__, wire
from hyperhive.core import broker, events, loose_ends, questions, reminders
from hyperhive.core.limits import Limits
from hyperhive.errors import BadRequest, HyperhiveError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from actors import ChildSpec, Mailbox, Supervisor
    from hyperhive.clock import WallClock
    from hyperhive.config import StatePaths
    from hyperhive.core.broker_store import BrokerStore
    from hyperhive.core.lifecycle import Lifecycle
    from hyperhive.core.limits import LimitLog
    from hyperhive.core.listener import Identity
    from hyperhive.core.registry import AgentRecord, AgentRegistry

__all__ = ["CALL_TIMEOUT", "Hive", "actor_info"]

_T = TypeVar("_T")
# Generous: a call waits behind one group commit (an fsync) at worst, but a loaded disk can
# stall for seconds and a false timeout is worse than a slow answer.
CALL_TIMEOUT = 30.0
# For calls into an actor that itself calls the broker before answering.
_CHAINED_TIMEOUT = 2 * CALL_TIMEOUT


@attrs.define
class Hive:
    """What a running daemon exposes to its surfaces."""

    paths: StatePaths
    clock: WallClock
    started_at: float
    registry: AgentRegistry
    to_broker: Mailbox[broker.BrokerMsg]
    to_hub: Mailbox[events.HubMsg]
    to_questions: Mailbox[questions.QuestionsMsg]
    to_reminders: Mailbox[reminders.RemindersMsg]
    root: Supervisor | None = None
    listeners: Supervisor | None = None
    agent_listener: Callable[[str], ChildSpec] | None = None
    operator_pronouns: str = "they/them"
    # The lifecycle actions (spawn, start, stop, ... destroy): hyperhive/core/lifecycle.py.
    lifecycle: Lifecycle | None = None
    limits: Limits = attrs.Factory(Limits)
    # Who hit which limit lately (docs/limits.md); the daemon sets it.
    limit_log: LimitLog | None = None

    def notes(self, name: str) -> tuple[str, ...]:
        """What the operator should know about agent `name` (its `list` row's notes)."""
        return () if self.limit_log is None else self.limit_log.notes(name)

    # -- status -------------------------------------------------------------------------------

    def status(self) -> wire.StatusReply:
        """The live actor tree with every actor's statistics."""
        assert self.root is not None
        return wire.StatusReply(
            pid=os.getpid(),
            state_dir=str(self.paths.root),
            uptime_seconds=max(0.0, self.clock.now() - self.started_at),
            tree=actor_info(self.root.statistics()),
        )

    # -- messages -----------------------------------------------------------------------------

    async def send(self, sender: str, recipient: str, body: str) -> wire.Message:
        """Store a message durably; returns once it is committed.

        Raises:
            UnknownAgent: no such recipient (nothing was stored).
            BadRequest: the body cannot be stored as text.
        """
        (result,) = await self.send_many(sender, [(recipient, body)])
        if isinstance(result, HyperhiveError):
            raise result
        return result

    async def send_many(
        self, sender: str, items: Sequence[tuple[str, str]]
    ) -> list[wire.Message | HyperhiveError]:
        """Store `(recipient, body)` items in order, in one commit; one result per item."""
        return await self.to_broker.call(
            lambda reply: broker.SendMessages(sender, tuple(items), reply),
            timeout=CALL_TIMEOUT,
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
        (without blocking) if the recv has to wait.
        """
        # Written so that NaN (which Python's json accepts) fails the check too.
        if not (max >= 1 and wait_seconds >= 0):
            raise BadRequest("recv needs max >= 1 and wait_seconds >= 0")
        max = min(max, broker.MAX_RECV)
        wait_seconds = min(wait_seconds, broker.MAX_WAIT_SECONDS)
        return await self.to_broker.call(
            lambda reply: broker.Receive(recipient, max, wait_seconds, reply, alive, on_park),
            timeout=wait_seconds + CALL_TIMEOUT,
            on_lost=lambda deliveries: self._release_nowait(recipient, deliveries),
        )

    async def release(self, recipient: str, deliveries: Sequence[wire.Delivery]) -> int:
        """Give back deliveries that never reached their client (uncounted, back to pending)."""
        ids = tuple(d.id for d in deliveries)
        return await self.to_broker.call(
            lambda reply: broker.Release(recipient, ids, reply), timeout=CALL_TIMEOUT
        )

    def _release_nowait(self, recipient: str, deliveries: Sequence[wire.Delivery]) -> None:
        # Runs inside a cancelled call, so it must not block; a full broker mailbox leaves the
        # messages in flight, where the next requeue_inflight still finds them.
        if deliveries:
            with contextlib.suppress(MailboxFull):
                ids = tuple(d.id for d in deliveries)
                self.to_broker.cast_nowait(broker.Release(recipient, ids, Reply()))

    async def ack_turn(self, recipient: str) -> int:
        """Ack everything delivered to `recipient` and not yet acked."""
        return await self.to_broker.call(
            lambda reply: broker.AckTurn(recipient, reply), timeout=CALL_TIMEOUT
        )

    async def requeue_inflight(self, recipient: str) -> int:
        """Put `recipient`'s unacked deliveries back, to be redelivered flagged."""
        return await self.to_broker.call(
            lambda reply: broker.RequeueInflight(recipient, reply), timeout=CALL_TIMEOUT
        )

    async def operate(self, action: Callable[[BrokerStore], _T]) -> _T:
        """Run a store operation on the broker's thread (reads and admin writes)."""
        result: Any = await self.to_broker.call(
            lambda reply: broker.Operate(action, reply), timeout=CALL_TIMEOUT
        )
        return result  # type: ignore[no-any-return]

    # -- events -------------------------------------------------------------------------------

    async def history(self, limit: int) -> wire.HistoryReply:
        """The hub's remembered events and the seq they are current to."""
        return await self.to_hub.call(
            lambda reply: events.ReadHistory(limit, reply), timeout=CALL_TIMEOUT
        )

    async def subscribe(self) -> events.Subscriber:
        """A live feed of every event from now on."""
        return await self.to_hub.call(lambda reply: events.Subscribe(reply), timeout=CALL_TIMEOUT)

    def unsubscribe(self, subscriber: events.Subscriber) -> None:
        """Stop feeding `subscriber` (never blocks)."""
        # A full hub will drop the subscriber's events anyway; it is collected on a later try.
        with contextlib.suppress(MailboxFull):
            self.to_hub.cast_nowait(events.Unsubscribe(subscriber))

    def publish(self, *payloads: wire.EventPayload) -> None:
        """Publish events without blocking."""
        events.publish_nowait(self.to_hub, payloads)

    # -- questions, reminders, loose ends (docs/questions.md, docs/reminders.md) --------------

    async def ask(self, asker: str, request: wire.Ask) -> wire.Question:
        """Store `asker`'s question; a peer target is told at once. Returns the stored row."""
        return await self.to_questions.call(
            lambda reply: questions.AskQuestion(asker, request, reply), timeout=_CHAINED_TIMEOUT
        )

    async def answer(self, by: Identity, id: int, answer: str) -> wire.Question:
        """Answer question `id` as `by` (refused unless `by` may); the asker is told."""
        return await self.to_questions.call(
            lambda reply: questions.AnswerQuestion(id, answer, by, reply),
            timeout=_CHAINED_TIMEOUT,
        )

    async def operator_questions(self, *, answered: bool, limit: int) -> list[wire.Question]:
        """The operator's open questions, or its recently answered ones. Never peer questions."""
        return await self.to_questions.call(
            lambda reply: questions.ListOperatorQuestions(answered, limit, reply),
            timeout=CALL_TIMEOUT,
        )

    async def remind(self, owner: str, request: wire.Remind) -> wire.Reminder:
        """Schedule a reminder for `owner`; returns the stored row with its due time."""
        return await self.to_reminders.call(
            lambda reply: reminders.ScheduleReminder(owner, request, reply), timeout=CALL_TIMEOUT
        )

    async def list_reminders(
        self, *, owner: str | None = None, delivered: bool = False, limit: int = 200
    ) -> list[wire.Reminder]:
        """Pending and failed reminders (and delivered ones if asked), one owner's or all."""
        return await self.to_reminders.call(
            lambda reply: reminders.ListReminders(owner, delivered, limit, reply),
            timeout=CALL_TIMEOUT,
        )

    async def pending_reminder_counts(self) -> dict[str, int]:
        """Pending reminders per owner (the dashboard's per-agent count); absent means 0."""
        return await self.to_reminders.call(reminders.CountPending, timeout=CALL_TIMEOUT)

    async def loose_ends(self, who: Identity) -> wire.LooseEnds:
        """`who`'s open questions and pending or failed reminders; hive-wide for the manager."""
        name = loose_ends.scope(who)
        open_questions: list[wire.Question] = await self.to_questions.call(
            lambda reply: questions.ListOpenQuestions(name, reply), timeout=CALL_TIMEOUT
        )
        undelivered = await self.list_reminders(owner=name, limit=1000)
        return loose_ends.assemble(open_questions, undelivered)

    async def cancel_loose_end(self, by: Identity, kind: str, id: int) -> None:
        """Cancel a question (answered `[cancelled by <name>]`) or an undelivered reminder."""
        if loose_ends.cancel_kind(kind) == "question":
            await self.to_questions.call(
                lambda reply: questions.CancelQuestion(id, by, reply), timeout=_CHAINED_TIMEOUT
            )
        else:
            await self.to_reminders.call(
                lambda reply: reminders.CancelReminder(id, by, reply), timeout=CALL_TIMEOUT
            )

    async def whoami(self, who: Identity) -> wire.WhoamiReply:
        """The caller's name and role, the operator's pronouns, the version, its reminders."""
        counts = await self.pending_reminder_counts()
        return wire.WhoamiReply(
            name=who.name,
            role=who.role,
            pronouns=self.operator_pronouns,
            hyperhive_version=__version__,
            pending_reminders=counts.get(who.name, 0),
        )

    # -- agents -------------------------------------------------------------------------------

    async def register_agent(self, name: str, record: AgentRecord | None = None) -> bool:
        """Register `name` and start its socket listener; False if it already existed."""
        assert self.listeners is not None
        assert self.agent_listener is not None
        created = self.registry.register(name, record)
        if created:
            await self.listeners.start_child(self.agent_listener(name))
            self.publish(wire.AgentRegistered(name))
        return created


def actor_info(stats: ChildStatistics | SupervisorStatistics) -> wire.ActorInfo:
    """The wire form of an actors statistics snapshot (recursively for supervisors)."""
    if isinstance(stats, SupervisorStatistics):
        return wire.ActorInfo(
            id=stats.id,
            kind="supervisor",
            state=stats.state,
            restarts=stats.restarts,
            last_error=stats.last_error,
            strategy=stats.strategy,
            children=tuple(actor_info(child) for child in stats.children),
        )
    return wire.ActorInfo(
        id=stats.id,
        kind="actor",
        state=stats.state,
        restarts=stats.restarts,
        last_error=stats.last_error,
        queue_depth=stats.queue_depth,
        queue_capacity=stats.queue_capacity,
    )
