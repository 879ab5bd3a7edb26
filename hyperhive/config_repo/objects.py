"""Reading a proposed repo the way the daemon must: as object files, nothing else.

A proposed repo is written by the manager, so everything in it is hostile: its ``.git/config``
(``core.fsmonitor``, ``core.sshCommand``, filters, ``include.path``, ``includeIf``), its hooks,
its ``info/attributes``, its ``objects/info/alternates`` (which would make git read another
object store, perhaps one the manager cannot), and any symlink in it. No git command ever runs
on it. Instead `copy_objects` copies its object files, and only those, into a repository the
daemon owns:

- every path is opened relative to its parent's descriptor with ``O_NOFOLLOW``, so a symlinked
  ``<name>``, ``.git``, ``objects`` or ``pack`` is refused and a symlinked object is skipped;
  ``.git`` must be a directory (a ``gitdir:`` file is refused);
- only names git itself would write are copied: ``objects/xx/<hex>`` loose objects and
  ``objects/pack/pack-<hex>.pack``; an index (``.idx``) is never copied, the caller rebuilds it
  from the pack with ``git index-pack``, which checks every object's hash;
- files are opened ``O_NONBLOCK`` and must be regular files; the number of files and the total
  size are capped (`Limits`).

Plain synchronous file work: run it in a worker thread.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
from typing import TYPE_CHECKING, Final

import attrs

from hyperhive.errors import RepoError

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

__all__ = ["CopyStats", "Limits", "copy_objects"]

_DIR: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_TRUSTED_DIR: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC  # the daemon's own paths
_FILE: Final = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_NEW: Final = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_FANOUT: Final = re.compile(r"[0-9a-f]{2}")
_LOOSE: Final = re.compile(r"[0-9a-f]{38}|[0-9a-f]{62}")
_PACK: Final = re.compile(r"pack-(?:[0-9a-f]{40}|[0-9a-f]{64})\.pack")
_CHUNK: Final = 1024 * 1024


@attrs.frozen
class Limits:
    """How much of a proposed repo the daemon is willing to copy."""

    max_files: int = 20_000
    max_bytes: int = 128 * 1024 * 1024


@attrs.frozen
class CopyStats:
    """What `copy_objects` copied and what it left alone (symlinks, special files)."""

    loose: int
    packs: list[str]
    bytes: int
    skipped: int


def copy_objects(root: Path, name: str, dest: Path, limits: Limits = Limits()) -> CopyStats:
    """Copy the object files of the proposed repo ``root/name/config`` into ``dest`` (an
    objects dir).

    ``root`` is the daemon's directory of proposed repos; ``name`` one entry of it, holding the
    repo as ``config``. ``dest`` must exist, belong to the daemon, and be empty.

    Raises:
        RepoError: the repo is missing, is not a plain directory with a ``.git`` directory, or
            is over the limits; the text says which.
    """
    copier = _Copier(name, limits)
    with contextlib.ExitStack() as stack:
        top = stack.enter_context(_opened(root, _TRUSTED_DIR, None, f"proposed repos {root}"))
        home = stack.enter_context(_opened(name, _DIR, top, f"proposed repo {name!r}"))
        repo = stack.enter_context(_opened("config", _DIR, home, f"proposed repo {name!r}"))
        git_dir = stack.enter_context(_opened(".git", _DIR, repo, f"{name}: .git"))
        objects = stack.enter_context(_opened("objects", _DIR, git_dir, f"{name}: .git/objects"))
        out = stack.enter_context(_opened(dest, _TRUSTED_DIR, None, str(dest)))
        copier.copy_tree(objects, out)
    return CopyStats(copier.loose, sorted(copier.packs), copier.bytes, copier.skipped)


class _Copier:
    def __init__(self, name: str, limits: Limits) -> None:
        self.name = name
        self.limits = limits
        self.loose = 0
        self.packs: list[str] = []
        self.bytes = 0
        self.skipped = 0
        self.seen = 0
        # Room for the 256 fan-out directories and some junk besides the files themselves.
        self.max_seen = 2 * limits.max_files + 512

    def copy_tree(self, objects: int, out: int) -> None:
        for entry in _names(objects, self):
            if _FANOUT.fullmatch(entry):
                self._copy_dir(objects, out, entry, _LOOSE)
            elif entry == "pack":
                self._copy_dir(objects, out, entry, _PACK)
            # info/ (alternates, http-alternates, packs) and anything else: never read.

    def _copy_dir(self, objects: int, out: int, entry: str, wanted: re.Pattern[str]) -> None:
        try:
            source = os.open(entry, _DIR, dir_fd=objects)
        except OSError as exc:
            self._skip_or_raise(exc, f".git/objects/{entry}")
            return
        try:
            with contextlib.suppress(FileExistsError):  # git init made pack/ already
                os.mkdir(entry, 0o755, dir_fd=out)
            target = os.open(entry, _DIR, dir_fd=out)
            try:
                for file in _names(source, self):
                    if wanted.fullmatch(file):
                        self._copy_file(source, target, file, f".git/objects/{entry}/{file}")
            finally:
                os.close(target)
        finally:
            os.close(source)

    def _copy_file(self, source: int, target: int, file: str, shown: str) -> None:
        if self.loose + len(self.packs) >= self.limits.max_files:
            raise RepoError(
                f"proposed repo {self.name!r} holds more than {self.limits.max_files} object "
                "files; run `git gc` in it and propose again"
            )
        try:
            fd = os.open(file, _FILE, dir_fd=source)
        except OSError as exc:
            self._skip_or_raise(exc, shown)
            return
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                self.skipped += 1
                return
            written = os.open(file, _NEW, 0o444, dir_fd=target)
            try:
                self._pump(fd, written)
            finally:
                os.close(written)
        finally:
            os.close(fd)
        if file.endswith(".pack"):
            self.packs.append(file)
        else:
            self.loose += 1

    def _pump(self, fd: int, written: int) -> None:
        while chunk := os.read(fd, _CHUNK):
            self.bytes += len(chunk)
            if self.bytes > self.limits.max_bytes:
                raise RepoError(
                    f"proposed repo {self.name!r} holds more than {_size(self.limits.max_bytes)} "
                    "of objects; keep large files out of config repos"
                )
            os.write(written, chunk)

    def _skip_or_raise(self, exc: OSError, shown: str) -> None:
        # A symlink (ELOOP, ENOTDIR under O_NOFOLLOW|O_DIRECTORY), a file that vanished while
        # we listed (the manager is committing): not followed, not copied.
        if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.ENOENT, errno.ENXIO, errno.EACCES):
            self.skipped += 1
            return
        raise RepoError(f"cannot read {self.name}: {shown}: {exc.strerror}") from exc


@contextlib.contextmanager
def _opened(path: str | Path, flags: int, dir_fd: int | None, shown: str) -> Iterator[int]:
    try:
        fd = os.open(path, flags, dir_fd=dir_fd)
    except FileNotFoundError as exc:
        raise RepoError(f"{shown} does not exist") from exc
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise RepoError(
                f"{shown} is a symlink or not a directory; the daemon reads only a plain "
                "directory there"
            ) from exc
        raise RepoError(f"cannot open {shown}: {exc.strerror}") from exc
    try:
        yield fd
    finally:
        os.close(fd)


def _names(dir_fd: int, copier: _Copier) -> Iterator[str]:
    # scandir on a descriptor: the directory we hold open, not whatever the path names now.
    # Every entry seen counts, so a directory stuffed with symlinks cannot stall the copy.
    with os.scandir(dir_fd) as entries:
        for entry in entries:
            copier.seen += 1
            if copier.seen > copier.max_seen:
                raise RepoError(
                    f"proposed repo {copier.name!r} has more than {copier.max_seen} entries "
                    "under .git/objects; run `git gc` in it and propose again"
                )
            yield entry.name


def _size(count: int) -> str:
    return f"{count // (1024 * 1024)} MiB" if count >= 1024 * 1024 else f"{count} bytes"
