"""The turn loop against a real hive (real sockets, real broker) with a scripted runtime.

Everything here runs on trio's plain autojump clock (`hive_clock`, see conftest.py): the hive
and the harness reach their stores inline, so backoffs and rate-limit waits take no real time
and every wait is exact. The real-Claude versions of the
key paths are in test_agent_claude_e2e.py.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
from typing import TYPE_CHECKING

import trio
import trio.testing

from hyperhive import wire
from hyperhive.agent import login
from hyperhive.agent.harness import HarnessOptions, TurnState
from hyperhive.agent.login import LoginState
from hyperhive.agent.settings import AgentPaths
from hyperhive.agent.wake import REDELIVERED_BANNER, RETRIED_BANNER
from hyperhive.testing import FakeWallClock, TestHive, open_test_hive
from hyperhive.testing.agent import next_event, open_test_harness
from hyperhive.testing.turn_runner import ScriptedRunner

if TYPE_CHECKING:
    from pathlib import Path


async def _send(hive: TestHive, to: str, body: str) -> int:
    async with hive.operator() as operator:
        return (await operator.call(wire.Send(to=to, body=body))).id


async def _inflight(hive: TestHive, name: str) -> list[wire.Delivery]:
    return await hive.handles.messages.inflight(name)


def _turn_rows(state: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(state / "hyperhive-turn-stats.sqlite") as conn:
        return conn.execute(
            "SELECT result_kind, wake_from, messages, tool_calls, ctx_tokens, model FROM turns"
        ).fetchall()


async def test_a_good_turn_sees_its_messages_and_acks_them(
    short_tmp: Path, hive_clock: trio.testing.MockClock
) -> None:
    clock = FakeWallClock()
    runner = ScriptedRunner()
    async with open_test_hive(short_tmp / "hive", clock=clock, agents=("alice",)) as hive:
        await _send(hive, "alice", "first task")
        await _send(hive, "alice", "second task")
        state = short_tmp / "alice"
        async with open_test_harness(hive, "alice", state, runner, clock) as (harness, feed):
            acked = await next_event(feed, "acked")
            assert acked.data["count"] == 2
            assert await _inflight(hive, "alice") == []
            prompt = runner.requests[0].prompt or ""
            assert "first task" in prompt
            assert "second task" in prompt
            assert prompt.index("first task") < prompt.index("second task")
            assert "from: operator" in prompt
            assert harness.turns == 1
    assert _turn_rows(state) == [
        ("ok", "inbox", 2, '{"mcp__hive__send": 1}', 1000, "scripted-model")
    ]


async def test_a_failed_turn_leaves_its_messages_in_flight_and_retries_them(
    short_tmp: Path, hive_clock: trio.testing.MockClock
) -> None:
    clock = FakeWallClock()
    runner = ScriptedRunner()
    runner.then(runner.fail)
    async with open_test_hive(short_tmp / "hive", clock=clock, agents=("alice",)) as hive:
        state = short_tmp / "alice"
        async with open_test_harness(hive, "alice", state, runner, clock) as (harness, feed):
            message_id = await _send(hive, "alice", "do the thing")
            await next_event(feed, "turn_ended", outcome="failed")
            await next_event(feed, "state", state="backing_off")
            assert [d.id for d in await _inflight(hive, "alice")] == [message_id]
            assert harness.state is TurnState.BACKING_OFF
            before = trio.current_time()
            await next_event(feed, "acked")
            assert trio.current_time() - before >= HarnessOptions().failure_backoff
            assert len(runner.requests) == 2
            retry_prompt = runner.requests[1].prompt or ""
            assert "do the thing" in retry_prompt
            assert RETRIED_BANNER in retry_prompt
            assert await _inflight(hive, "alice") == []
    assert [row[:2] for row in _turn_rows(state)] == [("failed", "inbox"), ("ok", "retry")]


async def test_a_rate_limited_turn_waits_for_the_reset_and_keeps_the_sentinel_until_then(
    short_tmp: Path, hive_clock: trio.testing.MockClock
) -> None:
    clock = FakeWallClock()
    runner = ScriptedRunner()
    resets_at = clock.now() + 120
    runner.then(runner.rate_limit(resets_at))
    async with open_test_hive(short_tmp / "hive", clock=clock, agents=("alice",)) as hive:
        state = short_tmp / "alice"
        async with open_test_harness(hive, "alice", state, runner, clock) as (harness, feed):
            message_id = await _send(hive, "alice", "busy work")
            limited = await next_event(feed, "rate_limited")
            sentinel = state / "hyperhive-rate-limited"
            assert json.loads(sentinel.read_text())["resets_at"] == resets_at
            assert [d.id for d in await _inflight(hive, "alice")] == [message_id]
            assert harness.state is TurnState.RATE_LIMITED
            # A minute on, it is still waiting, the sentinel still up.
            await trio.sleep(60)
            assert len(runner.requests) == 1
            assert sentinel.exists()
            await next_event(feed, "acked")
            assert clock.now() >= resets_at
            assert limited.at < resets_at
            assert not sentinel.exists()
            assert len(runner.requests) == 2


async def test_a_rate_limit_without_a_reset_time_backs_off(
    short_tmp: Path, hive_clock: trio.testing.MockClock
) -> None:
    clock = FakeWallClock()
    runner = ScriptedRunner()
    runner.then(runner.rate_limit(None))
    options = HarnessOptions(rate_limit_backoff=30)
    async with open_test_hive(short_tmp / "hive", clock=clock, agents=("alice",)) as hive:
        state = short_tmp / "alice"
        async with open_test_harness(hive, "alice", state, runner, clock, options=options) as (
            _,
            feed,
        ):
            await _send(hive, "alice", "x")
            limited = await next_event(feed, "rate_limited")
            assert limited.data["retry_in"] == 30
            started = trio.current_time()
            await next_event(feed, "acked")
            assert trio.current_time() - started >= 30


async def test_an_interrupted_turn_waits_for_new_work_then_shows_both(
    short_tmp: Path, hive_clock: trio.testing.MockClock
) -> None:
    clock = FakeWallClock()
    runner = ScriptedRunner()
    runner.then(runner.hang)
    async with open_test_hive(short_tmp / "hive", clock=clock, agents=("alice",)) as hive:
        state = short_tmp / "alice"
        async with open_test_harness(hive, "alice", state, runner, clock) as (harness, feed):
            assert not harness.cancel()  # nothing to cancel yet
            await _send(hive, "alice", "endless task")
            await next_event(feed, "turn_started")
            assert harness.cancel()
            await next_event(feed, "turn_ended", outcome="interrupted")
            await trio.sleep(60)
            assert len(runner.requests) == 1  # parked: no automatic retry
            assert len(await _inflight(hive, "alice")) == 1
            await _send(hive, "alice", "something new")
            await next_event(feed, "acked")
            prompt = runner.requests[1].prompt or ""
            assert "endless task" in prompt
            assert "something new" in prompt


async def test_a_harness_killed_mid_turn_gets_its_messages_back_flagged(
    short_tmp: Path, hive_clock: trio.testing.MockClock
) -> None:
    clock = FakeWallClock()
    first = ScriptedRunner()
    first.then(first.hang)
    async with open_test_hive(short_tmp / "hive", clock=clock, agents=("alice",)) as hive:
        state = short_tmp / "alice"
        async with open_test_harness(hive, "alice", state, first, clock) as (_, feed):
            await _send(hive, "alice", "half-done work")
            await next_event(feed, "turn_started")
        # The harness is gone mid-turn; nothing was acked.
        assert len(await _inflight(hive, "alice")) == 1
        second = ScriptedRunner()
        async with open_test_harness(hive, "alice", state, second, clock) as (_, feed):
            started = await next_event(feed, "started")
            assert started.data["requeued"] == 1
            await next_event(feed, "acked")
            prompt = second.requests[0].prompt or ""
            assert REDELIVERED_BANNER in prompt
            assert "half-done work" in prompt
    assert [row[:2] for row in _turn_rows(state)][-1] == ("ok", "redelivered")


async def test_without_login_it_leaves_the_inbox_alone_until_credentials_arrive(
    short_tmp: Path, hive_clock: trio.testing.MockClock
) -> None:
    clock = FakeWallClock()
    runner = ScriptedRunner()
    logged_in = False

    async def check() -> LoginState:
        return LoginState(logged_in, "api_key" if logged_in else "none", "no credentials")

    async with open_test_hive(short_tmp / "hive", clock=clock, agents=("alice",)) as hive:
        state = short_tmp / "alice"
        await _send(hive, "alice", "waiting for you")
        async with open_test_harness(hive, "alice", state, runner, clock, login_check=check) as (
            harness,
            feed,
        ):
            await next_event(feed, "needs_login")
            assert (state / "hyperhive-needs-login").exists()
            await trio.sleep(60)
            assert runner.requests == []
            assert await _inflight(hive, "alice") == []  # not even popped
            assert harness.state is TurnState.NEEDS_LOGIN
            logged_in = True
            harness.login_changed()
            await next_event(feed, "logged_in")
            await next_event(feed, "acked")
            assert not (state / "hyperhive-needs-login").exists()


async def test_model_choice_persists_and_applies_to_the_next_turn(
    short_tmp: Path, hive_clock: trio.testing.MockClock
) -> None:
    clock = FakeWallClock()
    runner = ScriptedRunner()
    async with open_test_hive(short_tmp / "hive", clock=clock, agents=("alice",)) as hive:
        state = short_tmp / "alice"
        async with open_test_harness(hive, "alice", state, runner, clock) as (harness, feed):
            harness.set_model("claude-sonnet-5-5")
            await _send(hive, "alice", "one")
            await next_event(feed, "acked")
        assert runner.requests[0].model == "claude-sonnet-5-5"
        assert (state / "hyperhive-model").read_text().strip() == "claude-sonnet-5-5"
        again = ScriptedRunner()
        async with open_test_harness(hive, "alice", state, again, clock) as (harness, feed):
            assert harness.model == "claude-sonnet-5-5"
            harness.set_model(None)
            await _send(hive, "alice", "two")
            await next_event(feed, "acked")
        assert again.requests[0].model is None
        assert not (state / "hyperhive-model").exists()


async def test_compaction_and_new_session_requests_shape_the_next_turns(
    short_tmp: Path, hive_clock: trio.testing.MockClock
) -> None:
    clock = FakeWallClock()
    runner = ScriptedRunner(ctx_tokens=190_000, context_window=200_000)
    async with open_test_hive(short_tmp / "hive", clock=clock, agents=("alice",)) as hive:
        state = short_tmp / "alice"
        async with open_test_harness(hive, "alice", state, runner, clock) as (harness, feed):
            harness.request_new_session()
            await _send(hive, "alice", "one")
            await next_event(feed, "acked")
            runner.ctx_tokens = 1000
            await _send(hive, "alice", "two")
            await next_event(feed, "acked")
            await _send(hive, "alice", "three")
            await next_event(feed, "acked")
            harness.request_compact()
            await next_event(feed, "turn_started", wake_from="compact")
            await next_event(feed, "turn_ended", outcome="ok")
        first, second, third, compact = runner.requests
        assert first.fresh_session
        assert not first.compact_first
        # 190k of a 200k window: the next turn compacts first; after that it is small again.
        assert second.compact_first
        assert not second.fresh_session
        assert not third.compact_first
        assert compact.prompt is None  # an idle compact request runs without a prompt


async def test_without_login_it_probes_with_a_backoff_not_every_poll(
    short_tmp: Path, hive_clock: trio.testing.MockClock
) -> None:
    """Issue 9: idle agents without a login ran `claude auth status` every 30 s forever."""
    clock = FakeWallClock()
    probes: list[float] = []

    async def check() -> LoginState:
        probes.append(trio.current_time())
        return LoginState(False, "none", "no credentials")

    options = HarnessOptions(login_poll=1.0, max_login_poll=30.0)
    async with open_test_hive(short_tmp / "hive", clock=clock, agents=("alice",)) as hive:
        state = short_tmp / "alice"
        harness_cm = open_test_harness(
            hive, "alice", state, ScriptedRunner(), clock, options=options, login_check=check
        )
        async with harness_cm as (_, feed):
            await next_event(feed, "needs_login")
            await trio.sleep(180)
    gaps = [round(b - a) for a, b in itertools.pairwise(probes)]
    assert gaps[:6] == [1, 2, 4, 8, 16, 30]  # doubling up to the cap, not one per second
    assert len(probes) <= 12


async def test_credentials_stored_by_another_process_wake_the_harness_at_once(
    short_tmp: Path,
) -> None:
    """The login flow writes hyperhive-credentials.json; no probe timer has to come round."""
    clock = FakeWallClock()
    runner = ScriptedRunner()
    state = short_tmp / "alice"
    state.mkdir()
    paths = AgentPaths(state)

    async def check() -> LoginState:
        ok = bool(login.stored_credentials(paths))
        return LoginState(ok, "api_key" if ok else "none", "no credentials")

    options = HarnessOptions(login_poll=3600.0)  # only the watch can wake it within the test
    with trio.fail_after(30):
        async with (
            open_test_hive(short_tmp / "hive", clock=clock, agents=("alice",)) as hive,
            login.open_credential_watch(paths, {"HOME": str(state / "home")}) as watch,
        ):
            assert watch.uses_inotify
            await _send(hive, "alice", "waiting for you")
            harness_cm = open_test_harness(
                hive,
                "alice",
                state,
                runner,
                clock,
                options=options,
                login_check=check,
                login_watch=watch.wait,
            )
            async with harness_cm as (_, feed):
                await next_event(feed, "needs_login")
                await trio.to_thread.run_sync(login.save_credentials, paths, "api_key", "sk-x")
                await next_event(feed, "logged_in")
                await next_event(feed, "acked")


async def test_a_compaction_or_new_session_asked_for_during_a_turn_is_not_lost(
    short_tmp: Path, hive_clock: trio.testing.MockClock
) -> None:
    clock = FakeWallClock()
    runner = ScriptedRunner()
    async with open_test_hive(short_tmp / "hive", clock=clock, agents=("alice",)) as hive:
        state = short_tmp / "alice"
        async with open_test_harness(hive, "alice", state, runner, clock) as (harness, feed):

            async def ask_during(request: object, control: object) -> object:
                harness.request_compact()
                harness.request_new_session()
                return await runner.ok(request, control)  # type: ignore[arg-type]

            runner.then(ask_during)  # type: ignore[arg-type]
            await _send(hive, "alice", "one")
            await next_event(feed, "acked")
            await _send(hive, "alice", "two")
            await next_event(feed, "acked")
    assert [(r.compact_first, r.fresh_session) for r in runner.requests] == [
        (False, False),
        (True, True),
    ]
