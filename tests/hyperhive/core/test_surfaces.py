"""The handler table: every command has a handler (or is declared not yet), every agent tool is
one an agent may call, and nothing an agent may call reaches operator powers."""

from __future__ import annotations

from hyperhive import wire
from hyperhive.agent.tools import TOOLS
from hyperhive.core.surfaces import AGENTS, HANDLERS, NOT_YET, OPERATOR


def test_every_command_is_handled_or_declared_not_yet() -> None:
    commands = {entry.request for entry in wire.COMMANDS.values()}
    assert commands == set(HANDLERS) | NOT_YET
    assert not set(HANDLERS) & NOT_YET


def test_every_agent_tool_is_a_command_agents_may_send() -> None:
    for tool in TOOLS:
        if tool.manager_only:
            continue
        roles, _ = HANDLERS[tool.request]
        assert roles >= AGENTS, tool.name


def test_operator_powers_stay_on_the_admin_socket() -> None:
    operator_only = {
        wire.GetStatus,
        wire.RegisterAgent,
        wire.UnregisterAgent,
        wire.Spawn,
        wire.Destroy,
        wire.PurgeTombstone,
        wire.ReplayDead,
        wire.DropDead,
        wire.SubscribeEvents,
        wire.ListQuestions,
        wire.ListReminders,
    }
    for command in operator_only:
        assert HANDLERS[command][0] == OPERATOR, command.__name__
