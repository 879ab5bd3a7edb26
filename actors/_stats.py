"""Frozen statistics snapshots, read by dashboards, TUIs and `status` commands.

Each one is a value: taking it never blocks, and it never changes after it is taken. Times
are on trio's clock (`trio.current_time()`), not the wall clock.
"""

from __future__ import annotations

import attrs

__all__ = ["ChildStatistics", "MailboxStatistics", "SupervisorStatistics"]


@attrs.frozen
class MailboxStatistics:
    """How full one mailbox is."""

    name: str
    depth: int
    """Messages queued and not yet taken by the actor."""
    capacity: int


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
