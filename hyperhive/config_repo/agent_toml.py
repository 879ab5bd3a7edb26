"""``agent.toml``: an agent's settings, parsed into a typed, validated `AgentConfig`.

The format is documented in docs/config.md; the template the daemon seeds new repos with is
``template/agent.toml`` next to this file. `parse_agent_toml` is the only way in: it reads the
text with ``tomllib``, structures it with a private cattrs converter that refuses unknown keys
and silent coercions, checks every bound (lengths, counts, ranges) and the rules between fields,
and reports every problem as ``agent.toml: <field path>: <what is wrong>``, one per line, never
a traceback::

    agent.toml: network.allow[2]: 'example.com' is not HOST:PORT (say api.anthropic.com:443)

A config is manager-written, so everything in it is bounded here; past `parse_agent_toml` code
handles only valid values. Secret *values* never appear: `secrets` maps names to references
(``env:NAME``, ``file:/path``) that `hyperhive.config_repo.secrets` resolves when the agent
starts.
"""

from __future__ import annotations

import ast
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any, Final, Literal, NewType, TypeVar

import attrs
import cattrs
from cattrs.errors import (
    ForbiddenExtraKeysError,
    IterableValidationError,
    IterableValidationNote,
)
from cattrs.gen import make_dict_structure_fn

from hyperhive.containers.sandbox import Bind as SandboxBind
from hyperhive.containers.sandbox import EgressRule, SandboxSettings, parse_egress
from hyperhive.errors import ConfigError

__all__ = [
    "DEFAULT_BUILD_TIMEOUT",
    "MAX",
    "RESERVED_ENV_PREFIXES",
    "RESERVED_TARGETS",
    "AgentConfig",
    "Bind",
    "Build",
    "EgressRule",
    "Limits",
    "McpServer",
    "Network",
    "SecretRef",
    "egress_text",
    "parse_agent_toml",
    "structure_agent_config",
    "to_sandbox_settings",
]

# Every count and length the format allows; docs/config.md lists the same numbers.
MAX: Final = {
    "text": 4096,  # one env value, command, argument, path
    "env": 64,
    "secrets": 32,
    "mcp_servers": 16,
    "mcp_args": 64,
    "mcp_env": 32,
    "mcp_tools": 64,
    "allowed_tools": 128,
    "allow": 64,
    "binds": 16,
    "build_commands": 32,
    "problems": 20,
}
DEFAULT_BUILD_TIMEOUT: Final = 600
RESERVED_ENV_PREFIXES: Final = ("HYPERHIVE_",)
RESERVED_ENV: Final = frozenset({"HOME"})
# Sandbox paths the hive mounts itself: a bind may not land on or under one, nor exactly on
# one of the system directories the sandbox assembles (the same rule as sandbox.json's).
RESERVED_TARGETS: Final = ("/state", "/config", "/run/hyperhive", "/tools", "/proc", "/dev")
RESERVED_EXACT: Final = ("/run", "/usr", "/etc")
_HIVE_SERVER: Final = "hive"

_MODEL: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@\[\]/-]{0,99}")
_ENV_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_SERVER_KEY: Final = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
_MCP_TOOL: Final = re.compile(r"[A-Za-z0-9_*-]{1,64}")
_CLAUDE_TOOL: Final = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,127}(\([^()\x00-\x1f\x7f]{1,200}\))?")
_SIZE: Final = re.compile(r"([0-9]{1,15})\s*([KMGT]?)(?:i?B)?", re.IGNORECASE)
_UNITS: Final = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}

EnvName = NewType("EnvName", str)
EnvValue = NewType("EnvValue", str)
Model = NewType("Model", str)
ServerKey = NewType("ServerKey", str)
McpTool = NewType("McpTool", str)
ClaudeTool = NewType("ClaudeTool", str)
Text = NewType("Text", str)
AbsPath = NewType("AbsPath", str)


# --------------------------------------------------------------------------------------------
# The settings types
# --------------------------------------------------------------------------------------------


