"""What each identity may ask for, on the socket that identifies it: one handler per command.

`HANDLERS` maps each command of the wire table to the roles that may send it and the function
that answers it with the command's reply type (mypy checks the pairing). The identity comes
from the listener that accepted the connection (`Connection.identity`), never from the request:
an agent's `send` is always from that agent, and nothing on an agent socket reaches operator
powers.

- operator (the admin socket): status, send as `operator`, the operator inbox, agent
  registration, the lifecycle actions (spawn ... destroy, list, logs), pausing, an agent's
  mail, dead letters, event history and live subscription; the operator's questions,
  answering any question, every reminder, hive-wide loose ends and cancelling any of them;
  the original's host-socket verbs (list, agent_status, subscribe_agent_status, urls,
  set_paused, start/stop by scope, restart) in its shapes; the approval queue (pending,
  approve, deny, a diff, an agent's config history);
- manager (its own socket): the agent commands as `manager`, with hive-wide loose ends; start,
  stop, restart, kill and rebuild of any agent but itself (never destroy); the config requests
  (request_init_config, request_spawn, request_apply_commit) and cancelling its requests;
- agent (one socket each): send, recv, ack_turn, requeue_inflight, ask, answer, remind, whoami,
  get_loose_ends, cancel_loose_end, set_status as itself.

A command with no handler for a role is refused with "not available to ..."; a test checks
that every command is handled (`NOT_YET` lists any declared ahead of its handler).
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final, TypeVar

import attrs
import trio

from hyperhive import wire
from hyperhive.core.approvals import Actor, Kind, Status, to_wire
from hyperhive.core.credentials import parse_variables
from hyperhive.core.registry import MANAGER as MANAGER_NAME
from hyperhive.errors import BadRequest, HyperhiveError, NotAllowed, UnknownAgent, WireError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from hyperhive.core.handles import Handles
    from hyperhive.core.lifecycle import Verb
    from hyperhive.core.listener import Connection

__all__ = ["HANDLERS", "NOT_YET", "Surfaces", "agent_status_row", "rfc3339", "scope_names"]

R = TypeVar("R")
_Handler = Callable[["Handles", "Connection", Any], Awaitable[Any]]
OPERATOR: Final = frozenset({"operator"})
MANAGER: Final = frozenset({"manager"})
AGENTS: Final = frozenset({"agent", "manager"})
EVERYONE: Final = OPERATOR | AGENTS
HANDLERS: Final[dict[type[wire.Request[Any]], tuple[frozenset[str], _Handler]]] = {}
# Commands declared in the table ahead of their handler (none today).
NOT_YET: Final[frozenset[type[wire.Request[Any]]]] = frozenset()


def handles(
    command: type[wire.Request[R]], roles: frozenset[str]
) -> Callable[[Callable[[Handles, Connection, Any], Awaitable[R | None]]], _Handler]:
    """Register the decorated function as `command`'s handler for `roles`. It returns the
    command's reply, or None when it wrote its answer itself (a subscription)."""

    def register(fn: Callable[[Handles, Connection, Any], Awaitable[R | None]]) -> _Handler:
        if command in HANDLERS:
            raise ValueError(f"{command.__name__} has a handler already")
        HANDLERS[command] = (roles, fn)
        return fn

    return register


class Surfaces:
    """The dispatchers the listeners call; each returns the encoded response line."""

    def __init__(self, hive: Handles) -> None:
        self._hive = hive

    async def send_many(self, conn: Connection, sends: list[wire.Send]) -> list[bytes]:
        """Every identity's `send`s, as the connection's own identity, one answer per send.

        The listener hands over every `send` (a run of them when the client pipelined), so they
        share one broker commit; a refused send gets its own error line.
        """
        items = [(s.to, s.body) for s in sends]
        results = await self._hive.messages.send_many(conn.identity.name, items)
        return [
            wire.encode_error(str(result))
            if isinstance(result, HyperhiveError)
            else wire.encode_sent(result.id)
            for result in results
        ]

    async def dispatch(self, conn: Connection, request: wire.Request[Any]) -> bytes | None:
        """Answer `request` as the connection's identity, or refuse it if that may not."""
        entry = HANDLERS.get(type(request))
        if entry is None or conn.identity.role not in entry[0]:
            cmd = wire.command_of(request).cmd
            raise NotAllowed(f"{cmd!r} is not available to {_who(conn)}")
        reply = await entry[1](self._hive, conn, request)
        return None if reply is None else wire.encode_response(reply)


