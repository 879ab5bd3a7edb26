"""One daemon per state directory.

`serve` takes an exclusive `flock` on `serve.lock` before it touches anything else. A second
`serve` on the same directory fails at once with `AlreadyRunning` naming the holder's pid,
instead of unlinking the first daemon's sockets from under it. The kernel drops the lock when
the process dies, so a crash never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from typing import TYPE_CHECKING

from hyperhive.errors import AlreadyRunning, ConfigError

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

__all__ = ["hold_state_lock"]


@contextlib.contextmanager
def hold_state_lock(path: Path) -> Iterator[None]:
    """Hold the state directory's lock for the duration of the block.

    Raises:
        AlreadyRunning: another process holds it.
        ConfigError: the lock file cannot be opened.
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise ConfigError(f"cannot open lock file {path}: {exc.strerror}") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise AlreadyRunning(
                f"another hyperhive serve (pid {holder}) is already using {path.parent}; "
                "stop it first or pass a different --state-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)
