"""The machinery of the command table: `Request`, `command`, the tool marks, `COMMANDS`.

`hyperhive.wire.commands` declares the commands with it; see that module.
"""

from __future__ import annotations

import typing
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar

import attrs

from hyperhive.value import value
from hyperhive.wire._bounds import strict

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "COMMANDS",
    "VARIANTS",
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


@value
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


@value
class Command:
    """One row of the command table.

    ``variant`` names the key that selects a second shape of the same ``cmd`` (a line holding
    that key decodes as this class); its row is keyed ``cmd.variant`` in `COMMANDS`.
    """

    cmd: str
    request: type[Request[Any]]
    reply: type[Any]
    tool: Tool | None = None
    variant: str | None = None

    @property
    def key(self) -> str:
        """The row's key in `COMMANDS`: the tag, or ``tag.variant``."""
        return self.cmd if self.variant is None else f"{self.cmd}.{self.variant}"


COMMANDS: Final[dict[str, Command]] = {}
# cmd -> (selecting key, row) of each variant, in declaration order.
VARIANTS: Final[dict[str, list[tuple[str, Command]]]] = {}
_BY_CLASS: Final[dict[type[Any], Command]] = {}


def command(
    cmd: str, *, tool: Tool | None = None, variant: str | None = None
) -> Callable[[_C], _C]:
    """Declare a command (put it above ``@value``): its tag, its tool, and, from the
    class's ``Request[Reply]`` base, its reply type.

    With ``variant``, the class is a second shape of an existing tag, chosen when a request
    line holds the key ``variant``: the original's host socket sends
    ``{"cmd":"start","scope":{...}}`` where hyperhive's CLI sends ``{"cmd":"start","name":...}``
    (docs/conventions.md, "Commands shared with the original").
    """

    def register(cls: _C) -> _C:
        reply = _reply_of(cls)
        entry = Command(cmd, typing.cast("type[Request[Any]]", cls), reply, tool, variant)
        if entry.key in COMMANDS:
            raise ValueError(f"command {entry.key!r} is declared twice")
        if variant is not None and (cmd not in COMMANDS or tool is not None):
            raise ValueError(f"variant {entry.key!r} needs its base command first, and no tool")
        if not attrs.has(cls) or not attrs.has(reply):
            raise TypeError(f"command {cmd!r}: {cls.__name__} and its reply must be attrs classes")
        COMMANDS[entry.key] = entry
        if variant is not None:
            VARIANTS.setdefault(cmd, []).append((variant, entry))
        _BY_CLASS[entry.request] = entry
        return typing.cast("_C", strict(entry.request))

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