@attrs.frozen
class Network:
    """Network on or off; with it on, an empty ``allow`` means any egress."""

    enabled: bool = True
    allow: tuple[EgressRule, ...] = ()


@attrs.frozen
class SecretRef:
    """Where the daemon finds a secret's value when the agent starts (never the value)."""

    source: Literal["env", "file"]
    target: str

    def __str__(self) -> str:
        return f"{self.source}:{self.target}"


@attrs.frozen
class McpServer:
    """An extra stdio MCP server Claude starts inside the sandbox."""

    command: Text
    args: tuple[Text, ...] = ()
    env: Mapping[EnvName, EnvValue] = attrs.field(factory=dict)
    allowed_tools: tuple[McpTool, ...] = ("*",)  # type: ignore[assignment]


@attrs.frozen
class Bind:
    """A host path bound read-only into the sandbox."""

    source: AbsPath
    target: AbsPath


@attrs.frozen
class Build:
    """Shell commands run at deploy, in the agent's sandbox with network, writing /tools."""

    commands: tuple[Text, ...] = ()
    timeout: int = DEFAULT_BUILD_TIMEOUT


@attrs.frozen
class Limits:
    """Resource limits; None means the host's default."""

    memory: int | None = None
    processes: int | None = None
    disk: int | None = None


@attrs.frozen
class AgentConfig:
    """One agent's validated settings (docs/config.md)."""

    model: Model | None = None
    network: Network = Network()
    env: Mapping[EnvName, EnvValue] = attrs.field(factory=dict)
    secrets: Mapping[EnvName, SecretRef] = attrs.field(factory=dict)
    mcp_servers: Mapping[ServerKey, McpServer] = attrs.field(factory=dict)
    allowed_tools: tuple[ClaudeTool, ...] = ()
    binds: tuple[Bind, ...] = ()
    build: Build = Build()
    limits: Limits = Limits()


# --------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------


def parse_agent_toml(text: str) -> AgentConfig:
    """The settings in ``text``, the content of an ``agent.toml``.

    Raises:
        ConfigError: the text is not TOML or breaks the format; one line per problem, each
            ``agent.toml: <field path>: <what is wrong>``.
    """
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"agent.toml: not valid TOML: {exc}") from None
    return structure_agent_config(raw)


def structure_agent_config(raw: Mapping[str, Any]) -> AgentConfig:
    """The settings in ``raw``, a table as ``tomllib`` reads it (see `parse_agent_toml`).

    Raises:
        ConfigError: as `parse_agent_toml`.
    """
    try:
        config = _converter.structure(raw, AgentConfig)
    except cattrs.BaseValidationError as exc:
        lines = cattrs.transform_error(exc, path="", format_exception=_describe)
        raise ConfigError(_report([_problem(line) for line in lines])) from None
    except (TypeError, ValueError, KeyError) as exc:  # the top level itself was no table
        raise ConfigError(f"agent.toml: {exc}") from None
    problems = _bounds(config) + _rules(config)
    if problems:
        raise ConfigError(_report(problems))
    return config


def _report(problems: list[tuple[str, str]]) -> str:
    shown = problems[: MAX["problems"]]
    lines = [
        f"agent.toml: {path}: {what}" if path else f"agent.toml: {what}" for path, what in shown
    ]
    if len(problems) > len(shown):
        lines.append(f"agent.toml: ... and {len(problems) - len(shown)} more problems")
    return "\n".join(lines)


def _problem(line: str) -> tuple[str, str]:
    what, sep, where = line.rpartition(" @ ")
    return (_path(where), what) if sep else ("", line)


_STEP: Final = re.compile(
    r"\.([A-Za-z_][A-Za-z0-9_]*)|\[([0-9]+)\]|\[('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")\]"
)