def _who(conn: Connection) -> str:
    return "the operator" if conn.identity.role == "operator" else str(conn.identity)


# -- every identity -----------------------------------------------------------------------------


@handles(wire.Send, EVERYONE)
async def _send(hive: Handles, conn: Connection, request: wire.Send) -> wire.Sent:
    # The listener batches sends through `Surfaces.send_many`; this answers a lone one.
    message = await hive.messages.send(conn.identity.name, request.to, request.body)
    return wire.Sent(message.id)


@handles(wire.Answer, EVERYONE)
async def _answer(hive: Handles, conn: Connection, request: wire.Answer) -> wire.Resolved:
    question = await hive.questions.answer(conn.identity, request.id, request.answer)
    return wire.Resolved(question)


@handles(wire.GetLooseEnds, EVERYONE)
async def _loose_ends(
    hive: Handles, conn: Connection, request: wire.GetLooseEnds
) -> wire.LooseEnds:
    return await hive.loose_ends(conn.identity)


@handles(wire.CancelLooseEnd, EVERYONE)
async def _cancel(
    hive: Handles, conn: Connection, request: wire.CancelLooseEnd
) -> wire.LooseEndCancelled:
    await hive.cancel_loose_end(conn.identity, request.kind, request.id)
    return wire.LooseEndCancelled(request.kind, request.id)


# -- agents (and the manager), as themselves ---------------------------------------------------


@handles(wire.Ask, AGENTS)
async def _ask(hive: Handles, conn: Connection, request: wire.Ask) -> wire.Asked:
    question = await hive.questions.ask(conn.identity.name, request)
    return wire.Asked(question.id)


@handles(wire.Remind, AGENTS)
async def _remind(hive: Handles, conn: Connection, request: wire.Remind) -> wire.Scheduled:
    reminder = await hive.reminders.remind(conn.identity.name, request)
    return wire.Scheduled(reminder.id, reminder.due_at)


@handles(wire.Whoami, AGENTS)
async def _whoami(hive: Handles, conn: Connection, request: wire.Whoami) -> wire.WhoamiReply:
    return await hive.whoami(conn.identity)


@handles(wire.Recv, AGENTS)
async def _recv(hive: Handles, conn: Connection, request: wire.Recv) -> wire.Messages | None:
    deliveries = await _recv_while_connected(hive, conn, request.max, request.wait_seconds)
    if deliveries is None:
        return None
    return wire.Messages(deliveries, paused=hive.agents.is_paused(conn.identity.name))


@handles(wire.SetStatus, AGENTS)
async def _set_status(hive: Handles, conn: Connection, request: wire.SetStatus) -> wire.Empty:
    hive.statuses.set(conn.identity.name, request.text)
    return wire.Empty()


@handles(wire.AckTurn, AGENTS)
async def _ack(hive: Handles, conn: Connection, request: wire.AckTurn) -> wire.Acked:
    return wire.Acked(await hive.messages.ack_turn(conn.identity.name))


@handles(wire.RequeueInflight, AGENTS)
async def _requeue(hive: Handles, conn: Connection, request: wire.RequeueInflight) -> wire.Requeued:
    return wire.Requeued(await hive.messages.requeue_inflight(conn.identity.name))


