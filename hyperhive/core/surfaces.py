"""What each identity may ask for, on the socket that identifies it.

Three dispatchers, one per kind of socket. The identity comes from the listener that accepted
the connection (`Connection.identity`), never from the request: an agent's `send` is always
from that agent, and nothing on an agent socket reaches operator or manager powers.

- operator (the admin socket): status, send as `operator`, the operator inbox, agent
  registration, the lifecycle actions (spawn ... destroy, list, logs), dead letters, event
  history and live subscription; the operator's questions, answering any question, every
  reminder, hive-wide loose ends and cancelling any of them;
- manager (its own socket): the agent commands as `manager`, with hive-wide loose ends;
- agent (one socket each): send, recv, ack_turn, requeue_inflight, ask, answer, remind, whoami,
  get_loose_ends, cancel_loose_end as itself.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import trio

from hyperhive import wire
from hyperhive.core import lifecycle
from hyperhive.errors import HyperhiveError, NotAllowed, UnknownAgent, WireError

if TYPE_CHECKING:
    from hyperhive.core.hive import Hive
    from hyperhive.core.listener import Connection

__all__ = ["Surfaces"]


class Surfaces:
    """The per-identity request handlers; each returns the encoded response line."""

    def __init__(self, hive: Hive) -> None:
        self._hive = hive

    async def send_many(self, conn: Connection, sends: list[wire.Send]) -> list[bytes]:
        """Every identity's `send`s, as the connection's own identity, one answer per send.

        The listener hands over every `send` (a run of them when the client pipelined), so they
        share one broker commit; a refused send gets its own error line.
        """
        results = await self._hive.send_many(conn.identity.name, [(s.to, s.body) for s in sends])
        return [
            wire.encode_error(str(result))
            if isinstance(result, HyperhiveError)
            else wire.encode_sent(result.id)
            for result in results
        ]

    async def agent(self, conn: Connection, request: wire.Request[Any]) -> bytes | None:
        """Requests on an agent's (or the manager's) own socket, as that identity."""
        me = conn.identity.name
        hive = self._hive
        match request:
            case wire.Ask():
                question = await hive.ask(me, request)
                return wire.encode_response(wire.Asked(question.id))
            case wire.Answer(id=id, answer=answer):
                question = await hive.answer(conn.identity, id, answer)
                return wire.encode_response(wire.Resolved(question))
            case wire.Remind():
                reminder = await hive.remind(me, request)
                return wire.encode_response(wire.Scheduled(reminder.id, reminder.due_at))
            case wire.Whoami():
                return wire.encode_response(await hive.whoami(conn.identity))
            case wire.GetLooseEnds():
                return wire.encode_response(await hive.loose_ends(conn.identity))
            case wire.CancelLooseEnd(kind=kind, id=id):
                await hive.cancel_loose_end(conn.identity, kind, id)
                return wire.encode_response(wire.LooseEndCancelled(kind, id))
            case wire.Recv(wait_seconds=wait, max=max):
                deliveries = await self._recv_while_connected(conn, max, wait)
                return (
                    None if deliveries is None else wire.encode_response(wire.Messages(deliveries))
                )
            case wire.AckTurn():
                return wire.encode_response(wire.Acked(await hive.ack_turn(me)))
            case wire.RequeueInflight():
                return wire.encode_response(wire.Requeued(await hive.requeue_inflight(me)))
        raise NotAllowed(f"{_cmd(request)!r} is not available to {conn.identity}")

    async def _recv_while_connected(
        self, conn: Connection, max: int, wait: float
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
                deliveries = await self._hive.recv(
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
        return await self._hand_over(conn, deliveries)

    async def _hand_over(
        self, conn: Connection, deliveries: tuple[wire.Delivery, ...]
    ) -> tuple[wire.Delivery, ...] | None:
        """`deliveries` for the caller, or None (and back to the broker) if it left meanwhile."""
        if deliveries and conn.is_closed():
            await self._hive.release(conn.identity.name, deliveries)
            return None
        return deliveries

    async def operator(self, conn: Connection, request: wire.Request[Any]) -> bytes | None:
        """Requests on the host admin socket, as the operator."""
        hive = self._hive
        match request:
            case wire.GetStatus():
                return wire.encode_response(hive.status())
            case wire.ReadInbox(limit=limit):
                messages = await hive.operate(lambda s: s.recent_for("operator", max(0, limit)))
                return wire.encode_response(wire.InboxReply(tuple(messages)))
            case wire.RegisterAgent(name=name):
                await hive.register_agent(name)
                return wire.encode_response(wire.Agents(tuple(hive.registry.names())))
            case wire.UnregisterAgent(name=name):
                # = destroy: stops its container too, if it has one; its state is kept as a
                # tombstone (as its help says) and its stored messages stay.
                assert hive.lifecycle is not None
                if name not in hive.registry:
                    raise UnknownAgent(f"unknown agent {name!r}")
                await hive.lifecycle.destroy(name)
                return wire.encode_response(wire.Agents(tuple(hive.registry.names())))
            case wire.ListAgents():
                return wire.encode_response(wire.Agents(tuple(hive.registry.names())))
            case wire.ListDeadLetters(recipient=recipient):
                letters = await hive.operate(lambda s: s.dead_letters(recipient))
                return wire.encode_response(wire.DeadLetters(tuple(letters)))
            case wire.ReplayDead(id=id):
                message = await hive.operate(lambda s: s.replay_dead(id))
                return wire.encode_response(wire.Sent(message.id))
            case wire.DropDead(id=id):
                await hive.operate(lambda s: s.drop_dead(id))
                return wire.encode_response(wire.Empty())
            case wire.History(limit=limit):
                return wire.encode_response(await hive.history(max(0, limit)))
            case wire.ListQuestions(answered=answered, limit=limit):
                questions = await hive.operator_questions(answered=answered, limit=limit)
                return wire.encode_response(wire.Questions(tuple(questions)))
            case wire.Answer(id=id, answer=answer):
                question = await hive.answer(conn.identity, id, answer)
                return wire.encode_response(wire.Resolved(question))
            case wire.ListReminders(owner=owner, delivered=delivered, limit=limit):
                reminders = await hive.list_reminders(owner=owner, delivered=delivered, limit=limit)
                return wire.encode_response(wire.Reminders(tuple(reminders)))
            case wire.GetLooseEnds():
                return wire.encode_response(await hive.loose_ends(conn.identity))
            case wire.CancelLooseEnd(kind=kind, id=id):
                await hive.cancel_loose_end(conn.identity, kind, id)
                return wire.encode_response(wire.LooseEndCancelled(kind, id))
            case wire.SubscribeEvents():
                await self._feed(conn)
                return None
        if hive.lifecycle is not None:
            response = await lifecycle.answer_request(hive.lifecycle, request)
            if response is not None:
                return response
        raise NotAllowed(f"{_cmd(request)!r} is not available to the operator")

    async def _feed(self, conn: Connection) -> None:
        """Stream events to `conn` until it closes its end."""
        subscriber = await self._hive.subscribe()
        try:
            await conn.send(wire.encode_response(wire.Empty()))
            async with (
                trio.open_nursery() as nursery,
                contextlib.aclosing(subscriber.batches()) as batches,
            ):
                nursery.start_soon(_cancel_on_eof, conn, nursery.cancel_scope)
                # A subscriber that left (or stopped reading for SEND_TIMEOUT) ends its own
                # feed; that is not an error worth a traceback.
                with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                    async for batch in batches:
                        await conn.send(b"".join(wire.encode_event(event) for event in batch))
                nursery.cancel_scope.cancel(reason="subscriber went away")
        finally:
            self._hive.unsubscribe(subscriber)


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


def _cmd(request: wire.Request[Any]) -> str:
    return wire.command_of(request).cmd
