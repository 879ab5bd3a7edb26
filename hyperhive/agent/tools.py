"""The agent's MCP tools, declared once: name, arguments, the wire request, the reply's text.

`TOOLS` is the table; the MCP server (`agent/mcp_server.py`) derives its ``tools/list`` and its
argument checks from it, and `call_tool` runs one call: it checks the arguments the model sent,
builds the wire request, sends it on the agent's socket (identity is the socket, so nothing
here names the caller) and renders the reply as plain text for the model.

This module is on the start-up path of every Claude process, so it imports only the standard
library at module level; the wire types (cattrs, attrs) are imported on the first tool call, or
earlier by `preload` in a background thread.

A tool whose request the daemon does not know (it lands in a later version of hyperhive)
fails with a text that says "not available yet" and that nothing was done, never a made-up
success.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import socket as socket_module
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final, NamedTuple

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "TOOLS",
    "Param",
    "Tool",
    "ToolFailed",
    "call_tool",
    "input_schema",
    "not_available",
    "preload",
    "tools_for",
]

CALL_SLACK: Final = 30.0  # on top of a recv's own wait
MAX_WAIT: Final = 3600.0
MAX_REPLY_BYTES: Final = 64 * 1024 * 1024
Renderer = Callable[[Any, Mapping[str, Any]], str]
Register = Callable[[socket_module.socket], object]


class ToolFailed(Exception):
    """The text the model sees as the tool's error result."""


class Param(NamedTuple):
    """One argument. `kind`: string, integer, number, boolean or strings (a list of strings)."""

    name: str
    kind: str
    required: bool = False
    default: Any = None


class Tool(NamedTuple):
    name: str
    description: str
    params: tuple[Param, ...]
    cmd: str  # the wire request's tag
    reply: str  # the name of the wire reply type
    render: Renderer
    manager_only: bool = False


def not_available(tool: str) -> str:
    return (
        f"{tool} is not available yet: this hive's daemon does not handle it (it lands in a "
        "later version of hyperhive). Nothing was done."
    )


# --------------------------------------------------------------------------------------------
# Rendering replies as text for the model
# --------------------------------------------------------------------------------------------


