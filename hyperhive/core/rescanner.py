"""The rescanner actor: keeps the container view current and publishes only what changed.

It rebuilds the view (every agent's row: state, transient action, flags, activity, ...) with
the lifecycle's `views`, diffs it against the last one with the pure `diff_views`, and publishes
`ContainerStateChanged` for each row that appeared or changed and `ContainerRemoved` for each
that disappeared. It runs every `interval` seconds and whenever something asks
(`request_rescan`: the lifecycle after each step of an action, crash watch after an exit);
queued requests are merged into one pass. Without a container backend there is nothing to poll
(`interval` None): it rescans on request only. The last view lives on the object, so a restart of
the actor does not re-announce every row.

A row whose disk use just went past its soft quota also raises `DiskQuotaExceeded` (once per
crossing; at start-up for an agent that already is) and a warning in the daemon's log. An
agent whose needs-login flag went up or down is told to the manager (`tell_manager`): the
`AgentNeedsLogin` and `AgentLoggedIn` helper events, once per change (not at start-up), and
past a burst of `TELL_BURST` at most one per agent every `TELL_EVERY` seconds: an agent that
flips its sentinel in a loop cannot flood the manager's inbox. A change held back is told by a
later pass (the next rescan of anyone) once its agent may be told again, if it still holds:
the manager always ends up knowing where each agent is.

Rows are asked for by the lifecycle, crash watch and the state watch
(`hyperhive.core.state_watch`: a harness rewrote its report or a sentinel), which coalesces
and rate-limits them per agent.

Accepts: `Rescan`. Emits: `ContainerStateChanged`, `ContainerRemoved`, `DiskQuotaExceeded`
(hub); `AgentNeedsLogin`, `AgentLoggedIn` (helper events, to the manager).
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Final, TypeAlias

import attrs
import trio

from actors import ActorStatistics, MailboxFull
from hyperhive import wire
from hyperhive.core.container_view import diff_views, quota_crossings

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping, Sequence

    from actors import Mailbox

__all__ = [
    "TELL_BURST",
    "TELL_EVERY",
    "Rescan",
    "Rescanner",
    "RescannerMsg",
    "login_changes",
    "request_rescan",
]

LOGGER = logging.getLogger("hyperhive.rescanner")
TELL_BURST: Final = 4
TELL_EVERY: Final = 30.0


@attrs.frozen
class Rescan:
    """Re-read these agents' rows (every agent when None)."""

    names: tuple[str, ...] | None = None


RescannerMsg: TypeAlias = Rescan


def request_rescan(mailbox: Mailbox[RescannerMsg], *names: str) -> None:
    """Ask for a rescan without ever blocking; a full mailbox drops it (a periodic one follows)."""
    with contextlib.suppress(MailboxFull):
        mailbox.cast_nowait(Rescan(names or None))


def login_changes(
    told: Mapping[str, bool], new: Mapping[str, wire.ContainerView]
) -> list[wire.AgentNeedsLogin | wire.AgentLoggedIn]:
    """What to tell the manager: agents (never the manager itself) whose needs-login flag is
    not what the manager was last told (`told`; an agent it has no word of is not a change),
    sorted by name."""
    changes: list[wire.AgentNeedsLogin | wire.AgentLoggedIn] = []
    for name in sorted(new):
        before = told.get(name)
        if before is None or name == "manager" or before == new[name].needs_login:
            continue
        changes.append(
            wire.AgentNeedsLogin(name) if new[name].needs_login else wire.AgentLoggedIn(name)
        )
    return changes


class _Allowance:
    """A token bucket per agent: `burst` at once, then one every `every` seconds (trio time)."""

    def __init__(self, burst: int, every: float) -> None:
        self._burst = burst
        self._every = every
        self._left: dict[str, tuple[float, float]] = {}  # name -> (tokens, at)

    def take(self, name: str) -> bool:
        now = trio.current_time()
        tokens, at = self._left.get(name, (float(self._burst), now))
        tokens = min(float(self._burst), tokens + (now - at) / self._every)
        if tokens < 1.0:
            self._left[name] = (tokens, now)
            return False
        self._left[name] = (tokens - 1.0, now)
        return True

    def forget(self, name: str) -> None:
        self._left.pop(name, None)