async def _recv_while_connected(
    hive: Handles, conn: Connection, max: int, wait: float
) -> tuple[wire.Delivery, ...] | None:
    """Long-poll for the caller, withdrawing if its client disconnects meanwhile.

    A parked recv whose client is gone must not be handed mail: the broker checks the
    connection before it wakes a parked waiter, and deliveries that raced a disconnect are
    released back to pending, uncounted. Returns None when there is nobody to answer.
    """
    me = conn.identity.name
    watcher = _HangupWatcher(conn)
    with trio.CancelScope() as scope:
        watcher.scope = scope
        try:
            deliveries = await hive.messages.recv(
                me,
                max=max,
                wait_seconds=wait,
                alive=lambda: not conn.is_closed(),
                on_park=watcher.start,
            )
        finally:
            await watcher.stop()
    if scope.cancelled_caught:
        return None  # the client hung up; the cancelled call gave back what it was handed
    if deliveries and conn.is_closed():
        await hive.messages.release(me, deliveries)
        return None
    return deliveries


class _HangupWatcher:
    """While a recv is parked, watch its client: one that hangs up frees its descriptor now,
    not when the wait runs out.

    Started only once the broker parks the recv (`on_park`), so a recv answered at once (mail
    was waiting: the busy case) costs no task and no epoll registration. It runs in the
    connection's nursery and cancels `scope`, the recv's, when the client is gone; `stop` waits
    until it has exited, so it never reads the socket once the handler reads again.
    """

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self.scope: trio.CancelScope | None = None
        self._own: trio.CancelScope | None = None
        self._done: trio.Event | None = None

    def start(self) -> None:
        nursery = self._conn.nursery
        if nursery is None or self._done is not None:
            return
        self._done = trio.Event()
        self._own = trio.CancelScope()
        try:
            nursery.start_soon(self._run)
        except RuntimeError:  # the connection is already closing: nothing left to watch
            self._done.set()

    async def _run(self) -> None:
        assert self._own is not None
        assert self._done is not None
        try:
            with self._own:
                # A reset (rather than a close) means the client is gone all the same.
                with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                    await self._conn.wait_closed()
                if self.scope is not None:
                    self.scope.cancel(reason="the client hung up")
        finally:
            self._done.set()

    async def stop(self) -> None:
        if self._own is not None and self._done is not None:
            self._own.cancel()
            with trio.CancelScope(shield=True):
                await self._done.wait()


# -- the operator -----------------------------------------------------------------------------


@handles(wire.GetStatus, OPERATOR)
async def _status(hive: Handles, conn: Connection, request: wire.GetStatus) -> wire.StatusReply:
    return hive.status.status()


@handles(wire.ReadInbox, OPERATOR)
async def _inbox(hive: Handles, conn: Connection, request: wire.ReadInbox) -> wire.InboxReply:
    return wire.InboxReply(tuple(await hive.messages.operator_inbox(max(0, request.limit))))


@handles(wire.RegisterAgent, OPERATOR)
async def _register(hive: Handles, conn: Connection, request: wire.RegisterAgent) -> wire.Agents:
    await hive.agents.register(request.name)
    return wire.Agents(tuple(hive.agents.names()))


@handles(wire.UnregisterAgent, OPERATOR)
async def _unregister(
    hive: Handles, conn: Connection, request: wire.UnregisterAgent
) -> wire.Agents:
    # = destroy: stops its container too, if it has one; its state is kept as a tombstone (as
    # its help says) and its stored messages stay.
    if request.name not in hive.agents.names():
        raise UnknownAgent(f"unknown agent {request.name!r}")
    await hive.agents.act("destroy", request.name)
    return wire.Agents(tuple(hive.agents.names()))


@handles(wire.ListAgents, OPERATOR)
async def _agents(hive: Handles, conn: Connection, request: wire.ListAgents) -> wire.Agents:
    return wire.Agents(tuple(hive.agents.names()))


@handles(wire.ListDeadLetters, OPERATOR)
async def _dead(hive: Handles, conn: Connection, request: wire.ListDeadLetters) -> wire.DeadLetters:
    return wire.DeadLetters(tuple(await hive.messages.dead_letters(request.recipient)))


@handles(wire.ReplayDead, OPERATOR)
async def _replay(hive: Handles, conn: Connection, request: wire.ReplayDead) -> wire.Sent:
    return wire.Sent((await hive.messages.replay_dead(request.id)).id)


