"""The agent's MCP tools, derived from the command table: one tool per command marked as one.

A command declared with ``tool=agent_tool(...)`` or ``tool=manager_tool(...)`` in
`hyperhive.wire.commands` is a tool of that name: its description is the declaration's, its
arguments are the request's fields (a field without a default is required), and a call builds
that request, checks it as strictly as a socket line (`wire.request_from_fields`), sends it on
the agent's socket (identity is the socket, so nothing here names the caller) and renders the
typed reply as plain text for the model. `RENDER` holds the texts worth writing by hand; any
other tool answers with its reply as JSON, so a new tool needs no edit here.

A refusal is the daemon's own sentence (``request_apply_commit failed: commit_ref must be a
commit sha ...``), never a made-up success.
"""

from __future__ import annotations

import datetime
import json
import math
import types
import typing
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final, NamedTuple

import attrs
import trio

from hyperhive import wire
from hyperhive.agent.wake import format_recv
from hyperhive.client import open_client
from hyperhive.errors import HyperhiveError, RemoteError

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "RENDER",
    "TOOLS",
    "Param",
    "Tool",
    "ToolFailed",
    "call_tool",
    "check_arguments",
    "input_schema",
    "tools_for",
]

CALL_SLACK: Final = 30.0  # on top of a recv's own wait
MAX_WAIT: Final = 3600.0
Render = Callable[[Any, Any], str]  # (request, reply) -> the model's text


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
    request: type[wire.Request[Any]]
    manager_only: bool = False

    @property
    def cmd(self) -> str:
        return self.name


# --------------------------------------------------------------------------------------------
# Rendering replies as text for the model
# --------------------------------------------------------------------------------------------


def _when(stamp: float | None) -> str:
    if stamp is None:
        return "-"
    return datetime.datetime.fromtimestamp(stamp, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _whoami(request: wire.Whoami, reply: wire.WhoamiReply) -> str:
    return (
        f"name: {reply.name}\nrole: {reply.role}\noperator pronouns: {reply.pronouns}\n"
        f"hyperhive: {reply.hyperhive_version}\npending reminders: {reply.pending_reminders}"
    )


def _loose_ends(request: wire.GetLooseEnds, reply: wire.LooseEnds) -> str:
    lines: list[str] = []
    for q in reply.questions:
        lines.append(f"- question #{q.id} from {q.asker} to {q.target}: {q.question}")
    for r in reply.reminders:
        lines.append(
            f"- reminder #{r.id} for {r.owner}, due {_when(r.due_at)} ({r.state}): {r.message}"
        )
    for a in reply.approvals:
        lines.append(
            f"- approval #{a.id} ({a.kind} of {a.agent}, commit {a.commit_ref}) waits for the "
            f"operator: {a.summary}"
        )
    return "\n".join(lines) if lines else "no loose ends"


def _container(verb: str) -> Render:
    def render(request: Any, reply: wire.Container) -> str:
        return f"{verb}: {reply.container.name} is now {reply.container.state}"

    return render


RENDER: Final[dict[type[Any], Render]] = {
    wire.Send: lambda q, r: f"sent #{r.id} to {q.to}",
    wire.Recv: lambda q, r: format_recv(r.messages),
    wire.Ask: lambda q, r: (
        f"asked question #{r.id} of {q.to or 'the operator'}; the answer will arrive in your "
        "inbox as a hive event"
    ),
    wire.Answer: lambda q, r: f"answered question #{r.question.id} from {r.question.asker}",
    wire.Remind: lambda q, r: f"reminder #{r.id} set for {_when(r.due_at)}",
    wire.Whoami: _whoami,
    wire.GetLooseEnds: _loose_ends,
    wire.CancelLooseEnd: lambda q, r: f"cancelled {r.kind} #{r.id}",
    wire.RequestSpawn: lambda q, r: (
        f"spawn of {q.name} at commit {q.commit_ref} waits for the operator as approval "
        f"#{r.id}; a hive event tells you when it is decided and deployed"
    ),
    wire.RequestInitConfig: lambda q, r: (
        f"the config repo of {r.name} is ready at {r.path} (seed commit {r.seed[:12]}; the "
        f"read-only record is {r.applied_path}). Edit agent.toml (and CLAUDE.md) there, commit "
        f"with git, then call request_spawn (a new agent) or request_apply_commit (an existing "
        f"one) with that commit's sha (git rev-parse HEAD)."
    ),
    wire.RequestApplyCommit: lambda q, r: (
        f"commit {q.commit_ref} for {q.agent} waits for the operator as approval #{r.id}; a "
        "hive event tells you when it is decided and deployed"
    ),
    wire.StopAgent: _container("stop"),
    wire.KillAgent: _container("kill"),
    wire.StartAgent: _container("start"),
    wire.RestartAgent: _container("restart"),
    wire.RebuildAgent: _container("rebuild"),
}


def render(request: wire.Request[Any], reply: Any) -> str:
    """The model's text for `reply` (its JSON when nobody wrote a text for the command)."""
    custom = RENDER.get(type(request))
    if custom is not None:
        return custom(request, reply)
    return json.dumps(wire.to_json(reply), ensure_ascii=False)


# --------------------------------------------------------------------------------------------
# The tools, from the command table
# --------------------------------------------------------------------------------------------

_KINDS: Final[dict[Any, str]] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    tuple[str, ...]: "strings",
}


