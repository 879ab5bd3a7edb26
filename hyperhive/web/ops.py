"""Every call the dashboard makes into the hive, in one place.

The routes in `hyperhive.web.app` parse a request, call one method here, and render what it
returns. Each method is a single call into the handle the admin socket (and so the CLI) uses:
`Hive` for messages, questions, dead letters and events, `Lifecycle` for the container actions,
an `ApprovalDesk` for approvals. Nothing here decides anything: the rules live behind those
handles, so the dashboard and the CLI cannot drift apart. When the daemon's handles change shape
(one typed handle per actor), this module is what moves; the routes do not.

Approvals come from an `ApprovalDesk`: `HiveApprovals`, over the approvals actor's handle (the
one the admin socket's ``pending`` / ``approve`` / ``deny`` / ``approval_diff`` use), unless a
test passes another.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import typing
from typing import TYPE_CHECKING, Protocol

import attrs
import trio

from actors import ActorStatistics

# At run time: cattrs resolves `Snapshot`'s annotations when the page asks for it.
from hyperhive import wire  # noqa: TC001
from hyperhive.config_repo.capabilities import Change, render_text
from hyperhive.core.agent_files import read_capped
from hyperhive.core.approvals import Actor, Status, to_wire
from hyperhive.core.listener import Identity
from hyperhive.core.reminders import container_relative
from hyperhive.errors import HyperhiveError, NotFound, UnknownAgent
from hyperhive.web.harness_link import HarnessLink

if TYPE_CHECKING:
    from pathlib import Path

    from hyperhive.core.events import Subscriber
    from hyperhive.core.handles import Handles
    from hyperhive.core.lifecycle import Verb

__all__ = [
    "LIFECYCLE_ACTIONS",
    "OPERATOR",
    "ApprovalDesk",
    "ApprovalView",
    "DashboardOps",
    "HiveApprovals",
    "Snapshot",
]

OPERATOR = Identity("operator", "operator")
# The lifecycle verbs the dashboard offers, each the `Lifecycle` method of the same name.
LIFECYCLE_ACTIONS = ("start", "stop", "restart", "kill", "rebuild", "destroy")
_INBOX = 100
_QUESTIONS = 100
_MESSAGES = 200
MAX_FILE_PREVIEW = 256 * 1024


@attrs.frozen
class ApprovalView:
    """One approval as the panel shows it.

    ``diff`` is the proposed commit's unified diff against what is deployed (raw text: the page
    renders it per line through its vendored diff renderer); ``capabilities`` are the capability
    diff's lines (``+ network on``, ``- bind /srv``), shown beside it. ``status`` is ``pending``,
    ``approved``, ``denied``, ``failed`` or ``cancelled``; ``note`` is a denial's reason or a
    failure's cause.
    """

    id: int
    agent: str
    kind: str
    status: str
    description: str
    commit_ref: str
    requested_at: float
    diff: str = ""
    capabilities: tuple[str, ...] = ()
    note: str | None = None


class ApprovalDesk(Protocol):
    """What the dashboard needs from the approval flow (docs/web-ui.md, "Approvals").

    `approve` deploys (or starts deploying) the approved commit; `deny` records `reason`. Both
    raise `NotFound` for an unknown id and `Conflict` for one that is no longer pending, with a
    sentence the page shows as is. `open` lists what waits for the operator, oldest first;
    `detail` is one approval with its diffs (the page fetches it when one is added).
    """

    async def open(self) -> list[ApprovalView]: ...

    async def detail(self, id: int) -> ApprovalView: ...

    async def approve(self, id: int) -> ApprovalView: ...

    async def deny(self, id: int, reason: str) -> ApprovalView: ...


class HiveApprovals:
    """The desk over the hive's approvals actor (`hyperhive.core.approvals.ApprovalsHandle`)."""

    def __init__(self, hive: Handles) -> None:
        self._approvals = hive.approvals

    async def open(self) -> list[ApprovalView]:
        return [await self.detail(a.id) for a in await self._approvals.pending()]

    async def detail(self, id: int) -> ApprovalView:
        detail = await self._approvals.detail(id)
        lines = [
            render_text([Change(c.area, c.effect, c.subject, c.before, c.after)])  # type: ignore[arg-type]
            for c in detail.capabilities
        ]
        if detail.capability_error:
            lines = [f"! {line}" for line in detail.capability_error.splitlines()]
        return _view(detail.approval, diff=detail.diff, capabilities=tuple(lines))

    async def approve(self, id: int) -> ApprovalView:
        decided = await self._approvals.decide(id, Status.APPROVED, Actor.OPERATOR)
        return _view(to_wire(decided), requested_at=decided.requested_at)

    async def deny(self, id: int, reason: str) -> ApprovalView:
        decided = await self._approvals.decide(id, Status.DENIED, Actor.OPERATOR, reason)
        return _view(to_wire(decided), requested_at=decided.requested_at)