@handles(wire.DropDead, OPERATOR)
async def _drop(hive: Handles, conn: Connection, request: wire.DropDead) -> wire.Empty:
    await hive.messages.drop_dead(request.id)
    return wire.Empty()


@handles(wire.History, OPERATOR)
async def _history(hive: Handles, conn: Connection, request: wire.History) -> wire.HistoryReply:
    return await hive.events.history(max(0, request.limit))


@handles(wire.SubscribeEvents, OPERATOR)
async def _subscribe(hive: Handles, conn: Connection, request: wire.SubscribeEvents) -> None:
    """Stream events to `conn` until it closes its end."""
    subscriber = await hive.events.subscribe()
    try:
        await conn.send(wire.encode_response(wire.Empty()))
        async with (
            trio.open_nursery() as nursery,
            contextlib.aclosing(subscriber.batches()) as batches,
        ):
            nursery.start_soon(_cancel_on_eof, conn, nursery.cancel_scope)
            # A subscriber that left (or stopped reading for SEND_TIMEOUT) ends its own feed;
            # that is not an error worth a traceback.
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                async for batch in batches:
                    await conn.send(b"".join(wire.encode_event(event) for event in batch))
            nursery.cancel_scope.cancel(reason="subscriber went away")
    finally:
        hive.events.unsubscribe(subscriber)


async def _cancel_on_eof(conn: Connection, scope: trio.CancelScope) -> None:
    # A subscribed connection takes no more requests: whatever it sends is read and ignored.
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        while True:
            try:
                if await conn.read_line() is None:
                    break
            except WireError:
                continue
    scope.cancel(reason="subscriber closed its connection")


@handles(wire.ListQuestions, OPERATOR)
async def _questions(
    hive: Handles, conn: Connection, request: wire.ListQuestions
) -> wire.Questions:
    found = await hive.questions.operator_questions(answered=request.answered, limit=request.limit)
    return wire.Questions(tuple(found))


@handles(wire.ListReminders, OPERATOR)
async def _reminders(
    hive: Handles, conn: Connection, request: wire.ListReminders
) -> wire.Reminders:
    found = await hive.reminders.listing(
        owner=request.owner, delivered=request.delivered, limit=request.limit
    )
    return wire.Reminders(tuple(found))


# -- the operator's lifecycle actions (hyperhive.core.agents) ---------------------------------


async def _container(hive: Handles, name: str) -> wire.Container:
    return wire.Container(await hive.agents.view(name))


@handles(wire.Spawn, OPERATOR)
async def _spawn(hive: Handles, conn: Connection, request: wire.Spawn) -> wire.Container:
    await hive.agents.act("spawn", request.name, network=request.network)
    return await _container(hive, request.name)


def _not_itself(conn: Connection, name: str, verb: str) -> None:
    """The manager acts on the agents, never on its own container (the operator does)."""
    if conn.identity.role == "manager" and name == conn.identity.name:
        raise NotAllowed(
            f"the manager cannot {verb} itself; ask the operator (`hyperhive {verb} manager`)"
        )


async def _act_on_other(hive: Handles, conn: Connection, verb: Verb, name: str) -> wire.Container:
    """One lifecycle verb on agent `name`, which the manager may not aim at itself."""
    _not_itself(conn, name, verb)
    await hive.agents.act(verb, name)
    return await _container(hive, name)


@handles(wire.StartAgent, OPERATOR | MANAGER)
async def _start(hive: Handles, conn: Connection, request: wire.StartAgent) -> wire.Container:
    return await _act_on_other(hive, conn, "start", request.name)


@handles(wire.StopAgent, OPERATOR | MANAGER)
async def _stop(hive: Handles, conn: Connection, request: wire.StopAgent) -> wire.Container:
    return await _act_on_other(hive, conn, "stop", request.name)


@handles(wire.RestartAgent, OPERATOR | MANAGER)
async def _restart(hive: Handles, conn: Connection, request: wire.RestartAgent) -> wire.Container:
    return await _act_on_other(hive, conn, "restart", request.name)


@handles(wire.KillAgent, OPERATOR | MANAGER)
async def _kill(hive: Handles, conn: Connection, request: wire.KillAgent) -> wire.Container:
    return await _act_on_other(hive, conn, "kill", request.name)


