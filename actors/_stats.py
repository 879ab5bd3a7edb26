"""Frozen statistics snapshots, read by dashboards, TUIs and `status` commands.

Each one is a value: taking it never blocks, and it never changes after it is taken. Times
are on trio's clock (`trio.current_time()`), not the wall clock.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["ActorStatistics", "ChildStatistics", "MailboxStatistics", "SupervisorStatistics"]


def _frozen_counters(value: Mapping[str, int]) -> Mapping[str, int]:
    return dict(value)


@attrs.frozen
class MailboxStatistics:
    """How full one mailbox is, and when its actor last took a message."""

    name: str
    depth: int
    """Messages queued and not yet taken by the actor."""
    capacity: int
    last_taken_at: float | None = None
    """trio time at which the actor last took a message; None before the first."""
    taken: int = 0
    """Messages taken since the mailbox was made."""


@attrs.frozen
class ActorStatistics:
    """What an actor says about itself: the one shape every actor's ``statistics()`` returns.

    `queue_depth` of `queue_capacity` is what waits for it (its mailbox, or what stands for
    one, such as a listener's open connections); `last_message_at` is when it last took
    something (trio time); `last_error` the last error it met while handling one (a crash is
    its supervisor's to report); `counters` are its own (parked waiters, due timers, ...).
    """

    queue_depth: int
    queue_capacity: int | None
    last_message_at: float | None
    last_error: str | None = None
    counters: Mapping[str, int] = attrs.field(factory=dict, converter=_frozen_counters)

    @classmethod
    def of(
        cls,
        mailbox: MailboxStatistics,
        *,
        last_error: str | None = None,
        **counters: int,
    ) -> ActorStatistics:
        """An actor's statistics from its mailbox's, with its own error and counters."""
        return cls(mailbox.depth, mailbox.capacity, mailbox.last_taken_at, last_error, counters)


@attrs.frozen
class ChildStatistics:
    """One supervised child as its supervisor sees it."""

    id: str
    state: str
    """One of "starting", "running", "restarting", "stopping", "stopped", "failed"."""
    restarts: int
    """Restart attempts for this child in its supervisor's current run, failed starts included."""
    last_error: str | None
    """`repr` of the last error this child raised, if any."""
    queue_depth: int | None
    """Messages waiting in the child's mailbox; None for children without one."""
    queue_capacity: int | None
    started_at: float | None
    """trio time at which the current incarnation became ready."""
    last_message_at: float | None = None
    """trio time at which the child last took a message (its `ActorStatistics`)."""
    counters: Mapping[str, int] = attrs.field(factory=dict, converter=_frozen_counters)
    """The child's own counters (its `ActorStatistics`)."""


@attrs.frozen
class SupervisorStatistics:
    """A supervisor and, recursively, its subtree."""

    id: str
    strategy: str
    """"one_for_one", "one_for_all" or "rest_for_one"."""
    state: str
    """One of "starting", "running", "stopping", "stopped", "failed"."""
    restarts: int
    """Restarts this supervisor has performed since it was created, across all its runs."""
    last_error: str | None
    children: tuple[ChildStatistics | SupervisorStatistics, ...]
