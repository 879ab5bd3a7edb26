"""The `hive` MCP server, in-process through the SDK's client, against a real hive."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mcp import Client

from hyperhive import wire
from hyperhive.agent.mcp_server import build_server
from hyperhive.agent.settings import Role
from hyperhive.testing import open_test_hive

if TYPE_CHECKING:
    from pathlib import Path

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


async def test_the_agent_and_manager_tool_sets(short_tmp: Path) -> None:
    socket = short_tmp / "nowhere.sock"
    async with Client(build_server(socket, Role.AGENT)) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(tools) == AGENT_TOOLS
    # Plain text results: no output schema, so Claude shows the model text, not {"result":..}.
    assert all(tool.output_schema is None for tool in tools.values())
    async with Client(build_server(socket, Role.MANAGER)) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
    assert names == AGENT_TOOLS | MANAGER_TOOLS


async def test_send_and_recv_go_through_the_broker_as_the_sockets_identity(
    short_tmp: Path,
) -> None:
    async with open_test_hive(short_tmp / "hive", agents=("alice", "bob")) as hive:
        alice = build_server(hive.paths.agent_socket("alice"), Role.AGENT)
        bob = build_server(hive.paths.agent_socket("bob"), Role.AGENT)
        async with Client(alice) as client:
            error, text = await _call(client, "send", to="bob", body="hi **bob**")
        assert not error
        assert text.startswith("sent #")
        async with Client(bob) as client:
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
    async with open_test_hive(short_tmp / "hive", agents=("alice",)) as hive:
        server = build_server(hive.paths.agent_socket("alice"), Role.AGENT)
        async with Client(server) as client:
            error, text = await _call(client, "whoami")
    assert not error
    assert "name: alice" in text
    assert "role: agent" in text


async def test_questions_and_reminders_round_trip(short_tmp: Path) -> None:
    async with open_test_hive(short_tmp / "hive", agents=("alice", "bob")) as hive:
        alice = build_server(hive.paths.agent_socket("alice"), Role.AGENT)
        async with Client(alice) as client:
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
        manager = build_server(hive.paths.manager_socket, Role.MANAGER)
        async with Client(manager) as client:
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
    async with Client(build_server(short_tmp / "gone.sock", Role.AGENT)) as client:
        error, text = await _call(client, "send", to="bob", body="x")
    assert error
    assert "send failed" in text
    assert "no hyperhive daemon" in text
