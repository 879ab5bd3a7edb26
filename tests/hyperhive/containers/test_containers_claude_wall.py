"""The real harness and the real `claude` binary, inside the bwrap wall, on a real daemon.

The agent's network is its own (slirp4netns), so the host's loopback is out of its reach: the
scripted model API listens in a network namespace this test makes (`hyperhive.testing.netns`)
and the agent reaches it the way it would reach Claude's API, out through slirp4netns and the
host's routing. docs/security.md says why the scripted API does not listen on loopback.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from hyperhive import wire
from hyperhive.testing import open_test_hive
from hyperhive.testing.model_api import ToolCall
from hyperhive.testing.walled_claude import (
    open_walled_api,
    until,
    walled_claude_problem,
    walled_claude_settings,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(walled_claude_problem() is not None, reason=str(walled_claude_problem())),
]


async def test_a_walled_agent_runs_claude_against_the_api_and_answers(short_tmp: Path) -> None:
    with trio.fail_after(120):
        async with open_walled_api() as api:
            api.fail_on_tool_errors().on(
                "greet the operator",
                ToolCall("mcp__hive__send", {"to": "operator", "body": "hello from the wall"}),
            )
            settings = walled_claude_settings(api)
            async with open_test_hive(short_tmp / "hive", containers=settings) as hive:
                lifecycle = hive.handles.agents
                assert lifecycle is not None
                await lifecycle.spawn("alice")
                async with hive.operator() as operator:
                    await operator.call(wire.Send(to="alice", body="please greet the operator"))

                    async def mail() -> wire.InboxReply | None:
                        inbox = await operator.call(wire.ReadInbox())
                        return inbox if inbox.messages else None

                    inbox = await until(hive, mail)
                assert [(m.sender, m.body) for m in inbox.messages] == [
                    ("alice", "hello from the wall")
                ]
                first = api.requests[0]
                assert "mcp__hive__send" in first.tool_names
                assert "please greet the operator" in first.last_user_text
