"""How much disk an agent's state directory holds (for `hyperhive list` and the soft quota).

The walk counts allocated blocks (`st_blocks`, so sparse files count what they occupy), never
follows a symlink, stays on the state directory's filesystem, and stops after `MAX_ENTRIES`
entries: an agent that makes millions of files gets a lower bound (`complete=False`) rather
than a rescanner that walks for minutes. The state directory is agent-written, so it is opened
with directory fds and `O_NOFOLLOW`, like everything else the daemon reads there.

`DiskMeter` caches each directory's figure for `REFRESH_SECONDS` of the caller's clock (the
rescanner asks every 10 s; a walk of a large tree is not free). Blocking: call it off the trio
thread, with `now` read on it (`trio.current_time()`).
"""

from __future__ import annotations

import os
import stat
from typing import TYPE_CHECKING, Final

import attrs

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["MAX_ENTRIES", "REFRESH_SECONDS", "DiskMeter", "DiskUsage", "measure"]

MAX_ENTRIES: Final = 200_000
REFRESH_SECONDS: Final = 60.0
_DIR_FLAGS: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@attrs.frozen
class DiskUsage:
    bytes: int
    complete: bool = True  # False: the walk stopped at MAX_ENTRIES; `bytes` is a lower bound


def measure(directory: Path, *, max_entries: int = MAX_ENTRIES) -> DiskUsage | None:
    """The bytes allocated under `directory` (None if it cannot be opened)."""
    try:
        top = os.open(directory, _DIR_FLAGS)
    except OSError:
        return None
    try:
        device = os.fstat(top).st_dev
        total, seen = os.fstat(top).st_blocks * 512, 0
        stack = [top]
        while stack:
            fd = stack.pop()
            try:
                with os.scandir(fd) as entries:
                    for entry in entries:
                        seen += 1
                        if seen > max_entries:
                            return DiskUsage(total, complete=False)
                        try:
                            info = entry.stat(follow_symlinks=False)
                        except OSError:
                            continue
                        total += info.st_blocks * 512
                        if stat.S_ISDIR(info.st_mode) and info.st_dev == device:
                            try:
                                stack.append(os.open(entry.name, _DIR_FLAGS, dir_fd=fd))
                            except OSError:
                                continue
            finally:
                if fd != top:
                    os.close(fd)
        return DiskUsage(total)
    finally:
        for fd in stack:
            if fd != top:
                os.close(fd)
        os.close(top)


class DiskMeter:
    """`measure` with a per-directory cache of `refresh` seconds."""

    def __init__(self, refresh: float = REFRESH_SECONDS) -> None:
        self._refresh = refresh
        self._cache: dict[Path, tuple[float, DiskUsage]] = {}

    def usage(self, directory: Path, now: float) -> DiskUsage | None:
        cached = self._cache.get(directory)
        if cached is not None and now - cached[0] < self._refresh:
            return cached[1]
        usage = measure(directory)
        if usage is not None:  # a directory that does not exist yet is measured next time
            self._cache[directory] = (now, usage)
        return usage
