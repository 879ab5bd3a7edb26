"""The crash watch actor: an agent that stops without an operator action is reported.

Backends push every exit of an agent onto their exit channel (bwrap and process agents are the
daemon's children, so the exit arrives the moment it happens; nixos polls its units). Crash watch
decides, with `is_crash`, whether nobody asked for it: not a stop, kill, restart, rebuild or
destroy (the backend marks those `requested`), and no operator action in flight on that agent
(the lifecycle's transient state). A crash becomes:

- a `ContainerCrash` helper event in the manager's inbox (a durable broker message from
  `hive`), so the manager can look at it and decide what to do;
- a `ContainerCrashed` dashboard event;
- a rescan of that agent, so its row turns `crashed`.

Crashed agents are not restarted here: the manager or the operator decides. The daemon log gets
the name and exit status only, never the agent's output (it may hold secrets).

Accepts: `AgentExited` (the backend's exit channel). Emits: `ContainerCrashed` (hub), the
`ContainerCrash` helper event (broker, to the manager).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from hyperhive import wire
from hyperhive.core.registry import MANAGER
from hyperhive.errors import HyperhiveError

if TYPE_CHECKING:
    from collections.abc import AsyncIterable, Awaitable, Callable

    import trio

    from hyperhive.containers.base import AgentExited

__all__ = ["CrashWatch", "is_crash"]

LOGGER = logging.getLogger("hyperhive.crash_watch")


def is_crash(exited: AgentExited, transient: str | None) -> bool:
    """Whether an exit is a crash: nobody asked for it and no operator action is in flight."""
    return not exited.requested and transient is None


class CrashWatch:
    """Turns unrequested agent exits into reports (see the module docstring)."""

    def __init__(
        self,
        exits: AsyncIterable[AgentExited],
        *,
        transient: Callable[[str], str | None],
        send: Callable[[str, str, str], Awaitable[object]],
        publish: Callable[[wire.EventPayload], None],
        on_change: Callable[[str], None],
    ) -> None:
        self._exits = exits
        self._transient = transient
        self._send = send
        self._publish = publish
        self._on_change = on_change
        self.reported = 0

    async def run(self, *, task_status: trio.TaskStatus[None]) -> None:
        task_status.started()
        async for exited in self._exits:
            await self._on_exited(exited)

    async def _on_exited(self, exited: AgentExited) -> None:
        self._on_change(exited.name)
        if not is_crash(exited, self._transient(exited.name)):
            return
        self.reported += 1
        kind = "failed to set up its sandbox" if exited.setup_failed else "crashed"
        LOGGER.warning("agent %s %s (exit status %s)", exited.name, kind, exited.exit_code)
        self._publish(wire.ContainerCrashed(exited.name, exited.exit_code, exited.detail))
        event = wire.ContainerCrash(exited.name, exited.exit_code, exited.detail)
        try:
            await self._send(wire.HELPER_SENDER, MANAGER, wire.encode_helper_event(event))
        except HyperhiveError as exc:
            LOGGER.error("could not tell the manager that %s crashed: %s", exited.name, exc)
