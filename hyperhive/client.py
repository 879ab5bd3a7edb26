"""A client for the daemon's sockets, used by the CLI, the TUI and the agent harness.

One `Client` is one connection: requests go out one at a time and each waits for its response
line. `open_client` translates "nobody is listening" into `NotRunning` with what to do about it.
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, TypeVar

import trio

from hyperhive.errors import NotRunning, RemoteError
from hyperhive.wire._bounds import MAX_LINE_BYTES
from hyperhive.wire.codec import decode_event, decode_reply, encode_request
from hyperhive.wire.framing import LineReader

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from hyperhive.wire._table import Request
    from hyperhive.wire.events import Event

__all__ = ["Client", "Feed", "open_client"]

R = TypeVar("R")


class Client:
    """Request/response over one connected stream."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self._stream = stream
        self._reader = LineReader(stream, max_bytes=64 * MAX_LINE_BYTES)

    async def call(self, request: Request[R]) -> R:
        """Send `request` and decode its response as its command's reply type.

        ``await client.call(wire.Send(to="bob", body="hi"))`` is a `wire.Sent`: the command
        table pairs each request with its reply, so no caller names it.

        Raises:
            RemoteError: the daemon answered ok:false, or closed the connection.
        """
        try:
            await self._stream.send_all(encode_request(request))
            line = await self._reader.read_line()
        except trio.BrokenResourceError as exc:
            raise RemoteError("the daemon closed the connection") from exc
        if line is None:
            raise RemoteError("the daemon closed the connection")
        return decode_reply(line, request)

    async def subscribe(self) -> Feed:
        """Turn this connection into a feed; returns once subscribed.

        The returned iterator yields every event published after this call returned, with
        `EventGap` markers where this client fell behind, until the daemon closes the feed.
        It is a plain iterator (not an async generator), so breaking out of the loop is safe.
        """
        from hyperhive.wire.commands import SubscribeEvents  # the whole table; not a harness's

        await self.call(SubscribeEvents())
        return Feed(self._reader)


class Feed:
    """The events of a subscribed connection, one per ``async for`` step."""

    def __init__(self, reader: LineReader) -> None:
        self._reader = reader

    def __aiter__(self) -> Feed:
        return self

    async def __anext__(self) -> Event:
        try:
            line = await self._reader.read_line()
        except trio.BrokenResourceError as exc:
            raise RemoteError("the daemon closed the connection") from exc
        if line is None:
            raise StopAsyncIteration
        return decode_event(line)


@contextlib.asynccontextmanager
async def open_client(path: Path) -> AsyncIterator[Client]:
    """Connect to the socket at `path`.

    Raises:
        NotRunning: no daemon listens there.

    Resource handling: the connection is closed when the block exits.
    """
    try:
        stream = await trio.open_unix_socket(os.fspath(path))
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        raise NotRunning(
            f"no hyperhive daemon is listening on {path}; start one with `hyperhive serve` "
            "(same --state-dir / HYPERHIVE_STATE_DIR)"
        ) from exc
    async with stream:
        yield Client(stream)