def _when(stamp: float | None) -> str:
    if stamp is None:
        return "-"
    return datetime.datetime.fromtimestamp(stamp, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _render_whoami(reply: Any, args: Mapping[str, Any]) -> str:
    return (
        f"name: {reply.name}\nrole: {reply.role}\noperator pronouns: {reply.pronouns}\n"
        f"hyperhive: {reply.hyperhive_version}\npending reminders: {reply.pending_reminders}"
    )


def _render_loose_ends(reply: Any, args: Mapping[str, Any]) -> str:
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


def _render_recv(reply: Any, args: Mapping[str, Any]) -> str:
    from hyperhive.agent.wake import format_recv

    return format_recv(reply.messages)


def _lifecycle(verb: str, doc: str) -> Tool:
    def render(reply: Any, args: Mapping[str, Any]) -> str:
        return f"{verb}: {reply.container.name} is now {reply.container.state}"

    return Tool(verb, doc, (Param("name", "string", True),), verb, "Container", render, True)


TOOLS: Final[tuple[Tool, ...]] = (
    Tool(
        "send",
        "Send a message to another agent by name, to `manager`, or to `operator`.",
        (Param("to", "string", True), Param("body", "string", True)),
        "send",
        "Sent",
        lambda r, a: f"sent #{r.id} to {a['to']}",
    ),
    Tool(
        "recv",
        "Read up to `max` messages from your inbox, waiting up to `wait_seconds` (at most 180) "
        'for the first one. Returns "(empty)" when nothing arrived.',
        (Param("wait_seconds", "number", default=0.0), Param("max", "integer", default=1)),
        "recv",
        "Messages",
        _render_recv,
    ),
    Tool(
        "ask",
        "Ask the operator (default) or agent `to` a question. The answer arrives later as a hive "
        "event in your inbox. `options` suggests answers; `multi` allows several.",
        (
            Param("question", "string", True),
            Param("to", "string"),
            Param("options", "strings", default=[]),
            Param("multi", "boolean", default=False),
            Param("ttl_seconds", "number"),
        ),
        "ask",
        "Asked",
        lambda r, a: (
            f"asked question #{r.id} of {a.get('to') or 'the operator'}; the answer will "
            "arrive in your inbox as a hive event"
        ),
    ),
    Tool(
        "answer",
        "Answer question `id` that someone asked you.",
        (Param("id", "integer", True), Param("answer", "string", True)),
        "answer",
        "Resolved",
        lambda r, a: f"answered question #{r.question.id} from {r.question.asker}",
    ),
    Tool(
        "remind",
        "Remind yourself of `message` after `delay_seconds`, or at `at` (ISO 8601 with a "
        "timezone). With `file_path`, the message is written to that file in your state "
        "directory and the reminder points at it.",
        (
            Param("message", "string", True),
            Param("delay_seconds", "number"),
            Param("at", "string"),
            Param("file_path", "string"),
        ),
        "remind",
        "Scheduled",
        lambda r, a: f"reminder #{r.id} set for {_when(r.due_at)}",
    ),
    Tool(
        "whoami",
        "Your name, role, the operator's pronouns and the hyperhive version.",
        (),
        "whoami",
        "WhoamiReply",
        _render_whoami,
    ),
    Tool(
        "get_loose_ends",
        "Your open questions, pending reminders and approvals (hive-wide for the manager).",
        (),
        "get_loose_ends",
        "LooseEnds",
        _render_loose_ends,
    ),
    Tool(
        "cancel_loose_end",
        "Cancel one of your loose ends: `kind` is `question` or `reminder`.",
        (Param("kind", "string", True), Param("id", "integer", True)),
        "cancel_loose_end",
        "Cancelled",
        lambda r, a: f"cancelled {r.kind} #{r.id}",
    ),
    Tool(
        "request_spawn",
        "Ask the operator to approve creating agent `name` (review its config first).",
        (Param("name", "string", True),),
        "request_spawn",
        "Submitted",
        lambda r, a: f"spawn of {a['name']} submitted for approval (#{r.id})",
        True,
    ),
    Tool(
        "request_init_config",
        "Prepare a config repository for a new agent `name`, to edit before requesting a spawn.",
        (Param("name", "string", True),),
        "request_init_config",
        "Empty",
        lambda r, a: f"config for {a['name']} initialised",
        True,
    ),
    Tool(
        "request_apply_commit",
        "Ask the operator to approve config commit `commit_ref` (hex sha) for `agent`.",
        (
            Param("agent", "string", True),
            Param("commit_ref", "string", True),
            Param("description", "string", default=""),
        ),
        "request_apply_commit",
        "Submitted",
        lambda r, a: f"commit {a['commit_ref']} for {a['agent']} submitted for approval (#{r.id})",
        True,
    ),
    _lifecycle("kill", "Stop agent `name`'s container now."),
    _lifecycle("start", "Start agent `name`'s container."),
    _lifecycle("restart", "Restart agent `name`'s container."),
    _lifecycle("rebuild", "Rebuild agent `name`'s container from its applied config."),
)


def tools_for(manager: bool) -> tuple[Tool, ...]:
    """The tools of an agent, or with `manager` the manager's (a superset)."""
    return tuple(t for t in TOOLS if manager or not t.manager_only)


_JSON_TYPES: Final[dict[str, dict[str, Any]]] = {
    "string": {"type": "string"},
    "integer": {"type": "integer"},
    "number": {"type": "number"},
    "boolean": {"type": "boolean"},
    "strings": {"type": "array", "items": {"type": "string"}},
}


def input_schema(tool: Tool) -> dict[str, Any]:
    """The JSON schema of a tool's arguments, as ``tools/list`` publishes it."""
    properties: dict[str, Any] = {}
    for param in tool.params:
        schema: dict[str, Any] = dict(_JSON_TYPES[param.kind])
        if not param.required:
            if param.default is None:
                schema = {"anyOf": [schema, {"type": "null"}], "default": None}
            else:
                schema["default"] = param.default
        properties[param.name] = schema
    required = [p.name for p in tool.params if p.required]
    return {
        "type": "object",
        "properties": properties,
        **({"required": required} if required else {}),
    }


# --------------------------------------------------------------------------------------------
# Arguments
# --------------------------------------------------------------------------------------------


def _fits(kind: str, value: object) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        if isinstance(value, float) and value.is_integer():
            return True
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        number = isinstance(value, int | float) and not isinstance(value, bool)
        return number and math.isfinite(float(value))  # type: ignore[arg-type]
    if kind == "strings":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    return False


def check_arguments(tool: Tool, arguments: object) -> dict[str, Any]:
    """The arguments as the wire request needs them (defaults filled in, integers as int).

    Raises:
        ToolFailed: not an object, a required argument missing, or one of the wrong type.
    """
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, Mapping):
        raise ToolFailed(f"{tool.name}: arguments must be an object")
    fields: dict[str, Any] = {}
    for param in tool.params:
        value = arguments.get(param.name)
        if value is None:
            if param.required:
                raise ToolFailed(f"{tool.name}: `{param.name}` is required")
            fields[param.name] = param.default
            continue
        if not _fits(param.kind, value):
            raise ToolFailed(f"{tool.name}: `{param.name}` must be of type {param.kind}")
        fields[param.name] = int(value) if param.kind == "integer" else value
    return fields