def _view(
    approval: wire.Approval,
    *,
    diff: str = "",
    capabilities: tuple[str, ...] = (),
    requested_at: float | None = None,
) -> ApprovalView:
    at = requested_at
    if at is None:
        at = datetime.datetime.fromisoformat(approval.requested_at).timestamp()
    return ApprovalView(
        id=approval.id,
        agent=approval.agent,
        kind=approval.kind,
        status=approval.status,
        description=approval.description,
        commit_ref=approval.fetched_sha or approval.commit_ref,
        requested_at=at,
        diff=diff,
        capabilities=capabilities,
        note=approval.note,
    )


@attrs.frozen
class Snapshot:
    """`GET /api/state`: everything the page paints first, current to event `seq`."""

    boot: str
    seq: int
    containers: tuple[wire.ContainerView, ...]
    tombstones: tuple[wire.Tombstone, ...]
    questions: tuple[wire.Question, ...]
    inbox: tuple[wire.Message, ...]
    dead_letters: tuple[wire.DeadLetter, ...]
    approvals: tuple[ApprovalView, ...]
    agents: tuple[str, ...]
    operator_pronouns: str


@attrs.define
class DashboardStats:
    """What the dashboard served, for its row in `hyperhive status` (its `statistics()`):
    its "queue" is the requests in flight, its last message the last request."""

    in_flight: int = 0
    requests: int = 0
    streams: int = 0  # open event streams
    last_request_at: float | None = None

    def began(self) -> None:
        self.in_flight += 1
        self.requests += 1
        self.last_request_at = trio.current_time()

    def ended(self) -> None:
        self.in_flight = max(0, self.in_flight - 1)

    def statistics(self) -> ActorStatistics:
        return ActorStatistics(
            self.in_flight,
            None,
            self.last_request_at,
            None,
            {"requests": self.requests, "streams": self.streams},
        )


def _inodes(paths: list[Path]) -> frozenset[tuple[int, int]]:
    """(device, inode) of each path that exists (the daemon's own sockets; a few stats)."""
    found = set()
    for path in paths:
        with contextlib.suppress(OSError):
            info = os.lstat(path)
            found.add((info.st_dev, info.st_ino))
    return frozenset(found)