@handles(wire.RebuildAgent, OPERATOR | MANAGER)
async def _rebuild(hive: Handles, conn: Connection, request: wire.RebuildAgent) -> wire.Container:
    return await _act_on_other(hive, conn, "rebuild", request.name)


@handles(wire.Destroy, OPERATOR)
async def _destroy(hive: Handles, conn: Connection, request: wire.Destroy) -> wire.Empty:
    await hive.agents.act("destroy", request.name, purge=request.purge, force=request.force)
    return wire.Empty()


@handles(wire.ListContainers, OPERATOR)
async def _list(hive: Handles, conn: Connection, request: wire.ListContainers) -> wire.Containers:
    views = await hive.agents.views()
    return wire.Containers(tuple(view for _, view in sorted(views.items())))


@handles(wire.ListTombstones, OPERATOR)
async def _tombstones(
    hive: Handles, conn: Connection, request: wire.ListTombstones
) -> wire.Tombstones:
    return wire.Tombstones(tuple(await hive.agents.tombstones()))


@handles(wire.PurgeTombstone, OPERATOR)
async def _purge(hive: Handles, conn: Connection, request: wire.PurgeTombstone) -> wire.Empty:
    await hive.agents.act("purge", request.name)
    return wire.Empty()


@handles(wire.Logs, OPERATOR)
async def _logs(hive: Handles, conn: Connection, request: wire.Logs) -> wire.LogsReply:
    return wire.LogsReply(request.name, await hive.agents.logs(request.name, lines=request.lines))


@handles(wire.ReadAgentInbox, OPERATOR)
async def _agent_inbox(
    hive: Handles, conn: Connection, request: wire.ReadAgentInbox
) -> wire.AgentInbox:
    name = request.name
    if not hive.agents.has_record(name):
        raise UnknownAgent(f"unknown agent {name!r}")
    pending, total = await hive.messages.pending_page(name, request.limit)
    inflight = await hive.messages.inflight(name)
    return wire.AgentInbox(name, tuple(pending), tuple(inflight), total, len(inflight))


# -- the original's host socket (docs/conventions.md, "Commands shared with the original") -----


@handles(wire.ListNames, OPERATOR)
async def _names(hive: Handles, conn: Connection, request: wire.ListNames) -> wire.Agents:
    return wire.Agents(tuple(hive.agents.names_with_manager()))


@handles(wire.GetAgentStatus, OPERATOR)
async def _agent_status(
    hive: Handles, conn: Connection, request: wire.GetAgentStatus
) -> wire.AgentStatuses:
    views = await hive.agents.views()
    rows = [_status_row(hive, view) for view in views.values()]
    return wire.AgentStatuses(tuple(sorted(rows, key=_roster_order)))


def _roster_order(row: wire.AgentStatusRow) -> tuple[bool, str]:
    return (row.name == MANAGER_NAME, row.name)


def _status_row(hive: Handles, view: wire.ContainerView) -> wire.AgentStatusRow:
    return agent_status_row(view, hive.urls.agent_page(view.name))


def agent_status_row(view: wire.ContainerView, url: str | None) -> wire.AgentStatusRow:
    """An agent's row in the original's shape, from its container view (whose `needs_update`
    and `parent` it carries as they are; docs/conventions.md, "Commands shared with the
    original")."""
    said = view.status_text if view.state == "running" else None
    return wire.AgentStatusRow(
        name=view.name,
        running=view.state == "running",
        failed=view.state == "crashed",
        needs_update=view.needs_update,
        needs_login=view.needs_login or view.turn_state == "needs_login",
        paused=view.paused,
        parent=view.parent,
        deployed_sha=view.deployed_sha[:12] if view.deployed_sha else None,
        active_model=view.model,
        status_text=said,
        status_set_at=rfc3339(view.status_set_at) if said and view.status_set_at else None,
        url=url,
        pending_reminders=view.pending_reminders,
    )


