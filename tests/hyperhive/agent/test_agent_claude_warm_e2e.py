"""Warm turns with the real `claude`: the harness in-process, so a test can cancel and watch it.

The harness runs in this process on a real clock (it drives real processes); claude is the
binary bundled with claude-agent-sdk, pointed at the scripted model API on loopback, and it
starts `hyperhive agent mcp` for its tools. Every process claude starts or stops is a
``claude`` event on the harness's bus, which is how these tests see replacements.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from typing import TYPE_CHECKING, Any

import pytest
import trio

from hyperhive import wire
from hyperhive.agent.claude import ClaudeOptions, ClaudeRuntime, Limits, find_claude
from hyperhive.agent.harness import HarnessOptions
from hyperhive.agent.wake import RETRIED_BANNER
from hyperhive.errors import ConfigError
from hyperhive.testing import FakeWallClock, TestHive, open_test_hive
from hyperhive.testing.agent import agent_settings, open_test_harness
from hyperhive.testing.model_api import Hold, ModelAPI, ToolCall, open_model_api

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from hyperhive.agent.events import LiveEvent, Subscription
    from hyperhive.agent.harness import Harness

pytestmark = pytest.mark.slow

try:
    find_claude()
except ConfigError as exc:  # pragma: no cover - the dependency bundles it
    pytest.skip(f"no claude binary: {exc}", allow_module_level=True)

_TEST_TIMEOUT = 90


def claude_env(api: ModelAPI, state: Path) -> dict[str, str]:
    (state / "home").mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "HOME": str(state / "home"),
        "ANTHROPIC_BASE_URL": api.base_url,
        "ANTHROPIC_API_KEY": "scripted-not-a-key",
        "CLAUDE_CODE_MAX_RETRIES": "0",
    }
    env.pop("CLAUDE_CODE_OAUTH_TOKEN", None)
    return env


class Agent:
    """The harness under test, its runtime, and a record of everything it published."""

    def __init__(self, harness: Harness, runtime: ClaudeRuntime, feed: Subscription) -> None:
        self.harness = harness
        self.runtime = runtime
        self.feed = feed
        self.seen: list[LiveEvent] = []

    async def next(self, kind: str, **match: Any) -> LiveEvent:
        """The next event of `kind` matching `match`; every event read on the way is kept."""
        async for event in self.feed:
            self.seen.append(event)
            if event.kind == kind and all(event.data.get(k) == v for k, v in match.items()):
                return event
        raise AssertionError(f"the feed ended before a {kind!r} event")

    async def all_acked(self, hive: TestHive) -> None:
        """Wait for the ack after a good turn (it follows ``turn_ended``); nothing is left."""
        await self.next("acked")
        assert await _inflight(hive) == []

    async def turn(self, hive: TestHive, body: str) -> LiveEvent:
        """Send `body` to the agent and wait for the turn that handles it to end."""
        async with hive.operator() as operator:
            await operator.call(wire.Send(to="alice", body=body))
        return await self.next("turn_ended")


@contextlib.asynccontextmanager
async def warm_agent(
    hive: TestHive,
    api: ModelAPI,
    state: Path,
    options: ClaudeOptions | None = None,
    *,
    claude: Path | None = None,
    env: dict[str, str] | None = None,
) -> AsyncIterator[Agent]:
    state.mkdir(parents=True, exist_ok=True)
    runtime = ClaudeRuntime(
        agent_settings(hive, state, "alice"),
        claude or find_claude(),
        env={**claude_env(api, state), **(env or {})},
        options=options or ClaudeOptions(),
    )
    harness_options = HarnessOptions(failure_backoff=0.2)
    async with open_test_harness(
        hive, "alice", state, runtime, FakeWallClock(), options=harness_options
    ) as (harness, feed):
        yield Agent(harness, runtime, feed)


def _claude_events(agent: Agent) -> list[dict[str, Any]]:
    return [dict(e.data) for e in agent.seen if e.kind == "claude"]


async def _inflight(hive: TestHive) -> list[int]:
    return [d.id for d in await hive.handles.messages.inflight("alice")]


async def test_a_cancel_interrupts_a_warm_turn_and_the_process_stays(short_tmp: Path) -> None:
    with trio.fail_after(_TEST_TIMEOUT):
        async with (
            open_test_hive(short_tmp / "hive", agents=("alice",)) as hive,
            open_model_api() as api,
            warm_agent(hive, api, short_tmp / "alice") as agent,
        ):
            never = trio.Event()
            api.on("long job", Hold(never), times=1)
            first = await agent.turn(hive, "warm up")
            assert first.data["outcome"] == "ok"
            assert first.data["warm"] is False
            process = agent.runtime.process
            assert process is not None
            async with hive.operator() as operator:
                await operator.call(wire.Send(to="alice", body="a long job"))
            await api.wait_for(lambda r: "long job" in r.last_user_text)
            assert agent.harness.cancel()
            interrupted = await agent.next("turn_ended")
            assert interrupted.data["outcome"] == "interrupted"
            assert interrupted.data["warm"] is True
            assert len(await _inflight(hive)) == 1  # parked, not acked
            # The same process takes the next turn; the parked message comes along, marked.
            after = await agent.turn(hive, "and now this")
            assert after.data == {**after.data, "outcome": "ok", "warm": True}
            assert agent.runtime.process is process
            assert process.alive
            prompt = api.requests[-1].last_user_text
            assert "and now this" in prompt
            assert "a long job" in prompt
            assert RETRIED_BANNER in prompt
            await agent.all_acked(hive)


async def test_a_warm_process_killed_mid_turn_is_replaced_and_the_turn_retried(
    short_tmp: Path,
) -> None:
    with trio.fail_after(_TEST_TIMEOUT):
        async with (
            open_test_hive(short_tmp / "hive", agents=("alice",)) as hive,
            open_model_api() as api,
            warm_agent(hive, api, short_tmp / "alice") as agent,
        ):
            never = trio.Event()
            api.on("long job", Hold(never), times=1)
            await agent.turn(hive, "warm up")
            process = agent.runtime.process
            assert process is not None
            async with hive.operator() as operator:
                await operator.call(wire.Send(to="alice", body="a long job"))
            await api.wait_for(lambda r: "long job" in r.last_user_text)
            os.kill(process.pid, signal.SIGKILL)
            failed = await agent.next("turn_ended")
            assert failed.data["outcome"] == "failed"
            assert failed.data["detail"] == "claude was killed by SIGKILL before the turn's result"
            stopped = [e for e in _claude_events(agent) if e["action"] == "stopped"]
            assert stopped[-1]["reason"] == failed.data["detail"]
            assert len(await _inflight(hive)) == 1  # still in flight: nothing was acked
            retried = await agent.next("turn_ended")
            assert retried.data["outcome"] == "ok"
            await agent.all_acked(hive)
            prompt = api.requests[-1].last_user_text
            assert RETRIED_BANNER in prompt
            assert "a long job" in prompt
            # The new process resumed the session: the earlier turn is in its conversation.
            assert "warm up" in api.requests[-1].all_text
            replacement = agent.runtime.process
            assert replacement is not None
            assert replacement.pid != process.pid
            started = [e for e in _claude_events(agent) if e["action"] == "started"]
            assert started[-1]["resume"] is not None


async def test_the_process_is_replaced_after_its_turn_limit_and_resumes_the_session(
    short_tmp: Path,
) -> None:
    options = ClaudeOptions(max_turns=2)
    with trio.fail_after(_TEST_TIMEOUT):
        async with (
            open_test_hive(short_tmp / "hive", agents=("alice",)) as hive,
            open_model_api() as api,
            warm_agent(hive, api, short_tmp / "alice", options) as agent,
        ):
            ended = [await agent.turn(hive, f"task number {n}") for n in range(3)]
            assert [e.data["outcome"] for e in ended] == ["ok", "ok", "ok"]
            # The first process served two turns and was let go after the second; its
            # replacement was started right away, so the third turn was warm too, and it
            # carried on the same conversation.
            first, stopped, second = _claude_events(agent)
            assert (first["action"], stopped["action"], second["action"]) == (
                "started",
                "stopped",
                "started",
            )
            assert stopped == {**stopped, "pid": first["pid"], "reason": "turn limit (2)"}
            assert stopped["turns"] == 2
            assert second["resume"] is not None
            assert [e.data["warm"] for e in ended] == [False, True, True]
            assert agent.runtime.process is not None
            assert agent.runtime.process.pid == second["pid"]
            assert "task number 0" in api.requests[-1].all_text


async def test_an_idle_process_is_let_go_and_the_next_wake_starts_cold(short_tmp: Path) -> None:
    options = ClaudeOptions(idle_release=1.0)
    with trio.fail_after(_TEST_TIMEOUT):
        async with (
            open_test_hive(short_tmp / "hive", agents=("alice",)) as hive,
            open_model_api() as api,
            warm_agent(hive, api, short_tmp / "alice", options) as agent,
        ):
            await agent.turn(hive, "before the pause")
            process = agent.runtime.process
            assert process is not None
            released = await agent.next("claude", action="stopped")
            assert "idle" in released.data["reason"]
            assert agent.runtime.process is None
            assert process.process.returncode is not None  # really gone
            ended = await agent.turn(hive, "after the pause")
            assert ended.data == {**ended.data, "outcome": "ok", "warm": False}
            started = [e for e in _claude_events(agent) if e["action"] == "started"]
            assert started[-1]["resume"] is not None
            assert "before the pause" in api.requests[-1].all_text


async def test_a_process_that_stops_answering_is_replaced_within_the_turn(
    short_tmp: Path,
) -> None:
    # Long enough that the replacement, starting cold on a loaded machine, is not judged too.
    options = ClaudeOptions(limits=Limits(answer_timeout=8.0))
    with trio.fail_after(_TEST_TIMEOUT):
        async with (
            open_test_hive(short_tmp / "hive", agents=("alice",)) as hive,
            open_model_api() as api,
            warm_agent(hive, api, short_tmp / "alice", options) as agent,
        ):
            await agent.turn(hive, "first")
            process = agent.runtime.process
            assert process is not None
            os.kill(process.pid, signal.SIGSTOP)  # alive, holding its pipes, saying nothing
            ended = await agent.turn(hive, "second")
            assert ended.data["outcome"] == "ok"
            assert agent.runtime.process is not None
            assert agent.runtime.process.pid != process.pid
            stopped = [e for e in _claude_events(agent) if e["action"] == "stopped"]
            assert "did not answer" in stopped[-1]["reason"]
            await agent.all_acked(hive)
            assert "second" in api.requests[-1].last_user_text


async def test_warm_turn_stats_count_each_turn_once_against_the_apis_own_figures(
    short_tmp: Path,
) -> None:
    """total_cost_usd is cumulative per process: each row must hold its own turn only."""
    state = short_tmp / "alice"
    with trio.fail_after(_TEST_TIMEOUT):
        async with (
            open_test_hive(short_tmp / "hive", agents=("alice", "bob")) as hive,
            open_model_api() as api,
            warm_agent(hive, api, state) as agent,
        ):
            api.on("tell bob", ToolCall("mcp__hive__send", {"to": "bob", "body": "hi"}))
            spans = []
            for body in ("first", "please tell bob", "third", "after compaction"):
                if body == "after compaction":
                    agent.harness.request_compact()  # its summary call is this turn's too
                before = len(api.answered)
                ended = await agent.turn(hive, body)
                assert ended.data["outcome"] == "ok"
                spans.append(api.answered[before:])
            await agent.harness.bus.flush()
            history = await agent.harness.bus.history(2000)
    rows = _turn_rows(state)
    assert [len(s) for s in spans] == [1, 2, 1, 2]
    assert spans[3][0].request.is_compaction
    assert rows[3]["compactions"] == 1
    for row, span in zip(rows, spans, strict=True):
        assert row["input_tokens"] == sum(a.input_tokens for a in span)
        assert row["output_tokens"] == sum(a.output_tokens for a in span)
        assert row["cache_read_tokens"] == sum(a.cache_read_tokens for a in span)
        assert row["cache_creation_tokens"] == sum(a.cache_creation_tokens for a in span)
        assert row["cost_usd"] > 0
    totals = [
        e.data["total_cost_usd"]
        for e in history
        if e.kind == "stream" and e.data.get("type") == "result"
    ]
    assert totals == sorted(totals)  # cumulative for the one process...
    assert sum(r["cost_usd"] for r in rows) == pytest.approx(totals[-1])  # ...rows are not
    assert rows[1]["cost_usd"] > rows[0]["cost_usd"]  # two API calls cost more than one


def _turn_rows(state: Path) -> list[dict[str, Any]]:
    import sqlite3

    with contextlib.closing(sqlite3.connect(state / "hyperhive-turn-stats.sqlite")) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(row) for row in conn.execute("SELECT * FROM turns ORDER BY id")]


async def test_model_changes_new_sessions_and_lost_sessions_between_warm_turns(
    short_tmp: Path,
) -> None:
    state = short_tmp / "alice"
    state.mkdir()
    (state / "hyperhive-session").write_text("0f7e1c1e-0000-4000-8000-000000000000\n")
    with trio.fail_after(_TEST_TIMEOUT):
        async with (
            open_test_hive(short_tmp / "hive", agents=("alice",)) as hive,
            open_model_api() as api,
            warm_agent(hive, api, state) as agent,
        ):
            # A stored session claude no longer has: the turn is retried in a fresh one.
            first = await agent.turn(hive, "who remembers me")
            assert first.data["outcome"] == "ok"
            notes = [
                e.data["text"] for e in await agent.harness.bus.history(500) if e.kind == "note"
            ]
            assert any("is gone; retrying in a fresh session" in n for n in notes)
            default_model = api.requests[-1].body["model"]
            assert default_model != "claude-sonnet-5-5"
            process = agent.runtime.process
            assert process is not None
            # A model chosen on the agent's page applies to the warm process in place...
            agent.harness.set_model("claude-sonnet-5-5")
            changed = await agent.turn(hive, "on the new model")
            assert changed.data["warm"] is True
            assert agent.runtime.process is process
            assert api.requests[-1].body["model"] == "claude-sonnet-5-5"
            # ...and so does going back to the default model.
            agent.harness.set_model(None)
            back = await agent.turn(hive, "on the default model")
            assert back.data["warm"] is True
            assert agent.runtime.process is process
            assert api.requests[-1].body["model"] == default_model
            # A process that resumes a session last run on another model uses the default too.
            agent.harness.set_model("claude-sonnet-5-5")
            await agent.turn(hive, "on the new model again")
            assert api.requests[-1].body["model"] == "claude-sonnet-5-5"
            os.kill(process.pid, signal.SIGKILL)
            await agent.next("claude", action="stopped", pid=process.pid)
            agent.harness.set_model(None)
            resumed = await agent.turn(hive, "back on the default model")
            assert resumed.data["warm"] is False
            assert api.requests[-1].body["model"] == default_model
            assert "on the new model again" in api.requests[-1].all_text  # same session
            # A new session takes a new process.
            agent.harness.request_new_session()
            fresh = await agent.turn(hive, "a clean slate")
            assert fresh.data["outcome"] == "ok"
            assert "on the new model" not in api.requests[-1].all_text
            stopped = [e["reason"] for e in _claude_events(agent) if e["action"] == "stopped"]
            assert stopped[-2:] == [
                "claude was killed by SIGKILL between turns",
                "a new session was asked for",
            ]
            models = [e["model"] for e in _claude_events(agent) if e["action"] == "model"]
            assert models == ["claude-sonnet-5-5", None, "claude-sonnet-5-5"]


async def test_a_process_silent_inside_a_turn_is_killed_and_the_turn_retried(
    short_tmp: Path,
) -> None:
    # Long enough that the replacement, starting cold on a loaded machine, is not judged too.
    options = ClaudeOptions(limits=Limits(stall_timeout=8.0))
    with trio.fail_after(_TEST_TIMEOUT):
        async with (
            open_test_hive(short_tmp / "hive", agents=("alice",)) as hive,
            open_model_api() as api,
            warm_agent(hive, api, short_tmp / "alice", options) as agent,
        ):
            never = trio.Event()
            api.on("slow thought", Hold(never), times=1)  # claude waits, printing nothing
            failed = await agent.turn(hive, "a slow thought")
            assert failed.data["outcome"] == "failed"
            assert "stopped answering" in failed.data["detail"]
            retried = await agent.next("turn_ended")
            assert retried.data["outcome"] == "ok"
            await agent.all_acked(hive)
            assert RETRIED_BANNER in api.requests[-1].last_user_text


# Stands in for `claude` around the real one: relays both ways, and while the file named by
# HH_DIE_AFTER_RESULT exists, removes it and exits (status 3, its child killed) right after
# relaying a turn's result: a process that dies just after a good turn.
_DIES_AFTER_ITS_RESULT = """\
import json, os, subprocess, sys, threading
child = subprocess.Popen([os.environ["HH_REAL_CLAUDE"], *sys.argv[1:]], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE)
def relay():
    for line in sys.stdin.buffer:
        child.stdin.write(line)
        child.stdin.flush()
    child.stdin.close()
