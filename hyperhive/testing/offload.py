"""An `Offload` for deterministic tests: blocking work runs inline, on the trio thread."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

import trio

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["inline"]

T = TypeVar("T")


async def inline(fn: Callable[..., T], /, *args: Any) -> T:
    """Run ``fn(*args)`` here and now (a checkpoint first, as a thread hop would be).

    With every store and file call of a test hive inline, no task waits on a worker thread,
    so a plain ``autojump_clock`` never jumps while sqlite is still committing: the virtual
    clock stands still for as long as real work runs, and every timeout is exact.
    """
    await trio.lowlevel.checkpoint()
    return fn(*args)
