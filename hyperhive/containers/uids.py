"""A host uid per agent when the daemon runs as root; the agent's files owned by it.

The table `containers/bwrap/uids.json` (daemon-owned, never bound into a sandbox) maps each
agent name to its uid, allocated once from `ContainerSettings.agent_uids` (lowest free, skipping
uids the host's passwd already names) and kept across restarts and tombstones, so an agent's
files stay its own. The agent's primary group has the same number; it has no other group.
Agents start concurrently (each start looks its uid up from a worker thread), so the table's
read, allocate and write happen under one lock: two first starts at once never read the same
table and hand out the same uid.

`own_state` hands the agent its state directory before each start: every entry whose owner is
not the agent's is changed, walking with directory fds and never following a symlink, so a
link the agent planted cannot make the daemon chown a host file. It runs while no process of
the agent exists (the sandbox is not started yet), so nothing can race the walk.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import stat
import threading
from typing import TYPE_CHECKING

from hyperhive.errors import ConfigError
from hyperhive.wire.harness import PAGE_DIR

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["UidTable", "own_state", "prepare_socket_dir"]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class UidTable:
    """name -> uid, persisted in `path` (blocking: call off the trio thread; thread-safe)."""

    def __init__(self, path: Path, first: int, last: int) -> None:
        if not 1000 <= first <= last < 2**31 - 1:
            raise ConfigError(f"agent uid range {first}-{last} must lie within 1000-2147483646")
        self._path = path
        self._first, self._last = first, last
        self._lock = threading.Lock()

    def _read(self) -> dict[str, int]:
        try:
            data = json.loads(self._path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{self._path}: unreadable uid table ({exc})") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{self._path}: the uid table must be a JSON object")
        return {k: v for k, v in data.items() if isinstance(v, int) and not isinstance(v, bool)}

    def _write(self, table: dict[str, int]) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        scratch = self._path.with_name(self._path.name + ".tmp")
        scratch.write_text(json.dumps(table, indent=2, sort_keys=True) + "\n")
        os.replace(scratch, self._path)

    def uid(self, name: str) -> int:
        """The agent's uid, allocated now if it has none."""
        with self._lock:
            table = self._read()
            if name in table:
                return table[name]
            taken = set(table.values())
            for candidate in range(self._first, self._last + 1):
                if candidate in taken or _host_user(candidate):
                    continue
                table[name] = candidate
                self._write(table)
                return candidate
        raise ConfigError(f"no free agent uid left in {self._first}-{self._last}")

    def release(self, name: str) -> None:
        with self._lock:
            table = self._read()
            if table.pop(name, None) is not None:
                self._write(table)


def _host_user(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True


def own_state(state_dir: Path, uid: int, gid: int) -> int:
    """Give every entry under `state_dir` (itself included) to uid:gid; how many changed."""
    top = os.open(state_dir, _DIR_FLAGS)
    try:
        changed = _own_entry(top, uid, gid)
        os.chmod(top, 0o700)
        return changed + _own_tree(top, uid, gid)
    finally:
        os.close(top)


def _own_entry(fd: int, uid: int, gid: int) -> int:
    info = os.fstat(fd)
    if (info.st_uid, info.st_gid) == (uid, gid):
        return 0
    os.fchown(fd, uid, gid)
    return 1


def _own_tree(dir_fd: int, uid: int, gid: int) -> int:
    changed = 0
    for entry in os.scandir(dir_fd):
        info = entry.stat(follow_symlinks=False)
        if (info.st_uid, info.st_gid) != (uid, gid):
            os.chown(entry.name, uid, gid, dir_fd=dir_fd, follow_symlinks=False)
            changed += 1
        if stat.S_ISDIR(info.st_mode):
            try:
                child = os.open(entry.name, _DIR_FLAGS, dir_fd=dir_fd)
            except OSError:
                continue  # replaced meanwhile (cannot happen with the agent stopped)
            try:
                changed += _own_tree(child, uid, gid)
            finally:
                os.close(child)
    return changed


def _page_dir(socket_fd: int, uid: int) -> None:
    """Create (or take back) ``page/`` in the socket directory for the agent `uid`."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(PAGE_DIR, 0o700, dir_fd=socket_fd)
    try:
        page = os.open(PAGE_DIR, _DIR_FLAGS, dir_fd=socket_fd)
    except OSError:
        # Not a directory (a planted link or file): replace it while the agent is stopped.
        os.unlink(PAGE_DIR, dir_fd=socket_fd)
        os.mkdir(PAGE_DIR, 0o700, dir_fd=socket_fd)
        page = os.open(PAGE_DIR, _DIR_FLAGS, dir_fd=socket_fd)
    try:
        os.fchown(page, uid, uid)
        os.fchmod(page, 0o700)
    finally:
        os.close(page)


def prepare_socket_dir(socket_dir: Path, gid: int) -> None:
    """root:gid, setgid, 0750: the agent can reach its socket but not replace it.

    The setgid bit gives the socket the agent's group when the daemon creates it; the
    listener makes it 0660. Inside it, ``page/`` is the agent's own (uid = gid, 0700): where
    its harness serves the page socket (`hyperhive.wire.PAGE_DIR`), which the daemon opens
    without following links.
    """
    fd = os.open(socket_dir, _DIR_FLAGS)
    try:
        os.fchown(fd, 0, gid)
        os.fchmod(fd, 0o2750)
        _page_dir(fd, gid)
        with contextlib.suppress(FileNotFoundError):
            sock = os.stat("hive.sock", dir_fd=fd, follow_symlinks=False)
            if stat.S_ISSOCK(sock.st_mode):
                os.chown("hive.sock", -1, gid, dir_fd=fd, follow_symlinks=False)
                os.chmod("hive.sock", 0o660, dir_fd=fd)  # only root writes this dir
    finally:
        os.close(fd)
