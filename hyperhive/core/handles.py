"""The hive as its surfaces see it: one small typed handle per actor, built with the tree.

Surfaces (the sockets, the dashboard, the TUI, the MCP tools) hold a `Handles` and call its
handles; the handles send typed messages to the actors' mailboxes, so nothing outside an actor
touches its state. The few actions that gather from more than one actor or step (whoami, loose
ends, logout) are here too, so no two surfaces answer them differently.

- ``messages``: the broker (`hyperhive.core.messages.MessagesHandle`);
- ``events``: the event hub (`hyperhive.core.events.EventsHandle`);
- ``questions``, ``reminders``: the question desk and the reminder scheduler;
- ``agents``: the agents actor, and its published snapshot (`hyperhive.core.agents`);
- ``statuses``: what each agent said it is doing (`hyperhive.core.agent_views.StatusBoard`);
- ``urls``: where the hive is reached from a browser (`UrlBook`);
- ``approvals``: the approval queue and config repos (`hyperhive.core.approvals`);
- ``status``: the live actor tree (`StatusView`).

A new actor adds one handle here and one child in `hyperhive.core.daemon.build_tree`; mypy
then says which surface still lacks it.
"""

from __future__ import annotations

import os
import urllib.parse
from typing import TYPE_CHECKING

import attrs
import trio

from actors import ChildStatistics, SupervisorStatistics
from hyperhive import __version__, wire
from hyperhive.core import loose_ends
from hyperhive.core.approvals import Actor, Status, loose

if TYPE_CHECKING:
    from collections.abc import Callable

    from hyperhive.clock import WallClock
    from hyperhive.config import StatePaths
    from hyperhive.core.agent_views import StatusBoard
    from hyperhive.core.agents import AgentsHandle
    from hyperhive.core.approvals import ApprovalsHandle
    from hyperhive.core.events import EventsHandle
    from hyperhive.core.limits import Limits
    from hyperhive.core.listener import Identity
    from hyperhive.core.messages import MessagesHandle
    from hyperhive.core.questions import QuestionsHandle
    from hyperhive.core.reminders import RemindersHandle

__all__ = ["Handles", "StatusView", "UrlBook", "actor_info"]


class UrlBook:
    """Where the hive is reached from a browser: the dashboard's address, once it is bound.

    The hive runs no forge or matrix server, so those are None; ``domain`` is the host name of
    the dashboard's address. Without a dashboard (``--no-dashboard``) every URL is None.
    """

    def __init__(self) -> None:
        self._home: str | None = None

    def serve_home(self, url: str) -> None:
        """The dashboard's: it listens at `url` (ending in ``/``)."""
        self._home = url if url.endswith("/") else url + "/"

    def urls(self) -> wire.HiveUrls:
        if self._home is None:
            return wire.HiveUrls()
        return wire.HiveUrls(domain=urllib.parse.urlsplit(self._home).hostname, home=self._home)

    def agent_page(self, name: str) -> str | None:
        """The agent's page on the dashboard (docs/web-ui.md), or None without one."""
        return None if self._home is None else f"{self._home}agent/{name}/"


@attrs.frozen
class StatusView:
    """The live actor tree with every actor's statistics (`status`, `hyperhive top`).

    `tree` reads the root supervisor's statistics; it is the root of the tree this view is
    part of, so `build_tree` hands it the root's bound method once the root exists.
    """

    paths: StatePaths
    clock: WallClock
    started_at: float
    tree: Callable[[], SupervisorStatistics]

    def status(self) -> wire.StatusReply:
        now_wall, now_trio = self.clock.now(), trio.current_time()
        return wire.StatusReply(
            pid=os.getpid(),
            state_dir=str(self.paths.root),
            uptime_seconds=max(0.0, now_wall - self.started_at),
            tree=actor_info(self.tree(), lambda at: now_wall - (now_trio - at)),
            at=now_wall,
        )


