"""What each identity may ask for, on the socket that identifies it.

Three dispatchers, one per kind of socket. The identity comes from the listener that accepted
the connection (`Connection.identity`), never from the request: an agent's `send` is always
from that agent, and nothing on an agent socket reaches operator or manager powers.

- operator (the admin socket): status, send as `operator`, the operator inbox, agent
  registration, dead letters, event history and live subscription;
- manager (its own socket): the agent commands as `manager`;
- agent (one socket each): send, recv, ack_turn, requeue_inflight as itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from hyperhive import wire
from hyperhive.errors import NotAllowed

if TYPE_CHECKING:
    from hyperhive.core.hive import Hive
    from hyperhive.core.listener import Connection

__all__ = ["Surfaces"]


class Surfaces:
    """The per-identity request handlers; each returns the encoded response line."""

    def __init__(self, hive: Hive) -> None:
        self._hive = hive

    async def agent(self, conn: Connection, request: wire.Request) -> bytes | None:
        """Requests on an agent's (or the manager's) own socket, as that identity."""
        me = conn.identity.name
        hive = self._hive
        match request:
            case wire.Send(to=to, body=body):
                message = await hive.send(me, to, body)
                return wire.encode_response(wire.Sent(message.id))
            case wire.Recv(wait_seconds=wait, max=max):
                deliveries = await hive.recv(me, max=max, wait_seconds=wait)
                return wire.encode_response(wire.Messages(deliveries))
            case wire.AckTurn():
                return wire.encode_response(wire.Acked(await hive.ack_turn(me)))
            case wire.RequeueInflight():
                return wire.encode_response(wire.Requeued(await hive.requeue_inflight(me)))
        raise NotAllowed(f"{_cmd(request)!r} is not available to {conn.identity}")

    async def operator(self, conn: Connection, request: wire.Request) -> bytes | None:
        """Requests on the host admin socket, as the operator."""
        hive = self._hive
        match request:
            case wire.Status():
                return wire.encode_response(hive.status())
            case wire.Send(to=to, body=body):
                message = await hive.send("operator", to, body)
                return wire.encode_response(wire.Sent(message.id))
            case wire.Inbox(limit=limit):
                messages = await hive.operate(lambda s: s.recent_for("operator", max(0, limit)))
                return wire.encode_response(wire.InboxReply(tuple(messages)))
            case wire.RegisterAgent(name=name):
                await hive.register_agent(name)
                return wire.encode_response(wire.Agents(tuple(hive.registry.names())))
            case wire.UnregisterAgent(name=name):
                await hive.unregister_agent(name)
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
            case wire.Subscribe():
                await self._feed(conn)
                return None
        raise NotAllowed(f"{_cmd(request)!r} is not available to the operator")

    async def _feed(self, conn: Connection) -> None:
        """Stream events to `conn` until it closes its end."""
        subscriber = await self._hive.subscribe()
        try:
            await conn.send(wire.encode_response(wire.Empty()))
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_cancel_on_eof, conn, nursery.cancel_scope)
                async for batch in subscriber.batches():
                    await conn.send(b"".join(wire.encode_event(event) for event in batch))
        finally:
            self._hive.unsubscribe(subscriber)


async def _cancel_on_eof(conn: Connection, scope: trio.CancelScope) -> None:
    while await conn.read_line() is not None:
        pass  # a subscribed connection takes no more requests
    scope.cancel(reason="subscriber closed its connection")


def _cmd(request: wire.Request) -> str:
    return next(cmd for cmd, cls in wire.REQUESTS.items() if isinstance(request, cls))
