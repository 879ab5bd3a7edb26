"""The real thing: `hyperhive agent serve` as a process, driving the real `claude` binary.

Only the model is scripted (hyperhive.testing.model_api on loopback, ANTHROPIC_BASE_URL and a
dummy API key). The hive is a real daemon in-process on real sockets; the harness runs as its
own process with the environment a container gives it, starts claude per turn, and claude
starts `hyperhive agent mcp` for its tools. Each test runs in both Claude modes (a warm
process per agent, and one process per turn). The rest of the harness is covered with a
scripted runtime; warm-only behaviour (cancel, replacement, idle release) is in
test_agent_claude_warm_e2e.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import sys
from typing import TYPE_CHECKING

import pytest
import trio

from hyperhive import wire
from hyperhive.agent.claude import find_claude
from hyperhive.agent.serve import READY_MARKER
from hyperhive.agent.wake import REDELIVERED_BANNER
from hyperhive.errors import ConfigError
from hyperhive.testing import TestHive, open_test_hive
from hyperhive.testing.model_api import (
    Hold,
    ModelAPI,
    ToolCall,
    open_model_api,
    prompt_too_long,
    rate_limited,
)
from hyperhive.testing.procs import spawn_harness

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from pathlib import Path

pytestmark = pytest.mark.slow

try:
    find_claude()
except ConfigError as exc:  # pragma: no cover - the dependency bundles it
    pytest.skip(f"no claude binary: {exc}", allow_module_level=True)

_TEST_TIMEOUT = 90


@pytest.fixture(autouse=True, params=["warm", "cold"])
def claude_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test here runs with a warm claude per agent and with one process per turn."""
    mode: str = request.param
    monkeypatch.setenv("HYPERHIVE_CLAUDE_MODE", mode)
    return mode


@contextlib.asynccontextmanager
async def agent_process(
    hive: TestHive, api: ModelAPI, state: Path, **extra_env: str
) -> AsyncIterator[trio.Process]:
    """`python -m hyperhive agent serve` for agent alice, as its container would start it.

    Resource handling: the process runs in its own process group (with the claude and MCP
    processes it starts); on exit the group gets SIGTERM, then SIGKILL.
    """
    (state / "home").mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "HYPERHIVE_AGENT": "alice",
        "HYPERHIVE_ROLE": "agent",
        "HYPERHIVE_SOCKET": str(hive.paths.agent_socket("alice")),
        "HYPERHIVE_AGENT_STATE": str(state),
        "HOME": str(state / "home"),
        "ANTHROPIC_BASE_URL": api.base_url,
        "ANTHROPIC_API_KEY": "scripted-not-a-key",
        "CLAUDE_CODE_MAX_RETRIES": "0",
        "HYPERHIVE_RATE_LIMIT_BACKOFF": "1",
        "HYPERHIVE_FAILURE_BACKOFF": "1",
        **extra_env,
    }
    env.pop("CLAUDE_CODE_OAUTH_TOKEN", None)
    process = await spawn_harness(env)
    ready = trio.Event()
    log: list[str] = []

    async def drain() -> None:
        assert process.stderr is not None
        buffer = b""
        while chunk := await process.stderr.receive_some(65536):
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                log.append(line.decode(errors="replace"))
                if READY_MARKER in log[-1]:
                    ready.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(drain)
        try:
            with trio.fail_after(30):
                await ready.wait()
            yield process
        except BaseException:
            print("\n".join(log[-40:]), file=sys.stderr)
            raise
        finally:
            with trio.move_on_after(10, shield=True):
                _kill_group(process, signal.SIGTERM)
                await process.wait()
            _kill_group(process, signal.SIGKILL)
            nursery.cancel_scope.cancel()


def _kill_group(process: trio.Process, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signum)


async def _send(hive: TestHive, to: str, body: str) -> int:
    async with hive.operator() as operator:
        return (await operator.call(wire.Send(to=to, body=body))).id


async def _inflight(hive: TestHive, name: str) -> list[wire.Delivery]:
    return await hive.handles.messages.inflight(name)


def _turns(state: Path) -> list[dict[str, object]]:
    path = state / "hyperhive-turn-stats.sqlite"
    if not path.exists():
        return []
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(row) for row in conn.execute("SELECT * FROM turns ORDER BY id")]


async def _until(check: Callable[[], object], what: str) -> None:
    """Poll a file-backed condition a real process will make true (bounded by the caller)."""
    while not check():
        await trio.sleep(0.1)
    assert check(), what


