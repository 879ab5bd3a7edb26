"""The crash watch actor: an agent that stops without an operator action is reported.

Backends push every exit of an agent onto their exit channel (bwrap and process agents are the
daemon's children, so the exit arrives the moment it happens; nixos polls its units). Crash watch
decides, with `is_crash`, whether nobody asked for it: not a stop, kill, restart, rebuild or
destroy (the backend marks those `requested`), and no operator action in flight on that agent
(the lifecycle's transient state). A crash becomes:

- a `ContainerCrash` helper event in the manager's inbox (a durable broker message from
  `hive`), so the manager can look at it and decide what to do;
- a `ContainerCrashed` dashboard event;
- a rescan of that agent, so its row turns `crashed`;
- a note to the approvals actor (`on_crash`), which rolls back a deploy that crash-loops.

Crashed agents are not restarted here: the manager or the operator decides (within a fresh
deploy's crash-loop window the approvals actor restarts it, docs/approvals.md). The daemon log gets
the name and exit status only, never the agent's output (it may hold secrets).

Accepts: `AgentExited` (the backend's exit channel). Emits: `ContainerCrashed` (hub), the
`ContainerCrash` helper event (broker, to the manager).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import trio

from actors import ActorError, ActorStatistics
from hyperhive import wire
from hyperhive.core.registry import MANAGER
from hyperhive.errors import HyperhiveError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from hyperhive.containers.base import AgentExited
    from hyperhive.core.events import EventsHandle
    from hyperhive.core.messages import MessagesHandle

__all__ = ["CrashWatch", "is_crash"]

LOGGER = logging.getLogger("hyperhive.crash_watch")


def is_crash(exited: AgentExited, transient: str | None) -> bool:
    """Whether an exit is a crash: nobody asked for it and no operator action is in flight."""
    return not exited.requested and transient is None


class CrashWatch:
    """Turns unrequested agent exits into reports (see the module docstring).

    `transient` asks the agents actor for the action in flight, in the order of its mailbox,
    so an exit after an action's last step is judged once that step is done; its queue is the
    backend's exit channel.
    """

    def __init__(
        self,
        exits: trio.MemoryReceiveChannel[AgentExited],
        *,
        transient: Callable[[str], Awaitable[str | None]],
        messages: MessagesHandle,
        events: EventsHandle,
        on_change: Callable[[str], None],
        on_crash: Callable[[str], None] = lambda name: None,
    ) -> None:
        self._exits = exits
        self._on_crash = on_crash
        self._transient = transient
        self._messages = messages
        self._events = events
        self._on_change = on_change
        self.reported = 0
        self._seen = 0
        self._last_exit_at: float | None = None
        self._last_error: str | None = None

    def statistics(self) -> ActorStatistics:
        """Exits waiting, when the last one came, crashes reported."""
        channel = self._exits.statistics()
        return ActorStatistics(
            channel.current_buffer_used,
            int(channel.max_buffer_size) if channel.max_buffer_size != float("inf") else None,
            self._last_exit_at,
            self._last_error,
            {"exits": self._seen, "reported": self.reported},
        )

    async def run(self, *, task_status: trio.TaskStatus[None]) -> None:
        task_status.started()
        async for exited in self._exits:
            self._seen += 1
            self._last_exit_at = trio.current_time()
            await self._on_exited(exited)

    async def _on_exited(self, exited: AgentExited) -> None:
        self._on_change(exited.name)
        try:
            transient = await self._transient(exited.name)
        except ActorError as exc:
            self._last_error = repr(exc)
            transient = None  # the agents actor did not answer: judge the exit on its own
        if not is_crash(exited, transient):
            return
        self.reported += 1
        self._on_crash(exited.name)
        kind = "failed to set up its sandbox" if exited.setup_failed else "crashed"
        LOGGER.warning("agent %s %s (exit status %s)", exited.name, kind, exited.exit_code)
        self._events.publish(wire.ContainerCrashed(exited.name, exited.exit_code, exited.detail))
        event = wire.ContainerCrash(exited.name, exited.exit_code, exited.detail)
        try:
            await self._messages.send(wire.HELPER_SENDER, MANAGER, wire.encode_helper_event(event))
        except (HyperhiveError, ActorError) as exc:
            self._last_error = repr(exc)
            LOGGER.error("could not tell the manager that %s crashed: %s", exited.name, exc)
