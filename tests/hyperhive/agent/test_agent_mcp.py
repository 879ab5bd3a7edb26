"""The `hive` MCP server as Claude runs it (`python -m hyperhive agent mcp`, stdio), driven by
the official `mcp` SDK's client against a real hive: the SDK is the conformance test of the
hand-written protocol code.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest
import trio
from mcp import Client, StdioServerParameters

from hyperhive import wire
from hyperhive.agent.mcp_server import McpServer
from hyperhive.agent.tools import TOOLS, input_schema
from hyperhive.testing import open_test_hive

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

_TIMEOUT = 30


@contextlib.asynccontextmanager
async def open_tools(
    socket: Path, role: str = "agent", mode: str = "auto"
) -> AsyncIterator[Client]:
    """The SDK client connected to a `hyperhive agent mcp` process serving `socket`."""
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "hyperhive", "agent", "mcp"],
        env={"HYPERHIVE_SOCKET": str(socket), "HYPERHIVE_ROLE": role},
    )
    with trio.fail_after(_TIMEOUT):
        async with Client(params, mode=mode) as client:  # type: ignore[arg-type]
            yield client


AGENT_TOOLS = {
    "send",
    "recv",
    "ask",
    "answer",
    "remind",
    "whoami",
    "get_loose_ends",
    "cancel_loose_end",
}
MANAGER_TOOLS = {
    "request_spawn",
    "request_init_config",
    "request_apply_commit",
    "kill",
    "start",
    "restart",
    "rebuild",
}


async def _call(client: Client, tool: str, **args: Any) -> tuple[bool, str]:
    result = await client.call_tool(tool, args)
    text = "\n".join(getattr(block, "text", "") for block in result.content)
    return result.is_error, text


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_the_agent_and_manager_tool_sets(short_tmp: Path, mode: str) -> None:
    socket = short_tmp / "nowhere.sock"
    async with open_tools(socket, mode=mode) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(tools) == AGENT_TOOLS
    # Plain text results: no output schema, so Claude shows the model text, not {"result":..}.
    assert all(tool.output_schema is None for tool in tools.values())
    assert tools["send"].input_schema["required"] == ["to", "body"]
    assert tools["recv"].input_schema["properties"]["max"] == {"type": "integer", "default": 1}
    async with open_tools(socket, "manager", mode=mode) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
    assert names == AGENT_TOOLS | MANAGER_TOOLS


async def test_send_and_recv_go_through_the_broker_as_the_sockets_identity(
    short_tmp: Path,
) -> None:
    async with open_test_hive(short_tmp / "hive", agents=("alice", "bob")) as hive:
        alice = hive.paths.agent_socket("alice")
        bob = hive.paths.agent_socket("bob")
        async with open_tools(alice) as client:
            error, text = await _call(client, "send", to="bob", body="hi **bob**")
        assert not error
        assert text.startswith("sent #")
        async with open_tools(bob) as client:
            error, text = await _call(client, "recv", wait_seconds=1, max=5)
            assert not error
            assert text == "from: alice\n\nhi **bob**"
            error, text = await _call(client, "recv")
            assert text == "(empty)"
            error, text = await _call(client, "send", to="nobody", body="x")
        assert error
        assert "send failed" in text
        async with hive.agent("bob") as raw:
            # recv via the tool leaves the message in flight like any delivery.
            assert (await raw.call(wire.AckTurn(), wire.Acked)).count == 1


async def test_whoami_comes_from_the_socket_not_from_arguments(short_tmp: Path) -> None:
    async with (
        open_test_hive(short_tmp / "hive", agents=("alice",)) as hive,
        open_tools(hive.paths.agent_socket("alice")) as client,
    ):
        error, text = await _call(client, "whoami")
    assert not error
    assert "name: alice" in text
    assert "role: agent" in text


async def test_questions_and_reminders_round_trip(short_tmp: Path) -> None:
    async with (
        open_test_hive(short_tmp / "hive", agents=("alice", "bob")) as hive,
        open_tools(hive.paths.agent_socket("alice")) as client,
    ):
        error, text = await _call(client, "ask", question="ship it?", to="bob")
        assert not error, text
        assert "asked question #" in text
        error, text = await _call(client, "remind", message="look again", delay_seconds=600)
        assert not error, text
        assert text.startswith("reminder #")
        error, text = await _call(client, "get_loose_ends")
        assert "ship it?" in text
        assert "look again" in text
        reminder_id = int(text.split("reminder #")[1].split()[0])
        error, text = await _call(client, "cancel_loose_end", kind="reminder", id=reminder_id)
        assert not error, text
        assert text == f"cancelled reminder #{reminder_id}"


async def test_tools_the_daemon_does_not_have_yet_say_so_and_do_nothing(short_tmp: Path) -> None:
    async with open_test_hive(short_tmp / "hive") as hive:
        async with open_tools(hive.paths.manager_socket, "manager") as client:
            for tool, args in [
                ("request_spawn", {"name": "carol"}),
                ("request_apply_commit", {"agent": "carol", "commit_ref": "abc1234"}),
            ]:
                error, text = await _call(client, tool, **args)
                assert error
                assert "not available yet" in text
                assert "Nothing was done" in text
            # Lifecycle tools reach the daemon; on a missing agent (or while the manager's
            # socket does not take them yet) the answer is an error, never a made-up success.
            error, text = await _call(client, "rebuild", name="carol")
            assert error
            assert "not available yet" in text or "carol" in text
        async with hive.operator() as operator:
            assert (await operator.call(wire.ListAgents(), wire.Agents)).agents == ()


async def test_a_dead_socket_is_a_readable_tool_error(short_tmp: Path) -> None:
    async with open_tools(short_tmp / "gone.sock") as client:
        error, text = await _call(client, "send", to="bob", body="x")
    assert error
    assert "send failed" in text
    assert "no hyperhive daemon" in text


async def test_bad_arguments_and_unknown_tools_are_readable_errors(short_tmp: Path) -> None:
    async with (
        open_test_hive(short_tmp / "hive", agents=("alice",)) as hive,
        open_tools(hive.paths.agent_socket("alice")) as client,
    ):
        error, text = await _call(client, "send", to="bob")
        assert error
        assert "`body` is required" in text
        error, text = await _call(client, "answer", id="seven", answer="x")
        assert error
        assert "`id` must be of type integer" in text
        error, text = await _call(client, "recv", wait_seconds="soon")
        assert error
        result = await client.call_tool("no_such_tool", {})
        assert result.is_error


def test_starting_the_server_imports_no_framework() -> None:
    """What Claude waits for before its first model request: the standard library only."""
    heavy = ["mcp", "pydantic", "trio", "anyio", "cattrs", "attrs", "typer", "hyperhive.wire"]
    code = "import sys, hyperhive.agent.mcp_server\n" + (
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"


def test_the_protocol_answers_what_claude_asks_and_survives_garbage(tmp_path: Path) -> None:
    out: list[dict[str, Any]] = []
    server = McpServer(tmp_path / "none.sock", manager=False, write=out.append)
    lines = [
        b'{"jsonrpc":"2.0","id":"probe","method":"server/discover","params":{}}',
        b'{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}',
        b'{"jsonrpc":"2.0","method":"notifications/initialized"}',
        b'{"jsonrpc":"2.0","id":1,"method":"ping"}',
        b"not json at all",
        b"[" * 100_000,
        b'{"jsonrpc":"2.0","id":2,"method":"tools/list"}',
        b'{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"nope"}}',
        b'{"jsonrpc":"2.0","id":4,"method":"initialize","params":{"protocolVersion":"1999-01-01"}}',
        b'{"jsonrpc":"2.0","id":5}',
    ]
    for line in lines:
        server.handle_line(line)
    by_id = {json.dumps(m.get("id")): m for m in out}
    assert by_id['"probe"']["error"]["code"] == -32601  # Claude falls back to initialize
    assert by_id["0"]["result"]["protocolVersion"] == "2025-06-18"
    assert by_id["0"]["result"]["capabilities"] == {"tools": {"listChanged": False}}
    assert by_id["1"]["result"] == {}
    assert [m["error"]["code"] for m in out if m.get("id") is None] == [-32700, -32700]
    assert {t["name"] for t in by_id["2"]["result"]["tools"]} == AGENT_TOOLS
    assert by_id["3"]["result"]["isError"] is True
    assert by_id["4"]["result"]["protocolVersion"] == "2025-11-25"
    assert by_id["5"]["error"]["code"] == -32600


def test_every_tool_schema_matches_its_declaration() -> None:
    for tool in TOOLS:
        schema = input_schema(tool)
        assert set(schema["properties"]) == {p.name for p in tool.params}
        assert schema.get("required", []) == [p.name for p in tool.params if p.required]
        assert tool.cmd in wire.REQUESTS or tool.manager_only, tool.name


async def test_a_cancelled_call_is_cut_off_and_not_answered(short_tmp: Path) -> None:
    async with open_test_hive(short_tmp / "hive", agents=("alice",)) as hive:
        out: list[dict[str, Any]] = []
        server = McpServer(hive.paths.agent_socket("alice"), manager=False, write=out.append)
        call = {"name": "recv", "arguments": {"wait_seconds": 120, "max": 1}}
        server.handle_line(
            json.dumps({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": call}).encode()
        )
        server.handle_line(
            json.dumps(
                {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 7}}
            ).encode()
        )
        with trio.fail_after(_TIMEOUT):
            while server._calls:
                await trio.sleep(0.01)
        assert out == []
        # A later call on the same server still works.
        server.handle_line(
            b'{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"whoami"}}'
        )
        with trio.fail_after(_TIMEOUT):
            while not out:
                await trio.sleep(0.01)
        assert "name: alice" in out[0]["result"]["content"][0]["text"]
        assert os.path.exists(hive.paths.agent_socket("alice"))
