"""The container rows of the agents (`wire.ContainerView`), for the agents actor's views.

A row joins the agent's record, the backend's status, the action in flight, the agent's own
small files (its harness's report among them) and disk use (`hyperhive.core.container_view`),
its pending reminders, its pending and in-flight mail, what it said it is doing (`StatusBoard`),
whether an approved config of it waits to be deployed (`DeployBoard`) and the limits it hit
lately. Building one waits on the backend, the reminder scheduler and blocking
file reads (through the `Offload`), so the agents actor runs it in a child task, from a
snapshot of its records and transient actions: never in its own task.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

import attrs
import trio

from actors import ActorError
from hyperhive.containers.base import AgentState, AgentStatus
from hyperhive.containers.disk import DiskMeter
from hyperhive.containers.sandbox import load_sandbox_settings
from hyperhive.core import container_view
from hyperhive.errors import ConfigError, HyperhiveError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from hyperhive import wire
    from hyperhive.clock import WallClock
    from hyperhive.config import StatePaths
    from hyperhive.containers.base import ContainerBackend
    from hyperhive.containers.settings import ContainerSettings
    from hyperhive.core.limits import LimitLog
    from hyperhive.core.messages import MessagesHandle
    from hyperhive.core.registry import AgentRecord
    from hyperhive.core.reminders import RemindersHandle
    from hyperhive.offload import Offload

__all__ = ["MAX_STATUS_CHARS", "DeployBoard", "StatusBoard", "ViewBuilder"]

_V = TypeVar("_V")

MAX_STATUS_CHARS = 200


class StatusBoard:
    """What each agent said it is doing (its ``set_status`` tool), with when, in memory.

    Written by the agent's own socket handler (one entry per agent, at most
    `MAX_STATUS_CHARS`: an agent setting it in a loop costs one small dict entry and a
    coalesced rescan), read by the rows. Shown only while the agent runs; a new status
    replaces the old, an empty one clears it.
    """

    def __init__(self, clock: WallClock, on_change: Callable[[str], None]) -> None:
        self._clock = clock
        self._on_change = on_change
        self._texts: dict[str, tuple[str, float]] = {}

    def set(self, name: str, text: str) -> None:
        text = " ".join(text.split())[:MAX_STATUS_CHARS]
        if text:
            self._texts[name] = (text, self._clock.now())
        elif self._texts.pop(name, None) is None:
            return
        self._on_change(name)

    def get(self, name: str) -> tuple[str, float] | None:
        return self._texts.get(name)


class DeployBoard:
    """The agents with an approved config waiting to be deployed (their rows' ``needs_update``).

    Written by the approvals actor, which owns the deploys: an agent is on the board from the
    operator's approval until its deploy is done or failed. Read by the rows; never blocks.
    Each change asks for that agent's row again (`on_change`), so every surface sees it.
    """

    def __init__(self, on_change: Callable[[str], None] = lambda name: None) -> None:
        self._on_change = on_change
        self._waiting: set[str] = set()

    def set(self, name: str, waiting: bool) -> None:
        if waiting == (name in self._waiting):
            return
        if waiting:
            self._waiting.add(name)
        else:
            self._waiting.discard(name)
        self._on_change(name)

    def __contains__(self, name: object) -> bool:
        return name in self._waiting


class ViewBuilder:
    """Builds rows; one pass at a time (its disk meter is one cache)."""

    def __init__(
        self,
        *,
        paths: StatePaths,
        settings: ContainerSettings,
        backend: ContainerBackend | None,
        offload: Offload,
        reminders: RemindersHandle,
        limit_log: LimitLog,
        messages: MessagesHandle,
        statuses: StatusBoard,
        clock: WallClock,
        deploys: DeployBoard,
    ) -> None:
        self._paths = paths
        self._deploys = deploys
        self._clock = clock
        self._messages = messages
        self._statuses = statuses
        self._settings = settings
        self._backend = backend
        self._offload = offload
        self._reminders = reminders
        self._limit_log = limit_log
        self.disk = DiskMeter()
        self._lock = trio.Lock()

    async def views(
        self, records: Mapping[str, AgentRecord], transient: Mapping[str, str]
    ) -> dict[str, wire.ContainerView]:
        """The rows of `records`, each with its action in flight from `transient`."""
        counts = await self._bounded(self._reminders.pending_counts)
        mail = await self._bounded(self._messages.mail_counts)
        views = {}
        async with self._lock:
            for name, record in records.items():
                status = await self._status(name)
                views[name] = container_view.build_view(
                    record,
                    status,
                    transient=transient.get(name),
                    flags=await self._offload(self._flags, name, trio.current_time()),
                    pending_reminders=counts.get(name, 0),
                    mail=mail.get(name, (0, 0)),
                    status_text=self._statuses.get(name),
                    notes=(
                        *(status.notes if status is not None else ()),
                        *self._limit_log.notes(name),
                    ),
                    needs_update=name in self._deploys,
                    now=self._clock.now(),
                )
        return views

    def _flags(self, name: str, now: float) -> container_view.AgentFlags:
        """The row's file-backed parts, disk use and quota included (blocking: a thread)."""
        paths = self._paths
        flags = container_view.read_flags(paths.agent_state_dir(name), paths.agent_dir(name))
        usage = self.disk.usage(paths.agent_state_dir(name), now)
        try:
            quota = load_sandbox_settings(paths.agent_dir(name) / "sandbox.json").disk_quota
        except ConfigError:
            quota = None  # the start reports the broken file; the row keeps the default
        return attrs.evolve(
            flags,
            disk_bytes=usage.bytes if usage is not None else None,
            disk_quota=quota or self._settings.disk_quota,
        )

    async def _status(self, name: str) -> AgentStatus | None:
        if self._backend is None:
            return None
        try:
            return await self._backend.status(name)
        except HyperhiveError as exc:
            return AgentStatus(name, AgentState.UNKNOWN, detail=str(exc))

    async def _bounded(self, read: Callable[[], Awaitable[dict[str, _V]]]) -> dict[str, _V]:
        """A count another actor keeps, or nothing if it does not answer soon: a row is better
        late in one column than not at all."""
        with trio.move_on_after(2.0):
            try:
                return await read()
            except (HyperhiveError, ActorError):
                return {}
        return {}
