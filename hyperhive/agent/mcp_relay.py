"""`hyperhive agent mcp`: what claude starts for its ``hive`` tools, a byte relay.

The MCP server itself (the official SDK) runs inside the harness (`hyperhive.agent.mcp_server`),
which outlives every claude process; this relay only connects claude's stdio to the server's
private unix socket, byte for byte, in both directions, until either side closes. It imports
the standard library only, so it is ready in the time Python takes to start.

    hyperhive agent mcp --connect /tmp/hh-mcp-xxxx/mcp.sock

If the socket is not there yet (the harness is starting), it retries for `CONNECT_SECONDS`,
then exits 1 with a sentence on stderr; claude then reports the server as failed and the
harness starts a fresh process.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
import time
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["CONNECT_SECONDS", "main", "relay"]

CONNECT_SECONDS: Final = 10.0
_CHUNK: Final = 64 * 1024


def _connect(path: str, seconds: float) -> socket.socket:
    deadline = time.monotonic() + seconds
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.05)
            continue
        return sock


def _pump_in(source: int, sock: socket.socket) -> None:
    """stdin -> socket; at end of input, half-close so the server sees it."""
    with contextlib.suppress(OSError):
        while data := os.read(source, _CHUNK):
            sock.sendall(data)
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)


def relay(sock: socket.socket, stdin: int = 0, stdout: int = 1) -> None:
    """Copy `stdin` to `sock` and `sock` to `stdout` until the server closes its side."""
    threading.Thread(target=_pump_in, args=(stdin, sock), daemon=True).start()
    with contextlib.suppress(OSError):
        while data := sock.recv(_CHUNK):
            view = memoryview(data)
            while view:
                view = view[os.write(stdout, view) :]


def main(argv: Sequence[str]) -> int:
    """``hyperhive agent mcp --connect PATH``."""
    args = list(argv)
    path = None
    while args:
        arg = args.pop(0)
        key, _, value = arg.partition("=")
        if key != "--connect":
            print(f"error: unknown option {arg!r} for agent mcp", file=sys.stderr)
            return 2
        if not value:
            if not args:
                print("error: --connect needs a value", file=sys.stderr)
                return 2
            value = args.pop(0)
        path = value
    if not path:
        print("error: agent mcp needs --connect (the harness's MCP socket)", file=sys.stderr)
        return 1
    try:
        sock = _connect(path, CONNECT_SECONDS)
    except OSError as exc:
        print(f"error: no hyperhive harness serves MCP on {path}: {exc}", file=sys.stderr)
        return 1
    with sock:
        relay(sock)
    return 0