threading.Thread(target=relay, daemon=True).start()
marker = os.environ["HH_DIE_AFTER_RESULT"]
for line in child.stdout:
    sys.stdout.buffer.write(line)
    sys.stdout.buffer.flush()
    try:
        kind = json.loads(line).get("type")
    except ValueError:
        kind = None
    if kind == "result" and os.path.exists(marker):
        os.unlink(marker)
        print("the stand-in exits right after the result", file=sys.stderr, flush=True)
        child.kill()
        os._exit(3)
sys.exit(child.wait())
"""


async def test_a_process_that_dies_right_after_a_good_turn_is_not_called_a_failed_turn(
    short_tmp: Path,
) -> None:
    wrapper = short_tmp / "claude-dies-after-result"
    wrapper.write_text(f"#!{sys.executable}\n{_DIES_AFTER_ITS_RESULT}")
    wrapper.chmod(0o755)
    marker = short_tmp / "die-after-result"
    env = {"HH_REAL_CLAUDE": str(find_claude()), "HH_DIE_AFTER_RESULT": str(marker)}
    with trio.fail_after(_TEST_TIMEOUT):
        async with (
            open_test_hive(short_tmp / "hive", agents=("alice",)) as hive,
            open_model_api() as api,
            warm_agent(hive, api, short_tmp / "alice", claude=wrapper, env=env) as agent,
        ):
            await agent.turn(hive, "warm up")
            process = agent.runtime.process
            assert process is not None
            marker.touch()
            good = await agent.turn(hive, "a good turn")
            assert good.data["outcome"] == "ok"
            await agent.all_acked(hive)
            # Seen right after the turn (before its `turn_ended`) or a moment later.
            stops = [e for e in _claude_events(agent) if e["action"] == "stopped"]
            if not stops:
                stops = [dict((await agent.next("claude", action="stopped")).data)]
            [stopped] = stops
            assert stopped["pid"] == process.pid
            # Whether the runtime saw it gone right after the turn or a moment later, the
            # user reads what happened: it exited after answering, between turns.
            reason = stopped["reason"]
            assert reason.startswith("claude exited with status 3 between turns"), reason
            assert "without a result" not in reason
            assert "before the turn's result" not in reason
            assert not marker.exists()
            after = await agent.turn(hive, "and the next one")
            assert after.data["outcome"] == "ok"
            assert after.data["warm"] is False  # a new process, resuming the session
            assert "a good turn" in api.requests[-1].all_text
            await agent.all_acked(hive)
