"""The state watch: notices at once when a harness rewrites a file its agent's row reads.

The harness writes its report (``hyperhive-report.json``), the needs-login and rate-limited
sentinels and the model file in the agent's state directory (docs/turn-loop.md, "The
harness's report"); the rescanner reads them into the agent's row every 10 s. This child
watches each agent's state directory with inotify (one instance for the daemon, one watch per
agent, on the directory itself: never through a symlink, only a directory) and asks the
rescanner for that agent's row as soon as one of those names is written, replaced or removed,
so the dashboard's card and the manager's ``needs_login`` / ``logged_in`` helper events follow
within about a second instead of up to a rescan interval later.

The directory is the agent's to write, and it may write it in a tight loop, so what it can
cost is fixed here:

- nothing is read here, only names compared: the rescan reads the files as hostile input
  (`hyperhive.core.agent_files`);
- events are read in one batch at most every `batch` seconds (the kernel queues them
  meanwhile); a queue that overflowed counts as a change of every watched agent;
- each agent's rescans are coalesced and rate-limited: a change after a quiet spell is asked
  for `settle` seconds later (the harness's report and sentinel of one step come together),
  and then at most one per `gap` seconds, whatever the agent writes.

The watches follow the agents: they are re-synced whenever an agent changes (`notice`: spawn,
start, destroy) and every `resync` seconds. Without inotify (out of instances or watches) it
says so once in the log and the rescanner's interval is what remains.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import math
from typing import TYPE_CHECKING, Any, Final

import trio

from actors import ActorStatistics
from hyperhive import wire

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from pathlib import Path

__all__ = ["WATCHED", "StateWatch"]

LOGGER = logging.getLogger("hyperhive.state_watch")

# The names in the state directory an agent's row is built from (`container_view.read_flags`).
WATCHED: Final = frozenset({wire.REPORT_FILE, wire.NEEDS_LOGIN, wire.RATE_LIMITED, wire.MODEL_FILE})

_IN_CLOSE_WRITE: Final = 0x08
_IN_MOVED_FROM: Final = 0x40
_IN_MOVED_TO: Final = 0x80
_IN_CREATE: Final = 0x100
_IN_DELETE: Final = 0x200
_IN_Q_OVERFLOW: Final = 0x4000
_IN_IGNORED: Final = 0x8000
_IN_ONLYDIR: Final = 0x01000000
_IN_DONT_FOLLOW: Final = 0x02000000
_IN_EXCL_UNLINK: Final = 0x04000000
# Written whole (closed after writing), renamed over, created, removed, renamed away; on the
# directory only, never through a symlink. Not IN_MODIFY: one per write() call.
MASK: Final = (
    _IN_CLOSE_WRITE
    | _IN_MOVED_FROM
    | _IN_MOVED_TO
    | _IN_CREATE
    | _IN_DELETE
    | _IN_ONLYDIR
    | _IN_DONT_FOLLOW
    | _IN_EXCL_UNLINK
)


class StateWatch:
    """See the module docstring. `names` are the agents (the manager too) whose state
    directories (`state_dir`) to watch; `on_change(name)` asks for that agent's row (it must
    not block: the rescanner's `request_rescan`)."""

    def __init__(
        self,
        *,
        names: Callable[[], Iterable[str]],
        state_dir: Callable[[str], Path],
        on_change: Callable[[str], None],
        settle: float = 0.1,
        gap: float = 1.0,
        batch: float = 0.25,
        resync: float = 10.0,
    ) -> None:
        self._names = names
        self._state_dir = state_dir
        self._on_change = on_change
        self._settle = settle
        self._gap = gap
        self._batch = batch
        self._resync_every = resync
        self._wds: dict[int, str] = {}
        self._by_name: dict[str, int] = {}
        self._due: dict[str, float] = {}  # name -> when its rescan is asked
        self._quiet_until: dict[str, float] = {}  # name -> no rescan asked before then
        self._wake = trio.Event()
        self._resync = trio.Event()
        self._warned: set[int] = set()
        # Counters, for the tests and the daemon's status.
        self._last_asked_at: float | None = None
        self.asked = 0
        self.events_read = 0
        self.overflows = 0

    @property
    def watching(self) -> frozenset[str]:
        return frozenset(self._by_name)

    def statistics(self) -> ActorStatistics:
        """Agents waiting for their rescan, when the last was asked for; watches, rescans
        asked, events read, queue overflows."""
        return ActorStatistics(
            len(self._due),
            None,
            self._last_asked_at,
            None,
            {
                "watches": len(self._by_name),
                "asked": self.asked,
                "events": self.events_read,
                "overflows": self.overflows,
            },
        )

    def notice(self, name: str | None = None) -> None:
        """An agent appeared, started, stopped or went: re-sync the watches soon (never blocks)."""
        self._resync.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            from inotify_simple import INotify

            inotify: Any = INotify(nonblocking=True)  # inotify_simple ships no types
        except (ImportError, OSError) as exc:
            LOGGER.warning(
                "no inotify (%s): agents' rows follow their files only at each rescan", exc
            )
            task_status.started()
            await trio.sleep_forever()
        try:
            self._sync(inotify)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._keep_synced, inotify)
                nursery.start_soon(self._read, inotify)
                nursery.start_soon(self._flush)
                task_status.started()
        finally:
            with contextlib.suppress(OSError):
                inotify.close()

    # -- watches --------------------------------------------------------------------------------

    async def _keep_synced(self, inotify: Any) -> None:
        while True:
            with trio.move_on_after(self._resync_every):
                await self._resync.wait()
            self._resync = trio.Event()
            self._sync(inotify)

    def _sync(self, inotify: Any) -> None:
        wanted = set(self._names())
        for name in [n for n in self._by_name if n not in wanted]:
            wd = self._by_name.pop(name)
            self._wds.pop(wd, None)
            with contextlib.suppress(OSError):
                inotify.rm_watch(wd)
        for name in [n for n in self._quiet_until if n not in wanted]:
            del self._quiet_until[name]
        for name in sorted(wanted - self._by_name.keys()):
            try:
                wd = inotify.add_watch(str(self._state_dir(name)), MASK)
            except OSError as exc:
                # Not there yet (a spawn in progress), or a symlink / not a directory (refused:
                # the agent's rows say why), or out of watches: the rescans still read it.
                if exc.errno not in (errno.ENOENT, errno.ENOTDIR) and exc.errno not in self._warned:
                    self._warned.add(exc.errno or 0)
                    LOGGER.warning("cannot watch %s's state directory: %s", name, exc)
                continue
            self._wds[wd] = name
            self._by_name[name] = wd

    # -- events ---------------------------------------------------------------------------------

    async def _read(self, inotify: Any) -> None:
        fd = inotify.fileno()
        while True:
            await trio.lowlevel.wait_readable(fd)
            try:
                events = inotify.read(timeout=0)
            except BlockingIOError:
                events = []
            self.events_read += len(events)
            for event in events:
                self._on_event(event.wd, event.mask, event.name)
            # What a busy writer adds meanwhile waits in the kernel's queue: one read per batch.
            await trio.sleep(self._batch)

    def _on_event(self, wd: int, mask: int, name: str) -> None:
        if mask & _IN_Q_OVERFLOW:
            self.overflows += 1
            for watched in self._by_name:
                self._changed(watched)
            return
        if wd not in self._wds:
            return
        agent = self._wds[wd]
        if mask & _IN_IGNORED:  # its directory went (destroyed, recreated): watch it anew
            self._wds.pop(wd, None)
            if self._by_name.get(agent) == wd:
                del self._by_name[agent]
            self._resync.set()
            self._changed(agent)
        elif name in WATCHED:
            self._changed(agent)

    def _changed(self, name: str) -> None:
        if name in self._due:
            return  # already asked for: coalesced
        now = trio.current_time()
        self._due[name] = max(now + self._settle, self._quiet_until.get(name, -math.inf))
        self._wake.set()

    async def _flush(self) -> None:
        while True:
            if self._due:
                with trio.move_on_at(min(self._due.values())):
                    await self._wake.wait()
            else:
                await self._wake.wait()
            self._wake = trio.Event()
            now = trio.current_time()
            for name, at in list(self._due.items()):
                if at <= now:
                    del self._due[name]
                    self._quiet_until[name] = now + self._gap
                    self.asked += 1
                    self._last_asked_at = now
                    self._on_change(name)