@attrs.frozen
class Handles:
    """Every handle a surface may use (see the module docstring)."""

    messages: MessagesHandle
    events: EventsHandle
    questions: QuestionsHandle
    reminders: RemindersHandle
    agents: AgentsHandle
    statuses: StatusBoard
    urls: UrlBook
    approvals: ApprovalsHandle
    status: StatusView
    limits: Limits
    operator_pronouns: str

    async def whoami(self, who: Identity) -> wire.WhoamiReply:
        """The caller's name and role, the operator's pronouns, the version, its reminders."""
        counts = await self.reminders.pending_counts()
        return wire.WhoamiReply(
            name=who.name,
            role=who.role,
            pronouns=self.operator_pronouns,
            hyperhive_version=__version__,
            pending_reminders=counts.get(who.name, 0),
        )

    async def loose_ends(self, who: Identity) -> wire.LooseEnds:
        """`who`'s open questions, pending or failed reminders and the approvals waiting for
        the operator about it; hive-wide for the manager (whose requests they are)."""
        name = loose_ends.scope(who)
        open_questions = await self.questions.open_questions(name)
        undelivered = await self.reminders.listing(owner=name, limit=1000)
        waiting = await self.approvals.pending(name)
        return loose_ends.assemble(open_questions, undelivered, [loose(a) for a in waiting])

    async def logout(self, name: str | None = None) -> wire.LoggedOut:
        """Undo a login (`hyperhive logout`, the agent page's "log out"; docs/security.md).

        With `name`: it gets no credential any more, its credential files are removed, and it
        is restarted if it runs, so no harness or Claude process keeps the old credential and
        the new one reports needs-login. Without: the hive's credential is forgotten and each
        agent that was given it loses its copy, restarted if it runs. Raises UnknownAgent
        (nothing removed) for a name nobody has."""
        if name is None:
            had, removed = await self.agents.forget_hive_credential()
        else:
            had, removed = False, {name: await self.agents.revoke(name)}
        rows = [
            wire.AgentLoggedOut(agent, tuple(files), await self._restart_if_running(agent))
            for agent, files in sorted(removed.items())
        ]
        return wire.LoggedOut(hive=had, agents=tuple(rows))

    async def _restart_if_running(self, name: str) -> bool:
        views = await self.agents.views([name])
        view = views.get(name)
        if view is None or view.state not in ("running", "starting"):
            return False
        await self.agents.act("restart", name)
        return True

    async def cancel_loose_end(self, by: Identity, kind: str, id: int) -> None:
        """Cancel a question (answered `[cancelled by <name>]`), an undelivered reminder, or
        (the manager, the operator) a pending approval (tagged denied/ "cancelled ...")."""
        match loose_ends.cancel_kind(kind, by.role):
            case "question":
                await self.questions.cancel(by, id)
            case "reminder":
                await self.reminders.cancel(by, id)
            case "approval":
                actor = Actor.OPERATOR if by.role == "operator" else Actor.MANAGER
                await self.approvals.decide(id, Status.CANCELLED, actor)


def actor_info(
    stats: ChildStatistics | SupervisorStatistics,
    wall: Callable[[float], float] = lambda at: at,
) -> wire.ActorInfo:
    """The wire form of an actors statistics snapshot (recursively for supervisors); `wall`
    turns trio times into wall-clock stamps."""
    if isinstance(stats, SupervisorStatistics):
        return wire.ActorInfo(
            id=stats.id,
            kind="supervisor",
            state=stats.state,
            restarts=stats.restarts,
            last_error=stats.last_error,
            strategy=stats.strategy,
            children=tuple(actor_info(child, wall) for child in stats.children),
        )
    return wire.ActorInfo(
        id=stats.id,
        kind="actor",
        state=stats.state,
        restarts=stats.restarts,
        last_error=stats.last_error,
        queue_depth=stats.queue_depth,
        queue_capacity=stats.queue_capacity,
        last_message_at=None if stats.last_message_at is None else wall(stats.last_message_at),
        counters=dict(stats.counters),
    )
