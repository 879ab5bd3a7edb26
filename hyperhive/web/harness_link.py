"""The daemon's end of an agent's page socket: every answer is hostile until decoded.

An agent's harness serves data and takes control requests on ``<socket dir>/page/page.sock``
(`hyperhive.wire.page`); the daemon renders the page. The directory is the agent's to write,
so the socket file may be anything the agent put there:

- it is opened ``O_PATH | O_NOFOLLOW`` through a descriptor of the socket directory, checked to
  be a socket (not a symlink, FIFO or file), and connected through ``/proc/self/fd``, so a link
  planted to another agent's socket or the daemon's own is never followed;
- a hard link to one of the daemon's own sockets (admin, manager, an agent's ``hive.sock``)
  is refused by its inode;
- connecting, writing and every read have deadlines (`CONNECT_TIMEOUT`, `READ_TIMEOUT`), an
  answer is capped (`wire.MAX_PAGE_REPLY_BYTES`, an event at `wire.MAX_EVENT_BYTES`), and it is
  decoded into the wire types with their bounds before anything else sees it.

Any failure is a `HarnessUnreachable` whose sentence says what went wrong, for that agent only.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
from typing import TYPE_CHECKING, Final, TypeVar

import trio

from hyperhive import wire
from hyperhive.errors import BadRequest, ContainerError, HyperhiveError, LineTooLong
from hyperhive.wire.framing import LineReader

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

__all__ = [
    "CONNECT_TIMEOUT",
    "READ_TIMEOUT",
    "Feed",
    "HarnessLink",
    "HarnessUnreachable",
    "checked_event",
]

CONNECT_TIMEOUT: Final = 2.0
READ_TIMEOUT: Final = 5.0
_T = TypeVar("_T")
_DIR_FLAGS: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class HarnessUnreachable(ContainerError):
    """The agent's harness could not be asked, or answered something that is not an answer."""


