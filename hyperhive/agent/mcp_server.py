"""`hyperhive agent mcp`: the agent's tools as a stdio MCP server (the official `mcp` SDK, on trio).

Claude starts it through ``--mcp-config`` under the server name ``hive``, so the model sees
``mcp__hive__send`` and friends. Each tool call opens the agent's socket, sends one wire
request and turns the reply into readable text. Identity is the socket: nothing here names
the caller, so a tool cannot act as anyone else.

A tool whose request the daemon does not know (it lands in a later version of hyperhive)
answers with an error that says "not available yet" and that nothing was done — never a
made-up success.
"""

from __future__ import annotations

import datetime
import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

import trio
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from hyperhive import wire
from hyperhive.agent.settings import Role
from hyperhive.agent.wake import format_recv
from hyperhive.client import open_client
from hyperhive.errors import HyperhiveError, RemoteError

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["build_server", "forward", "not_available", "serve_stdio"]

_log = logging.getLogger(__name__)
_CALL_SLACK: Final = 30.0
Renderer = Callable[[Any], str]


def not_available(tool: str) -> str:
    return (
        f"{tool} is not available yet: this hive's daemon does not handle it (it lands in a "
        "later version of hyperhive). Nothing was done."
    )


async def forward(
    socket: Path, tool: str, cmd: str, fields: dict[str, Any], reply: str, render: Renderer
) -> str:
    """Send `cmd` with `fields` on `socket` and render the `reply`-typed answer.

    Raises:
        ToolError: not available yet, bad arguments, or the daemon refused; the text says which.
    """
    reply_type = getattr(wire, reply, None)
    if cmd not in wire.REQUESTS or reply_type is None:
        raise ToolError(not_available(tool))
    line = json.dumps({"cmd": cmd, **{k: v for k, v in fields.items() if v is not None}})
    try:
        request = wire.decode_request(line)
        wait = float(fields.get("wait_seconds") or 0.0)
        with trio.fail_after(wait + _CALL_SLACK):
            async with open_client(socket) as client:
                answer = await client.call(request, reply_type)
    except RemoteError as exc:
        # An older daemon does not know the command, or does not yet let this socket use it.
        if "unknown cmd" in str(exc) or "is not available to" in str(exc):
            raise ToolError(not_available(tool)) from None
        raise ToolError(f"{tool} failed: {exc}") from None
    except HyperhiveError as exc:
        raise ToolError(f"{tool} failed: {exc}") from None
    except trio.TooSlowError:
        raise ToolError(f"{tool} got no answer from the hive in time; try again") from None
    return render(answer)


# --------------------------------------------------------------------------------------------
# Rendering replies as text for the model
# --------------------------------------------------------------------------------------------


