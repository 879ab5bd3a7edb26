"""One supervised child: what its supervisor remembers, the task that runs it, how it stops.

A `Child` lives as long as its entry in the supervisor; each (re)start creates a fresh
`Incarnation`, which owns the cancel scope and the task running ``spec.start`` once. The
supervisor tells incarnations apart by identity, so a late exit report from one it has
already replaced or stopped is recognised and ignored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs
import trio

from actors._stats import ChildStatistics, SupervisorStatistics

if TYPE_CHECKING:
    from collections.abc import Callable

    from actors._report import Reports
    from actors._spec import ChildSpec

__all__ = ["Child", "Incarnation"]


@attrs.define(eq=False)
class Child:
    """The supervisor's bookkeeping for one child spec; only the supervisor's task writes it."""

    spec: ChildSpec
    state: str = "starting"
    restarts: int = 0
    last_error: str | None = None
    started_at: float | None = None
    incarnation: Incarnation | None = None

    @property
    def id(self) -> str:
        return self.spec.id

    def statistics(self) -> ChildStatistics | SupervisorStatistics:
        """The child's own report if its spec has one, else the supervisor's view."""
        if self.spec.statistics is not None:
            return self.spec.statistics()
        if self.spec.report is not None:
            own = self.spec.report()
            return ChildStatistics(
                id=self.id,
                state=self.state,
                restarts=self.restarts,
                last_error=self.last_error or own.last_error,
                queue_depth=own.queue_depth,
                queue_capacity=own.queue_capacity,
                started_at=self.started_at,
                last_message_at=own.last_message_at,
                counters=own.counters,
            )
        mailbox = None if self.spec.mailbox is None else self.spec.mailbox.statistics()
        return ChildStatistics(
            id=self.id,
            state=self.state,
            restarts=self.restarts,
            last_error=self.last_error,
            queue_depth=None if mailbox is None else mailbox.depth,
            queue_capacity=None if mailbox is None else mailbox.capacity,
            started_at=self.started_at,
            last_message_at=None if mailbox is None else mailbox.last_taken_at,
        )

    async def stop(self, reports: Reports) -> None:
        """Stop the current incarnation: ask, wait up to shutdown_timeout, then cancel.

        Afterwards the incarnation is forgotten: its exit report is ignored, never restarted.
        A no-op when nothing is running.

        Cancellation: the incarnation is left to the supervisor's nursery, which cancels it.
        """
        incarnation = self.incarnation
        if incarnation is None:
            if self.state != "failed":
                self.state = "stopped"
            return
        self.state = "stopping"
        if not incarnation.done.is_set():
            await self._ask_wait_cancel(incarnation, reports)
        if incarnation.error is not None:
            reports.shutdown_error(self.id, incarnation.error)
        self.incarnation = None
        self.state = "stopped"

    async def _ask_wait_cancel(self, incarnation: Incarnation, reports: Reports) -> None:
        if self._ask_to_stop(reports):
            with trio.move_on_after(self.spec.shutdown_timeout):
                await incarnation.done.wait()
            if incarnation.done.is_set():
                return
            timeout = self.spec.shutdown_timeout
            reports.shutdown_error(self.id, f"did not stop within {timeout}s; cancelling it")
        reason = f"supervisor {reports.supervisor_id!r} stopping child {self.id!r}"
        incarnation.scope.cancel(reason=reason)
        await incarnation.done.wait()

    def _ask_to_stop(self, reports: Reports) -> bool:
        """Send the polite stop request; return whether there was anyone to ask."""
        mailbox, on_stop = self.spec.mailbox, self.spec.on_stop
        if mailbox is not None:
            mailbox.request_stop()
        if on_stop is not None:
            try:
                on_stop()
            except Exception as exc:
                reports.shutdown_error(self.id, f"on_stop raised {exc!r}")
                return mailbox is not None
        return mailbox is not None or on_stop is not None


@attrs.define(eq=False)
class Incarnation:
    """One run of ``child.spec.start``, from the start attempt until it returns or raises.

    `on_exit` is called (synchronously, from the child's task) when an incarnation that
    became ready ends; one that never became ready raises out of `trio.Nursery.start`
    instead, straight to the supervisor.
    """

    child: Child
    on_exit: Callable[[Incarnation], None]
    scope: trio.CancelScope = attrs.Factory(trio.CancelScope)
    done: trio.Event = attrs.Factory(trio.Event)
    ready: bool = False
    error: Exception | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the child once; meant for ``await nursery.start(incarnation.run)``.

        Cancellation: `scope` wraps the child, so cancelling it ends this incarnation only.
        """
        try:
            self.error = await self._start(_ReadySignal(task_status, self))
        except Exception as exc:
            self.error = exc
            raise
        finally:
            self._finish()

    async def _start(self, ready: _ReadySignal) -> Exception | None:
        # The try sits outside the scope so that the scope first strips its own Cancelled
        # from an ExceptionGroup and `except Exception` then sees only the real errors.
        try:
            with self.scope:
                await self.child.spec.start(task_status=ready)
        except Exception as exc:
            if not self.ready:
                raise
            return exc
        if not self.ready:
            raise RuntimeError(
                f"child {self.child.id!r} returned without calling task_status.started()"
            )
        return None

    def _became_ready(self) -> None:
        self.ready = True
        self.child.state = "running"
        self.child.started_at = trio.current_time()

    def _finish(self) -> None:
        self.done.set()
        if self.child.spec.mailbox is not None:
            self.child.spec.mailbox._actor_exited(self.error)
        if self.ready:
            self.on_exit(self)


class _ReadySignal:
    """The `task_status` a child sees: forwards ``started()`` and notes that it happened."""

    def __init__(self, task_status: trio.TaskStatus[Any], incarnation: Incarnation) -> None:
        self._task_status = task_status
        self._incarnation = incarnation

    def started(self, value: object = None) -> None:
        self._task_status.started(value)
        self._incarnation._became_ready()