def _open_socket_path(socket_dir: Path) -> int:
    """An ``O_PATH`` descriptor of the page socket, checked to be a socket. Blocking."""
    top = os.open(socket_dir, _DIR_FLAGS)
    try:
        page = os.open(wire.PAGE_DIR, _DIR_FLAGS, dir_fd=top)
    finally:
        os.close(top)
    try:
        fd = os.open(wire.PAGE_SOCKET, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=page)
    finally:
        os.close(page)
    if not stat.S_ISSOCK(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(0, "the page socket is not a socket")
    return fd


def _connect(socket_dir: Path, refused: frozenset[tuple[int, int]]) -> socket.socket:
    """A connected unix socket to the harness (blocking, bounded by the socket's timeout).

    `refused` are the (device, inode) pairs of the daemon's own sockets: a page socket that is
    one of them (a hard link) is not connected to.
    """
    fd = _open_socket_path(socket_dir)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        info = os.fstat(fd)
        if (info.st_dev, info.st_ino) in refused:
            raise OSError(0, "the page socket is one of the daemon's own sockets")
        sock.settimeout(CONNECT_TIMEOUT)
        sock.connect(f"/proc/self/fd/{fd}")
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    finally:
        os.close(fd)
    return sock


async def _read_answer(stream: trio.SocketStream, cap: int) -> bytes | None:
    """One line, or None if the stream ends first; LineTooLong as soon as `cap` is passed
    (nothing past it is read: the connection is dropped)."""
    buffer = bytearray()
    while True:
        chunk = await stream.receive_some(64 * 1024)
        if not chunk:
            return bytes(buffer) or None
        end = chunk.find(b"\n")
        if end >= 0:
            buffer += chunk[:end]
            return bytes(buffer) if len(buffer) <= cap else _too_long(cap)
        buffer += chunk
        if len(buffer) > cap:
            _too_long(cap)


def _too_long(cap: int) -> bytes:
    raise LineTooLong(f"an answer longer than {cap} bytes")


def checked_event(event: wire.PageEvent) -> wire.PageEvent:
    """`event` if its data has its kind's shape (`wire.LIVE_EVENTS`); otherwise an ``invalid``
    event saying why, which the page shows as such. ``stream`` lines are claude's own objects,
    and kinds this daemon does not know pass as they are (the page shows them as unknown)."""
    cls = wire.LIVE_EVENTS.get(event.kind)
    if cls is None or cls is wire.StreamLine:
        return event
    try:
        wire.from_json(event.data, cls)
    except BadRequest as exc:
        return wire.PageEvent(
            event.seq, event.at, "invalid", {"kind": event.kind, "error": str(exc)}
        )
    return event


class HarnessLink:
    """Ask one agent's harness (see the module docstring). Cheap: one per request is fine."""

    def __init__(
        self, name: str, socket_dir: Path, refused: frozenset[tuple[int, int]] = frozenset()
    ) -> None:
        self.name = name
        self.socket_dir = socket_dir
        self.refused = refused

    def _unreachable(self, why: str) -> HarnessUnreachable:
        return HarnessUnreachable(f"{self.name}'s harness cannot be reached: {why}")

    @contextlib.asynccontextmanager
    async def _open(self) -> AsyncIterator[trio.SocketStream]:
        try:
            with trio.fail_after(CONNECT_TIMEOUT + 1):
                sock = await trio.to_thread.run_sync(_connect, self.socket_dir, self.refused)
        except FileNotFoundError:
            raise self._unreachable("it is not serving its page (not running?)") from None
        except (OSError, trio.TooSlowError) as exc:
            why = getattr(exc, "strerror", None) or str(exc) or "it did not accept in time"
            raise self._unreachable(why) from None
        stream = trio.SocketStream(trio.socket.from_stdlib_socket(sock))
        async with stream:
            yield stream

    async def call(
        self, request: wire.PageRequest, reply: type[_T], *, within: float = READ_TIMEOUT
    ) -> _T:
        """Send `request`, decode the one answer line as `reply`.

        Raises:
            HarnessUnreachable: no connection, no answer in time, an answer too big or not
                of the shape; RemoteError: the harness refused (its sentence, as text).
        """
        async with self._open() as stream:
            try:
                with trio.fail_after(within):
                    await stream.send_all(wire.encode_page_request(request))
                    line = await _read_answer(stream, wire.MAX_PAGE_REPLY_BYTES)
            except trio.TooSlowError:
                raise self._unreachable(f"no answer within {within:g}s") from None
            except LineTooLong:
                raise self._unreachable("its answer was too big") from None
            except (trio.BrokenResourceError, OSError) as exc:
                raise self._unreachable(f"the connection broke ({exc})") from None
        if line is None:
            raise self._unreachable("it closed the connection without answering")
        try:
            return wire.decode_page_reply(line, reply)
        except BadRequest as exc:
            raise self._unreachable(f"its answer is malformed ({exc})") from None

    async def command(self, request: wire.PageRequest) -> None:
        """A control request (cancel, compact, ...): returns once the harness said ok."""
        await self.call(request, wire.Empty)

    @contextlib.asynccontextmanager
    async def open_feed(self, after_seq: int | None) -> AsyncIterator[Feed]:
        """The harness's events (stored ones after `after_seq` first), read with `Feed.next`.

        Raises:
            HarnessUnreachable: no connection, or the feed did not start properly.

        Resource handling: the connection closes when the block ends.
        """
        async with self._open() as stream:
            reader = LineReader(stream, wire.MAX_EVENT_BYTES)
            try:
                with trio.fail_after(READ_TIMEOUT):
                    await stream.send_all(wire.encode_page_request(wire.PageSubscribe(after_seq)))
                    first = await reader.read_line()
                if first is None:
                    raise self._unreachable("it closed the feed")
                wire.decode_page_reply(first, wire.Empty)
            except trio.TooSlowError:
                raise self._unreachable("its feed did not start in time") from None
            except (LineTooLong, BadRequest) as exc:
                raise self._unreachable(f"its feed is malformed ({exc})") from None
            except (trio.BrokenResourceError, OSError) as exc:
                raise self._unreachable(f"the connection broke ({exc})") from None
            yield Feed(self, reader)


class Feed:
    """An open event feed from one harness (`HarnessLink.open_feed`)."""

    def __init__(self, link: HarnessLink, reader: LineReader) -> None:
        self._link = link
        self._reader = reader
        self.skipped = 0  # lines that were not valid events

    async def next(self) -> wire.PageEvent:
        """The next valid event; lines that are not one are skipped and counted.

        Raises:
            HarnessUnreachable: the feed ended or broke.

        Cancellation: safe; what was read so far stays buffered for the next call.
        """
        while True:
            try:
                line = await self._reader.read_line()
            except LineTooLong:
                self.skipped += 1
                continue
            except (trio.BrokenResourceError, OSError) as exc:
                raise self._link._unreachable(f"the feed broke ({exc})") from None
            if line is None:
                raise self._link._unreachable("it ended the feed")
            try:
                return checked_event(wire.decode_page_event(line))
            except HyperhiveError:
                self.skipped += 1
