"""`hyperhive agent mcp`: the agent's tools as a stdio MCP server (JSON-RPC 2.0, one per line).

Claude starts it through ``--mcp-config`` under the server name ``hive`` and waits for it
before its first model request, so start-up time is turn latency: the official SDK
(`mcp.server.mcpserver`) spends 1-2 s importing pydantic models here, this server answers
``initialize`` in tens of milliseconds. It speaks the part of MCP a tools-only server needs:
``initialize`` (protocol versions 2024-11-05 to 2025-11-25), ``ping``, ``tools/list``,
``tools/call`` and ``notifications/cancelled``; anything else with an id gets "method not
found" (which is also how Claude learns to fall back from its ``server/discover`` probe). The
SDK's own client is its conformance test (tests/hyperhive/agent/test_agent_mcp.py).

Each tool call runs on a thread of its own (a ``recv`` may wait minutes while another call
answers), opens the agent's socket and sends one wire request (`agent/tools.py`). A cancelled
call's connection is shut down. Results are plain text; a failed call is an ``isError``
result whose text says what happened. While serving, fd 0 and fd 1 point at /dev/null and
stderr, so a stray ``print`` cannot corrupt the protocol.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Final

from hyperhive import __version__
from hyperhive.agent.tools import Tool, ToolFailed, call_tool, input_schema, preload, tools_for

if TYPE_CHECKING:
    import socket as socket_module
    from collections.abc import Iterator, Sequence

__all__ = ["PROTOCOL_VERSIONS", "McpServer", "main", "serve_stdio"]

PROTOCOL_VERSIONS: Final = ("2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05")
INSTRUCTIONS: Final = "hyperhive: talk to the other agents and the operator."
MAX_LINE: Final = 16 * 1024 * 1024
_PARSE_ERROR: Final = -32700
_INVALID_REQUEST: Final = -32600
_METHOD_NOT_FOUND: Final = -32601
_INTERNAL_ERROR: Final = -32603
Write = Callable[[dict[str, Any]], None]


class McpServer:
    """The protocol, without the transport: feed it lines, it answers through `write`."""

    def __init__(self, socket: Path, *, manager: bool, write: Write) -> None:
        self.socket = socket
        self.tools: dict[str, Tool] = {t.name: t for t in tools_for(manager)}
        self._write = write
        self._lock = threading.Lock()
        self._calls: dict[object, socket_module.socket | None] = {}  # id -> its connection
        self._cancelled: set[object] = set()

    def handle_line(self, line: bytes) -> None:
        """One line from the client. Never raises; tool calls answer from their own thread."""
        try:
            message = json.loads(line)
        except (ValueError, RecursionError):
            self._error(None, _PARSE_ERROR, "parse error: not one JSON object")
            return
        if not isinstance(message, dict) or not isinstance(message.get("method"), str):
            if isinstance(message, dict) and ("result" in message or "error" in message):
                return  # an answer to a request we never make
            self._error(_id_of(message), _INVALID_REQUEST, "invalid request")
            return
        try:
            self._dispatch(message)
        except Exception as exc:  # one bad message must not end the server
            self._error(_id_of(message), _INTERNAL_ERROR, f"internal error: {exc}")

    def _dispatch(self, message: dict[str, Any]) -> None:
        method: str = message["method"]
        params = message.get("params")
        params = params if isinstance(params, dict) else {}
        if "id" not in message:
            if method == "notifications/cancelled":
                self._cancel(params.get("requestId"))
            return
        request_id = message["id"]
        match method:
            case "initialize":
                self._result(request_id, self._initialize(params))
            case "ping":
                self._result(request_id, {})
            case "tools/list":
                tools = [_describe(t) for t in self.tools.values()]
                self._result(request_id, {"tools": tools})
            case "tools/call":
                self._start_call(request_id, params)
            case _:
                self._error(request_id, _METHOD_NOT_FOUND, f"method not found: {method}")

    @staticmethod
    def _initialize(params: dict[str, Any]) -> dict[str, Any]:
        asked = params.get("protocolVersion")
        version = asked if asked in PROTOCOL_VERSIONS else PROTOCOL_VERSIONS[0]
        return {
            "protocolVersion": version,
            "capabilities": {"tools": {"listChanged": False}},
            "serverInfo": {"name": "hive", "version": __version__},
            "instructions": INSTRUCTIONS,
        }

    # -- tool calls -------------------------------------------------------------------------

    def _start_call(self, request_id: object, params: dict[str, Any]) -> None:
        name = params.get("name")
        tool = self.tools.get(name) if isinstance(name, str) else None
        if tool is None:
            self._result(request_id, _text_result(f"Unknown tool: {name}", error=True))
            return
        with self._lock:
            self._calls[_key(request_id)] = None
        arguments = params.get("arguments")
        thread = threading.Thread(
            target=self._run_call, args=(request_id, tool, arguments), daemon=True
        )
        thread.start()

    def _run_call(self, request_id: object, tool: Tool, arguments: object) -> None:
        key = _key(request_id)
        try:
            text, error = (
                call_tool(self.socket, tool, arguments, register=self._registrar(key)),
                False,
            )
        except ToolFailed as exc:
            text, error = str(exc), True
        except Exception as exc:  # a bug here is the model's error result, not a dead server
            text, error = f"{tool.name} failed: internal error ({exc.__class__.__name__})", True
        with self._lock:
            self._calls.pop(key, None)
            if key in self._cancelled:
                self._cancelled.discard(key)
                return  # the client gave up on it: no answer (MCP cancellation)
        self._result(request_id, _text_result(text, error=error))

    def _registrar(self, key: object) -> Callable[[socket_module.socket], None]:
        def register(sock: socket_module.socket) -> None:
            with self._lock:
                if key in self._calls:
                    self._calls[key] = sock
                cancelled = key in self._cancelled
            if cancelled:
                _shut(sock)

        return register

    def _cancel(self, request_id: object) -> None:
        key = _key(request_id)
        with self._lock:
            if key not in self._calls:
                return
            self._cancelled.add(key)
            sock = self._calls.get(key)
        if sock is not None:
            _shut(sock)

    # -- answers ----------------------------------------------------------------------------

    def _result(self, request_id: object, result: dict[str, Any]) -> None:
        self._write({"jsonrpc": "2.0", "id": request_id, "result": result})

    def _error(self, request_id: object, code: int, message: str) -> None:
        self._write(
            {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}
        )


def _describe(tool: Tool) -> dict[str, Any]:
    return {"name": tool.name, "description": tool.description, "inputSchema": input_schema(tool)}


def _text_result(text: str, *, error: bool) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": text}], "isError": error}


def _id_of(message: object) -> object:
    request_id = message.get("id") if isinstance(message, dict) else None
    return (
        request_id
        if isinstance(request_id, str | int) and not isinstance(request_id, bool)
        else None
    )


def _key(request_id: object) -> object:
    return request_id if isinstance(request_id, str | int) else repr(request_id)


def _shut(sock: socket_module.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(2)  # SHUT_RDWR: the blocked recv returns at once


# --------------------------------------------------------------------------------------------
# stdio
# --------------------------------------------------------------------------------------------


def serve_stdio(socket: Path, *, manager: bool) -> None:
    """Serve on stdin/stdout until the client closes stdin (blocks)."""
    threading.Thread(target=_quiet_preload, daemon=True).start()
    protocol_in = os.fdopen(os.dup(0), "rb")
    protocol_out = os.fdopen(os.dup(1), "wb", buffering=0)
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        os.dup2(2, 1)  # a stray print goes to stderr, never onto the wire
    lock = threading.Lock()

    def write(message: dict[str, Any]) -> None:
        data = json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
        with lock, contextlib.suppress(OSError):
            protocol_out.write(data)

    server = McpServer(socket, manager=manager, write=write)
    for line in _lines(protocol_in):
        server.handle_line(line)


def _lines(stream: BinaryIO) -> Iterator[bytes]:
    """Lines of `stream` until EOF; an over-long line is skipped (and answered as unparsable)."""
    while True:
        line = stream.readline(MAX_LINE)
        if not line:
            return
        if not line.endswith(b"\n") and len(line) >= MAX_LINE:
            while (rest := stream.readline(MAX_LINE)) and not rest.endswith(b"\n"):
                pass
            yield b"\x00"  # not JSON: the client gets a parse error for it
            continue
        if line.strip():
            yield line


def _quiet_preload() -> None:
    with contextlib.suppress(Exception):
        preload()


def main(argv: Sequence[str]) -> int:
    """``hyperhive agent mcp [--socket PATH] [--role agent|manager]`` (else the environment)."""
    options = {
        "--socket": os.environ.get("HYPERHIVE_SOCKET"),
        "--role": os.environ.get("HYPERHIVE_ROLE"),
    }
    args = list(argv)
    while args:
        arg = args.pop(0)
        key, _, value = arg.partition("=")
        if key not in options:
            print(f"error: unknown option {arg!r} for agent mcp", file=sys.stderr)
            return 2
        if not value:
            if not args:
                print(f"error: {key} needs a value", file=sys.stderr)
                return 2
            value = args.pop(0)
        options[key] = value
    socket, role = options["--socket"], options["--role"] or "agent"
    if not socket:
        print("error: agent mcp needs --socket / HYPERHIVE_SOCKET", file=sys.stderr)
        return 1
    if role not in ("agent", "manager"):
        print(f"error: role must be agent or manager, not {role!r}", file=sys.stderr)
        return 1
    serve_stdio(Path(socket).absolute(), manager=role == "manager")
    return 0
