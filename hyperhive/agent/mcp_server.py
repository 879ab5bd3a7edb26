"""The agent's ``hive`` MCP server: the official SDK, hosted in the long-lived harness.

Claude starts the server named in ``--mcp-config`` for every process it runs and waits for it
before its first model request, so start-up time is turn latency. The server therefore lives
in `hyperhive agent serve`, which outlives every claude process: `serve_mcp` listens on a unix
socket private to the sandbox (a fresh 0700 directory under /tmp, socket mode 0600; never the
socket directory the daemon shares), and what claude starts is `hyperhive agent mcp`, a
standard-library byte relay between its stdio and that socket (`hyperhive.agent.mcp_relay`),
ready in tens of milliseconds.

The SDK (`mcp.server.lowlevel.Server`: ``tools/list`` and ``tools/call``) takes a second or two
to import, so the socket listens first and the import runs in a worker thread: once the harness
is serving, its warm-up imports it (`hyperhive.agent.serve`), and a relay that connects before
that finished waits for it. Each connection is one MCP session; its tools come from the
command table (`hyperhive.agent.tools`), and every call opens the agent's own daemon socket,
so identity stays the socket. Results are plain text (no output schema); a failed call is an
``isError`` result whose text says what happened; a cancelled call's connection is closed.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import trio

from hyperhive import __version__
from hyperhive.errors import LineTooLong
from hyperhive.wire.framing import LineReader

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

__all__ = [
    "INSTRUCTIONS",
    "build_server",
    "import_sdk",
    "open_mcp_server",
    "open_mcp_socket",
    "serve_mcp",
]

_log = logging.getLogger(__name__)
INSTRUCTIONS: Final = "hyperhive: talk to the other agents and the operator."
MAX_LINE: Final = 16 * 1024 * 1024
_SDK_MODULES: Final = ("mcp.server.lowlevel", "mcp_types", "anyio")


def build_server(socket: Path, *, manager: bool) -> Any:
    """The ``hive`` server (an `mcp.server.lowlevel.Server`) for an agent or the manager.

    Imports the SDK: call it off the trio thread the first time (`serve_mcp` does).
    """
    import mcp_types as types
    from mcp.server.lowlevel import Server

    from hyperhive.agent.tools import ToolFailed, call_tool, input_schema, tools_for

    tools = {tool.name: tool for tool in tools_for(manager)}
    listing = types.ListToolsResult(
        tools=[
            types.Tool(name=t.name, description=t.description, input_schema=input_schema(t))
            for t in tools.values()
        ]
    )

    async def list_tools(ctx: Any, params: Any) -> Any:
        return listing

    async def call(ctx: Any, params: Any) -> Any:
        tool = tools.get(params.name)
        if tool is None:
            text, error = f"Unknown tool: {params.name}", True
        else:
            try:
                text, error = await call_tool(socket, tool, params.arguments), False
            except ToolFailed as exc:
                text, error = str(exc), True
            except Exception as exc:  # a bug here is the model's error result, not a dead server
                _log.exception("tool %s failed", tool.name)
                text, error = f"{tool.name} failed: internal error ({type(exc).__name__})", True
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=text)], is_error=error
        )

    return Server(
        "hive",
        version=__version__,
        instructions=INSTRUCTIONS,
        on_list_tools=list_tools,
        on_call_tool=call,
    )


@contextlib.contextmanager
def open_mcp_socket() -> Iterator[Path]:
    """A fresh private directory for the server's socket; yields the socket's path.

    Resource handling: the directory and the socket are removed on exit.
    """
    directory = Path(tempfile.mkdtemp(prefix="hh-mcp-"))  # mode 0700
    try:
        yield directory / "mcp.sock"
    finally:
        shutil.rmtree(directory, ignore_errors=True)


async def serve_mcp(
    path: Path,
    daemon_socket: Path,
    *,
    manager: bool,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the ``hive`` tools on the unix socket `path` until cancelled.

    Calls ``task_status.started()`` as soon as the socket listens. The SDK is imported, in a
    thread, when the first connection arrives (the harness's warm-up has usually done it by
    then: `hyperhive.agent.serve`). Each accepted connection is one MCP session, served until
    the relay closes it.

    Cancellation: cancelling closes the socket and every session.
    """
    listener = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
    # Closed on the way out even if serving never started (cancelled while importing).
    with listener:
        os.fchmod(listener.fileno(), 0o600)
        await listener.bind(os.fspath(path))
        os.chmod(path, 0o600)
        listener.listen(64)
        task_status.started()
        built: list[Any] = []
        building = trio.Lock()

        async def handle(stream: trio.SocketStream) -> None:
            async with building:
                if not built:
                    await trio.to_thread.run_sync(import_sdk)
                    built.append(
                        await trio.to_thread.run_sync(
                            lambda: build_server(daemon_socket, manager=manager)
                        )
                    )
            await _session(built[0], stream)

        try:
            async with trio.open_nursery() as nursery:
                await trio.serve_listeners(
                    handle, [trio.SocketListener(listener)], handler_nursery=nursery
                )
        finally:
            with contextlib.suppress(OSError):
                os.unlink(path)


def import_sdk() -> None:
    """Import the SDK (a second or two; blocking: call it off the trio thread)."""
    for module in _SDK_MODULES:
        importlib.import_module(module)


async def _session(server: Any, stream: trio.abc.Stream) -> None:
    """One MCP session over one relay connection: lines in, lines out."""
    import anyio
    import mcp_types as types
    from mcp.shared.message import SessionMessage

    to_server, server_reads = anyio.create_memory_object_stream[Any](0)
    server_writes, from_server = anyio.create_memory_object_stream[Any](0)

    async def read_lines() -> None:
        reader = LineReader(stream, max_bytes=MAX_LINE)
        async with to_server:
            while True:
                try:
                    line = await reader.read_line()
                except LineTooLong as exc:
                    await to_server.send(exc)
                    continue
                if line is None:
                    return
                if not line.strip():
                    continue
                try:
                    message = types.jsonrpc_message_adapter.validate_json(line, by_name=False)
                except Exception as exc:  # the SDK answers it as a parse error
                    await to_server.send(exc)
                    continue
                await to_server.send(SessionMessage(message))

    async def write_lines() -> None:
        async with from_server:
            async for item in from_server:
                data = item.message.model_dump_json(by_alias=True, exclude_unset=True)
                await stream.send_all(data.encode() + b"\n")

    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        async with stream, trio.open_nursery() as nursery:
            nursery.start_soon(read_lines)
            nursery.start_soon(write_lines)
            async with server_writes:
                await server.run(
                    server_reads, server_writes, server.create_initialization_options()
                )
            nursery.cancel_scope.cancel()


@contextlib.asynccontextmanager
async def open_mcp_server(daemon_socket: Path, *, manager: bool) -> AsyncIterator[Path]:
    """Run `serve_mcp` on a private socket for the block; yields the socket's path."""
    with open_mcp_socket() as path:
        async with trio.open_nursery() as nursery:
            await nursery.start(functools.partial(serve_mcp, path, daemon_socket, manager=manager))
            yield path
            nursery.cancel_scope.cancel()
