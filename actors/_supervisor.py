"""A supervisor: starts children in order, restarts them by strategy, escalates when it must.

Everything that changes the set of children happens in the supervisor's own task: child
exits arrive through `_exited`, `start_child` and `terminate_child` through a bounded command
channel. A child exit can therefore never race a start or a terminate.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

import attrs
import trio

from actors._child import Child, Incarnation
from actors._errors import ActorStopped, SupervisorGaveUp
from actors._intensity import RestartIntensity
from actors._mailbox import Reply
from actors._report import Reports
from actors._spec import Restart, Strategy
from actors._stats import SupervisorStatistics

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from actors._spec import ChildSpec

__all__ = ["Supervisor"]

# start_child/terminate_child are rare; a burst beyond this makes callers wait, not fail.
_COMMAND_BUFFER = 16


@attrs.frozen
class _StartChild:
    spec: ChildSpec
    reply: Reply[None]


@attrs.frozen
class _TerminateChild:
    child_id: str
    reply: Reply[None]


_Command = _StartChild | _TerminateChild


class Supervisor:
    """Runs `children` and keeps them running, with OTP's supervisor semantics.

    Restarts follow `strategy` and each child's `Restart` type. More than `intensity`
    failures (crashes, permanent children returning, failed starts) within `period` seconds
    of trio time make it give up: it stops every child in reverse order and raises
    `SupervisorGaveUp` to whoever runs it, typically a parent supervisor. `restart_delay`
    seconds pass before every restart attempt (OTP restarts at once: 0).
    """

    def __init__(
        self,
        id: str,
        children: Sequence[ChildSpec],
        *,
        strategy: Strategy = Strategy.ONE_FOR_ONE,
        intensity: int = 3,
        period: float = 5.0,
        restart_delay: float = 0.0,
    ) -> None:
        _check_unique(id, [spec.id for spec in children])
        if not restart_delay >= 0:
            raise ValueError(f"restart_delay must be >= 0 seconds, not {restart_delay}")
        self.id = id
        self.strategy = strategy
        self.restart_delay = restart_delay
        self._specs = tuple(children)
        self._intensity = RestartIntensity(intensity, period)
        self._reports = Reports(id, lambda: self._intensity.count)
        self._children = [Child(spec, state="stopped") for spec in self._specs]
        self._state = "stopped"
        self._restarts = 0
        self._last_error: str | None = None
        self._running = False
        self._nursery: trio.Nursery | None = None
        self._stop_requested = trio.Event()
        self._exited: deque[Incarnation] = deque()
        self._idle_scope: trio.CancelScope | None = None
        self._commands_out, self._commands_in = trio.open_memory_channel[_Command](0)

    def __repr__(self) -> str:
        return f"<Supervisor {self.id!r} {self.strategy.value} {self._state}>"

    # ---- public API -------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Start the children in order, then supervise them until stopped or giving up.

        Calls ``task_status.started()`` once every child is ready. Returns after
        `request_stop`, once all children have stopped (in reverse order). Raises
        `SupervisorGaveUp` when restart intensity is exceeded, also during the initial start.
        Each call starts afresh from the constructor's children and a clean intensity window.

        Cancellation: cancelling `run` cancels every child at once, without the stop protocol.
        """
        self._begin_run()
        try:
            gave_up = await self._run_tree(task_status)
        finally:
            self._end_run()
        if gave_up is not None:
            raise gave_up

    def request_stop(self) -> None:
        """Ask `run` to stop all children in reverse order and return. Idempotent.

        A stop requested while restarts are in progress is honoured between attempts.
        """
        self._stop_requested.set()
        self._wake()

    async def start_child(self, spec: ChildSpec) -> None:
        """Start a new child after the existing ones; return once it is ready.

        If its start fails, the child's error is raised here and the child is not added; this
        does not count towards restart intensity. Raises `ValueError` for a duplicate id and
        `ActorStopped` when the supervisor is not running.

        Cancellation: the request is not withdrawn; the child may still be started.
        """
        reply: Reply[None] = Reply()
        await self._send_command(_StartChild(spec, reply))
        await reply._wait()

    async def terminate_child(self, child_id: str) -> None:
        """Stop a child (ask, wait its shutdown_timeout, cancel) and remove it.

        Raises `KeyError` (a `LookupError`) for an unknown id and `ActorStopped` when the
        supervisor is not running.

        Cancellation: the request is not withdrawn; the child may still be stopped.
        """
        reply: Reply[None] = Reply()
        await self._send_command(_TerminateChild(child_id, reply))
        await reply._wait()

    def which_children(self) -> list[str]:
        """The ids of the current children, in start order."""
        return [child.id for child in self._children]

    def statistics(self) -> SupervisorStatistics:
        """A snapshot of this supervisor and, recursively, its children."""
        return SupervisorStatistics(
            id=self.id,
            strategy=self.strategy.value,
            state=self._state,
            restarts=self._restarts,
            last_error=self._last_error,
            children=tuple(child.statistics() for child in self._children),
        )

    # ---- one run ----------------------------------------------------------------------

    def _begin_run(self) -> None:
        if self._running:
            raise RuntimeError(f"supervisor {self.id!r} is already running")
        self._running = True
        self._state = "starting"
        self._stop_requested = trio.Event()
        self._intensity = RestartIntensity(self._intensity.intensity, self._intensity.period)
        self._children = [Child(spec) for spec in self._specs]
        self._exited.clear()
        self._commands_out, self._commands_in = trio.open_memory_channel[_Command](_COMMAND_BUFFER)

    async def _run_tree(self, task_status: trio.TaskStatus[None]) -> SupervisorGaveUp | None:
        gave_up = None
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            try:
                await self._start_in_order(self._children, restarting=False)
                self._state = "running"
                task_status.started()
                await self._supervise()
            except SupervisorGaveUp as exc:
                gave_up = exc
            await self._stop_each(reversed(self._children))
        self._state = "stopped" if gave_up is None else "failed"
        return gave_up

    def _end_run(self) -> None:
        self._running = False
        self._nursery = None
        while True:
            try:
                command = self._commands_in.receive_nowait()
            except trio.WouldBlock:
                break
            command.reply.fail(ActorStopped(self.id))
        self._commands_in.close()
        for child in self._children:
            if child.incarnation is not None:
                child.incarnation = None
                child.state = "stopped"
        if self._state != "failed":
            self._state = "stopped"

    async def _supervise(self) -> None:
        while (item := await self._next_item()) is not None:
            await self._handle(item)
        self._state = "stopping"

    async def _next_item(self) -> Incarnation | _Command | None:
        while not self._stop_requested.is_set():
            if self._exited:
                return self._exited.popleft()
            command = await self._wait_for_command()
            if command is not None:
                return command
        return None

    async def _wait_for_command(self) -> _Command | None:
        # _wake() cancels this scope; a memory channel's receive loses nothing to that.
        with trio.CancelScope() as scope:
            self._idle_scope = scope
            try:
                return await self._commands_in.receive()
            finally:
                self._idle_scope = None
        return None

    def _wake(self) -> None:
        if self._idle_scope is not None:
            self._idle_scope.cancel()

    def _on_incarnation_exit(self, incarnation: Incarnation) -> None:
        self._exited.append(incarnation)
        self._wake()

    async def _handle(self, item: Incarnation | _Command) -> None:
        match item:
            case Incarnation():
                await self._on_exit(item)
            case _StartChild() | _TerminateChild():
                try:
                    await self._run_command(item)
                finally:
                    item.reply.fail(ActorStopped(self.id))  # no-op once answered

    # ---- exits and restarts -----------------------------------------------------------

    async def _on_exit(self, incarnation: Incarnation) -> None:
        child = incarnation.child
        if child.incarnation is not incarnation:
            return  # stopped on purpose (stop() forgets it first) or already replaced
        child.incarnation = None
        error = incarnation.error
        match child.spec.restart:
            case Restart.TEMPORARY:
                self._remove(child)
                if error is not None:
                    self._reports.not_restarted(child.id, error)
            case Restart.TRANSIENT if error is None:
                child.state = "stopped"
            case _:
                await self._restart(child, error)

    async def _restart(self, child: Child, error: Exception | None) -> None:
        child.state = "restarting"
        self._count_failure(child, error, "child_terminated")
        group = self._restart_group(child)
        siblings = [other for other in group if other is not child]
        await self._stop_each(reversed(siblings))
        for sibling in siblings:
            if sibling.spec.restart is Restart.TEMPORARY:
                self._remove(sibling)
                group.remove(sibling)
        await self._pause_before_restart()
        await self._start_in_order(group, restarting=True)

    def _restart_group(self, child: Child) -> list[Child]:
        match self.strategy:
            case Strategy.ONE_FOR_ONE:
                return [child]
            case Strategy.ONE_FOR_ALL:
                return list(self._children)
            case Strategy.REST_FOR_ONE:
                return self._children[self._children.index(child) :]

    async def _start_in_order(self, children: Iterable[Child], *, restarting: bool) -> None:
        for child in list(children):
            if self._stop_requested.is_set():
                return
            await self._start_until_ready(child, restarting=restarting)

    async def _start_until_ready(self, child: Child, *, restarting: bool) -> None:
        while (error := await self._start_once(child, restarting=restarting)) is not None:
            self._count_failure(child, error, "start_error")
            await self._pause_before_restart()
            if self._stop_requested.is_set():
                return
            restarting = True

    async def _start_once(self, child: Child, *, restarting: bool) -> Exception | None:
        assert self._nursery is not None, "only called while run() is active"
        if restarting:
            child.restarts += 1
        child.state = "restarting" if restarting else "starting"
        incarnation = Incarnation(child, on_exit=self._on_incarnation_exit)
        child.incarnation = incarnation
        if child.spec.mailbox is not None:
            child.spec.mailbox._reset()
        try:
            await self._nursery.start(incarnation.run)
        except Exception as exc:
            child.incarnation = None
            child.last_error = repr(exc)
            return exc
        return None

    async def _pause_before_restart(self) -> None:
        if self.restart_delay > 0:
            with trio.move_on_after(self.restart_delay):
                await self._stop_requested.wait()
        else:
            await trio.lowlevel.checkpoint()

    def _count_failure(self, child: Child, error: Exception | None, context: str) -> None:
        """Record a failure against the intensity; raise `SupervisorGaveUp` past it."""
        if error is not None:
            child.last_error = self._last_error = repr(error)
        if not self._intensity.record(trio.current_time()):
            child.state = "failed"
            gave_up = SupervisorGaveUp(
                self.id,
                child.id,
                error,
                failures=self._intensity.count,
                period=self._intensity.period,
            )
            self._reports.gave_up(gave_up)
            raise gave_up from error
        self._restarts += 1
        self._reports.restart(child.id, error, context)

    # ---- stopping ---------------------------------------------------------------------

    async def _stop_each(self, children: Iterable[Child]) -> None:
        for child in list(children):
            await child.stop(self._reports)

    # ---- dynamic children -------------------------------------------------------------

    async def _send_command(self, command: _Command) -> None:
        if not self._running:
            raise ActorStopped(self.id)
        try:
            await self._commands_out.send(command)
        except trio.BrokenResourceError:
            raise ActorStopped(self.id) from None

    async def _run_command(self, command: _Command) -> None:
        match command:
            case _StartChild(spec=spec, reply=reply):
                await self._add_child(spec, reply)
            case _TerminateChild(child_id=child_id, reply=reply):
                await self._terminate(child_id, reply)

    async def _add_child(self, spec: ChildSpec, reply: Reply[None]) -> None:
        if self._find(spec.id) is not None:
            reply.fail(ValueError(f"supervisor {self.id!r} already has a child {spec.id!r}"))
            return
        child = Child(spec)
        error = await self._start_once(child, restarting=False)
        if error is not None:
            reply.fail(error)
            return
        self._children.append(child)
        reply.send(None)

    async def _terminate(self, child_id: str, reply: Reply[None]) -> None:
        child = self._find(child_id)
        if child is None:
            reply.fail(KeyError(f"supervisor {self.id!r} has no child {child_id!r}"))
            return
        await child.stop(self._reports)
        self._remove(child)
        reply.send(None)

    def _find(self, child_id: str) -> Child | None:
        return next((child for child in self._children if child.id == child_id), None)

    def _remove(self, child: Child) -> None:
        self._children.remove(child)


def _check_unique(supervisor_id: str, child_ids: list[str]) -> None:
    seen: set[str] = set()
    for child_id in child_ids:
        if child_id in seen:
            raise ValueError(f"supervisor {supervisor_id!r}: duplicate child id {child_id!r}")
        seen.add(child_id)
