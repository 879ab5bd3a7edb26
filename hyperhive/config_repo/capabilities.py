"""The capability diff: what a config change grants an agent or takes away, as plain data.

`capability_diff` compares two validated configs (the deployed one, or None for a spawn, and the
proposed one) and lists `Change` rows, one per capability that moves:

==========  =====================================================================
area        subject and effect
==========  =====================================================================
model       the model (changes; no subject)
network     egress as a whole: off < allowlist < any (grants upward, revokes down)
egress      one allowlist rule, when both sides are on an allowlist
secret      a variable's name and its reference (``env:`` / ``file:``); never a value
env         a variable's name (its value is in the unified diff beside this one)
mcp_server  an extra MCP server: its command line, its env keys
mcp_tool    one allowed-tool pattern of an MCP server
tool        one of Claude's allowed tools
bind        a read-only bind ``source -> target``
build       one build command, and the build timeout
limit       memory, processes, disk: raising or removing one grants, lowering revokes
==========  =====================================================================

`render_text` is the CLI's form (control characters escaped, long values cut);
`to_json` the dashboard's (raw strings: the page escapes them where it shows them).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar

import attrs

from hyperhive.config_repo.agent_toml import AgentConfig, Limits, McpServer, Network, egress_text

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

__all__ = ["Change", "Effect", "capability_diff", "render_text", "to_json"]

Effect = Literal["grants", "revokes", "changes"]
_MARK: Final = {"grants": "+", "revokes": "-", "changes": "~"}
_NOTHING: Final = AgentConfig(network=Network(enabled=False))
_RANK: Final = {"off": 0, "allowlist": 1, "any": 2}
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SHOWN: Final = 160
_SHOWN_RULES: Final = 8
_K = TypeVar("_K", bound=str)


@attrs.frozen
class Change:
    """One capability that moves. ``before`` / ``after`` are None where it is absent."""

    area: str
    effect: Effect
    subject: str
    before: str | None = None
    after: str | None = None


def capability_diff(old: AgentConfig | None, new: AgentConfig) -> list[Change]:
    """What going from ``old`` (None: a new agent) to ``new`` grants and takes away."""
    base = old or _NOTHING
    return [
        *_model(base, new),
        *_network(base.network, new.network),
        *_secrets(base.secrets, new.secrets),
        *_keys("env", base.env, new.env),
        *_servers(base.mcp_servers, new.mcp_servers),
        *_members("tool", base.allowed_tools, new.allowed_tools),
        *_members("bind", _binds(base), _binds(new)),
        *_build(base, new),
        *_limits(base.limits, new.limits, spawn=old is None),
    ]


def render_text(changes: Sequence[Change]) -> str:
    """One line per change, ``+`` grants, ``-`` revokes, ``~`` changes."""
    if not changes:
        return "no change to what the agent may do"
    return "\n".join(_line(change) for change in changes)


def to_json(changes: Iterable[Change]) -> list[dict[str, Any]]:
    """The structured form (a list of plain objects) for the dashboard."""
    return [attrs.asdict(change) for change in changes]


# --------------------------------------------------------------------------------------------


def _model(old: AgentConfig, new: AgentConfig) -> list[Change]:
    if old.model == new.model:
        return []
    return [Change("model", "changes", "", old.model or "default", new.model or "default")]


def _level(network: Network) -> str:
    if not network.enabled:
        return "off"
    return "allowlist" if network.allow else "any"


def _describe_network(network: Network) -> str:
    level = _level(network)
    if level != "allowlist":
        return {"off": "off", "any": "any host"}[level]
    rules = [egress_text(rule) for rule in network.allow]
    more = len(rules) - _SHOWN_RULES
    return "only " + ", ".join(rules[:_SHOWN_RULES]) + (f" and {more} more" if more > 0 else "")


def _network(old: Network, new: Network) -> list[Change]:
    before, after = _level(old), _level(new)
    if before != after:
        effect: Effect = "grants" if _RANK[after] > _RANK[before] else "revokes"
        return [Change("network", effect, "egress", _describe_network(old), _describe_network(new))]
    if before != "allowlist":
        return []
    return _members("egress", map(egress_text, old.allow), map(egress_text, new.allow))


def _secrets(old: Mapping[_K, Any], new: Mapping[_K, Any]) -> list[Change]:
    changes = []
    for name in sorted(set(old) | set(new)):
        was, now = old.get(name), new.get(name)
        if was == now:
            continue
        if was is None:
            changes.append(Change("secret", "grants", name, None, f"from {now}"))
        elif now is None:
            changes.append(Change("secret", "revokes", name, f"from {was}", None))
        else:
            changes.append(Change("secret", "changes", name, f"from {was}", f"from {now}"))
    return changes


def _keys(area: str, old: Mapping[_K, str], new: Mapping[_K, str]) -> list[Change]:
    changes = []
    for key in sorted(set(old) | set(new)):
        if key not in old:
            changes.append(Change(area, "grants", key))
        elif key not in new:
            changes.append(Change(area, "revokes", key))
        elif old[key] != new[key]:
            changes.append(Change(area, "changes", f"{key} (value changed)"))
    return changes


def _members(area: str, old: Iterable[str], new: Iterable[str]) -> list[Change]:
    before, after = list(dict.fromkeys(old)), list(dict.fromkeys(new))
    gone = [Change(area, "revokes", item) for item in before if item not in after]
    added = [Change(area, "grants", item) for item in after if item not in before]
    return added + gone


def _command(server: McpServer) -> str:
    return " ".join([server.command, *server.args])


def _servers(old: Mapping[_K, McpServer], new: Mapping[_K, McpServer]) -> list[Change]:
    changes = []
    for key in sorted(set(old) | set(new)):
        was, now = old.get(key), new.get(key)
        if was == now:
            continue
        if was is None or now is None:
            server = now or was
            assert server is not None
            effect: Effect = "grants" if was is None else "revokes"
            shown = f"{_command(server)} (tools: {', '.join(server.allowed_tools)})"
            changes.append(
                Change(
                    "mcp_server",
                    effect,
                    key,
                    None if was is None else shown,
                    shown if now else None,
                )
            )
            continue
        if _command(was) != _command(now):
            changes.append(Change("mcp_server", "changes", key, _command(was), _command(now)))
        changes += [
            attrs.evolve(change, subject=f"{key} env {change.subject}")
            for change in _keys("mcp_server", was.env, now.env)
        ]
        changes += [
            attrs.evolve(change, subject=f"{key}: {change.subject}")
            for change in _members("mcp_tool", was.allowed_tools, now.allowed_tools)
        ]
    return changes


def _binds(config: AgentConfig) -> list[str]:
    return [f"{bind.source} -> {bind.target} (read-only)" for bind in config.binds]


def _build(old: AgentConfig, new: AgentConfig) -> list[Change]:
    changes = _members("build", old.build.commands, new.build.commands)
    if not changes and old.build.commands != new.build.commands:
        changes.append(Change("build", "changes", "order of the commands"))
    if old.build.timeout != new.build.timeout and new.build.commands:
        before, after = f"{old.build.timeout} s", f"{new.build.timeout} s"
        changes.append(Change("build", "changes", "timeout", before, after))
    return changes


def _limits(old: Limits, new: Limits, *, spawn: bool) -> list[Change]:
    changes = []
    for field, unit in (("memory", "bytes"), ("processes", ""), ("disk", "bytes")):
        was, now = getattr(old, field), getattr(new, field)
        if was == now:
            continue
        effect: Effect
        if spawn:
            effect = "changes"
        elif now is None or (was is not None and now > was):
            effect = "grants"
        else:
            effect = "revokes"
        changes.append(Change("limit", effect, field, _amount(was, unit), _amount(now, unit)))
    return changes


def _amount(value: int | None, unit: str) -> str:
    if value is None:
        return "no limit"
    if unit != "bytes":
        return str(value)
    for suffix, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if value >= size:
            amount = value / size
            return f"{amount:.1f} {suffix}".replace(".0 ", " ")
    return f"{value} bytes"


def _line(change: Change) -> str:
    head = f"{_MARK[change.effect]} {change.area}"
    if change.subject:
        head += f" {_clean(change.subject)}"
    if change.before is not None and change.after is not None:
        return f"{head}: {_clean(change.before)} -> {_clean(change.after)}"
    if change.after is not None:
        return f"{head} {_clean(change.after)}"
    if change.before is not None:
        return f"{head} (was {_clean(change.before)})"
    return head


def _clean(text: str) -> str:
    escaped = _CONTROL.sub(lambda m: f"\\x{ord(m[0]):02x}", text)
    return escaped if len(escaped) <= _SHOWN else escaped[: _SHOWN - 3] + "..."
