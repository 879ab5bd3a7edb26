"""Unix-socket listeners: bind, accept, one handler task per connection.

Identity is the socket: a listener is bound to one `Identity` (the operator on the admin socket,
the manager on its socket, one agent on each agent socket) and every request on a connection it
accepted is dispatched as that identity. Nothing in a request can claim another.

Each connection speaks the line protocol of `hyperhive.wire`: a request line in, a response line
out, in order. Bad input (invalid JSON, an unknown `cmd`, wrong types, an oversized line) gets an
`ok:false` line and the connection keeps going; a client that vanishes mid-request only ends its
own handler. Nothing a client sends can take the listener down.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import select
import shutil
import socket as stdlib_socket
import stat
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

import attrs
import trio

from actors import ActorStatistics
from hyperhive import wire
from hyperhive.config import check_socket_path
from hyperhive.errors import ConfigError, HyperhiveError, InternalError, WireError
from hyperhive.offload import Offload, to_thread

if TYPE_CHECKING:
    from pathlib import Path
    from typing import NoReturn

__all__ = [
    "Connection",
    "Dispatch",
    "Identity",
    "ListenerStats",
    "serve_requests",
    "serve_unix_socket",
]

LOGGER = logging.getLogger("hyperhive.listener")
# How long one response write may take before the client is deemed gone. A client that stops
# reading must not pin a handler (and its memory) forever.
SEND_TIMEOUT = 30.0
_HANGUP_POLL_SECONDS = 0.5


@attrs.frozen
class Identity:
    """Who is on the other end of a socket, fixed by the socket they connected to."""

    role: Literal["operator", "manager", "agent"]
    name: str

    def __str__(self) -> str:
        return self.name if self.role == "agent" else self.role


class Connection:
    """One accepted client: framed reads and writes over its stream."""

    def __init__(
        self,
        stream: trio.abc.Stream,
        identity: Identity,
        nursery: trio.Nursery | None = None,
    ) -> None:
        self.identity = identity
        self._stream = stream
        self._reader = wire.LineReader(stream)
        # For helper tasks that live no longer than the connection (a parked recv's watcher).
        self.nursery = nursery

    async def read_line(self) -> bytes | None:
        """The next request line, or None when the client closed its end."""
        return await self._reader.read_line()

    def is_closed(self) -> bool:
        """Whether the client has hung up entirely, checked now without reading or waiting.

        One zero-timeout poll for POLLHUP, which a unix socket reports only once the peer
        closed both directions: a client that merely shut its write side (`printf ... | socat`)
        is still waiting for its answer and is not closed. Nothing is consumed, so pipelined
        requests stay queued for `read_line`.
        """
        if not isinstance(self._stream, trio.SocketStream):
            return False
        poller = select.poll()
        poller.register(self._stream.socket.fileno(), select.POLLHUP)
        return any(events & (select.POLLHUP | select.POLLERR) for _, events in poller.poll(0))

    async def wait_closed(self) -> None:
        """Return once the client has hung up entirely (see `is_closed`).

        For a parked `recv`: its descriptor must be freed the moment its client leaves, not
        when the wait runs out. Bytes the client pipelined meanwhile are read into the line
        buffer (nothing is lost, `read_line` returns them later) up to twice the line cap;
        past that, or once the client shut its write side, hangups are polled for twice a
        second instead.

        Cancellation: safe at any point; nothing read is lost.
        """
        if not isinstance(self._stream, trio.SocketStream):
            await trio.sleep_forever()
        sock = self._stream.socket
        while not self.is_closed():
            if self._reader.can_buffer(2 * wire.MAX_LINE_BYTES):
                await trio.lowlevel.wait_readable(sock)
                if not self.is_closed():
                    await self._reader.fill_once()
            else:
                await trio.sleep(_HANGUP_POLL_SECONDS)

    def buffered_lines(self) -> list[bytes | WireError]:
        """Complete lines the client already pipelined behind the last one, without waiting."""
        lines: list[bytes | WireError] = []
        while True:
            try:
                line = self._reader.read_line_nowait()
            except WireError as exc:
                lines.append(exc)
                continue
            if line is None:
                return lines
            lines.append(line)

    async def send(self, line: bytes) -> None:
        """Write one encoded line; a client that does not read for SEND_TIMEOUT is dropped.

        Raises:
            trio.BrokenResourceError: the client went away.
        """
        with trio.move_on_after(SEND_TIMEOUT) as scope:
            await self._stream.send_all(line)
        if scope.cancelled_caught:
            raise trio.BrokenResourceError(f"client of {self.identity} stopped reading")


# A dispatcher answers one decoded request; it may write extra lines itself (a subscription)
# and returns the response line, or None when it already wrote everything it had to.
Dispatch = Callable[[Connection, wire.Request[Any]], Awaitable[bytes | None]]
# Optionally, a run of consecutive `send` requests that a client pipelined is answered at once
# (one response line per request, in order), so the sends share one broker commit.
SendMany = Callable[[Connection, list[wire.Send]], Awaitable[list[bytes]]]


async def serve_requests(
    conn: Connection,
    dispatch: Dispatch,
    send_many: SendMany | None = None,
    stats: ListenerStats | None = None,
) -> None:
    """Answer requests on one connection, in order, until the client closes it.

    A client may pipeline: write several request lines before reading. Every complete line
    already received is answered in one go and the answers are written together, in order;
    consecutive `send`s among them go to `send_many` as one group when it is given.

    Error handling: a `WireError` or any `HyperhiveError` from the dispatcher becomes an
    `ok:false` line with its sentence; any other exception is logged once with its traceback
    and answered "internal error (logged)", and the loop goes on.
    """
    while True:
        try:
            line = await conn.read_line()
        except WireError as exc:
            await conn.send(wire.encode_error(str(exc)))
            continue
        if line is None:
            return
        requests = [_decode(item) for item in [line, *conn.buffered_lines()]]
        if stats is not None:
            stats.took(len(requests))
        answers = await _answer_all(conn, dispatch, send_many, requests)
        if answers:
            await conn.send(b"".join(answers))


def _decode(line: bytes | WireError) -> wire.Request[Any] | bytes | None:
    """A request, or an error line to answer with."""
    if isinstance(line, WireError):
        return wire.encode_error(str(line))
    if not line.strip():
        # Answered, not skipped: a client that sent it is waiting for a line back.
        return wire.encode_error("empty request line; send one JSON object per line")
    try:
        return wire.decode_request(line)
    except WireError as exc:
        return wire.encode_error(str(exc))
    except Exception:
        # decode_request turns every bad line into a WireError; anything else is our bug.
        LOGGER.exception("decoding a request line failed")
        return wire.encode_error(str(InternalError()))


async def _answer_all(
    conn: Connection,
    dispatch: Dispatch,
    send_many: SendMany | None,
    requests: list[wire.Request[Any] | bytes | None],
) -> list[bytes]:
    answers: list[bytes] = []
    sends: list[wire.Send] = []
    for request in requests:
        if send_many is not None and isinstance(request, wire.Send):
            sends.append(request)
            continue
        if send_many is not None and sends:
            answers += await _guarded(conn, send_many(conn, sends), len(sends))
            sends = []
        if isinstance(request, bytes):
            answers.append(request)
        elif request is not None:
            answers += await _guarded(conn, _one(dispatch, conn, request), 1)
    if send_many is not None and sends:
        answers += await _guarded(conn, send_many(conn, sends), len(sends))
    return answers


async def _one(dispatch: Dispatch, conn: Connection, request: wire.Request[Any]) -> list[bytes]:
    response = await dispatch(conn, request)
    return [response] if response else []


async def _guarded(conn: Connection, answering: Awaitable[list[bytes]], count: int) -> list[bytes]:
    """Await `answering`; if it fails, every request it covered gets the same error line."""
    try:
        return await answering
    except HyperhiveError as exc:
        return [wire.encode_error(str(exc))] * count
    except Exception as exc:
        if _is_disconnect(exc):
            raise trio.BrokenResourceError(f"client of {conn.identity} went away") from exc
        LOGGER.exception("request from %s failed", conn.identity)
        # Only that it happened: the exception's text may hold what another caller stored.
        return [wire.encode_error(str(InternalError()))] * count


async def serve_unix_socket(
    dispatch: Dispatch,
    path: Path,
    identity: Identity,
    *,
    send_many: SendMany | None = None,
    mode: int = 0o600,
    stats: ListenerStats | None = None,
    offload: Offload = to_thread,
    task_status: trio.TaskStatus[Path] = trio.TASK_STATUS_IGNORED,
) -> NoReturn:
    """Serve `identity`'s requests on a unix socket at `path`; never returns.

    Whatever is at `path` is replaced: a stale socket (the state lock guarantees no other
    daemon owns it), or anything an agent left in its socket directory (`_bind`).
    `task_status.started(path)` is called once the socket listens.

    Resource handling: the socket file is removed when the listener stops. Each connection is
    closed when its handler ends.

    Error handling: errors inside one connection are logged with the identity and end only that
    connection; EMFILE-style accept errors are retried after 100 ms (trio's policy).

    Limits: past `stats.limit` open connections, a new one gets one `ok:false` line naming
    the limit and is closed at once (`stats.on_limit` is told), so one identity cannot use up
    the daemon's descriptors. `stats` also counts what the listener served (its
    ``statistics()``).

    Cancellation: cancelling stops accepting and cancels every open connection.
    """
    listener = await _bind(path, mode, offload)
    try:
        async with trio.open_nursery() as nursery:
            task_status.started(path)
            handle = partial(
                _handle,
                identity=identity,
                dispatch=dispatch,
                send_many=send_many,
                gate=stats if stats is not None else ListenerStats(),
            )
            await trio.serve_listeners(handle, [listener], handler_nursery=nursery)
    finally:
        _unlink_socket(path)
    raise AssertionError("unreachable")  # pragma: no cover - serve_listeners never returns


async def _bind(path: Path, mode: int, offload: Offload) -> trio.SocketListener:
    """Listen on `path`, replacing whatever is there (the daemon owns its socket paths).

    An agent's socket directory is the agent's to write: it may have left a file, a
    directory, a FIFO or a symlink where its socket goes. That is removed (a symlink itself,
    never what it points to) and the socket bound in its place. The socket's mode is set on
    the socket before `bind`, which Linux applies (less the umask) to the file it creates, and
    then made exact through a descriptor (`_set_mode_exactly`), never by path, so no chmod can
    be pointed elsewhere by a swapped-in symlink.
    """
    check_socket_path(path)
    for attempt in range(_BIND_ATTEMPTS):
        await offload(replace_path, path)
        # A stdlib socket bound through the offload: trio binds a unix socket in a thread of
        # its own, which a test's autojump clock would not wait for.
        raw = stdlib_socket.socket(stdlib_socket.AF_UNIX, stdlib_socket.SOCK_STREAM)
        sock = trio.socket.from_stdlib_socket(raw)
        try:
            os.fchmod(sock.fileno(), mode)
            await offload(raw.bind, os.fspath(path))
            _set_mode_exactly(path, mode)
            sock.listen(256)
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EADDRINUSE and attempt + 1 < _BIND_ATTEMPTS:
                continue  # something was put back between removing and binding: again
            raise ConfigError(f"cannot listen on {path}: {exc.strerror}") from exc
        return trio.SocketListener(sock)
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


_BIND_ATTEMPTS = 5


def _set_mode_exactly(path: Path, mode: int) -> None:
    """Give the socket file just bound exactly `mode` (bind applied it minus the umask).

    Through an ``O_PATH | O_NOFOLLOW`` descriptor, never the path: if the agent swapped in a
    symlink meanwhile, the descriptor is the link itself (not a socket, left alone), so no
    chmod can be pointed at a file outside the agent's directory.
    """
    fd = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        if stat.S_ISSOCK(os.fstat(fd).st_mode):
            os.chmod(f"/proc/self/fd/{fd}", mode)
    finally:
        os.close(fd)


def replace_path(path: Path) -> None:
    """Remove whatever is at `path` (a directory tree too) without following symlinks."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    if stat.S_ISDIR(info.st_mode):
        LOGGER.warning("removing the directory found where socket %s goes", path)
        # rmtree walks with dir fds and O_NOFOLLOW here, so links inside are not followed.
        shutil.rmtree(path, ignore_errors=True)
    else:
        if not stat.S_ISSOCK(info.st_mode):
            LOGGER.warning("replacing the non-socket found where socket %s goes", path)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _unlink_socket(path: Path) -> None:
    """At stop: remove our socket, but only if a socket is still what is there."""
    with contextlib.suppress(OSError):
        if stat.S_ISSOCK(path.lstat().st_mode):
            path.unlink()