def rfc3339(at: float) -> str:
    """A wall-clock stamp as RFC 3339 in UTC (``2026-12-01T11:22:30Z``)."""
    stamp = datetime.datetime.fromtimestamp(at, datetime.UTC)
    return stamp.isoformat(timespec="seconds").replace("+00:00", "Z")


@handles(wire.SubscribeAgentStatus, OPERATOR)
async def _subscribe_status(
    hive: Handles, conn: Connection, request: wire.SubscribeAgentStatus
) -> None:
    """One `agent_statuses` line per agent whose row changed, until the client leaves."""
    subscriber = await hive.events.subscribe()
    try:
        feed = _StatusFeed(hive)
        feed.last = {
            name: _status_row(hive, view) for name, view in (await hive.agents.views()).items()
        }
        await conn.send(wire.encode_response(wire.Empty()))
        async with (
            trio.open_nursery() as nursery,
            contextlib.aclosing(subscriber.batches()) as batches,
        ):
            nursery.start_soon(_cancel_on_eof, conn, nursery.cancel_scope)
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                async for batch in batches:
                    lines = await feed.changed_rows(batch)
                    if lines:
                        await conn.send(b"".join(lines))
            nursery.cancel_scope.cancel(reason="subscriber went away")
    finally:
        hive.events.unsubscribe(subscriber)


@attrs.define
class _StatusFeed:
    """One subscriber's last rows. A container event carries its view; an approval or a ref of
    an agent's applied repo changing may change `needs_update`, so those refetch that agent's
    view (the approvals actor updates its `DeployBoard` before either event; the board's
    change also brings a container event of its own)."""

    hive: Handles
    last: dict[str, wire.AgentStatusRow] = attrs.Factory(dict)

    async def changed_rows(self, batch: Sequence[wire.Event]) -> list[bytes]:
        views: dict[str, wire.ContainerView | None] = {}
        for event in batch:
            payload = event.payload
            if isinstance(payload, wire.ContainerStateChanged):
                views[payload.container.name] = payload.container
            elif isinstance(payload, wire.ApprovalResolved | wire.ConfigRefChanged):
                agent = (
                    payload.approval.agent
                    if isinstance(payload, wire.ApprovalResolved)
                    else payload.agent
                )
                if agent in self.last:
                    views.setdefault(agent, None)
        lines = []
        for name, known in views.items():
            view = known
            if view is None:
                fetched = await self.hive.agents.views([name])
                if name not in fetched:
                    continue  # gone meanwhile
                view = fetched[name]
            row = _status_row(self.hive, view)
            if self.last.get(name) == row:
                continue  # the change is in a column the original's row does not carry
            self.last[name] = row
            lines.append(wire.encode_response(wire.AgentStatuses((row,))))
        return lines


@handles(wire.GetUrls, OPERATOR)
async def _urls(hive: Handles, conn: Connection, request: wire.GetUrls) -> wire.Urls:
    return wire.Urls(hive.urls.urls())


@handles(wire.Login, OPERATOR)
async def _login(hive: Handles, conn: Connection, request: wire.Login) -> wire.CredentialStored:
    credential = parse_variables(request.variables)
    given = await hive.agents.login(credential, request.agents)
    return wire.CredentialStored(credential.names(), not request.agents, tuple(given))


@handles(wire.Logout, OPERATOR)
async def _logout(hive: Handles, conn: Connection, request: wire.Logout) -> wire.LoggedOut:
    return await hive.logout(request.name)


@handles(wire.SetPaused, OPERATOR)
async def _set_paused(hive: Handles, conn: Connection, request: wire.SetPaused) -> wire.Container:
    await hive.agents.set_paused(request.name, request.paused)
    return await _container(hive, request.name)


@handles(wire.StartScope, OPERATOR)
async def _start_scope(
    hive: Handles, conn: Connection, request: wire.StartScope
) -> wire.Containers:
    return await _act_on_scope(hive, "start", request.scope)


@handles(wire.StopScope, OPERATOR)
async def _stop_scope(hive: Handles, conn: Connection, request: wire.StopScope) -> wire.Containers:
    return await _act_on_scope(hive, "stop", request.scope)