def _when(stamp: float | None) -> str:
    if stamp is None:
        return "-"
    return datetime.datetime.fromtimestamp(stamp, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _render_whoami(reply: Any) -> str:
    return (
        f"name: {reply.name}\nrole: {reply.role}\noperator pronouns: {reply.pronouns}\n"
        f"hyperhive: {reply.hyperhive_version}\npending reminders: {reply.pending_reminders}"
    )


def _render_loose_ends(reply: Any) -> str:
    lines: list[str] = []
    for q in reply.questions:
        lines.append(f"- question #{q.id} from {q.asker} to {q.target}: {q.question}")
    for r in reply.reminders:
        lines.append(
            f"- reminder #{r.id} for {r.owner}, due {_when(r.due_at)} ({r.state}): {r.message}"
        )
    for a in getattr(reply, "approvals", ()):
        lines.append(f"- approval #{a.id} for {a.agent}: {a.summary}")
    return "\n".join(lines) if lines else "no loose ends"


_NO_ARGS: dict[str, Any] = {}


def build_server(socket: Path, role: Role) -> MCPServer:
    """The ``hive`` MCP server for an agent (or, with `Role.MANAGER`, the manager)."""
    server = MCPServer("hive", instructions="hyperhive: talk to the other agents and the operator.")

    def tool(fn: Callable[..., Any]) -> None:
        server.add_tool(fn, structured_output=False)

    async def send(to: str, body: str) -> str:
        """Send a message to another agent by name, to `manager`, or to `operator`."""
        return await forward(
            socket,
            "send",
            "send",
            {"to": to, "body": body},
            "Sent",
            lambda r: f"sent #{r.id} to {to}",
        )

    async def recv(wait_seconds: float = 0.0, max: int = 1) -> str:
        """Read up to `max` messages from your inbox, waiting up to `wait_seconds` (at most
        180) for the first one. Returns "(empty)" when nothing arrived."""
        fields = {"wait_seconds": wait_seconds, "max": max}
        return await forward(
            socket, "recv", "recv", fields, "Messages", lambda r: format_recv(r.messages)
        )

    async def ask(
        question: str,
        to: str | None = None,
        options: list[str] | None = None,
        multi: bool = False,
        ttl_seconds: float | None = None,
    ) -> str:
        """Ask the operator (default) or agent `to` a question. The answer arrives later as a
        hive event in your inbox. `options` suggests answers; `multi` allows several."""
        fields = {
            "question": question,
            "to": to,
            "options": options or [],
            "multi": multi,
            "ttl_seconds": ttl_seconds,
        }
        return await forward(
            socket,
            "ask",
            "ask",
            fields,
            "Asked",
            lambda r: (
                f"asked question #{r.id} of {to or 'the operator'}; the answer will "
                "arrive in your inbox as a hive event"
            ),
        )

    async def answer(id: int, answer: str) -> str:
        """Answer question `id` that someone asked you."""
        return await forward(
            socket,
            "answer",
            "answer",
            {"id": id, "answer": answer},
            "Resolved",
            lambda r: f"answered question #{r.question.id} from {r.question.asker}",
        )

    async def remind(
        message: str,
        delay_seconds: float | None = None,
        at: str | None = None,
        file_path: str | None = None,
    ) -> str:
        """Remind yourself of `message` after `delay_seconds`, or at `at` (ISO 8601 with a
        timezone). With `file_path`, the message is written to that file in your state
        directory and the reminder points at it."""
        fields = {
            "message": message,
            "delay_seconds": delay_seconds,
            "at": at,
            "file_path": file_path,
        }
        return await forward(
            socket,
            "remind",
            "remind",
            fields,
            "Scheduled",
            lambda r: f"reminder #{r.id} set for {_when(r.due_at)}",
        )

    async def whoami() -> str:
        """Your name, role, the operator's pronouns and the hyperhive version."""
        return await forward(socket, "whoami", "whoami", _NO_ARGS, "WhoamiReply", _render_whoami)

    async def get_loose_ends() -> str:
        """Your open questions, pending reminders and approvals (hive-wide for the manager)."""
        return await forward(
            socket, "get_loose_ends", "get_loose_ends", _NO_ARGS, "LooseEnds", _render_loose_ends
        )

    async def cancel_loose_end(kind: str, id: int) -> str:
        """Cancel one of your loose ends: `kind` is `question` or `reminder`."""
        return await forward(
            socket,
            "cancel_loose_end",
            "cancel_loose_end",
            {"kind": kind, "id": id},
            "Cancelled",
            lambda r: f"cancelled {r.kind} #{r.id}",
        )

    for fn in (send, recv, ask, answer, remind, whoami, get_loose_ends, cancel_loose_end):
        tool(fn)
    if role is Role.MANAGER:
        for fn in _manager_tools(socket):
            tool(fn)
    return server


def _manager_tools(socket: Path) -> list[Callable[..., Any]]:
    def lifecycle(verb: str, doc: str) -> Callable[..., Any]:
        async def action(name: str) -> str:
            return await forward(
                socket,
                verb,
                verb,
                {"name": name},
                "Container",
                lambda r: f"{verb}: {r.container.name} is now {r.container.state}",
            )

        action.__name__ = verb
        action.__doc__ = doc
        return action

    async def request_spawn(name: str) -> str:
        """Ask the operator to approve creating agent `name` (review its config first)."""
        return await forward(
            socket,
            "request_spawn",
            "request_spawn",
            {"name": name},
            "Submitted",
            lambda r: f"spawn of {name} submitted for approval (#{r.id})",
        )

    async def request_init_config(name: str) -> str:
        """Prepare a config repository for a new agent `name`, to edit before requesting a
        spawn."""
        return await forward(
            socket,
            "request_init_config",
            "request_init_config",
            {"name": name},
            "Empty",
            lambda _: f"config for {name} initialised",
        )

    async def request_apply_commit(agent: str, commit_ref: str, description: str = "") -> str:
        """Ask the operator to approve config commit `commit_ref` (hex sha) for `agent`."""
        return await forward(
            socket,
            "request_apply_commit",
            "request_apply_commit",
            {"agent": agent, "commit_ref": commit_ref, "description": description},
            "Submitted",
            lambda r: f"commit {commit_ref} for {agent} submitted for approval (#{r.id})",
        )

    return [
        request_spawn,
        request_init_config,
        request_apply_commit,
        lifecycle("kill", "Stop agent `name`'s container now."),
        lifecycle("start", "Start agent `name`'s container."),
        lifecycle("restart", "Restart agent `name`'s container."),
        lifecycle("rebuild", "Rebuild agent `name`'s container from its applied config."),
    ]


def serve_stdio(socket: Path, role: Role) -> None:
    """Serve the tools on stdin/stdout until the client closes them (blocks; runs trio)."""
    server = build_server(socket, role)
    trio.run(server.run_stdio_async)