@attrs.define
class ListenerStats:
    """One listener's connections against its cap, and what it served.

    ``statistics()`` is the listener's: its "queue" is its open connections (of `limit`),
    its last message the last request line it read.
    """

    limit: int | None = None
    on_limit: Callable[[str], None] = lambda detail: None
    open: int = 0
    requests: int = 0
    refused: int = 0
    last_request_at: float | None = None

    def took(self, count: int) -> None:
        self.requests += count
        self.last_request_at = trio.current_time()

    def statistics(self) -> ActorStatistics:
        return ActorStatistics(
            self.open,
            self.limit,
            self.last_request_at,
            None,
            {"requests": self.requests, "refused_connections": self.refused},
        )


async def _handle(
    stream: trio.SocketStream,
    *,
    identity: Identity,
    dispatch: Dispatch,
    send_many: SendMany | None,
    gate: ListenerStats,
) -> None:
    if gate.limit is not None and gate.open >= gate.limit:
        gate.refused += 1
        gate.on_limit(f"more than {gate.limit} connections at once")
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            with trio.move_on_after(1.0):
                await stream.send_all(
                    wire.encode_error(
                        f"{identity} already has {gate.limit} connections open (the "
                        "connections limit); close some and connect again"
                    )
                )
        await trio.aclose_forcefully(stream)
        return
    gate.open += 1
    try:
        async with trio.open_nursery() as nursery:
            conn = Connection(stream, identity, nursery)
            await serve_requests(conn, dispatch, send_many, gate)
    except Exception as exc:
        if _is_disconnect(exc):
            LOGGER.debug("client of %s went away", identity)
        else:
            LOGGER.exception("connection for %s failed", identity)
    finally:
        gate.open -= 1
        await trio.aclose_forcefully(stream)


def _is_disconnect(exc: BaseException) -> bool:
    """A client hanging up, possibly wrapped in exception groups by a handler's nursery."""
    if isinstance(exc, BaseExceptionGroup):
        return all(_is_disconnect(inner) for inner in exc.exceptions)
    return isinstance(exc, trio.BrokenResourceError | trio.ClosedResourceError)