class Rescanner:
    """See the module docstring."""

    def __init__(
        self,
        mailbox: Mailbox[RescannerMsg],
        *,
        build: Callable[[Sequence[str] | None], Awaitable[dict[str, wire.ContainerView]]],
        publish: Callable[..., None],
        interval: float | None = 10.0,
        tell_manager: Callable[[wire.HelperEvent], Awaitable[None]] | None = None,
    ) -> None:
        self._mailbox = mailbox
        self._build = build
        self._publish = publish
        self._interval = interval
        self._tell_manager = tell_manager
        self.last: dict[str, wire.ContainerView] = {}
        # What the manager was last told of each agent's login (or first saw), and how often
        # it may be told again.
        self._told: dict[str, bool] = {}
        self._allowance = _Allowance(TELL_BURST, TELL_EVERY)
        self._held_back = 0
        self._passes = 0
        self._last_error: str | None = None

    def statistics(self) -> ActorStatistics:
        """Queue, last message, last error; rescans done and rows known."""
        return ActorStatistics.of(
            self._mailbox.statistics(),
            last_error=self._last_error,
            passes=self._passes,
            rows=len(self.last),
            logins_held_back=self._held_back,
        )

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            if self._interval is not None:
                nursery.start_soon(self._tick, self._interval)
            else:
                request_rescan(self._mailbox)  # the first view, then only on request
            task_status.started()
            async for msg in self._mailbox.inbox:
                match msg:
                    case Rescan():
                        try:
                            await self._on_rescan(msg)
                        except Exception as exc:
                            self._last_error = repr(exc)
                            # One bad pass (a bug, an agent's odd directory) is logged and the
                            # next pass tries again; the view must never take the daemon down.
                            LOGGER.exception("rescan failed; the next one tries again")
            nursery.cancel_scope.cancel()

    async def _tick(self, interval: float) -> None:
        while True:
            request_rescan(self._mailbox)
            await trio.sleep(interval)

    async def _on_rescan(self, first: Rescan) -> None:
        names: set[str] | None = None if first.names is None else set(first.names)
        while True:
            try:
                more = self._mailbox.inbox.receive_nowait()
            except trio.WouldBlock:
                break
            if more.names is None:
                names = None
            elif names is not None:
                names.update(more.names)
        await self.rescan(None if names is None else sorted(names))

    async def rescan(self, names: Sequence[str] | None) -> None:
        """Rebuild `names` (all when None), publish the differences."""
        self._passes += 1
        snapshot = await self._build(names)
        if names is None:
            new = snapshot
        else:
            new = {name: view for name, view in self.last.items() if name not in names}
            new.update(snapshot)
        old = self.last
        changed, removed = diff_views(old, new)
        over = quota_crossings(old, new)
        self.last = new
        for view in over:
            LOGGER.warning(
                "%s uses %d bytes of disk, past its soft quota of %d",
                view.name,
                view.disk_bytes,
                view.disk_quota,
            )
        self._publish(
            *(wire.ContainerStateChanged(view) for view in changed),
            *(wire.ContainerRemoved(name) for name in removed),
            *(wire.DiskQuotaExceeded(v.name, v.disk_bytes or 0, v.disk_quota or 0) for v in over),
        )
        if self._tell_manager is not None:
            await self._tell_logins(new)

    async def _tell_logins(self, new: Mapping[str, wire.ContainerView]) -> None:
        assert self._tell_manager is not None
        for name in [n for n in self._told if n not in new]:
            del self._told[name]
            self._allowance.forget(name)
        for name, view in new.items():
            self._told.setdefault(name, view.needs_login)  # first seen: nothing to tell
        for event in login_changes(self._told, new):
            if not self._allowance.take(event.name):
                self._held_back += 1  # a later pass tells it, if it still holds then
                continue
            self._told[event.name] = isinstance(event, wire.AgentNeedsLogin)
            try:
                await self._tell_manager(event)
            except Exception as exc:  # the manager hears of the next change; we go on
                self._last_error = repr(exc)
                LOGGER.error("could not tell the manager about %s's login: %s", event.name, exc)
