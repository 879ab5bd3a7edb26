"""The `hive` MCP server as Claude reaches it: `python -m hyperhive agent mcp` (the stdio relay)
in front of the SDK server the harness hosts (`serve_mcp`), driven by the official `mcp` SDK's
client against a real hive. Real sockets and processes on the real clock, each test bounded by
`_TIMEOUT`.
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
from hyperhive.agent.mcp_server import open_mcp_server
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
    """The SDK client, through a `hyperhive agent mcp` relay, on the tools of `socket`."""
    with trio.fail_after(_TIMEOUT):
        async with open_mcp_server(socket, manager=role == "manager") as mcp_socket:
            params = StdioServerParameters(
                command=sys.executable,
                args=["-m", "hyperhive", "agent", "mcp", "--connect", str(mcp_socket)],
            )
            async with Client(params, mode=mode) as client:  # type: ignore[arg-type]
                yield client


AGENT_TOOLS = {
    "send",
    "set_status",
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
    "stop",
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
            assert (await raw.call(wire.AckTurn())).count == 1


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


async def test_every_manager_tool_reaches_the_daemon_and_a_refusal_is_its_sentence(
    short_tmp: Path,
) -> None:
    async with open_test_hive(short_tmp / "hive") as hive:
        async with open_tools(hive.paths.manager_socket, "manager") as client:
            for tool, args, why in [
                (
                    "request_spawn",
                    {"name": "carol", "commit_ref": "main", "description": "x"},
                    "commit_ref must be a commit sha",
                ),
                (
                    "request_apply_commit",
                    {"agent": "carol", "commit_ref": "abc1234", "description": "x"},
                    "carol does not exist; ask for it with request_spawn",
                ),
                ("rebuild", {"name": "carol"}, "unknown agent 'carol'"),
                ("stop", {"name": "manager"}, "the manager cannot stop itself"),
            ]:
                error, text = await _call(client, tool, **args)
                assert error, text
                assert text.startswith(f"{tool} failed: "), text
                assert why in text
                assert "not available" not in text
        async with hive.operator() as operator:
            assert (await operator.call(wire.ListAgents())).agents == ()
            assert (await operator.call(wire.ListPending())).approvals == ()


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


def test_starting_the_relay_imports_no_framework() -> None:
    """What Claude waits for before its first model request: the standard library only."""
    heavy = ["mcp", "pydantic", "trio", "anyio", "cattrs", "attrs", "typer", "hyperhive.wire"]
    code = "import sys, hyperhive.agent.mcp_relay\n" + (
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"


def test_the_relay_says_why_when_no_harness_listens(short_tmp: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "hyperhive", "agent", "mcp", "--connect", str(short_tmp / "x")],
        capture_output=True,
        text=True,
        timeout=60,
        input="",
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        check=False,
    )
    assert done.returncode == 1
    assert "no hyperhive harness serves MCP" in done.stderr


class _Raw:
    """JSON-RPC lines straight onto the server's socket, as the relay would forward them."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.reader = wire.LineReader(stream, max_bytes=64 * wire.MAX_LINE_BYTES)
        self.seen: list[dict[str, Any]] = []

    async def send(self, *lines: bytes) -> None:
        await self.stream.send_all(b"".join(line + b"\n" for line in lines))

    async def answer(self, request_id: object) -> dict[str, Any]:
        while True:
            line = await self.reader.read_line()
            assert line is not None, "the server closed the session"
            message: dict[str, Any] = json.loads(line)
            self.seen.append(message)
            if message.get("id") == request_id:
                return message


_INIT = (
    b'{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18",'
    b'"capabilities":{},"clientInfo":{"name":"test","version":"1"}}}'
)


async def test_the_protocol_answers_what_claude_asks_and_survives_garbage(short_tmp: Path) -> None:
    with trio.fail_after(_TIMEOUT):
        async with open_mcp_server(short_tmp / "none.sock", manager=False) as path:
            raw = _Raw(await trio.open_unix_socket(os.fspath(path)))
            await raw.send(_INIT)
            init = await raw.answer(0)
            assert init["result"]["protocolVersion"] == "2025-06-18"
            assert init["result"]["serverInfo"]["name"] == "hive"
            assert "tools" in init["result"]["capabilities"]
            await raw.send(
                b'{"jsonrpc":"2.0","method":"notifications/initialized"}',
                b"not json at all",
                b"[" * 100_000,
                b'{"jsonrpc":"2.0","id":1,"method":"ping"}',
                b'{"jsonrpc":"2.0","id":2,"method":"tools/list"}',
                b'{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"nope"}}',
                b'{"jsonrpc":"2.0","id":4,"method":"no/such/method"}',
            )
            assert (await raw.answer(1))["result"] == {}
            tools = (await raw.answer(2))["result"]["tools"]
            assert {t["name"] for t in tools} == AGENT_TOOLS
            assert (await raw.answer(3))["result"]["isError"] is True
            assert (await raw.answer(4))["error"]["code"] == -32601
            await raw.stream.aclose()


def test_every_tool_schema_matches_its_declaration() -> None:
    for tool in TOOLS:
        schema = input_schema(tool)
        assert set(schema["properties"]) == {p.name for p in tool.params}
        assert schema.get("required", []) == [p.name for p in tool.params if p.required]
        assert tool.cmd in wire.COMMANDS, tool.name
        assert wire.COMMANDS[tool.cmd].request is tool.request


async def test_a_cancelled_call_is_cut_off_and_not_answered(short_tmp: Path) -> None:
    async with open_test_hive(short_tmp / "hive", agents=("alice",)) as hive:
        with trio.fail_after(_TIMEOUT):
            async with open_mcp_server(hive.paths.agent_socket("alice"), manager=False) as path:
                raw = _Raw(await trio.open_unix_socket(os.fspath(path)))
                await raw.send(_INIT, b'{"jsonrpc":"2.0","method":"notifications/initialized"}')
                await raw.answer(0)
                call = {"name": "recv", "arguments": {"wait_seconds": 120, "max": 1}}
                await raw.send(
                    json.dumps(
                        {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": call}
                    ).encode(),
                    json.dumps(
                        {
                            "jsonrpc": "2.0",
                            "method": "notifications/cancelled",
                            "params": {"requestId": 7},
                        }
                    ).encode(),
                    b'{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"whoami"}}',
                )
                # A later call on the same session still works; the cancelled one never answers.
                whoami = await raw.answer(8)
                assert "name: alice" in whoami["result"]["content"][0]["text"]
                assert [m for m in raw.seen if m.get("id") == 7] == []
                # Its parked recv was withdrawn: a message sent now waits for the next recv.
                async with hive.operator() as operator:
                    await operator.call(wire.Send(to="alice", body="for later"))
                async with hive.agent("alice") as alice:
                    got = await alice.call(wire.Recv(wait_seconds=5, max=5))
                assert [d.body for d in got.messages] == ["for later"]
                await raw.stream.aclose()
        assert os.path.exists(hive.paths.agent_socket("alice"))
