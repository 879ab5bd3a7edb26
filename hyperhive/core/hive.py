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

from actors import ChildStatistics, MailboxFull, SupervisorStatistics
from hyperhive import wire
from hyperhive.core import broker, events
from hyperhive.errors import BadRequest

if TYPE_CHECKING:
    from collections.abc import Callable

    from actors import ChildSpec, Mailbox, Supervisor
    from hyperhive.clock import WallClock
    from hyperhive.config import StatePaths
    from hyperhive.core.broker_store import BrokerStore
    from hyperhive.core.registry import AgentRegistry

__all__ = ["CALL_TIMEOUT", "Hive", "actor_info"]

_T = TypeVar("_T")
# Generous: a call waits behind one group commit (an fsync) at worst, but a loaded disk can
# stall for seconds and a false timeout is worse than a slow answer.
CALL_TIMEOUT = 30.0


@attrs.define
class Hive:
    """What a running daemon exposes to its surfaces."""

    paths: StatePaths
    clock: WallClock
    started_at: float
    registry: AgentRegistry
    to_broker: Mailbox[broker.BrokerMsg]
    to_hub: Mailbox[events.HubMsg]
    root: Supervisor | None = None
    listeners: Supervisor | None = None
    agent_listener: Callable[[str], ChildSpec] | None = None

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
        """Store a message durably; returns once it is committed."""
        return await self.to_broker.call(
            lambda reply: broker.SendMessage(sender, recipient, body, reply),
            timeout=CALL_TIMEOUT,
        )

    async def recv(
        self, recipient: str, *, max: int = 1, wait_seconds: float = 0.0
    ) -> tuple[wire.Delivery, ...]:
        """Up to `max` messages, waiting up to `wait_seconds` for the first (both capped)."""
        if max < 1 or wait_seconds < 0:
            raise BadRequest("recv needs max >= 1 and wait_seconds >= 0")
        max = min(max, broker.MAX_RECV)
        wait_seconds = min(wait_seconds, broker.MAX_WAIT_SECONDS)
        return await self.to_broker.call(
            lambda reply: broker.Receive(recipient, max, wait_seconds, reply),
            timeout=wait_seconds + CALL_TIMEOUT,
        )

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

    # -- agents -------------------------------------------------------------------------------

    async def register_agent(self, name: str) -> bool:
        """Register `name` and start its socket listener; False if it already existed."""
        assert self.listeners is not None
        assert self.agent_listener is not None
        created = self.registry.register(name)
        if created:
            await self.listeners.start_child(self.agent_listener(name))
            self.publish(wire.AgentRegistered(name))
        return created

    async def unregister_agent(self, name: str) -> None:
        """Stop `name`'s listener and forget it; its stored messages stay."""
        assert self.listeners is not None
        assert self.agent_listener is not None
        self.registry.unregister(name)
        await self.listeners.terminate_child(self.agent_listener(name).id)
        self.publish(wire.AgentUnregistered(name))


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
