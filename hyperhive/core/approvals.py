"""Approvals: the manager asks, the operator decides, the daemon deploys. The rules, so far.

An approval is one row (`Approval`, the original's shape) that moves through::

    pending ──approve──▶ approved ──deploy fails / rolled back──▶ failed
       │
       ├──deny (with a reason)──▶ denied
       ├──cancel──▶ cancelled          (the manager withdraws it, or its agent is gone)
       └──cannot be fetched──▶ failed  (the proposal never reached the applied repo)

``approved`` stays ``approved`` once the agent runs the new config; the applied repo's tags
(`hyperhive.config_repo.tags`) tell where a deploy stands in finer steps. ``denied``,
``failed`` and ``cancelled`` are final. Only the operator approves or denies; the manager
(which made the request) or the operator cancels; the daemon itself fails.

The rules are plain functions, tested without trio (`transition_refusal`, `request_refusal`,
`validate_request`, `crash_loop`). `ApprovalsActor` below owns the `ApprovalStore`; its child
tasks do the git and build work (`hyperhive.core.deploy`), one agent at a time. The wire shows
an `Approval` as `wire.Approval` (`to_wire`: RFC 3339 times).
"""

from __future__ import annotations

import contextlib
import enum
import logging
from typing import TYPE_CHECKING, Any, Final, TypeAlias

import attrs
import trio

