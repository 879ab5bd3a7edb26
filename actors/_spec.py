"""What a supervisor needs to know about each child: the OTP child specification."""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from actors._mailbox import Mailbox
    from actors._stats import ActorStatistics, ChildStatistics, SupervisorStatistics
    from actors._supervisor import Supervisor

__all__ = ["ChildSpec", "Restart", "Strategy"]


class Restart(enum.Enum):
    """When a child that exited is started again (OTP restart types)."""

    PERMANENT = "permanent"
    """Always restarted, even after a clean return."""
    TRANSIENT = "transient"
    """Restarted only after an exception; a clean return means the job is done."""
    TEMPORARY = "temporary"
    """Never restarted, not even when a sibling's failure takes it down; removed on exit."""


class Strategy(enum.Enum):
    """Which children a supervisor restarts when one of them fails."""

    ONE_FOR_ONE = "one_for_one"
    """Only the child that failed."""
    ONE_FOR_ALL = "one_for_all"
    """Every child: the others are stopped in reverse order, then all start in order."""
    REST_FOR_ONE = "rest_for_one"
    """The child that failed and every child started after it."""


def _non_negative(_spec: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value >= 0:
        raise ValueError(f"{attribute.name} must be >= 0 seconds, not {value}")


@attrs.frozen
class ChildSpec:
    """How to start, restart and stop one child.

    `start` is called as ``await start(task_status=task_status)`` and must call
    ``task_status.started()`` once the child can serve, exactly as with `trio.Nursery.start`:
    the supervisor starts the next child only then. An exception before that, or a return
    without calling it, is a failed start and counts as a restart.

    To stop a child the supervisor asks it (``mailbox.request_stop()`` and/or ``on_stop()``),
    waits up to `shutdown_timeout` seconds for `start` to return, then cancels it. A child with
    neither a mailbox nor an `on_stop` hook is cancelled at once.

    `mailbox` is the child's inbox. Create it where the tree is built, outside the restart
    loop; the supervisor keeps it, so queued messages survive restarts. `statistics`, if set,
    replaces the supervisor's own view of the child in `Supervisor.statistics` (a nested
    supervisor reports its whole subtree this way). `report`, if set, is the actor's own
    ``statistics()`` (`ActorStatistics`: its queue, last message, last error, counters), merged
    into the supervisor's view; without it the mailbox's figures are shown.
    """

    id: str
    start: Callable[..., Awaitable[object]]
    restart: Restart = Restart.PERMANENT
    shutdown_timeout: float = attrs.field(default=5.0, validator=_non_negative)
    mailbox: Mailbox[Any] | None = None
    on_stop: Callable[[], None] | None = None
    statistics: Callable[[], ChildStatistics | SupervisorStatistics] | None = None
    report: Callable[[], ActorStatistics] | None = None

    @classmethod
    def for_supervisor(
        cls,
        sup: Supervisor,
        *,
        restart: Restart = Restart.PERMANENT,
        shutdown_timeout: float = 30.0,
    ) -> ChildSpec:
        """A spec that runs `sup` as a child, so its give-up escalates to the parent.

        Stopping it calls `sup.request_stop()`; `shutdown_timeout` bounds the whole subtree's
        shutdown, so give it room for the sum of its children's timeouts.
        """
        return cls(
            id=sup.id,
            start=sup.run,
            restart=restart,
            shutdown_timeout=shutdown_timeout,
            on_stop=sup.request_stop,
            statistics=sup.statistics,
        )
