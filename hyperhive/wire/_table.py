"""The machinery of the command table: `Request`, `command`, the tool marks, `COMMANDS`.

`hyperhive.wire.commands` declares the commands with it; see that module.
"""

from __future__ import annotations

import typing
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar

import attrs

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "COMMANDS",
    "Command",
    "Request",
    "Tool",
    "agent_tool",
    "command",
    "command_of",
    "manager_tool",
    "reply_type",
]

R = TypeVar("R")
_C = TypeVar("_C", bound=type[Any])


class Request(Generic[R]):
    """The base of every command; ``R`` is the type of its successful reply.

    ``Request[Any]`` is the union of every command: decoding a line gives one, and
    `Client.call` of a ``Request[R]`` returns an ``R``.
    """

    __slots__ = ()


@attrs.frozen
class Tool:
    """A command the agents' MCP server offers as a tool (`hyperhive.agent.tools`)."""

    description: str  # what the model reads
    manager_only: bool = False


def agent_tool(description: str) -> Tool:
    """A tool every agent (and the manager) has."""
    return Tool(description)


def manager_tool(description: str) -> Tool:
    """A tool only the manager has."""
    return Tool(description, manager_only=True)


@attrs.frozen
class Command:
    """One row of the command table."""

    cmd: str
    request: type[Request[Any]]
    reply: type[Any]
    tool: Tool | None = None


COMMANDS: Final[dict[str, Command]] = {}
_BY_CLASS: Final[dict[type[Any], Command]] = {}


def command(cmd: str, *, tool: Tool | None = None) -> Callable[[_C], _C]:
    """Declare a command (put it above ``@attrs.frozen``): its tag, its tool, and, from the
    class's ``Request[Reply]`` base, its reply type."""

    def register(cls: _C) -> _C:
        reply = _reply_of(cls)
        if cmd in COMMANDS:
            raise ValueError(f"command {cmd!r} is declared twice")
        if not attrs.has(cls) or not attrs.has(reply):
            raise TypeError(f"command {cmd!r}: {cls.__name__} and its reply must be attrs classes")
        entry = Command(cmd, typing.cast("type[Request[Any]]", cls), reply, tool)
        COMMANDS[cmd] = entry
        _BY_CLASS[entry.request] = entry
        return typing.cast("_C", entry.request)

    return register


def _reply_of(cls: type[Any]) -> type[Any]:
    for base in getattr(cls, "__orig_bases__", ()):
        if typing.get_origin(base) is Request:
            (reply,) = typing.get_args(base)
            if isinstance(reply, type):
                return reply
    raise TypeError(f"{cls.__name__} must subclass Request[ReplyType]")


def command_of(request: Request[Any] | type[Request[Any]]) -> Command:
    """The table row of a request (or request class)."""
    cls = request if isinstance(request, type) else type(request)
    return _BY_CLASS[cls]


def reply_type(request: Request[R]) -> type[R]:
    """The reply class of `request`'s command."""
    reply: type[R] = command_of(request).reply
    return reply