def _kind(hint: Any) -> str:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    return _KINDS[hint]


def _param(field: attrs.Attribute[Any], hint: Any) -> Param:
    if field.default is attrs.NOTHING:
        return Param(field.name, _kind(hint), required=True)
    default = list(field.default) if isinstance(field.default, tuple) else field.default
    return Param(field.name, _kind(hint), default=default)


def _tool(command: wire.Command) -> Tool:
    assert command.tool is not None
    hints = typing.get_type_hints(command.request)
    fields = attrs.fields(typing.cast("type[Any]", command.request))
    params = tuple(_param(f, hints[f.name]) for f in fields)
    return Tool(
        command.cmd,
        command.tool.description,
        params,
        command.request,
        command.tool.manager_only,
    )


TOOLS: Final[tuple[Tool, ...]] = tuple(
    _tool(command) for command in wire.COMMANDS.values() if command.tool is not None
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
    """The arguments as the request needs them (defaults filled in, integers as int, numbers
    as float, lists as tuples), in words a model can act on when they are wrong.

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
            if param.default is not None:
                fields[param.name] = param.default
            continue
        if not _fits(param.kind, value):
            raise ToolFailed(f"{tool.name}: `{param.name}` must be of type {param.kind}")
        fields[param.name] = _coerce(param.kind, value)
    return fields


def _coerce(kind: str, value: Any) -> Any:
    if kind == "integer":
        return int(value)
    if kind == "number":
        return float(value)
    return value


# --------------------------------------------------------------------------------------------
# One call
# --------------------------------------------------------------------------------------------


async def call_tool(socket: Path, tool: Tool, arguments: object) -> str:
    """Run one tool call: check, send on `socket`, render the reply.

    Raises:
        ToolFailed: bad arguments, the daemon refused, no daemon, or no answer in time; the
            text says which.

    Cancellation: safe; the connection is closed, so a parked ``recv`` is withdrawn.
    """
    fields = check_arguments(tool, arguments)
    try:
        request = wire.request_from_fields(tool.request, fields)
    except HyperhiveError as exc:
        raise ToolFailed(f"{tool.name} failed: {exc}") from None
    wait = min(float(fields.get("wait_seconds") or 0.0), MAX_WAIT)
    try:
        with trio.fail_after(wait + CALL_SLACK):
            async with open_client(socket) as client:
                reply = await client.call(request)
    except trio.TooSlowError:
        raise ToolFailed(f"{tool.name} got no answer from the hive in time; try again") from None
    except RemoteError as exc:
        raise ToolFailed(f"{tool.name} failed: {exc}") from None
    except HyperhiveError as exc:
        if "no hyperhive daemon is listening" in str(exc):
            raise ToolFailed(
                f"{tool.name} failed: no hyperhive daemon is listening on {socket}; the hive is "
                "down or restarting, try again later"
            ) from None
        raise ToolFailed(f"{tool.name} failed: {exc}") from None
    except OSError as exc:
        raise ToolFailed(f"{tool.name} failed: cannot reach the hive: {exc}") from None
    return render(request, reply)
