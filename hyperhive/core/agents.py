"""The agents actor: the one owner of who the agents are and what is being done to them.

It owns the registry (records, tombstones), the transient action per agent, the set of agents
the backend was told about in this daemon's life, and each agent's socket listener. Every
lifecycle verb (spawn, start, stop, restart, kill, rebuild, destroy, purge) reaches it as an
`Act`; the rules are `hyperhive.core.lifecycle.plan`, the actor does the steps:

- bookkeeping (the record, the wanted state, the tombstone) in its own task, its file writes
  through the injected `Offload`;
- the backend and the socket in a child task per action, keyed by the agent's name: a slow
  stop of one agent never blocks another, and a second action on the same agent is refused
  (`Conflict`) until the child reports `ActionDone` (a kill goes through regardless);
- views (the container rows) in child tasks too, from a snapshot, since they wait on the
  backend, the agents' files and the reminder scheduler.

After every change it publishes an `AgentsSnapshot` (names, recipients, transient actions),
which the broker reads for every message without a call. Crash watch asks instead
(`ReadTransient`), so an exit is judged in order with the action steps before it.
On start it opens every registered agent's socket, then starts what should run; on stop it
stops the agents first, while their sockets still answer (it is the tree's last child).

Surfaces reach it through `AgentsHandle`.

Pausing (`SetPause`) is a record flag, like the wanted state: the snapshot carries it, so the
broker hands a paused agent no mail; resuming asks the broker to answer its waiting recvs.

Accepts: `Register`, `Act`, `SetPause`, `ReadViews`, `ReadLogs`, `ReadTombstones`,
`ReadTransient`, and its children's `ActionDone`. Emits: `AgentRegistered`,
`AgentUnregistered` (hub); asks the rescanner to look again after every step.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Any, Final, TypeAlias

import attrs
import trio

from actors import ActorError, ActorStatistics, Reply
from hyperhive import wire
from hyperhive.containers.base import AgentState
from hyperhive.core.agent_files import remove_leftover
from hyperhive.core.agent_spec import SpecBuilder
from hyperhive.core.agent_views import DeployBoard, StatusBoard, ViewBuilder
from hyperhive.core.credentials import (
    Credential,
    CredentialStore,
    remove_agent_credentials,
    remove_daemon_credential,
)
from hyperhive.core.lifecycle import MAX_LOG_LINES, TRANSIENT, Plan, Step, Verb, plan
from hyperhive.core.registry import MANAGER, AgentRecord, AgentRegistry, remove_tree, validate_name
from hyperhive.errors import (
    ContainerError,
    HyperhiveError,
    InternalError,
    UnknownAgent,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from actors import ChildSpec, Mailbox, Supervisor
    from hyperhive.clock import WallClock
    from hyperhive.config import StatePaths
    from hyperhive.containers.base import ContainerBackend
    from hyperhive.containers.settings import ContainerSettings
    from hyperhive.core.events import EventsHandle
    from hyperhive.core.limits import LimitLog
    from hyperhive.core.messages import MessagesHandle
    from hyperhive.core.reminders import RemindersHandle
    from hyperhive.offload import Offload

__all__ = [
    "Act",
    "ActionDone",
    "AgentsActor",
    "AgentsHandle",
    "AgentsMsg",
    "AgentsSnapshot",
    "Deploy",
    "ReadLogs",
    "ReadTombstones",
    "ReadTransient",
    "ReadViews",
    "Register",
    "SetPause",
    "snapshot_of",
]

LOGGER = logging.getLogger("hyperhive.lifecycle")
CALL_TIMEOUT: Final = 30.0
# An action waits out the agent's stop grace and the backend's own work; give it room.
ACTION_TIMEOUT: Final = 300.0
_LIVE: Final = (AgentState.RUNNING, AgentState.STARTING)
# Files an older harness left in the state directory that nothing reads any more: removed at
# the agent's next start (the report is `wire.REPORT_FILE` now).
LEFTOVER_FILES: Final = ("hyperhive-state.json",)
_LIVE_STATES: Final = tuple(state.value for state in _LIVE)


@attrs.frozen
class Deploy:
    """What a spawn or rebuild from the approvals actor runs: deploy `id` (None: the agent's
    plain config directory again, a rollback past its first deploy) with the network on or
    off, as its `agent.toml` says."""

    id: int | None
    network: bool


@attrs.frozen
class AgentsSnapshot:
    """What the actor publishes after every change; reading it never blocks."""

    names: frozenset[str] = frozenset()
    manager_retired: bool = False
    transient: Mapping[str, str] = attrs.field(factory=dict)
    with_record: frozenset[str] = frozenset()  # the names, and the manager once it has one
    paused: frozenset[str] = frozenset()
    deploys: Mapping[str, Deploy] = attrs.field(factory=dict)  # what each one runs

    def is_recipient(self, name: str) -> bool:
        """Whether a message to `name` has somewhere to go (an agent, the manager unless it
        was destroyed, the operator)."""
        if name == MANAGER:
            return not self.manager_retired
        return name in self.names or name == "operator"


def snapshot_of(
    registry: AgentRegistry, transient: Mapping[str, str] | None = None
) -> AgentsSnapshot:
    """The snapshot of `registry` (the one the tree starts with, before the actor runs)."""
    names = frozenset(registry.names())
    manager = frozenset({MANAGER}) if registry.has_record(MANAGER) else frozenset()
    paused = frozenset(record.name for record in registry.records() if record.paused)
    records = registry.records()
    deploys = {r.name: Deploy(r.deploy, r.network) for r in records}
    return AgentsSnapshot(
        names, registry.manager_retired, dict(transient or {}), names | manager, paused, deploys
    )


# -- messages ---------------------------------------------------------------------------------


@attrs.frozen
class Register:
    """Make `name` a known agent with its own socket (no container); False if it was one."""

    name: str
    reply: Reply[bool]


@attrs.frozen
class Act:
    """Run lifecycle `verb` on agent `name`; answered once it is done. With `deploy`, a spawn
    or rebuild records that deploy first (the approvals actor's deploy step)."""

    verb: Verb
    name: str
    reply: Reply[None]
    network: bool = True
    purge: bool = False
    force: bool = False
    status: str | None = None  # autostart: the backend's state of the agent, just read
    deploy: Deploy | None = None


@attrs.frozen
class SetPause:
    """Pause agent `name` (or the manager), or resume it; answered once it is recorded."""

    name: str
    paused: bool
    reply: Reply[None]


@attrs.frozen
class Login:
    """Store `credential` (the hive's when `names` is empty, else theirs) and hand it to the
    agents it applies to now; answered with the agents given it."""

    credential: Credential
    names: tuple[str, ...]
    reply: Reply[list[str]]


@attrs.frozen
class Revoke:
    """Log `name` out: no credential is given to it any more, and the credential files in its
    state directory are removed; answered with the files removed (as the agent sees them)."""

    name: str
    reply: Reply[list[str]]


@attrs.frozen
class ForgetHiveCredential:
    """Drop the hive's credential and take back the copies the daemon gave agents that use
    it; answered with whether there was one, and the files removed per agent (only agents
    that lost one)."""

    reply: Reply[tuple[bool, dict[str, list[str]]]]


@attrs.frozen
class ReadViews:
    """The container rows of `names` (every agent and the manager when None)."""

    names: tuple[str, ...] | None
    reply: Reply[dict[str, wire.ContainerView]]


@attrs.frozen
class ReadLogs:
    name: str
    lines: int
    reply: Reply[str]


@attrs.frozen
class ReadTombstones:
    reply: Reply[list[wire.Tombstone]]


@attrs.frozen
class ReadTransient:
    """The action in flight on `name` now, in the order of the actor's mailbox: an exit that
    came after an action's last step is judged after that action's `ActionDone`."""

    name: str
    reply: Reply[str | None]


@attrs.frozen
class ActionDone:
    """A child's report: the backend and socket steps of `act` ran up to step `upto` of its
    plan, an actor's own step or the end (`error`: until one failed). `created`: the backend
    now knows the agent."""

    act: Act
    plan: Plan
    error: Exception | None
    created: bool
    upto: int
    record: AgentRecord


AgentsMsg: TypeAlias = (
    Register
    | Act
    | SetPause
    | Login
    | Revoke
    | ForgetHiveCredential
    | ReadViews
    | ReadLogs
    | ReadTombstones
    | ReadTransient
    | ActionDone
)


class AgentsActor:
    """See the module docstring.

    Args:
        mailbox: the actor's mailbox.
        registry: the agents as loaded at start (`AgentRegistry`, blocking: used via `offload`).
        paths: the state directory.
        clock: wall clock for tombstones.
        offload: how file work leaves the trio thread.
        backend: the container backend (None: agents are sockets only).
        settings: the container settings (grace periods, the harness command).
        listeners: the supervisor of the socket listeners; `listener_for` builds an agent's.
        events: where registration events go; reminders: pending counts for the rows.
        limit_log: notes for the rows; on_change: ask the rescanner to look at an agent.
        messages: mail counts for the rows, and who to tell when an agent is resumed.
        statuses: what each agent said it is doing (set_status), for the rows.
        operator_pronouns: passed to every agent's harness (whoami must agree with it).
    """

    def __init__(
        self,
        mailbox: Mailbox[AgentsMsg],
        *,
        registry: AgentRegistry,
        paths: StatePaths,
        clock: WallClock,
        offload: Offload,
        backend: ContainerBackend | None,
        settings: ContainerSettings,
        listeners: Supervisor,
        listener_for: Callable[[str], ChildSpec],
        events: EventsHandle,
        reminders: RemindersHandle,
        limit_log: LimitLog,
        messages: MessagesHandle,
        statuses: StatusBoard,
        on_change: Callable[[str], None],
        publish_snapshot: Callable[[AgentsSnapshot], None],
        operator_pronouns: str,
        autostarted: trio.Event,
        deploys: DeployBoard,
    ) -> None:
        self._mailbox = mailbox
        self._registry = registry
        self._paths = paths
        self._clock = clock
        self._offload = offload
        self._backend = backend
        self._settings = settings
        self._listeners = listeners
        self._listener_for = listener_for
        self._events = events
        self._reminders = reminders
        self._limit_log = limit_log
        self._messages = messages
        self._on_change = on_change
        self._publish_snapshot = publish_snapshot
        self._pronouns = operator_pronouns
        self._credentials = CredentialStore(paths.credentials_dir)
        self._transient: dict[str, str] = {}
        self._created: set[str] = set()
        self._specs = SpecBuilder(
            paths=paths, settings=settings, offload=offload, operator_pronouns=operator_pronouns
        )
        self._views = ViewBuilder(
            paths=paths,
            settings=settings,
            backend=backend,
            offload=offload,
            reminders=reminders,
            limit_log=limit_log,
            messages=messages,
            statuses=statuses,
            clock=clock,
            deploys=deploys,
        )
        self._nursery: trio.Nursery | None = None
        self._last_error: str | None = None
        self._actions = 0
        self.autostarted = autostarted  # set once start-up has started what should run

    def statistics(self) -> ActorStatistics:
        """Queue, last message, last error; agents, actions in flight, actions done."""
        return ActorStatistics.of(
            self._mailbox.statistics(),
            last_error=self._last_error,
            agents=len(self._registry.names()),
            busy=len(self._transient),
            actions=self._actions,
        )

    # -- the loop -----------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Open every agent's socket, start what should run, serve; on stop, stop the agents.

        Cancellation: actions in flight are cancelled with the actor; the agents it started
        are left to the backend's own shutdown.
        """
        self._publish()
        for name in self._registry.names():
            await self._open_socket(name)
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self._autostart)
            task_status.started()
            async for msg in self._mailbox.inbox:
                await self._dispatch(msg)
            await self._shutdown_agents()
            nursery.cancel_scope.cancel()
        self._nursery = None

    async def _dispatch(self, msg: AgentsMsg) -> None:
        try:
            match msg:
                case Register():
                    await self._on_register(msg)
                case Act():
                    await self._on_act(msg)
                case SetPause():
                    await self._on_set_pause(msg)
                case Login():
                    await self._on_login(msg)
                case Revoke():
                    await self._on_revoke(msg)
                case ForgetHiveCredential():
                    await self._on_forget_hive_credential(msg)
                case ReadViews(names=names):
                    records, transient = self._records_of(names), dict(self._transient)
                    self._spawn(self._answer_views, records, transient, msg.reply)
                case ReadLogs():
                    record = self._record(msg.name)
                    if record is None:
                        raise UnknownAgent(f"unknown agent {msg.name!r}")
                    self._spawn(self._answer_logs, record, msg)
                case ReadTombstones():
                    msg.reply.send(await self._offload(self._registry.tombstones))
                case ReadTransient(name=name):
                    msg.reply.send(self._transient.get(name))
                case ActionDone():
                    await self._on_done(msg)
        except HyperhiveError as exc:
            self._refuse(msg, exc)
        except Exception as exc:
            # A bug met on one request: that caller is told, the actor keeps serving.
            self._last_error = repr(exc)
            LOGGER.exception("agents: %s failed", type(msg).__name__)
            self._refuse(msg, InternalError())

    def _refuse(self, msg: AgentsMsg, exc: Exception) -> None:
        match msg:
            case ActionDone():
                self._finish(msg.act, msg.plan)
                msg.act.reply.fail(exc)
            case _:
                msg.reply.fail(exc)

    def _spawn(self, fn: Callable[..., Any], *args: Any) -> None:
        assert self._nursery is not None, "only while run() serves"
        self._nursery.start_soon(fn, *args)

    def _publish(self) -> None:
        self._publish_snapshot(snapshot_of(self._registry, self._transient))

    # -- registration -------------------------------------------------------------------------

    async def _on_register(self, msg: Register) -> None:
        validate_name(msg.name)
        created = await self._offload(self._registry.register, msg.name, None)
        if not created:
            msg.reply.send(False)
            return
        self._publish()
        self._spawn(self._open_and_answer, msg.name, msg.reply)

    async def _open_and_answer(self, name: str, reply: Reply[bool]) -> None:
        try:
            await self._open_socket(name)
        except Exception as exc:
            reply.fail(exc)
        else:
            self._events.publish(wire.AgentRegistered(name))
            reply.send(True)

    async def _open_socket(self, name: str) -> None:
        if name != MANAGER:
            await self._offload(self._make_socket_dir, name)
            await self._listeners.start_child(self._listener_for(name))

    def _make_socket_dir(self, name: str) -> None:
        self._paths.agent_socket_dir(name).mkdir(parents=True, exist_ok=True, mode=0o700)

    # -- pausing ------------------------------------------------------------------------------

    async def _on_set_pause(self, msg: SetPause) -> None:
        record = self._record(msg.name)
        if record is None:
            raise UnknownAgent(f"unknown agent {msg.name!r}")
        if record.paused != msg.paused:
            await self._offload(self._registry.save, attrs.evolve(record, paused=msg.paused))
            self._publish()
            LOGGER.info("%s %s", "paused" if msg.paused else "resumed", msg.name)
            if not msg.paused:
                self._messages.resume(msg.name)
            self._on_change(msg.name)
        msg.reply.send(None)

    # -- credentials (core/credentials.py) ------------------------------------------------------

    async def _on_login(self, msg: Login) -> None:
        known = self._registry.names()
        if self._registry.has_record(MANAGER):
            known.append(MANAGER)
        unknown = sorted(set(msg.names) - set(known))
        if unknown:
            raise UnknownAgent(f"unknown agent {unknown[0]!r}; no credential was stored")
        await self._offload(self._credentials.store, msg.credential, msg.names)
        store = self._credentials
        targets = sorted(msg.names) or await self._offload(
            lambda: [name for name in known if not store.has_own(name)]
        )
        given = [name for name in targets if await self._provide(name, overwrite=bool(msg.names))]
        hive = not msg.names
        self._events.publish(wire.CredentialSaved(hive, msg.credential.names(), tuple(given)))
        LOGGER.info(
            "stored %s credential (%s); given to %s",
            "a" if msg.names else "the hive's",
            ", ".join(msg.credential.names()),
            ", ".join(given) or "no agent yet",
        )
        msg.reply.send(given)

    async def _before_start(self, name: str) -> None:
        """Tidy `name`'s state directory and hand it its credential."""
        state_dir = self._paths.agent_state_dir(name)
        for leftover in LEFTOVER_FILES:
            try:
                if await self._offload(remove_leftover, state_dir, leftover):
                    LOGGER.info("removed %s's leftover /state/%s", name, leftover)
            except HyperhiveError as exc:
                LOGGER.warning("could not remove %s's leftover /state/%s: %s", name, leftover, exc)
        await self._provide(name)

    async def _on_revoke(self, msg: Revoke) -> None:
        name = msg.name
        if not self._registry.has_record(name):
            raise UnknownAgent(f"unknown agent {name!r}; nothing was removed")
        await self._offload(self._credentials.revoke, name)
        state_dir = self._paths.agent_state_dir(name)
        removed = await self._offload(remove_agent_credentials, state_dir)
        self._events.publish(wire.CredentialRemoved(hive=False, agents=(name,)))
        LOGGER.info("logged %s out: removed %s", name, ", ".join(removed) or "no file")
        msg.reply.send(removed)

    async def _on_forget_hive_credential(self, msg: ForgetHiveCredential) -> None:
        store = self._credentials
        had = await self._offload(store.forget_hive)
        known = [n for n in [*self._registry.names(), MANAGER] if self._registry.has_record(n)]
        users = await self._offload(lambda: [n for n in known if not store.has_own(n)])
        removed: dict[str, list[str]] = {}
        for name in users:
            state_dir = self._paths.agent_state_dir(name)
            try:
                files = await self._offload(remove_daemon_credential, state_dir)
            except HyperhiveError as exc:
                LOGGER.warning("could not take back %s's copy of the credential: %s", name, exc)
                continue
            if files:
                removed[name] = files
        if had or removed:
            self._events.publish(wire.CredentialRemoved(hive=had, agents=tuple(sorted(removed))))
        LOGGER.info(
            "%s; taken back from %s",
            "forgot the hive's credential" if had else "no hive credential was stored",
            ", ".join(sorted(removed)) or "no agent",
        )
        msg.reply.send((had, removed))

    async def _provide(self, name: str, *, overwrite: bool = False) -> bool:
        """Hand `name` its credential; a refusal is logged, never raised (it only blocks that
        agent's login, which its row then shows)."""
        state_dir = self._paths.agent_state_dir(name)
        try:
            return await self._offload(
                lambda: self._credentials.provide(name, state_dir, overwrite=overwrite)
            )
        except HyperhiveError as exc:
            LOGGER.warning("could not give %s its credential: %s", name, exc)
            return False

    # -- actions ------------------------------------------------------------------------------

    async def _on_act(self, act: Act) -> None:
        name = act.name
        if act.verb == "spawn":
            validate_name(name)
        if act.verb == "purge":
            await self._offload(self._registry.purgeable, name)
        record = self._record(name)
        if act.verb == "autostart" and name == MANAGER and record is None:
            record = await self._manager_record()
        tombstone = record is None and await self._offload(self._registry.has_tombstone, name)
        decided = plan(
            record,
            act.status,
            self._transient.get(name),
            act.verb,
            name=name,
            created=name in self._created,
            purge=act.purge,
            force=act.force,
            tombstone=tombstone,
        )
        if decided.steps != (Step.PURGE,) and act.verb not in ("destroy", "purge"):
            self._need_backend()
        record = await self._before(act, decided, record)
        if (
            act.verb == "autostart"
            and Step.START not in decided.steps
            and act.status in _LIVE_STATES
        ):
            LOGGER.info("adopted running agent %s", name)
        if not decided.alongside:
            self._transient[name] = decided.transient or TRANSIENT[act.verb]
            self._publish()
        self._on_change(name)
        self._actions += 1
        self._spawn(self._perform, act, decided, record, name in self._created)

    async def _manager_record(self) -> AgentRecord:
        """The manager's record, made now (autostart with `ensure_manager`)."""
        record = AgentRecord(MANAGER, role="manager")
        await self._offload(self._registry.save, record)
        self._publish()
        LOGGER.info("created the manager agent")
        return record

    def _records_of(self, names: Sequence[str] | None) -> dict[str, AgentRecord]:
        registry = self._registry
        wanted = [r.name for r in registry.records()] if names is None else list(names)
        return {n: registry.record(n) for n in wanted if registry.has_record(n)}

    def _record(self, name: str) -> AgentRecord | None:
        return self._registry.record(name) if self._registry.has_record(name) else None

    async def _before(self, act: Act, decided: Plan, record: AgentRecord | None) -> AgentRecord:
        """The actor's own steps that come before the backend's: the record."""
        registry = self._registry
        name = act.name
        if Step.REGISTER in decided.steps:
            deploy = act.deploy
            record = AgentRecord(
                name,
                network=act.network if deploy is None else deploy.network,
                deploy=None if deploy is None else deploy.id,
                # A spawn from a deploy is the manager's approved request_spawn.
                parent=None if deploy is None else MANAGER,
            )
            await self._offload(registry.register, name, record)
            self._publish()
        elif record is None:
            return AgentRecord(name)  # a tombstone to purge: nothing else is read
        if Step.WANT_RUNNING in decided.steps and record.wanted != "running":
            record = attrs.evolve(record, wanted="running")
            await self._offload(registry.save, record)
        if Step.WANT_STOPPED in decided.steps and record.wanted != "stopped":
            record = attrs.evolve(record, wanted="stopped")
            await self._offload(registry.save, record)
        if Step.UPDATE in decided.steps and act.deploy is not None:
            deploy = act.deploy
            if (record.deploy, record.network) != (deploy.id, deploy.network):
                record = attrs.evolve(record, deploy=deploy.id, network=deploy.network)
                await self._offload(registry.save, record)
                self._publish()
        return record

    async def _perform(
        self, act: Act, decided: Plan, record: AgentRecord, created: bool, start: int = 0
    ) -> None:
        """A child task of one action: its backend and socket steps from `start` up to the
        next of the actor's own (RETIRE) or the end, then `ActionDone`."""
        error: Exception | None = None
        upto = start
        try:
            with trio.fail_after(ACTION_TIMEOUT):
                while upto < len(decided.steps) and decided.steps[upto] is not Step.RETIRE:
                    created = await self._step(decided.steps[upto], record, created) or created
                    upto += 1
        except trio.TooSlowError:
            error = ContainerError(f"{act.verb} of {act.name} took longer than {ACTION_TIMEOUT}s")
        except Exception as exc:
            error = exc
        await self._mailbox.cast(ActionDone(act, decided, error, created, upto, record))

    async def _step(self, step: Step, record: AgentRecord, created: bool) -> bool:
        """One backend or socket step; True once the backend knows the agent."""
        name = record.name
        backend = self._backend
        grace = self._settings.stop_grace
        match step:
            case Step.REGISTER:
                await self._open_socket(name)
                self._events.publish(wire.AgentRegistered(name))
            case Step.CREATE:
                await self._need_backend().create(await self._specs.spec(record))
                return True
            case Step.START:
                await self._before_start(name)
                await self._need_backend().start(name)
            case Step.STOP:
                await self._need_backend().stop(name, grace=grace)
            case Step.KILL:
                await self._need_backend().stop(name, grace=0.0)
            case Step.UPDATE:
                backend = self._need_backend()
                outcome = await backend.update(await self._specs.spec(record))
                live = (await backend.status(name)).state in _LIVE
                if live and outcome == "restart-required":
                    await backend.stop(name, grace=grace)
                return True
            case Step.START_IF_WANTED:
                backend = self._need_backend()
                if record.wanted == "running" and (await backend.status(name)).state not in _LIVE:
                    await self._before_start(name)
                    await backend.start(name)
            case Step.DESTROY:
                if backend is not None:
                    await backend.destroy(name)
            case Step.CLOSE_SOCKET:
                if name != MANAGER:
                    with contextlib.suppress(KeyError):
                        await self._listeners.terminate_child(self._listener_for(name).id)
                    self._events.publish(wire.AgentUnregistered(name))
            case Step.PURGE:
                # After RETIRE (the actor's) for a live agent: the files are the child's here.
                await self._offload(remove_tree, self._paths.agent_dir(name))
                await self._offload(self._credentials.forget, name)
            case Step.WANT_RUNNING | Step.WANT_STOPPED | Step.RETIRE:
                pass  # the actor's own (`_before`, `_on_done`)
        return False

    async def _on_done(self, done: ActionDone) -> None:
        act, decided = done.act, done.plan
        name = act.name
        if done.created:
            self._created.add(name)
        steps = decided.steps
        if done.error is None and done.upto < len(steps) and steps[done.upto] is Step.RETIRE:
            self._created.discard(name)
            await self._offload(lambda: self._registry.retire(name, destroyed_at=self._clock.now()))
            self._publish()
            if done.upto + 1 < len(steps):  # purge: the files are a child's to delete
                self._spawn(self._perform, act, decided, done.record, False, done.upto + 1)
                return
        if done.error is None and Step.DESTROY in steps:
            LOGGER.info("destroyed %s%s", name, " and purged its state" if act.purge else "")
        self._finish(act, decided)
        if done.error is not None:
            act.reply.fail(done.error)
        else:
            act.reply.send(None)

    def _finish(self, act: Act, decided: Plan) -> None:
        if not decided.alongside:
            self._transient.pop(act.name, None)
        self._publish()
        self._on_change(act.name)

    def _need_backend(self) -> ContainerBackend:
        if self._backend is None:
            raise ContainerError(
                "this daemon runs no containers (hyperhive serve --backend none); "
                "restart it with --backend bwrap, process or nixos"
            )
        return self._backend

    # -- start-up and shutdown ----------------------------------------------------------------

    async def _autostart(self) -> None:
        """Rescan the backend, ensure the manager, start what should run: an `Act` per agent.
        Never raises: an agent that cannot start is logged and shows as crashed; the others
        are served."""
        backend = self._backend
        try:
            if backend is None:
                return
            try:
                await backend.rescan()
            except HyperhiveError as exc:
                LOGGER.error("start-up rescan failed: %s", exc)
            names = self._registry.names()
            if self._settings.ensure_manager or self._registry.has_record(MANAGER):
                names.append(MANAGER)
            for name in names:
                await self._autostart_one(backend, name)
        finally:
            self.autostarted.set()

    async def _autostart_one(self, backend: ContainerBackend, name: str) -> None:
        try:
            status = (await backend.status(name)).state.value
            await self._mailbox.call(
                lambda reply: Act("autostart", name, reply, status=status),
                timeout=ACTION_TIMEOUT + CALL_TIMEOUT,
            )
        except (HyperhiveError, ActorError) as exc:
            # Not the message itself: it may carry the agent's own output (secrets included).
            LOGGER.error(
                "could not start %s at start-up (%s); see `hyperhive logs %s`",
                name,
                type(exc).__name__,
                name,
            )

    async def _shutdown_agents(self) -> None:
        """Stop every agent this daemon runs, without changing what it wants (the next
        daemon starts them again). Containers that outlive the daemon (nixos) stay."""
        backend = self._backend
        if backend is None or backend.outlives_daemon:
            return

        async def stop(name: str) -> None:
            try:
                await backend.stop(name, grace=self._settings.shutdown_grace)
            except HyperhiveError as exc:
                LOGGER.warning("could not stop %s at shutdown: %s", name, exc)

        async with trio.open_nursery() as nursery:
            for name in sorted(self._created):
                nursery.start_soon(stop, name)

    # -- views and logs (child tasks: they wait on the backend and on files) ------------------

    async def _answer_views(
        self,
        records: Mapping[str, AgentRecord],
        transient: Mapping[str, str],
        reply: Reply[dict[str, wire.ContainerView]],
    ) -> None:
        try:
            reply.send(await self._views.views(records, transient))
        except Exception as exc:
            if not isinstance(exc, HyperhiveError):
                LOGGER.exception("building the container view failed")
                exc = InternalError()
            reply.fail(exc)

    async def _answer_logs(self, record: AgentRecord, msg: ReadLogs) -> None:
        try:
            backend = self._need_backend()
            if (await backend.status(record.name)).state is AgentState.ABSENT:
                # Only so the backend knows the log; the spec it runs comes with a start.
                await backend.create(self._specs.base(record))
            lines = max(0, min(msg.lines, MAX_LOG_LINES))
            msg.reply.send(await backend.logs(msg.name, lines=lines))
        except Exception as exc:
            msg.reply.fail(exc if isinstance(exc, HyperhiveError) else InternalError())


class AgentsHandle:
    """What surfaces hold to reach the agents actor, and its published snapshot."""

    def __init__(
        self, mailbox: Mailbox[AgentsMsg], snapshot: AgentsSnapshot, autostarted: trio.Event
    ) -> None:
        self._mailbox = mailbox
        self._snapshot = snapshot
        self._autostarted = autostarted

    # The snapshot: published by the actor (its only writer), read by anyone, never blocks.

    def publish(self, snapshot: AgentsSnapshot) -> None:
        """The actor's: replace the snapshot readers see."""
        self._snapshot = snapshot

    @property
    def snapshot(self) -> AgentsSnapshot:
        return self._snapshot

    def names(self) -> list[str]:
        """Registered agent names, sorted."""
        return sorted(self._snapshot.names)

    def has_record(self, name: str) -> bool:
        """Whether `name` is a registered agent, or the manager once it has a record."""
        return name in self._snapshot.with_record

    async def wait_autostarted(self) -> None:
        """Return once start-up has started the agents that should run (the demo waits)."""
        await self._autostarted.wait()

    def is_recipient(self, name: str) -> bool:
        return self._snapshot.is_recipient(name)

    def is_paused(self, name: str) -> bool:
        """Whether the operator paused `name`, as last published (never blocks)."""
        return name in self._snapshot.paused

    def names_with_manager(self) -> list[str]:
        """Registered agent names, sorted, then the manager once it has a record."""
        manager = [MANAGER] if MANAGER in self._snapshot.with_record else []
        return self.names() + manager

    def transient(self, name: str) -> str | None:
        """The action in flight on `name`, if any, as last published (never blocks)."""
        return self._snapshot.transient.get(name)

    async def transient_now(self, name: str) -> str | None:
        """The action in flight on `name`, asked of the actor: crash watch's question, answered
        after every action step that came before it."""
        return await self._mailbox.call(
            lambda reply: ReadTransient(name, reply), timeout=CALL_TIMEOUT
        )

    # Calls.

    async def register(self, name: str) -> bool:
        """Register `name` with its socket (no container); False if it already was one."""
        return await self._mailbox.call(lambda reply: Register(name, reply), timeout=CALL_TIMEOUT)

    async def act(
        self,
        verb: Verb,
        name: str,
        *,
        network: bool = True,
        purge: bool = False,
        force: bool = False,
    ) -> None:
        """Run lifecycle `verb` on `name`; returns once it is done (refusals raise)."""
        await self._mailbox.call(
            lambda reply: Act(verb, name, reply, network=network, purge=purge, force=force),
            timeout=ACTION_TIMEOUT + CALL_TIMEOUT,
        )

    async def deploy(self, name: str, deploy: Deploy, *, spawn: bool) -> None:
        """Spawn `name` from `deploy`, or rebuild it with it (restarting it if it runs);
        returns once it runs again (or is rebuilt, when it is meant to be stopped)."""
        verb: Verb = "spawn" if spawn else "rebuild"
        await self._mailbox.call(
            lambda reply: Act(verb, name, reply, network=deploy.network, deploy=deploy),
            timeout=ACTION_TIMEOUT + CALL_TIMEOUT,
        )

    def deployed(self, name: str) -> Deploy | None:
        """What `name` runs (its deploy and network flag) as last published; None if it has
        no record."""
        return self._snapshot.deploys.get(name)

    def deployed_id(self, name: str) -> int | None:
        """The approval whose deploy `name` runs (None: none, or no such agent)."""
        found = self._snapshot.deploys.get(name)
        return None if found is None else found.id

    async def spawn(self, name: str, *, network: bool = True) -> None:
        """Create agent `name` (record, directories, socket, container) and start it."""
        await self.act("spawn", name, network=network)

    async def start(self, name: str) -> None:
        """Start `name` and remember that it should run."""
        await self.act("start", name)

    async def stop(self, name: str) -> None:
        """Stop `name` (SIGTERM, the grace period, SIGKILL); remember that it is stopped."""
        await self.act("stop", name)

    async def restart(self, name: str) -> None:
        await self.act("restart", name)

    async def kill(self, name: str) -> None:
        """Kill `name` at once, even while another action (a slow stop) is in flight."""
        await self.act("kill", name)

    async def rebuild(self, name: str) -> None:
        """Re-apply `name`'s settings; restart it if the backend needs that."""
        await self.act("rebuild", name)

    async def destroy(self, name: str, *, purge: bool = False, force: bool = False) -> None:
        """Remove `name`'s container and socket; keep its state as a tombstone unless `purge`."""
        await self.act("destroy", name, purge=purge, force=force)

    async def purge_tombstone(self, name: str) -> None:
        """Delete a destroyed agent's kept state for good."""
        await self.act("purge", name)

    async def set_paused(self, name: str, paused: bool) -> None:
        """Pause `name` (no turns, its mail waits) or resume it; recorded in its agent.json."""
        await self._mailbox.call(lambda reply: SetPause(name, paused, reply), timeout=CALL_TIMEOUT)

    async def login(self, credential: Credential, names: Sequence[str] = ()) -> list[str]:
        """Store `credential` (the hive's, or `names`' own) and give it to the agents it applies
        to now; the agents given it. Raises UnknownAgent for a name nobody has."""
        wanted = tuple(names)
        return await self._mailbox.call(
            lambda reply: Login(credential, wanted, reply), timeout=CALL_TIMEOUT
        )

    async def revoke(self, name: str) -> list[str]:
        """Log `name` out (its credential is no longer given to it, its credential files are
        removed); the files removed. Raises UnknownAgent for a name nobody has. Surfaces call
        `Handles.logout`, which also restarts it."""
        return await self._mailbox.call(lambda reply: Revoke(name, reply), timeout=CALL_TIMEOUT)

    async def forget_hive_credential(self) -> tuple[bool, dict[str, list[str]]]:
        """Drop the hive's credential and take back the copies agents were given; whether
        there was one, and the files removed per agent. Surfaces call `Handles.logout`."""
        return await self._mailbox.call(ForgetHiveCredential, timeout=CALL_TIMEOUT)

    async def views(self, names: Sequence[str] | None = None) -> dict[str, wire.ContainerView]:
        """The container rows of `names` (every agent and the manager when None)."""
        wanted = None if names is None else tuple(names)
        return await self._mailbox.call(
            lambda reply: ReadViews(wanted, reply), timeout=CALL_TIMEOUT
        )

    async def view(self, name: str) -> wire.ContainerView:
        """One agent's row (UnknownAgent if there is none)."""
        views = await self.views([name])
        if name not in views:
            raise UnknownAgent(f"unknown agent {name!r}")
        return views[name]

    async def logs(self, name: str, *, lines: int) -> str:
        """The last `lines` lines `name`'s process wrote."""
        return await self._mailbox.call(
            lambda reply: ReadLogs(name, lines, reply), timeout=CALL_TIMEOUT
        )

    async def tombstones(self) -> list[wire.Tombstone]:
        """Destroyed agents whose state was kept."""
        return await self._mailbox.call(ReadTombstones, timeout=CALL_TIMEOUT)
