"""The role prompts and Claude settings shipped as package data (`hyperhive/agent/prompts/`).

``agent.md`` and ``manager.md`` are appended to Claude Code's own system prompt. They may use
``{{agent}}`` (the agent's name), ``{{role}}`` and ``{{operator_pronouns}}`` (from
``HYPERHIVE_OPERATOR_PRONOUNS``, default they/them), substituted here. ``claude-settings.json``
is passed as ``--settings``.
"""

from __future__ import annotations

import functools
import importlib.resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hyperhive.agent.settings import AgentSettings

__all__ = ["claude_settings", "read_prompt", "system_prompt"]


@functools.cache
def read_prompt(name: str) -> str:
    """The text of one shipped prompt file."""
    return (importlib.resources.files("hyperhive.agent") / "prompts" / name).read_text("utf-8")


def system_prompt(settings: AgentSettings) -> str:
    """The role prompt for this agent with its placeholders filled in."""
    text = read_prompt(f"{settings.role.value}.md")
    for key, value in {
        "agent": settings.name,
        "role": settings.role.value,
        "operator_pronouns": settings.operator_pronouns,
    }.items():
        text = text.replace("{{" + key + "}}", value)
    return text


def claude_settings() -> str:
    """The ``--settings`` JSON for every turn."""
    return read_prompt("claude-settings.json")