def _path(raw: str) -> str:
    """``.env['A B']`` (cattrs) as ``env."A B"``; ``.network.allow[2]`` as it is, less the dot."""
    out = ""
    for match in _STEP.finditer(raw):
        field, index, key = match.groups()
        if field is not None:
            out += f".{field}"
        elif index is not None:
            out += f"[{index}]"
        else:
            name = str(ast.literal_eval(key))
            out += f".{name}" if re.fullmatch(r"[A-Za-z0-9_-]+", name) else f'."{name}"'
    return out.lstrip(".")


def _describe(exc: BaseException, _type: Any) -> str:
    if isinstance(exc, ForbiddenExtraKeysError):
        keys = ", ".join(sorted(exc.extra_fields))
        return f"unknown key{'s' if len(exc.extra_fields) > 1 else ''} {keys}"
    if isinstance(exc, KeyError):
        return "required key is missing"
    return str(exc)


def to_sandbox_settings(config: AgentConfig) -> SandboxSettings:
    """The part of ``config`` the bwrap sandbox enforces, as its own settings type.

    The allowlist (empty: any destination), the binds (always read-only) and the limits.
    ``network.enabled`` is not in it: that is the agent record's network flag.
    """
    return SandboxSettings(
        binds=tuple(
            SandboxBind(Path(bind.source), PurePosixPath(bind.target)) for bind in config.binds
        ),
        egress=config.network.allow or None,
        memory_max=config.limits.memory,
        pids_max=config.limits.processes,
        disk_quota=config.limits.disk,
    )


# --------------------------------------------------------------------------------------------
# Leaf values
# --------------------------------------------------------------------------------------------


def _text(value: Any, what: str = "a string") -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected {what}, got {_toml_type(value)}")
    if "\0" in value:
        raise ValueError("must not contain a NUL character")
    if len(value) > MAX["text"]:
        raise ValueError(f"longer than {MAX['text']} characters")
    return value


def _matching(pattern: re.Pattern[str], explain: str) -> Any:
    def structure(value: Any, _: Any) -> str:
        text = _text(value)
        if not pattern.fullmatch(text):
            raise ValueError(f"{text[:80]!r} is not {explain}")
        return text

    return structure


def _nonempty(value: Any, _: Any) -> str:
    text = _text(value)
    if not text.strip():
        raise ValueError("must not be empty")
    return text


def _abs_path(value: Any, _: Any) -> str:
    text = _text(value, "an absolute path")
    parts = text.split("/")
    if not text.startswith("/") or text == "/" or any(p in ("", ".", "..") for p in parts[1:]):
        raise ValueError(
            f"{text[:80]!r} is not a clean absolute path (start with /, no '.', '..' or '//', "
            "no trailing /, not / itself)"
        )
    return text


def _egress(value: Any, _: Any) -> EgressRule:
    # The sandbox's own parser (docs/security.md), so whatever is approved here can be enforced.
    text = _text(value, "a host:port string").strip().lower()
    try:
        return parse_egress(text)
    except ConfigError as exc:
        raise ValueError(str(exc).removeprefix("egress: ")) from None


def egress_text(rule: EgressRule) -> str:
    """A rule as it is written: ``api.github.com:443``, ``10.0.0.0/8:*``, ``x.org:80-90``."""
    if (rule.first_port, rule.last_port) == (1, 65535):
        ports = "*"
    elif rule.first_port == rule.last_port:
        ports = str(rule.first_port)
    else:
        ports = f"{rule.first_port}-{rule.last_port}"
    return f"{rule.host}:{ports}"


def _secret(value: Any, _: Any) -> SecretRef:
    text = _text(value, "a reference like env:NAME or file:/path")
    source, sep, target = text.partition(":")
    if sep and source == "env" and _ENV_NAME.fullmatch(target):
        return SecretRef("env", target)
    if sep and source == "file":
        return SecretRef("file", _abs_path(target, None))
    # Not echoed: a value written here by mistake may be the secret itself.
    raise ValueError(
        "is not a secret reference: write env:NAME (the daemon's environment) or "
        "file:/absolute/path (a file on the host), never the secret itself"
    )


