"""How blocking work (sqlite, files in agents' directories) leaves the trio thread.

Every store call and every file operation an actor makes goes through one `Offload`, injected
where the tree is built (`hyperhive.core.daemon.build_tree`). The daemon's is `to_thread`:
`trio.to_thread.run_sync`, so a slow disk stalls only the caller. Tests inject
`hyperhive.testing.inline`, which runs the call right there on the trio thread: then no task
ever waits on a thread, trio's ``autojump_clock`` can only jump when the hive is really idle,
and virtual time is exact.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import trio

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

__all__ = ["Offload", "to_thread"]

T = TypeVar("T")


class Offload(Protocol):
    """``await offload(fn, *args)`` runs ``fn(*args)`` off the trio thread, returns its result.

    Cancellation: the caller stops waiting; a call already running finishes on its own.
    """

    def __call__(self, fn: Callable[..., T], /, *args: Any) -> Awaitable[T]: ...


async def to_thread(fn: Callable[..., T], /, *args: Any) -> T:
    """The daemon's `Offload`: a worker thread from trio's default limiter."""
    return await trio.to_thread.run_sync(fn, *args)
