"""Framing: one ``\\n``-terminated line per message, each at most `MAX_LINE_BYTES`.

`LineReader` is the only I/O in the wire package: it reads lines from a trio stream, skips an
over-long line without buffering it, and lets a listener look at what a client pipelined.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from hyperhive.errors import LineTooLong
from hyperhive.wire._bounds import MAX_LINE_BYTES

if TYPE_CHECKING:
    import trio

__all__ = ["LineReader"]

_RECEIVE_SIZE: Final = 64 * 1024


class LineReader:
    """Reads ``\n``-terminated lines from a trio stream, each at most ``max_bytes`` long.

    A line past the cap is not buffered: its bytes are discarded up to the next newline and
    `read_line` raises `LineTooLong`, after which the reader is positioned at the next line, so
    the connection stays usable.
    """

    def __init__(self, stream: trio.abc.ReceiveStream, max_bytes: int = MAX_LINE_BYTES) -> None:
        self._stream = stream
        self._max = max_bytes
        self._buffer = bytearray()
        self._scanned = 0  # bytes of _buffer already known to hold no newline
        self._eof = False

    async def read_line(self) -> bytes | None:
        """The next line without its newline, or None at a clean end of stream.

        A final line without a newline is returned as a line.

        Raises:
            LineTooLong: the line exceeded the cap (already skipped).

        Cancellation: a checkpoint; buffered bytes are kept, so a cancelled read loses nothing.
        """
        while True:
            end = self._buffer.find(b"\n", self._scanned)
            if end >= 0:
                return self._take(end)
            self._scanned = len(self._buffer)
            if self._scanned > self._max:
                await self._skip_line()
                raise LineTooLong(f"line longer than {self._max} bytes was discarded")
            if self._eof:
                return self._take_rest()
            await self._fill()

    def can_buffer(self, limit: int) -> bool:
        """Whether `fill_once` may read more: not at end of stream, under `limit` bytes held."""
        return not self._eof and len(self._buffer) < limit

    async def fill_once(self) -> None:
        """Read what the stream has into the buffer (one receive), for `read_line` later."""
        await self._fill()

    def read_line_nowait(self) -> bytes | None:
        """The next line if a complete one is already buffered, else None (never waits).

        Raises:
            LineTooLong: the buffered line exceeded the cap (already skipped).
        """
        end = self._buffer.find(b"\n", 0)
        return None if end < 0 else self._take(end)

    def _take(self, end: int) -> bytes:
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        self._scanned = 0
        if len(line) > self._max:
            raise LineTooLong(f"line longer than {self._max} bytes was discarded")
        return line

    def _take_rest(self) -> bytes | None:
        if not self._buffer:
            return None
        line = bytes(self._buffer)
        self._buffer.clear()
        self._scanned = 0
        return line

    async def _fill(self) -> None:
        data = await self._stream.receive_some(_RECEIVE_SIZE)
        if not data:
            self._eof = True
        self._buffer += data

    async def _skip_line(self) -> None:
        while (end := self._buffer.find(b"\n")) < 0 and not self._eof:
            self._buffer.clear()
            await self._fill()
        del self._buffer[: end + 1 if end >= 0 else len(self._buffer)]
        self._scanned = 0