# --------------------------------------------------------------------------------------------
# One call
# --------------------------------------------------------------------------------------------


def preload() -> None:
    """Import what the first tool call needs (run it in a background thread at start)."""
    from hyperhive import wire  # noqa: F401
    from hyperhive.agent import wake  # noqa: F401


def call_tool(
    socket: Path, tool: Tool, arguments: object, *, register: Register | None = None
) -> str:
    """Run one tool call: check, send on `socket`, render the reply.

    `register` gets the connection before it is used, so a cancelled call can be cut off
    (``shutdown``) from another thread.

    Raises:
        ToolFailed: bad arguments, not available yet, the daemon refused, no daemon, or no
            answer in time; the text says which.
    """
    from hyperhive import wire
    from hyperhive.errors import HyperhiveError

    fields = check_arguments(tool, arguments)
    reply_type = getattr(wire, tool.reply, None)
    if tool.cmd not in wire.REQUESTS or reply_type is None:
        raise ToolFailed(not_available(tool.name))
    line = json.dumps({"cmd": tool.cmd, **{k: v for k, v in fields.items() if v is not None}})
    try:
        request = wire.decode_request(line)
    except HyperhiveError as exc:
        raise ToolFailed(f"{tool.name} failed: {exc}") from None
    wait = min(float(fields.get("wait_seconds") or 0.0), MAX_WAIT)
    raw = _exchange(socket, wire.encode_request(request), tool.name, wait + CALL_SLACK, register)
    try:
        answer = wire.decode_response(raw, reply_type)
    except HyperhiveError as exc:
        # An older daemon does not know the command, or does not let this socket use it yet.
        if "unknown cmd" in str(exc) or "is not available to" in str(exc):
            raise ToolFailed(not_available(tool.name)) from None
        raise ToolFailed(f"{tool.name} failed: {exc}") from None
    return tool.render(answer, fields)


def _exchange(
    path: Path, data: bytes, tool: str, timeout: float, register: Register | None
) -> bytes:
    """One request line out on a fresh connection, one answer line back (blocking, bounded)."""
    deadline = time.monotonic() + timeout
    with socket_module.socket(socket_module.AF_UNIX, socket_module.SOCK_STREAM) as sock:
        if register is not None:
            register(sock)
        try:
            sock.settimeout(timeout)
            sock.connect(os.fspath(path))
        except (FileNotFoundError, ConnectionRefusedError):
            raise ToolFailed(
                f"{tool} failed: no hyperhive daemon is listening on {path}; the hive is "
                "down or restarting, try again later"
            ) from None
        except TimeoutError:
            raise ToolFailed(f"{tool} got no answer from the hive in time; try again") from None
        except OSError as exc:
            raise ToolFailed(f"{tool} failed: cannot reach the hive: {exc}") from None
        try:
            sock.sendall(data)
            return _read_line(sock, deadline)
        except TimeoutError:
            raise ToolFailed(f"{tool} got no answer from the hive in time; try again") from None
        except OSError as exc:
            raise ToolFailed(f"{tool} failed: the connection to the hive broke ({exc})") from None


def _read_line(sock: socket_module.socket, deadline: float) -> bytes:
    buffer = bytearray()
    searched = 0
    while True:
        end = buffer.find(b"\n", searched)
        if end >= 0:
            return bytes(buffer[:end])
        searched = len(buffer)
        if searched > MAX_REPLY_BYTES:
            raise OSError("the answer is too long")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        sock.settimeout(remaining)
        chunk = sock.recv(65536)
        if not chunk:
            raise OSError("the daemon closed the connection")
        buffer += chunk