def _size(value: Any, _: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = _text(value, 'a size like "2G" or a number of bytes')
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text[:40]!r} is not a size: a number of bytes or e.g. 512M, 2G")
    return int(match[1]) * _UNITS[match[2].upper()]


def _toml_type(value: Any) -> str:
    names = {str: "a string", bool: "a boolean", int: "an integer", float: "a float",
             list: "an array", dict: "a table"}  # fmt: skip
    return names.get(type(value), type(value).__name__)


# --------------------------------------------------------------------------------------------
# Bounds and rules between fields
# --------------------------------------------------------------------------------------------


def _bounds(config: AgentConfig) -> list[tuple[str, str]]:
    counts: list[tuple[str, int, str]] = [
        ("env", len(config.env), "env"),
        ("secrets", len(config.secrets), "secrets"),
        ("mcp_servers", len(config.mcp_servers), "mcp_servers"),
        ("allowed_tools", len(config.allowed_tools), "allowed_tools"),
        ("network.allow", len(config.network.allow), "allow"),
        ("binds", len(config.binds), "binds"),
        ("build.commands", len(config.build.commands), "build_commands"),
    ]
    for key, server in config.mcp_servers.items():
        counts += [
            (f"mcp_servers.{key}.args", len(server.args), "mcp_args"),
            (f"mcp_servers.{key}.env", len(server.env), "mcp_env"),
            (f"mcp_servers.{key}.allowed_tools", len(server.allowed_tools), "mcp_tools"),
        ]
    problems = [
        (path, f"at most {MAX[limit]} entries (found {count})")
        for path, count, limit in counts
        if count > MAX[limit]
    ]
    ranges = [
        ("build.timeout", config.build.timeout, 10, 7200, "seconds"),
        ("limits.memory", config.limits.memory, 64 << 20, 1 << 40, "bytes"),
        ("limits.processes", config.limits.processes, 16, 65536, "processes"),
        ("limits.disk", config.limits.disk, 1 << 20, 16 << 40, "bytes"),
    ]
    problems += [
        (path, f"must be between {_human(low, unit)} and {_human(high, unit)}{_suffix(unit)}")
        for path, value, low, high, unit in ranges
        if value is not None and not low <= value <= high
    ]
    return problems


def _rules(config: AgentConfig) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    if config.network.allow and not config.network.enabled:
        problems.append(("network.allow", "set network.enabled = true, or drop the allowlist"))
    for section, names in (("env", config.env), ("secrets", config.secrets)):
        for name in names:
            if name in RESERVED_ENV or name.startswith(RESERVED_ENV_PREFIXES):
                problems.append((f"{section}.{name}", "the hive sets this variable itself"))
    for name in sorted(set(config.env) & set(config.secrets)):
        problems.append((f"secrets.{name}", "also set in env; give a variable one source"))
    if _HIVE_SERVER in config.mcp_servers:
        problems.append((f"mcp_servers.{_HIVE_SERVER}", "that name is the hive's own server"))
    targets: set[str] = set()
    for index, bind in enumerate(config.binds):
        if bind.target in RESERVED_EXACT or any(_under(bind.target, r) for r in RESERVED_TARGETS):
            problems.append((f"binds[{index}].target", f"{bind.target} is the hive's own mount"))
        if bind.target in targets:
            problems.append((f"binds[{index}].target", f"{bind.target} is bound twice"))
        targets.add(bind.target)
    return problems


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root + "/")


def _suffix(unit: str) -> str:
    return "" if unit == "bytes" else f" {unit}"