async def test_a_tool_call_to_send_reaches_another_agents_inbox(short_tmp: Path) -> None:
    with trio.fail_after(_TEST_TIMEOUT):
        async with (
            open_test_hive(short_tmp / "hive", agents=("alice", "bob")) as hive,
            open_model_api() as api,
        ):
            greet = ToolCall("mcp__hive__send", {"to": "bob", "body": "hello bob!"})
            api.fail_on_tool_errors().on("greet bob", greet)
            state = short_tmp / "alice"
            async with agent_process(hive, api, state):
                await _send(hive, "alice", "please greet bob")
                async with hive.agent("bob") as bob:
                    got = await bob.call(wire.Recv(wait_seconds=60, max=5))
                await _until(lambda: _turns(state), "a turn row")
            assert [(m.sender, m.body) for m in got.messages] == [("alice", "hello bob!")]
            assert await _inflight(hive, "alice") == []  # the turn ended well: acked
            first = api.requests[0]
            assert "mcp__hive__send" in first.tool_names  # not deferred behind ToolSearch
            assert "please greet bob" in first.last_user_text
            assert "You are alice" in first.system_text
            assert api.requests[1].last_user_text.startswith("[tool_result] sent #")
            (turn,) = _turns(state)
            assert turn["result_kind"] == "ok"
            assert json.loads(str(turn["tool_calls"])) == {"mcp__hive__send": 1}
            assert turn["loose_ends"] == 0


async def test_a_429_leaves_the_message_in_flight_with_the_sentinel_up_then_retries(
    short_tmp: Path,
) -> None:
    with trio.fail_after(_TEST_TIMEOUT):
        async with (
            open_test_hive(short_tmp / "hive", agents=("alice",)) as hive,
            open_model_api() as api,
        ):
            release = trio.Event()
            # First request: 429. The retry is held until the test has looked at the state.
            api.on("quota", rate_limited(), times=1)
            api.on("quota", Hold(release), times=1)
            state = short_tmp / "alice"
            sentinel = state / "hyperhive-rate-limited"
            async with agent_process(hive, api, state):
                message_id = await _send(hive, "alice", "use up the quota")
                await _until(sentinel.exists, "the rate-limit sentinel")
                assert json.loads(sentinel.read_text())["retry_at"] > 0
                assert [d.id for d in await _inflight(hive, "alice")] == [message_id]
                await api.wait_for(lambda r: "quota" in r.last_user_text, count=2)
                assert [d.id for d in await _inflight(hive, "alice")] == [message_id]
                release.set()
                await _until(lambda: len(_turns(state)) == 2, "the retried turn")
                await _until(lambda: not sentinel.exists(), "the sentinel cleared")
            assert await _inflight(hive, "alice") == []
            kinds = [t["result_kind"] for t in _turns(state)]
            assert kinds == ["rate_limited", "ok"]


async def test_a_prompt_too_long_turn_compacts_and_retries(short_tmp: Path) -> None:
    def too_long(request: object) -> bool:
        from hyperhive.testing.model_api import ApiRequest

        assert isinstance(request, ApiRequest)
        compacted = "continued from a previous conversation" in request.all_text
        huge = "HUGE" in request.last_user_text
        return huge and not compacted and not request.is_compaction

    with trio.fail_after(_TEST_TIMEOUT):
        async with (
            open_test_hive(short_tmp / "hive", agents=("alice",)) as hive,
            open_model_api() as api,
        ):
            api.on(too_long, prompt_too_long())
            state = short_tmp / "alice"
            # Claude compacts on its own when it can; switched off here so the harness's
            # recovery is what gets tested.
            async with agent_process(hive, api, state, DISABLE_AUTO_COMPACT="1"):
                await _send(hive, "alice", "a small first task")
                await _until(lambda: len(_turns(state)) == 1, "the first turn")
                message_id = await _send(hive, "alice", "a HUGE second task")
                await _until(lambda: len(_turns(state)) == 2, "the second turn")
            first, second = _turns(state)
            assert first["result_kind"] == "ok"
            assert second["result_kind"] == "ok"
            assert second["compactions"] == 1
            assert await _inflight(hive, "alice") == []
            rejected = [r for r in api.requests if too_long(r)]
            compactions = [r for r in api.requests if r.is_compaction]
            assert len(rejected) == 1
            assert len(compactions) == 1
            last = api.requests[-1]
            assert "HUGE" in last.last_user_text
            assert "continued from a previous conversation" in last.all_text
            assert message_id > 0


async def test_a_harness_killed_mid_turn_gets_the_message_back_flagged(short_tmp: Path) -> None:
    with trio.fail_after(_TEST_TIMEOUT):
        async with (
            open_test_hive(short_tmp / "hive", agents=("alice",)) as hive,
            open_model_api() as api,
        ):
            never = trio.Event()
            api.on("long job", Hold(never), times=1)
            state = short_tmp / "alice"
            async with agent_process(hive, api, state) as process:
                message_id = await _send(hive, "alice", "a long job")
                await api.wait_for(lambda r: "long job" in r.last_user_text)
                _kill_group(process, signal.SIGKILL)
                await process.wait()
            assert [d.id for d in await _inflight(hive, "alice")] == [message_id]
            assert _turns(state) == []
            async with agent_process(hive, api, state):
                await _until(lambda: _turns(state), "the redelivered turn")
            retried = api.requests[-1].last_user_text
            assert REDELIVERED_BANNER in retried
            assert "a long job" in retried
            assert await _inflight(hive, "alice") == []
            assert [t["wake_from"] for t in _turns(state)] == ["redelivered"]