from actors import ActorError, ActorStatistics, MailboxFull, Reply
from hyperhive import wire
from hyperhive.config_repo.tags import Stage, validate_commit_ref
from hyperhive.core.agent_views import DeployBoard
from hyperhive.core.agents import Deploy
from hyperhive.core.deploy import rfc3339
from hyperhive.core.registry import MANAGER, validate_name
from hyperhive.errors import (
    BadRequest,
    Conflict,
    HyperhiveError,
    InternalError,
    NotAllowed,
    NotFound,
    RepoError,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence
    from pathlib import Path

    from actors import Mailbox
    from hyperhive.clock import WallClock
    from hyperhive.core.agents import AgentsHandle
    from hyperhive.core.approval_store import ApprovalStore
    from hyperhive.core.deploy import ConfigRepos
    from hyperhive.core.events import EventsHandle
    from hyperhive.core.messages import MessagesHandle
    from hyperhive.offload import Offload

__all__ = [
    "CALL_TIMEOUT",
    "GIT_TIMEOUT",
    "MAX_DESCRIPTION",
    "MAX_NOTE",
    "MAX_PENDING",
    "MAX_PENDING_PER_AGENT",
    "SOURCES",
    "Actor",
    "Approval",
    "ApprovalsActor",
    "ApprovalsHandle",
    "ApprovalsMsg",
    "Crashed",
    "Decide",
    "DeployFinished",
    "DeployPolicy",
    "Fetched",
    "InitConfig",
    "Kind",
    "ListApprovals",
    "ReadConfig",
    "ReadDetail",
    "Request",
    "RolledBack",
    "Status",
    "check_config_name",
    "check_transition",
    "crash_loop",
    "in_probation",
    "loose",
    "request_refusal",
    "to_wire",
    "transition_refusal",
    "validate_note",
    "validate_request",
]

LOGGER = logging.getLogger("hyperhive.approvals")
CALL_TIMEOUT: Final = 30.0
# A request waits for its commit to be fetched, behind whatever git work that agent has queued.
GIT_TIMEOUT: Final = 300.0
# Denied, failed and cancelled rows older than this go at each start (approved ones stay).
RETENTION_SECONDS: Final = 90 * 86400.0
MAX_DESCRIPTION: Final = 4000
MAX_NOTE: Final = 4000
MAX_PENDING_PER_AGENT: Final = 8
MAX_PENDING: Final = 64


class Kind(enum.Enum):
    SPAWN = "spawn"
    APPLY_COMMIT = "apply_commit"


class Status(enum.Enum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Actor(enum.Enum):
    """Who asks for a transition."""

    OPERATOR = "operator"
    MANAGER = "manager"
    DAEMON = "daemon"


@attrs.frozen
class Approval:
    """One approval row; times are unix seconds (the wire shows them as RFC 3339)."""

    id: int
    agent: str
    kind: Kind
    requested_at: float
    status: Status
    description: str
    commit_ref: str
    fetched_sha: str | None = None
    resolved_at: float | None = None
    note: str | None = None


# Which statuses each status may be reached from, and by whom.
SOURCES: Final[dict[Status, frozenset[Status]]] = {
    Status.APPROVED: frozenset({Status.PENDING}),
    Status.DENIED: frozenset({Status.PENDING}),
    Status.CANCELLED: frozenset({Status.PENDING}),
    Status.FAILED: frozenset({Status.PENDING, Status.APPROVED}),
}
_WHO: Final[dict[Status, frozenset[Actor]]] = {
    Status.APPROVED: frozenset({Actor.OPERATOR}),
    Status.DENIED: frozenset({Actor.OPERATOR}),
    Status.CANCELLED: frozenset({Actor.OPERATOR, Actor.MANAGER, Actor.DAEMON}),
    Status.FAILED: frozenset({Actor.DAEMON}),
}
_VERB: Final = {
    Status.APPROVED: "approve",
    Status.DENIED: "deny",
    Status.CANCELLED: "cancel",
    Status.FAILED: "fail",
}


def transition_refusal(approval: Approval, to: Status, by: Actor) -> str | None:
    """Why ``by`` cannot move ``approval`` to ``to``, or None when it can."""
    verb = _VERB.get(to)
    if verb is None:
        return f"nothing moves an approval back to {to.value}"
    if by not in _WHO[to]:
        return f"only the {_names(_WHO[to])} may {verb} an approval"
    if approval.status not in SOURCES[to]:
        return f"approval {approval.id} is {approval.status.value}, so it cannot be {to.value}"
    return None


def check_transition(approval: Approval, to: Status, by: Actor) -> None:
    """`transition_refusal` as an exception: ``NotAllowed`` for who, ``Conflict`` for state."""
    refusal = transition_refusal(approval, to, by)
    if refusal is None:
        return
    raise (NotAllowed if refusal.startswith("only") else Conflict)(refusal)


def validate_request(commit_ref: str, description: str) -> tuple[str, str]:
    """The normalised ``commit_ref`` and ``description`` of a spawn or apply_commit request.

    Raises:
        BadRequest: a ref that is not 7 to 40 hex digits, or a description that is empty,
            too long or holds a NUL.
    """
    ref = validate_commit_ref(commit_ref)
    text = description.strip()
    if not text:
        raise BadRequest("description must say what the change is for")
    if len(text) > MAX_DESCRIPTION or "\0" in text:
        raise BadRequest(f"description must be at most {MAX_DESCRIPTION} characters, no NUL")
    return ref, text


def validate_note(note: str) -> str:
    """A deny reason or failure note, stripped and bounded (cut, never refused)."""
    text = note.replace("\0", "?").strip()
    return text if len(text) <= MAX_NOTE else text[: MAX_NOTE - 10].rstrip() + " [... cut]"


def request_refusal(
    kind: Kind,
    agent: str,
    *,
    agent_exists: bool,
    pending: Sequence[Approval],
) -> str | None:
    """Why a new request of ``kind`` for ``agent`` is refused, given what is ``pending``.

    A spawn is for an agent that does not exist yet, an apply_commit for one that does; one
    pending spawn per name; at most `MAX_PENDING_PER_AGENT` pending per agent and `MAX_PENDING`
    in all, so a runaway manager cannot bury the operator.
    """
    if kind is Kind.SPAWN and agent_exists:
        return f"{agent} already exists; propose a config change with request_apply_commit"
    if kind is Kind.APPLY_COMMIT and not agent_exists:
        return f"{agent} does not exist; ask for it with request_spawn"
    mine = [a for a in pending if a.agent == agent and a.status is Status.PENDING]
    if kind is Kind.SPAWN and any(a.kind is Kind.SPAWN for a in mine):
        return f"a spawn of {agent} is already waiting for the operator"
    if len(mine) >= MAX_PENDING_PER_AGENT:
        return f"{agent} already has {len(mine)} approvals waiting; cancel some first"
    if sum(a.status is Status.PENDING for a in pending) >= MAX_PENDING:
        return f"{MAX_PENDING} approvals are already waiting for the operator"
    return None


def _names(actors: frozenset[Actor]) -> str:
    order = list(Actor)
    names = [actor.value for actor in sorted(actors, key=order.index)]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


# --------------------------------------------------------------------------------------------
# Crash loops after a deploy
# --------------------------------------------------------------------------------------------


@attrs.frozen
class DeployPolicy:
    """When a deploy counts as crash-looping: `crashes` crashes within `window` seconds of it
    going live. During that window the daemon restarts the agent after a crash (so a loop can
    show itself); at the `crashes`-th it rolls the deploy back."""

    crashes: int = 3
    window: float = 600.0

    @classmethod
    def parse(cls, text: str) -> DeployPolicy:
        """``3/600``: crashes / seconds (``--crash-loop``)."""
        crashes, _, window = text.partition("/")
        try:
            policy = cls(int(crashes), float(window or 600))
        except ValueError:
            raise BadRequest(f"crash loop {text!r} is not CRASHES/SECONDS (say 3/600)") from None
        if policy.crashes < 1 or not 0 < policy.window <= 86400:
            raise BadRequest("a crash loop is 1 or more crashes within 1 s to a day")
        return policy


def crash_loop(crashes: Sequence[float], deployed_at: float, policy: DeployPolicy) -> bool:
    """Whether `crashes` (trio times) after a deploy at `deployed_at` make a crash loop."""
    recent = [at for at in crashes if deployed_at <= at <= deployed_at + policy.window]
    return len(recent) >= policy.crashes


def in_probation(deployed_at: float, now: float, policy: DeployPolicy) -> bool:
    """Whether a deploy is still watched for a crash loop (and restarted after a crash)."""
    return now - deployed_at <= policy.window


def to_wire(approval: Approval) -> wire.Approval:
    """The wire row of an approval (RFC 3339 times)."""
    return wire.Approval(
        id=approval.id,
        agent=approval.agent,
        kind=approval.kind.value,
        requested_at=rfc3339(approval.requested_at) or "",
        status=approval.status.value,
        description=approval.description,
        commit_ref=approval.commit_ref,
        fetched_sha=approval.fetched_sha,
        resolved_at=rfc3339(approval.resolved_at),
        note=approval.note,
    )


def loose(approval: Approval) -> wire.LooseApproval:
    """A pending approval as loose ends list it."""
    return wire.LooseApproval(
        id=approval.id,
        agent=approval.agent,
        summary=approval.description,
        submitted_at=approval.requested_at,
        kind=approval.kind.value,
        commit_ref=approval.commit_ref,
    )


# --------------------------------------------------------------------------------------------
# The actor
# --------------------------------------------------------------------------------------------


@attrs.frozen
class InitConfig:
    name: str
    reply: Reply[wire.ConfigInitialised]


@attrs.frozen
class Request:
    """A spawn or apply_commit request from the manager (answered once it is fetched)."""

    kind: Kind
    agent: str
    commit_ref: str
    description: str
    reply: Reply[Approval]


@attrs.frozen
class Decide:
    """Approve, deny or cancel approval `id` (`by` who; `note`: the reason)."""

    id: int
    to: Status
    by: Actor
    note: str
    reply: Reply[Approval]


@attrs.frozen
class ListApprovals:
    pending: bool
    limit: int
    agent: str | None
    reply: Reply[list[Approval]]


@attrs.frozen
class ReadDetail:
    id: int
    reply: Reply[wire.ApprovalDetail]


@attrs.frozen
class ReadConfig:
    name: str
    reply: Reply[wire.ConfigReply]


@attrs.frozen
class Fetched:
    """A child's report: request `approval` was imported as `sha`, or failed with `error`."""

    approval: Approval
    sha: str | None
    error: str | None
    reply: Reply[Approval]


@attrs.frozen
class DeployFinished:
    """A child's report on approval `id`'s deploy: done (`error` None), or failed with the
    text; `previous` is what the agent ran before (for a rollback), `at` when it went live."""

    id: int
    agent: str
    error: str | None
    previous: Deploy | None
    previous_main: str | None
    at: float


@attrs.frozen
class Crashed:
    """Crash watch's report: `name` crashed (no action of anyone's)."""

    name: str


@attrs.frozen
class RolledBack:
    """A child's report: approval `id` was rolled back (`error`: the rollback itself failed)."""

    id: int
    agent: str
    note: str
    commit: str | None
    error: str | None


ApprovalsMsg: TypeAlias = (
    InitConfig
    | Request
    | Decide
    | ListApprovals
    | ReadDetail
    | ReadConfig
    | Fetched
    | DeployFinished
    | Crashed
    | RolledBack
)
_DECIDED: Final = {
    Status.APPROVED: "approved",
    Status.DENIED: "denied",
    Status.CANCELLED: "cancelled",
}


@attrs.define
class _Probation:
    """A deploy within its crash-loop window."""

    id: int
    deployed_at: float
    previous: Deploy | None
    previous_main: str | None
    crashes: list[float] = attrs.Factory(list)
    rolling_back: bool = False


class ApprovalsActor:
    """Owns the approval store; its children do the git and build work, one agent at a time.

    Accepts: `InitConfig`, `Request`, `Decide`, `ListApprovals`, `ReadDetail`, `ReadConfig`,
    `Crashed` (crash watch), and its children's `Fetched`, `DeployFinished`, `RolledBack`.
    Emits: `ApprovalAdded`, `ApprovalResolved` (hub; `ConfigRefChanged` for every ref, from
    `ConfigRepos`); helper events to the manager through the broker: `ApprovalApproved`,
    `ApprovalDenied`, `ApprovalCancelled`, `ConfigDeployed`, `ConfigFailed`,
    `ConfigRolledBack`. Asks the agents actor to spawn, rebuild, start or stop an agent.

    It never waits on another actor in its own task: every call into the agents actor or the
    broker, and all git, runs in a child task that reports back with a message.
    """

    def __init__(
        self,
        mailbox: Mailbox[ApprovalsMsg],
        *,
        path: Path,
        clock: WallClock,
        offload: Offload,
        repos: ConfigRepos,
        agents: AgentsHandle,
        messages: MessagesHandle,
        events: EventsHandle,
        policy: DeployPolicy,
        board: DeployBoard | None = None,
    ) -> None:
        self._mailbox = mailbox
        self._path = path
        self._clock = clock
        self._offload = offload
        self._repos = repos
        self._agents = agents
        self._messages = messages
        self._events = events
        self._policy = policy
        self._probation: dict[str, _Probation] = {}
        # Approved, not deployed yet: agent -> approval ids whose deploy is queued or running;
        # the board shows who is on it in the agents' rows (`needs_update`).
        self._deploying: dict[str, set[int]] = {}
        self._board = board if board is not None else DeployBoard()
        self._nursery: trio.Nursery | None = None
        self._last_error: str | None = None
        self._deploys = 0
        self._rollbacks = 0

    def statistics(self) -> ActorStatistics:
        """Queue, last message, last error; agents with git work in flight, deploys done,
        deploys watched for a crash loop, rollbacks."""
        return ActorStatistics.of(
            self._mailbox.statistics(),
            last_error=self._last_error,
            busy=self._repos.busy(),
            deploys=self._deploys,
            watched=len(self._probation),
            rollbacks=self._rollbacks,
        )

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Open the store, finish what a stopped daemon left half done, serve, close it.

        Cancellation: a deploy cancelled midway is finished (tagged failed, or deployed if
        the agent already runs it) at the next start.
        """
        from hyperhive.core.approval_store import ApprovalStore

        store = await self._offload(lambda: ApprovalStore(self._path, now=self._clock.now))
        try:
            await self._offload(store.vacuum, RETENTION_SECONDS)
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                await self._resume(store)
                task_status.started()
                async for msg in self._mailbox.inbox:
                    await self._dispatch(store, msg)
                nursery.cancel_scope.cancel()
        finally:
            self._nursery = None
            store.close()

    async def _dispatch(self, store: ApprovalStore, msg: ApprovalsMsg) -> None:
        try:
            match msg:
                case InitConfig():
                    self._child(msg.name, self._seed, msg)
                case Request():
                    await self._on_request(store, msg)
                case Decide():
                    await self._on_decide(store, msg)
                case ListApprovals(pending=pending, limit=limit, agent=agent):
                    if pending:
                        rows = await self._offload(store.pending, agent)
                    else:
                        rows = await self._offload(store.recent, limit, agent)
                    msg.reply.send(rows)
                case ReadDetail(id=id):
                    approval = await self._get(store, id)
                    self._spawn(self._detail, approval, msg.reply)
                case ReadConfig(name=name):
                    self._spawn(self._config, name, msg.reply)
                case Fetched():
                    await self._on_fetched(store, msg)
                case DeployFinished():
                    await self._on_deployed(store, msg)
                case Crashed(name=name):
                    self._on_crashed(name)
                case RolledBack():
                    await self._on_rolled_back(store, msg)
        except (HyperhiveError, ActorError) as exc:
            if isinstance(msg, Fetched | DeployFinished | Crashed | RolledBack):
                self._last_error = repr(exc)
                LOGGER.warning("approvals: %s", exc)
            else:
                msg.reply.fail(exc)
        except Exception as exc:
            self._last_error = repr(exc)
            LOGGER.exception("approvals: %s failed", type(msg).__name__)
            if not isinstance(msg, Fetched | DeployFinished | Crashed | RolledBack):
                msg.reply.fail(InternalError())

    def _spawn(self, fn: Callable[..., Awaitable[None]], *args: Any) -> None:
        assert self._nursery is not None, "only while run() serves"
        self._nursery.start_soon(fn, *args)

    def _child(self, agent: str, fn: Callable[..., Awaitable[None]], *args: Any) -> None:
        """Run `fn` as a child holding `agent`'s lock (one git writer per agent)."""

        async def locked() -> None:
            async with self._repos.lock(agent):
                await fn(*args)

        self._spawn(locked)

    async def _get(self, store: ApprovalStore, id: int) -> Approval:
        approval = await self._offload(store.get, id)
        if approval is None:
            raise NotFound(f"there is no approval {id} (hyperhive pending lists them)")
        return approval

    # -- seeding ------------------------------------------------------------------------------

    async def _seed(self, msg: InitConfig) -> None:
        try:
            msg.reply.send(await self._repos.seed(msg.name, manager=MANAGER))
        except Exception as exc:
            msg.reply.fail(_error(exc, "seeding the config repos"))

    # -- requests -----------------------------------------------------------------------------

    async def _on_request(self, store: ApprovalStore, msg: Request) -> None:
        ref, description = validate_request(msg.commit_ref, msg.description)
        exists = self._agents.has_record(msg.agent)
        pending = await self._offload(store.pending)
        refusal = request_refusal(msg.kind, msg.agent, agent_exists=exists, pending=pending)
        if refusal is not None:
            raise Conflict(refusal)
        approval = await self._offload(
            lambda: store.add(
                agent=msg.agent, kind=msg.kind, commit_ref=ref, description=description
            )
        )
        self._child(msg.agent, self._fetch, approval, msg.reply)

    async def _fetch(self, approval: Approval, reply: Reply[Approval]) -> None:
        sha = error = None
        try:
            sha = await self._repos.import_proposal(
                approval.agent, approval.commit_ref, approval.id
            )
        except Exception as exc:
            error = str(_error(exc, "importing the proposal"))
        await self._mailbox.cast(Fetched(approval, sha, error, reply))

    async def _on_fetched(self, store: ApprovalStore, msg: Fetched) -> None:
        id = msg.approval.id
        if msg.sha is None:
            failed = await self._offload(store.transition, id, Status.FAILED, msg.error)
            if failed is not None:
                self._events.publish(wire.ApprovalResolved(to_wire(failed)))
            msg.reply.fail(RepoError(msg.error or "the proposal could not be fetched"))
            return
        fetched = await self._offload(store.set_fetched, id, msg.sha)
        if fetched is None:  # cancelled meanwhile
            msg.reply.fail(Conflict(f"approval {id} was cancelled before it was fetched"))
            return
        self._events.publish(wire.ApprovalAdded(to_wire(fetched)))
        LOGGER.info("approval %d: %s of %s at %s waits for the operator", id,
                    fetched.kind.value, fetched.agent, msg.sha[:12])  # fmt: skip
        msg.reply.send(fetched)

    # -- decisions ----------------------------------------------------------------------------

    async def _on_decide(self, store: ApprovalStore, msg: Decide) -> None:
        approval = await self._get(store, msg.id)
        check_transition(approval, msg.to, msg.by)
        if approval.fetched_sha is None:
            raise Conflict(f"approval {msg.id} is still being fetched; try again in a moment")
        note = validate_note(msg.note) or None
        if msg.to is Status.DENIED and note is None:
            note = "(no reason given)"
        decided = await self._offload(store.transition, msg.id, msg.to, note)
        if decided is None:
            raise Conflict(f"approval {msg.id} was decided meanwhile")
        self._events.publish(wire.ApprovalResolved(to_wire(decided)))
        LOGGER.info("approval %d %s by the %s", msg.id, _DECIDED[msg.to], msg.by.value)
        msg.reply.send(decided)
        match msg.to:
            case Status.APPROVED:
                self._deploying.setdefault(decided.agent, set()).add(decided.id)
                self._board.set(decided.agent, True)
                self._child(decided.agent, self._deploy, decided)
            case Status.DENIED:
                self._child(decided.agent, self._deny, decided, note or "")
            case Status.CANCELLED:
                reason = f"cancelled: withdrawn by the {msg.by.value}" + (
                    f": {note}" if note else ""
                )
                self._child(decided.agent, self._cancel, decided, msg.by, reason)

    async def _deny(self, approval: Approval, reason: str) -> None:
        await self._tag_quietly(approval, Stage.DENIED, reason)
        await self._tell(
            wire.ApprovalDenied(approval.id, approval.agent, approval.kind.value, reason)
        )

    async def _cancel(self, approval: Approval, by: Actor, reason: str) -> None:
        await self._tag_quietly(approval, Stage.DENIED, reason)
        await self._tell(wire.ApprovalCancelled(approval.id, approval.agent, by.value, reason))

    async def _tag_quietly(self, approval: Approval, stage: Stage, message: str) -> None:
        try:
            await self._repos.tag(approval.agent, approval.id, stage, message)
        except Exception as exc:
            LOGGER.warning("approval %d: cannot tag %s/: %s", approval.id, stage.value,
                           _error(exc, "tagging"))  # fmt: skip

    # -- deploying (a child per agent) --------------------------------------------------------

    async def _deploy(self, approval: Approval) -> None:
        """Approved: tag, build, rebuild the container; report `DeployFinished`."""
        name, id = approval.agent, approval.id
        assert approval.fetched_sha is not None
        spawn = approval.kind is Kind.SPAWN
        previous = None if spawn else self._agents.deployed(name)
        previous_main = None
        error: str | None = None
        await self._tell(wire.ApprovalApproved(id, name, approval.kind.value, approval.fetched_sha))
        try:
            previous_main = await self._repos.main(name)
            await self._repos.tag(name, id, Stage.APPROVED)
            prepared = await self._repos.prepare(name, id, approval.fetched_sha)
            role = "manager" if name == MANAGER else "agent"
            await self._repos.build(name, id, prepared, role)
            target = Deploy(id, prepared.config.network.enabled)
            try:
                await self._agents.deploy(name, target, spawn=spawn)
            except Exception as exc:
                self._deployed(name, id)
                await self._restore(name, previous, spawn=spawn)
                why = _error(exc, "starting")
                raise _Failed(f"the agent did not come up with it: {why}") from None
            # It runs the new config: no longer waiting, before the refs (and their events)
            # say it is deployed.
            self._deployed(name, id)
            await self._repos.finish(name, id)
        except Exception as exc:
            self._deployed(name, id)
            error = str(exc) if isinstance(exc, _Failed) else str(_error(exc, "deploying"))
            await self._tag_quietly(approval, Stage.FAILED, error)
            await self._tell(wire.ConfigFailed(id, name, error))
        else:
            await self._tell(wire.ConfigDeployed(id, name, approval.fetched_sha))
        finally:
            self._deployed(name, id)  # also when cancelled
        finished = DeployFinished(id, name, error, previous, previous_main, trio.current_time())
        await self._mailbox.cast(finished)

    def _deployed(self, name: str, id: int) -> None:
        """Approval `id` of `name` waits no more (deployed, or failed): idempotent."""
        ids = self._deploying.get(name)
        if ids is not None:
            ids.discard(id)
            if not ids:
                del self._deploying[name]
                self._board.set(name, False)

    async def _restore(self, name: str, previous: Deploy | None, *, spawn: bool) -> None:
        """After a deploy that did not come up: the agent back as it was (a failed spawn: gone)."""
        try:
            if spawn:
                if self._agents.has_record(name):
                    await self._agents.destroy(name)
            elif previous is not None:
                await self._agents.deploy(name, previous, spawn=False)
        except Exception as exc:
            LOGGER.error("could not put %s back on its previous config: %s", name,
                         _error(exc, "restoring"))  # fmt: skip

    async def _on_deployed(self, store: ApprovalStore, msg: DeployFinished) -> None:
        if msg.error is not None:
            failed = await self._offload(store.transition, msg.id, Status.FAILED, msg.error)
            if failed is not None:
                self._events.publish(wire.ApprovalResolved(to_wire(failed)))
            LOGGER.warning("approval %d: the deploy of %s failed", msg.id, msg.agent)
            return
        self._deploys += 1
        LOGGER.info("approval %d: %s deployed", msg.id, msg.agent)
        self._probation[msg.agent] = _Probation(msg.id, msg.at, msg.previous, msg.previous_main)

    # -- crash loops --------------------------------------------------------------------------

    def _on_crashed(self, name: str) -> None:
        watched = self._probation.get(name)
        now = trio.current_time()
        if watched is None or watched.rolling_back:
            return
        if not in_probation(watched.deployed_at, now, self._policy):
            del self._probation[name]
            return
        watched.crashes.append(now)
        if crash_loop(watched.crashes, watched.deployed_at, self._policy):
            watched.rolling_back = True
            self._child(name, self._roll_back, name, watched)
        else:
            self._spawn(self._restart, name)

    async def _restart(self, name: str) -> None:
        try:
            await self._agents.start(name)
        except Exception as exc:
            # A start that fails at once is a crash of its own.
            LOGGER.warning("restarting %s after a crash failed: %s", name, _error(exc, "start"))
            with contextlib.suppress(MailboxFull):
                self._mailbox.cast_nowait(Crashed(name))

    async def _roll_back(self, name: str, watched: _Probation) -> None:
        policy = self._policy
        minutes = f"{policy.window / 60:g} min" if policy.window >= 60 else f"{policy.window:g} s"
        note = f"rolled back: crash loop ({len(watched.crashes)} crashes within {minutes})"
        error = None
        previous = watched.previous
        try:
            await self._repos.rewind(name, watched.previous_main)
            if previous is None:
                await self._agents.stop(name)
                note += "; there is no earlier config to go back to, so it is stopped"
            else:
                await self._agents.deploy(name, previous, spawn=False)
            await self._repos.tag(name, watched.id, Stage.FAILED, note)
        except Exception as exc:
            error = str(_error(exc, "rolling back"))
        commit = watched.previous_main
        await self._mailbox.cast(RolledBack(watched.id, name, note, commit, error))

    async def _on_rolled_back(self, store: ApprovalStore, msg: RolledBack) -> None:
        self._probation.pop(msg.agent, None)
        self._rollbacks += 1
        if msg.error is not None:
            LOGGER.error("approval %d: rolling %s back failed: %s", msg.id, msg.agent, msg.error)
        else:
            LOGGER.warning("approval %d: %s", msg.id, msg.note)
        note = msg.note if msg.error is None else f"{msg.note}; that failed: {msg.error}"
        failed = await self._offload(store.transition, msg.id, Status.FAILED, note)
        if failed is not None:
            self._events.publish(wire.ApprovalResolved(to_wire(failed)))
        self._spawn(self._tell, wire.ConfigRolledBack(msg.id, msg.agent, msg.commit, note))

    # -- reads (children) ---------------------------------------------------------------------

    async def _detail(self, approval: Approval, reply: Reply[wire.ApprovalDetail]) -> None:
        try:
            spawn = approval.kind is Kind.SPAWN
            reply.send(await self._repos.detail(to_wire(approval), spawn=spawn))
        except Exception as exc:
            reply.fail(_error(exc, "reading the approval's diff"))

    async def _config(self, name: str, reply: Reply[wire.ConfigReply]) -> None:
        try:
            reply.send(await self._repos.history(name, self._agents.deployed_id(name)))
        except Exception as exc:
            reply.fail(_error(exc, "reading the config history"))

    # -- start-up -----------------------------------------------------------------------------

    async def _resume(self, store: ApprovalStore) -> None:
        """Rows a stopped daemon left half done: a request never fetched fails; an approved
        deploy is finished in a child (deployed if the agent runs it, else failed)."""
        for approval in await self._offload(store.pending):
            if approval.fetched_sha is None:
                note = "the daemon stopped before the proposal was fetched; ask again"
                failed = await self._offload(store.transition, approval.id, Status.FAILED, note)
                if failed is not None:
                    self._events.publish(wire.ApprovalResolved(to_wire(failed)))
        recent = await self._offload(store.recent, 64)
        for approval in recent:
            if approval.status is Status.APPROVED:
                self._child(approval.agent, self._settle, approval)

    async def _settle(self, approval: Approval) -> None:
        name, id = approval.agent, approval.id
        try:
            have = await self._repos.stage_of(name, id)
            if have & {Stage.DEPLOYED, Stage.FAILED}:
                return
            deployed = self._agents.deployed_id(name) == id
            if deployed and Stage.BUILDING in have:
                await self._repos.finish(name, id)
                await self._tell(wire.ConfigDeployed(id, name, approval.fetched_sha or ""))
                return
            error = "the daemon stopped during this deploy; propose it again"
            if Stage.APPROVED not in have:
                await self._repos.tag(name, id, Stage.APPROVED)
            await self._repos.tag(name, id, Stage.FAILED, error)
        except Exception as exc:
            error = str(_error(exc, "finishing an interrupted deploy"))
        now = trio.current_time()
        await self._mailbox.cast(DeployFinished(id, name, error, None, None, now))
        await self._tell(wire.ConfigFailed(id, name, error))

    # -- telling the manager ------------------------------------------------------------------

    async def _tell(self, event: wire.HelperEvent) -> None:
        try:
            body = wire.encode_helper_event(event)
            await self._messages.send(wire.HELPER_SENDER, MANAGER, body)
        except (HyperhiveError, ActorError) as exc:
            LOGGER.warning("could not tell the manager (%s): %s", type(event).__name__, exc)


class _Failed(HyperhiveError):
    """A deploy step failed; the text is what the manager and the operator read."""


def _error(exc: BaseException, doing: str) -> HyperhiveError:
    """`exc` as something to show: its own sentence, or "internal error" for a bug (logged)."""
    if isinstance(exc, HyperhiveError):
        return exc
    if isinstance(exc, ActorError):
        return InternalError(f"{doing}: {exc}")
    LOGGER.error("approvals: %s failed", doing, exc_info=exc)
    return InternalError(f"internal error while {doing} (logged)")


class ApprovalsHandle:
    """What surfaces hold to reach the approvals actor."""

    def __init__(self, mailbox: Mailbox[ApprovalsMsg]) -> None:
        self._mailbox = mailbox

    async def init_config(self, name: str) -> wire.ConfigInitialised:
        """Seed `name`'s config repos (the manager's ``request_init_config``)."""
        check_config_name(name)
        return await self._mailbox.call(lambda r: InitConfig(name, r), timeout=GIT_TIMEOUT)

    async def request(self, kind: Kind, agent: str, commit_ref: str, description: str) -> Approval:
        """Store a request and fetch its commit; the pending row (RepoError if not fetched)."""
        check_config_name(agent)
        return await self._mailbox.call(
            lambda r: Request(kind, agent, commit_ref, description, r), timeout=GIT_TIMEOUT
        )

    async def decide(self, id: int, to: Status, by: Actor, note: str = "") -> Approval:
        """Approve, deny or cancel approval `id` as `by`; the row after."""
        return await self._mailbox.call(lambda r: Decide(id, to, by, note, r), timeout=CALL_TIMEOUT)

    async def pending(self, agent: str | None = None) -> list[Approval]:
        """Approvals waiting for the operator, oldest first (only `agent`'s if given)."""
        return await self._mailbox.call(
            lambda r: ListApprovals(True, 0, agent, r), timeout=CALL_TIMEOUT
        )

    async def recent(self, limit: int) -> list[Approval]:
        """The newest `limit` approvals in any status, newest first."""
        return await self._mailbox.call(
            lambda r: ListApprovals(False, limit, None, r), timeout=CALL_TIMEOUT
        )

    async def detail(self, id: int) -> wire.ApprovalDetail:
        """Approval `id` with its unified and capability diffs."""
        return await self._mailbox.call(lambda r: ReadDetail(id, r), timeout=GIT_TIMEOUT)

    async def config(self, name: str) -> wire.ConfigReply:
        """`name`'s deployed config and tag history."""
        check_config_name(name)
        return await self._mailbox.call(lambda r: ReadConfig(name, r), timeout=GIT_TIMEOUT)

    def crashed(self, name: str) -> None:
        """Crash watch's: `name` crashed (never blocks; a full mailbox drops it, logged)."""
        try:
            self._mailbox.cast_nowait(Crashed(name))
        except MailboxFull:
            LOGGER.warning("approvals mailbox full; a crash of %s was not counted", name)


def check_config_name(name: str) -> str:
    """An agent name that may have config repos: a valid agent name, or the manager.

    Raises:
        InvalidName: anything else.
    """
    if name == MANAGER:
        return name
    return validate_name(name)