class DashboardOps:
    """The dashboard's view of one running hive (see the module docstring)."""

    def __init__(self, hive: Handles, approvals: ApprovalDesk | None = None) -> None:
        self._hive = hive
        self.stats = DashboardStats()
        self.approvals: ApprovalDesk = approvals or HiveApprovals(hive)
        # Seqs restart with each daemon process; `boot` (the one every event frame carries)
        # tells a reconnecting page which one.
        self.boot = hive.events.boot

    # -- reads --------------------------------------------------------------------------------

    async def snapshot(self) -> Snapshot:
        """The first paint. The seq is read first, so every later event is newer than it."""
        hive = self._hive
        seq = (await hive.events.history(0)).seq
        views = await hive.agents.views()
        return Snapshot(
            boot=self.boot,
            seq=seq,
            containers=tuple(view for _, view in sorted(views.items())),
            tombstones=tuple(await hive.agents.tombstones()),
            questions=tuple(
                await hive.questions.operator_questions(answered=False, limit=_QUESTIONS)
            ),
            inbox=tuple(await hive.messages.operator_inbox(_INBOX)),
            dead_letters=tuple(await hive.messages.dead_letters(None)),
            approvals=tuple(await self.approvals.open()),
            agents=tuple(hive.agents.names()),
            operator_pronouns=hive.operator_pronouns,
        )

    async def history(self, limit: int) -> wire.HistoryReply:
        """The hub's remembered events, and the seq they are current to."""
        return await self._hive.events.history(limit)

    async def recent_messages(self, limit: int = _MESSAGES) -> list[wire.Message]:
        """The newest messages from the durable store (they outlive a daemon restart)."""
        return await self._hive.messages.recent(min(limit, _MESSAGES))

    async def subscribe(self) -> Subscriber:
        return await self._hive.events.subscribe()

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._hive.events.unsubscribe(subscriber)

    async def logs(self, name: str, lines: int) -> str:
        return await self._hive.agents.logs(name, lines=lines)

    async def read_file(self, agent: str, path: str) -> tuple[str, bytes]:
        """A file in `agent`'s state directory, as the agent names it (``/state/x.md``).

        The path rule is the reminders' (`container_relative`: under /state, no ``..``); the
        read is `agent_files.read_capped` (no symlinks, regular files only, capped), off the
        trio thread. Returns the path as shown and the bytes.

        Raises:
            UnknownAgent, BadRequest, NotFound, UnsafeFile (a HyperhiveError each).
        """
        if not self._hive.agents.has_record(agent):
            raise UnknownAgent(f"unknown agent {agent!r}")
        relative = container_relative(path)
        root = self._hive.status.paths.agent_state_dir(agent)
        data = await trio.to_thread.run_sync(
            lambda: read_capped(root, relative, MAX_FILE_PREVIEW, shown_as="/state")
        )
        if data is None:
            raise NotFound(f"{agent} has no file /state/{relative}")
        return f"/state/{relative}", data

    # -- one agent's page -------------------------------------------------------------------

    def harness_link(self, name: str) -> HarnessLink:
        """The way to `name`'s harness (its page socket); UnknownAgent for anyone else."""
        agents = self._hive.agents
        if not agents.has_record(name):
            raise UnknownAgent(f"unknown agent {name!r}")
        paths = self._hive.status.paths
        own = [paths.admin_socket, paths.manager_socket, *map(paths.agent_socket, agents.names())]
        return HarnessLink(name, paths.container_socket_dir(name), _inodes(own))

    async def agent_view(self, name: str) -> wire.ContainerView | None:
        try:
            return await self._hive.agents.view(name)
        except UnknownAgent:
            return None

    async def agent_inbox(self, name: str) -> tuple[list[wire.Delivery], list[wire.Delivery]]:
        """`name`'s pending mail (oldest first, at most 100) and what it holds in flight."""
        messages = self._hive.messages
        return await messages.pending(name, _INBOX), await messages.inflight(name)

    async def agent_loose_ends(self, name: str) -> wire.LooseEnds:
        """What `name` left open (as its own `get_loose_ends` sees it; the manager: all)."""
        who = Identity("manager", name) if name == "manager" else Identity("agent", name)
        return await self._hive.loose_ends(who)

    # -- actions ------------------------------------------------------------------------------

    async def send(self, to: str, body: str) -> wire.Message:
        return await self._hive.messages.send(OPERATOR.name, to, body)

    async def answer_question(self, id: int, answer: str) -> wire.Question:
        return await self._hive.questions.answer(OPERATOR, id, answer)

    async def cancel_question(self, id: int) -> None:
        await self._hive.cancel_loose_end(OPERATOR, "question", id)

    async def approval(self, id: int) -> ApprovalView:
        return await self.approvals.detail(id)

    async def approve(self, id: int) -> ApprovalView:
        return await self.approvals.approve(id)

    async def deny(self, id: int, reason: str) -> ApprovalView:
        return await self.approvals.deny(id, reason)

    async def lifecycle(self, action: str, name: str) -> wire.ContainerView | None:
        """Run lifecycle `action` (one of `LIFECYCLE_ACTIONS`) on `name`; its row after."""
        if action not in LIFECYCLE_ACTIONS:
            raise HyperhiveError(f"unknown action {action!r}")
        agents = self._hive.agents
        await agents.act(typing.cast("Verb", action), name)
        return None if action == "destroy" else await agents.view(name)

    async def logout(self, name: str) -> tuple[list[str], bool]:
        """Log `name` out (`Handles.logout`, what `hyperhive logout NAME` runs): the files
        removed, and whether it was restarted."""
        [done] = (await self._hive.logout(name)).agents
        return list(done.removed), done.restarted

    async def set_paused(self, name: str, paused: bool) -> wire.ContainerView:
        """Pause `name` (no turns, its mail waits) or resume it; its row after."""
        await self._hive.agents.set_paused(name, paused)
        return await self._hive.agents.view(name)

    async def purge_tombstone(self, name: str) -> None:
        await self._hive.agents.purge_tombstone(name)

    async def replay_dead(self, id: int) -> wire.Message:
        return await self._hive.messages.replay_dead(id)

    async def drop_dead(self, id: int) -> None:
        await self._hive.messages.drop_dead(id)