async def _act_on_scope(hive: Handles, verb: Verb, scope: wire.Scope) -> wire.Containers:
    """Run `verb` on every agent `scope` names, in name order; refuse a scope naming nobody,
    a service this hive does not run, or an unknown agent before acting on any."""
    names = scope_names(scope, hive.agents.names_with_manager())
    done: list[str] = []
    for name in names:
        try:
            await hive.agents.act(verb, name)
        except HyperhiveError as exc:
            already = f" ({verb} done for {', '.join(done)})" if done else ""
            raise type(exc)(f"{name}: {exc}{already}") from None
        done.append(name)
    views = await hive.agents.views(names)
    return wire.Containers(tuple(views[name] for name in names if name in views))


def scope_names(scope: wire.Scope, known: list[str]) -> list[str]:
    """The agents a scope names (pure); refusals as the caller sees them.

    Raises:
        BadRequest: it names nobody, or a service this hive does not run.
        UnknownAgent: it names an agent that does not exist.
    """
    services = [s for s in ("ci", "forge", "gateway", "matrix") if getattr(scope, s)]
    if services:
        raise BadRequest(
            f"this hive runs no {', '.join(services)}; name agents in scope.agent_names"
        )
    names = set(scope.agent_names)
    if scope.agents:
        names.update(name for name in known if name != MANAGER_NAME)
    if not names:
        raise BadRequest(
            'the scope names no agent; list them in "agent_names" (an empty scope never means '
            "every agent)"
        )
    unknown = sorted(names - set(known))
    if unknown:
        raise UnknownAgent(f"unknown agent {unknown[0]!r}; nothing was done")
    return sorted(names)


# -- approvals (hyperhive.core.approvals, docs/approvals.md) ------------------------------------


@handles(wire.RequestInitConfig, MANAGER)
async def _init_config(
    hive: Handles, conn: Connection, request: wire.RequestInitConfig
) -> wire.ConfigInitialised:
    return await hive.approvals.init_config(request.name)


@handles(wire.RequestSpawn, MANAGER)
async def _request_spawn(
    hive: Handles, conn: Connection, request: wire.RequestSpawn
) -> wire.Submitted:
    approval = await hive.approvals.request(
        Kind.SPAWN, request.name, request.commit_ref, request.description
    )
    return wire.Submitted(approval.id)


@handles(wire.RequestApplyCommit, MANAGER)
async def _request_apply(
    hive: Handles, conn: Connection, request: wire.RequestApplyCommit
) -> wire.Submitted:
    approval = await hive.approvals.request(
        Kind.APPLY_COMMIT, request.agent, request.commit_ref, request.description
    )
    return wire.Submitted(approval.id)


@handles(wire.ListPending, OPERATOR)
async def _pending(hive: Handles, conn: Connection, request: wire.ListPending) -> wire.Approvals:
    if request.all:
        rows = await hive.approvals.recent(request.limit)
    else:
        rows = await hive.approvals.pending()
    return wire.Approvals(tuple(to_wire(row) for row in rows))


@handles(wire.Approve, OPERATOR)
async def _approve(hive: Handles, conn: Connection, request: wire.Approve) -> wire.ApprovalReply:
    approval = await hive.approvals.decide(request.id, Status.APPROVED, Actor.OPERATOR)
    return wire.ApprovalReply(to_wire(approval))


@handles(wire.Deny, OPERATOR)
async def _deny(hive: Handles, conn: Connection, request: wire.Deny) -> wire.ApprovalReply:
    approval = await hive.approvals.decide(request.id, Status.DENIED, Actor.OPERATOR, request.note)
    return wire.ApprovalReply(to_wire(approval))


@handles(wire.ShowApproval, OPERATOR)
async def _approval_diff(
    hive: Handles, conn: Connection, request: wire.ShowApproval
) -> wire.ApprovalDetail:
    return await hive.approvals.detail(request.id)


@handles(wire.ShowConfig, OPERATOR)
async def _config(hive: Handles, conn: Connection, request: wire.ShowConfig) -> wire.ConfigReply:
    return await hive.approvals.config(request.name)