def _human(value: int, unit: str) -> str:
    if unit != "bytes":
        return str(value)
    for suffix, size in (("T", 1 << 40), ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if value >= size and value % size == 0:
            return f"{value // size}{suffix}"
    return f"{value} bytes"


# --------------------------------------------------------------------------------------------
# The converter
# --------------------------------------------------------------------------------------------

_T = TypeVar("_T")
_converter = cattrs.Converter(forbid_extra_keys=True)


def _strict(kind: type[Any], what: str) -> None:
    def structure(value: Any, _: Any) -> Any:
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise TypeError(f"expected {what}, got {_toml_type(value)}")
        return value

    _converter.register_structure_hook(kind, structure)


_strict(bool, "true or false")
_strict(int, "an integer")
_converter.register_structure_hook(str, lambda value, _: _text(value))
_converter.register_structure_hook(Text, _nonempty)
_converter.register_structure_hook(EnvValue, lambda value, _: _text(value))
_converter.register_structure_hook(AbsPath, _abs_path)
_converter.register_structure_hook(EgressRule, _egress)
_converter.register_structure_hook(SecretRef, _secret)
_converter.register_structure_hook(
    Model, _matching(_MODEL, "a model name (letters, digits and ._:@[]/-, up to 100)")
)
_converter.register_structure_hook(
    EnvName, _matching(_ENV_NAME, "a variable name (letters, digits and _, not first a digit)")
)
_converter.register_structure_hook(
    ServerKey, _matching(_SERVER_KEY, "a server name (lowercase letters, digits, _ and -)")
)
_converter.register_structure_hook(
    McpTool, _matching(_MCP_TOOL, "a tool name or pattern (letters, digits, _, - and *)")
)
_converter.register_structure_hook(
    ClaudeTool, _matching(_CLAUDE_TOOL, "a Claude tool rule like Bash or Bash(git log:*)")
)


def _optional_size(value: Any, _: Any) -> int | None:
    return None if value is None else _size(value, None)


def _table_first(cls: type[_T], hook: Any) -> Any:
    def structure(value: Any, _: Any) -> _T:
        if not isinstance(value, Mapping):
            raise TypeError(f"expected a table, got {_toml_type(value)}")
        return hook(value, cls)  # type: ignore[no-any-return]

    return structure


def _is_mapping(kind: Any) -> bool:
    return getattr(kind, "__origin__", None) in (dict, Mapping)


def _is_array(kind: Any) -> bool:
    args: tuple[Any, ...] = getattr(kind, "__args__", ())
    return getattr(kind, "__origin__", None) is tuple and len(args) == 2 and args[1] is Ellipsis


def _mapping_hook(kind: Any) -> Any:
    inner = _converter.gen_structure_mapping(kind)

    def structure(value: Any, cls: Any) -> Any:
        if not isinstance(value, Mapping):
            raise TypeError(f"expected a table, got {_toml_type(value)}")
        return inner(value, cls)

    return structure


def _array_hook(kind: Any) -> Any:
    item = kind.__args__[0]

    def structure(value: Any, _: Any) -> tuple[Any, ...]:
        if not isinstance(value, list):
            raise TypeError(f"expected an array, got {_toml_type(value)}")
        hook = _converter.get_structure_hook(item)
        out, errors = [], []
        for index, entry in enumerate(value):
            try:
                out.append(hook(entry, item))
            except Exception as exc:
                note = IterableValidationNote(f"Structuring @ index {index}", index, item)
                exc.__notes__ = [*getattr(exc, "__notes__", []), note]
                errors.append(exc)
        if errors:
            raise IterableValidationError(f"While structuring {kind!r}", errors, kind)
        return tuple(out)

    return structure


_converter.register_structure_hook_factory(_is_mapping, _mapping_hook)
_converter.register_structure_hook_factory(_is_array, _array_hook)
# Leaves first: a generated hook captures the hooks of its fields when it is made.
for _cls in (Network, McpServer, Bind, Build):
    _converter.register_structure_hook(
        _cls, _table_first(_cls, make_dict_structure_fn(_cls, _converter))
    )
_converter.register_structure_hook(
    Limits,
    _table_first(
        Limits,
        make_dict_structure_fn(
            Limits, _converter, memory=cattrs.override(struct_hook=_optional_size),
            disk=cattrs.override(struct_hook=_optional_size),
        ),
    ),
)  # fmt: skip
_converter.register_structure_hook(
    AgentConfig, _table_first(AgentConfig, make_dict_structure_fn(AgentConfig, _converter))
)
