"""Files in directories an agent can write: opened as hostile input.

An agent runs arbitrary code in its sandbox, with its state directory (and its socket
directory) bound read-write. Whatever the daemon reads or writes there may have been swapped
for a symlink to the host's secrets, a FIFO that blocks forever, a device, a hard link to
another file or a file of gigabytes. So every access here:

- walks the path one component at a time from a directory the daemon opened itself, each step
  `openat` with ``O_NOFOLLOW`` (a symlink anywhere, leaf or parent, even one swapped in midway,
  is refused, never followed);
- opens the leaf ``O_NONBLOCK`` (a FIFO cannot block the open) and checks with ``fstat`` that
  it is a regular file with one link before reading or writing a byte;
- reads at most a cap, and writes without ``O_TRUNC`` until the checks passed;
- is plain blocking code: callers run it in `trio.to_thread.run_sync`, never on the trio thread
  and never while an actor holds its state.

Each refusal is an `UnsafeFile` whose text says what was found, so the agent's `list` row can
say why a flag was ignored.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Final

from hyperhive.errors import HyperhiveError

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

__all__ = [
    "UnsafeFile",
    "is_regular_file",
    "read_capped",
    "remove_file",
    "remove_leftover",
    "replace_private",
    "write_file",
]

_DIR: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ: Final = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_WRITE: Final = (
    os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
)


class UnsafeFile(HyperhiveError):
    """A path in an agent-writable directory is not a plain file the daemon may use."""


def read_capped(
    root: Path, relative: PurePosixPath, max_bytes: int, *, shown_as: str = ""
) -> bytes | None:
    """The contents of ``root / relative``, or None when there is no such file.

    ``shown_as`` prefixes the path in error texts (``/state``: where the agent sees it).

    Raises:
        UnsafeFile: a symlink or non-directory on the way, a leaf that is not a regular file
            with a single link, or one larger than ``max_bytes``.
    """
    try:
        with _walk(root, relative, create=False) as parent:
            fd = os.open(relative.name, _READ, dir_fd=parent)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _refused(shown_as, relative, exc, "read") from exc
    with os.fdopen(fd, "rb") as file:
        _check_plain(shown_as, relative, os.fstat(fd))
        data = file.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise UnsafeFile(f"{_label(shown_as, relative)} is larger than {max_bytes} bytes")
    return data


def is_regular_file(root: Path, relative: PurePosixPath, *, shown_as: str = "") -> bool:
    """Whether ``root / relative`` is a regular file (False when absent).

    Raises:
        UnsafeFile: something else is there (a symlink, a FIFO, a directory ...).
    """
    try:
        with _walk(root, relative, create=False) as parent:
            info = os.stat(relative.name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise _refused(shown_as, relative, exc, "read") from exc
    _check_plain(shown_as, relative, info)
    return True


def write_file(root: Path, relative: PurePosixPath, data: bytes, *, shown_as: str = "") -> None:
    """Write ``data`` to ``root / relative`` for the agent: mode 0600, owned like ``root``.

    Missing directories on the way are created (0700, owned like ``root``). The file is
    truncated only once it is known to be a regular file with a single link, so a hard link to
    someone else's file is refused rather than emptied. Ownership and mode are set on the open
    fds, never by path: a root daemon hands the file to the agent's uid (its state directory's
    owner) without ever following a link.

    Raises:
        UnsafeFile: as for `read_capped`, or the write failed; the text says which.
    """
    try:
        with _walk(root, relative, create=True) as parent:
            fd = os.open(relative.name, _WRITE, 0o600, dir_fd=parent)
    except OSError as exc:
        raise _refused(shown_as, relative, exc, "write") from exc
    with os.fdopen(fd, "wb") as file:
        _check_plain(shown_as, relative, os.fstat(fd))
        try:
            _own_like_root(fd, root)
            os.fchmod(fd, 0o600)
            os.ftruncate(fd, 0)
            file.write(data)
            file.flush()
        except OSError as exc:
            raise _refused(shown_as, relative, exc, "write") from exc


def remove_file(root: Path, relative: PurePosixPath, *, shown_as: str = "") -> bool:
    """Remove ``root / relative``; True if something was removed, False when absent.

    The leaf is unlinked under its parent's descriptor, reached without following a symlink:
    a symlink the agent put there is removed itself, never what it points to; a directory is
    refused.

    Raises:
        UnsafeFile: a symlink or non-directory on the way, a directory at the leaf, or the
            removal failed.
    """
    try:
        with _walk(root, relative, create=False) as parent:
            os.unlink(relative.name, dir_fd=parent)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise _refused(shown_as, relative, exc, "remove") from exc
    return True


def replace_private(root: Path, name: str, data: bytes, *, shown_as: str = "") -> None:
    """Put ``data`` at ``root / name`` (a file directly in ``root``) as a new file, mode 0600,
    owned like ``root``: written under a scratch name, then renamed over whatever was there.

    For a secret the agent must read and nobody else: the rename replaces a symlink or a hard
    link the agent planted instead of writing through it, a reader never sees half a file, and
    the owner is the agent's (its state directory's), not the daemon's.

    Raises:
        UnsafeFile: ``root`` is or goes through a symlink, ``name`` is a directory, or the
            write failed; the text says which.
    """
    relative = PurePosixPath(name)
    scratch = f".{name}.hyperhive-new"
    try:
        top = os.open(root, _DIR)
    except OSError as exc:
        raise _refused(shown_as, relative, exc, "write") from exc
    try:
        owner = os.fstat(top)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(scratch, dir_fd=top)
        fd = os.open(scratch, _WRITE | os.O_EXCL, 0o600, dir_fd=top)
        try:
            if os.geteuid() == 0:  # an agent with a uid of its own must be able to read it
                os.fchown(fd, owner.st_uid, owner.st_gid)
            os.fchmod(fd, 0o600)
            with os.fdopen(os.dup(fd), "wb") as file:
                file.write(data)
        finally:
            os.close(fd)
        os.rename(scratch, name, src_dir_fd=top, dst_dir_fd=top)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(scratch, dir_fd=top)
        raise _refused(shown_as, relative, exc, "write") from exc
    finally:
        os.close(top)


def remove_leftover(root: Path, name: str) -> bool:
    """Remove ``root / name`` (a file directly in ``root``) if it is there; True if it was.

    ``unlink`` never follows the leaf: a symlink there is removed itself, not what it points
    at; ``root`` is opened without following links. A directory of that name is left alone.

    Raises:
        UnsafeFile: ``root`` is or goes through a symlink, or the unlink failed.
    """
    relative = PurePosixPath(name)
    try:
        top = os.open(root, _DIR)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise _refused("", relative, exc, "remove") from exc
    try:
        info = os.stat(name, dir_fd=top, follow_symlinks=False)
        if stat.S_ISDIR(info.st_mode):
            return False
        os.unlink(name, dir_fd=top)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise _refused("", relative, exc, "remove") from exc
    finally:
        os.close(top)
    return True


@contextlib.contextmanager
def _walk(root: Path, relative: PurePosixPath, *, create: bool) -> Iterator[int]:
    """An fd of the directory holding ``relative``'s leaf, reached without following links."""
    if relative.is_absolute() or ".." in relative.parts or not relative.parts:
        raise UnsafeFile(f"{relative} is not a path inside the agent's directory")
    # O_NOFOLLOW guards the root's last component too; its parents are the daemon's own.
    fd = os.open(root, _DIR)
    try:
        for part in relative.parts[:-1]:
            try:
                next_fd = os.open(part, _DIR, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                with contextlib.suppress(FileExistsError):  # made meanwhile: opening checks it
                    os.mkdir(part, 0o700, dir_fd=fd)
                next_fd = os.open(part, _DIR, dir_fd=fd)
                _own_like(next_fd, os.fstat(fd))
            os.close(fd)
            fd = next_fd
        yield fd
    finally:
        os.close(fd)


def _own_like_root(fd: int, root: Path) -> None:
    top = os.open(root, _DIR)
    try:
        _own_like(fd, os.fstat(top))
    finally:
        os.close(top)


def _own_like(fd: int, owner: os.stat_result) -> None:
    """Give the open file `fd` the owner of `owner` (only a root daemon can, and must: its
    agents have uids of their own)."""
    if os.geteuid() != 0:
        return
    info = os.fstat(fd)
    if (info.st_uid, info.st_gid) != (owner.st_uid, owner.st_gid):
        os.fchown(fd, owner.st_uid, owner.st_gid)


def _label(shown_as: str, relative: PurePosixPath) -> str:
    return f"{shown_as}/{relative}" if shown_as else str(relative)


def _check_plain(shown_as: str, relative: PurePosixPath, info: os.stat_result) -> None:
    label = _label(shown_as, relative)
    if stat.S_ISLNK(info.st_mode):
        raise UnsafeFile(
            f"{label} is a symlink; symlinks in an agent's directory are never followed"
        )
    if not stat.S_ISREG(info.st_mode):
        raise UnsafeFile(f"{label} is not a regular file ({_kind(info.st_mode)})")
    if info.st_nlink != 1:
        raise UnsafeFile(f"{label} has {info.st_nlink} hard links; only a plain file is used")


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return name
    return "not a plain file"


def _refused(shown_as: str, relative: PurePosixPath, exc: OSError, verb: str) -> UnsafeFile:
    label = _label(shown_as, relative)
    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
        return UnsafeFile(
            f"{label} is or goes through a symlink, or a file where a directory should be; "
            "symlinks in an agent's directory are never followed"
        )
    if exc.errno == errno.ENXIO:
        return UnsafeFile(f"{label} is not a regular file (a FIFO nobody reads)")
    return UnsafeFile(f"could not {verb} {label}: {exc.strerror}")
