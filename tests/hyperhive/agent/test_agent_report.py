"""Why an agent is stuck: the harness's report, the daemon's reading of it, and pausing.

The harness writes what it is doing and why (`hyperhive-report.json`); the daemon reads it as
hostile input and turns it, with its own facts (paused, needs login, the container's state),
into the word and sentence `hyperhive list` shows. Runs on the plain autojump clock.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import trio
import trio.testing

from hyperhive import wire
from hyperhive.agent.harness import HarnessOptions, TurnState
from hyperhive.containers.base import AgentState, AgentStatus
from hyperhive.core import container_view
from hyperhive.core.registry import AgentRecord
from hyperhive.testing import FakeWallClock, TestHive, open_test_hive
from hyperhive.testing.agent import next_event, open_test_harness
from hyperhive.testing.turn_runner import ScriptedRunner

RUNNING = AgentStatus("alice", AgentState.RUNNING)


def row(state: Path, *, now: float, record: AgentRecord | None = None) -> wire.ContainerView:
    """alice's row as the daemon builds it from her state directory."""
    flags = container_view.read_flags(state, state.parent)
    return container_view.build_view(record or AgentRecord("alice"), RUNNING, flags=flags, now=now)


async def _send(hive: TestHive, body: str) -> None:
    async with hive.operator() as operator:
        await operator.call(wire.Send(to="alice", body=body))


async def test_the_report_says_retrying_then_backing_off_then_idle(
    short_tmp: Path, hive_clock: trio.testing.MockClock
) -> None:
    clock = FakeWallClock()
    runner = ScriptedRunner()
    runner.then(runner.api_retrying(3, 10, "overloaded", 529))
    async with open_test_hive(short_tmp / "hive", clock=clock, agents=("alice",)) as hive:
        state = short_tmp / "alice"
        async with open_test_harness(hive, "alice", state, runner, clock) as (harness, feed):
            await next_event(feed, "state", state="idle")
            assert row(state, now=clock.now()).semantic == "idle"
            await _send(hive, "fix the build")
            await next_event(feed, "stream")  # the api_retry line
            await trio.testing.wait_all_tasks_blocked()
            retrying = row(state, now=clock.now())
            assert (retrying.turn_state, retrying.semantic) == ("running", "retrying")
            assert retrying.reason == "API retry 3 of 10: overloaded (529)"

            runner.release.set()
            await next_event(feed, "state", state="backing_off")
            backing = row(state, now=clock.now())
            assert backing.semantic == "backing off"
            assert "its turn failed: failed: API Error: 529 overloaded" in backing.reason
            assert "retrying at" in backing.reason
            assert "(in 10s)" in backing.reason
            assert backing.last_turn is not None
            assert backing.last_turn.result == "failed"

            await next_event(feed, "acked")
            await next_event(feed, "state", state="idle")
            idle = row(state, now=clock.now())
            assert idle.semantic == "idle"
            assert idle.last_turn is not None
            assert idle.last_turn.result == "ok"
            assert harness.turns == 2


async def test_a_paused_agent_takes_no_turn_and_its_mail_waits(
    short_tmp: Path, hive_clock: trio.testing.MockClock
) -> None:
    clock = FakeWallClock()
    runner = ScriptedRunner()
    async with open_test_hive(short_tmp / "hive", clock=clock, agents=("alice",)) as hive:
        state = short_tmp / "alice"
        async with open_test_harness(hive, "alice", state, runner, clock) as (harness, feed):
            await next_event(feed, "state", state="idle")
            await hive.handles.agents.set_paused("alice", True)
            await _send(hive, "while you were paused")
            # The parked recv is not handed the message, and the harness is told at its next
            # poll: however long we wait, no turn runs and the message stays pending.
            await next_event(feed, "state", state="paused")
            await trio.sleep(3 * HarnessOptions().recv_wait)
            assert runner.requests == []
            assert harness.state is TurnState.PAUSED
            assert (await hive.handles.messages.mail_counts())["alice"] == (1, 0)
            paused = row(state, now=clock.now(), record=AgentRecord("alice", paused=True))
            assert paused.semantic == "paused"
            assert "1 message(s) wait" not in paused.reason  # no mail counts given here
            view = (await hive.handles.agents.views())["alice"]
            assert view.paused
            assert view.pending_messages == 1

            resumed_at = trio.current_time()
            await hive.handles.agents.set_paused("alice", False)
            await next_event(feed, "acked")
            # At once: the parked recv was answered when alice was resumed.
            assert trio.current_time() - resumed_at < 1.0
            assert "while you were paused" in (runner.requests[0].prompt or "")


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"x" * (wire.MAX_REPORT_BYTES + 1), "larger than 8192 bytes"),
        (b"{not json", "not valid JSON"),
        (b'{"state":"dancing","since":1}', "unknown state 'dancing'"),
        (b'{"state":"idle","since":"yesterday"}', "expected float @ .since"),
        (b'{"state":"idle","since":1,"detail":"' + b"d" * 301 + b'"}', "longer than 300"),
        (b'{"state":"idle","since":1,"retry":{"attempt":-1,"max_retries":10}}', "from 0 to"),
        (b'{"state":"idle","since":1e400}', "expected float @ .since"),  # infinity
        (b'{"state":"idle","since":1,"turns":true}', "expected int @ .turns"),
        (b'{"state":"running","since":1,"tool":"' + b"t" * 201 + b'"}', "longer than 200"),
        (b'{"state":"idle","since":1,"interrupted":"yes"}', "@ .interrupted"),
        (b"[" * 40 + b"]" * 40, "nested too deeply"),
    ],
)
def test_a_hostile_report_is_ignored_and_named(
    tmp_path: Path, content: bytes, problem: str
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / wire.REPORT_FILE).write_bytes(content)
    flags = container_view.read_flags(state, tmp_path)
    assert flags.report is None
    assert any(problem in note for note in flags.problems), flags.problems
    view = container_view.build_view(AgentRecord("alice"), RUNNING, flags=flags)
    assert view.semantic == "starting"
    assert view.turn_state is None


def test_a_report_that_is_a_symlink_or_a_fifo_is_never_followed(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    secret = tmp_path / "secret.json"
    secret.write_bytes(wire.encode_report(wire.AgentReport("running", 1.0, detail="host file")))
    (state / wire.REPORT_FILE).symlink_to(secret)
    flags = container_view.read_flags(state, tmp_path)
    assert flags.report is None
    assert any("symlink" in p for p in flags.problems)
    (state / wire.REPORT_FILE).unlink()
    os.mkfifo(state / wire.REPORT_FILE)  # nobody writes it: an open that blocked would hang
    flags = container_view.read_flags(state, tmp_path)
    assert flags.report is None
    assert flags.problems


def test_the_semantic_state_names_the_reason_in_order() -> None:
    def view(**changes: object) -> wire.ContainerView:
        fields: dict[str, object] = {
            "name": "alice",
            "role": "agent",
            "state": "running",
            "wanted": "running",
            "network": True,
        }
        fields.update(changes)
        return wire.ContainerView(**fields)  # type: ignore[arg-type]

    now = 1_700_000_000.0
    limited = wire.AgentReport("rate_limited", now, detail="You've hit your limit", until=now + 90)
    semantic = container_view.semantic_state
    assert semantic(view(transient="stopping"), limited, now)[0] == "stopping"
    assert semantic(view(state="crashed", exit_code=137), None, now) == (
        "crashed",
        "its process exited with status 137",
    )
    # A start refused before anything ran says why, never that a process exited; a sandbox
    # that failed to set up names bubblewrap's line, not its network helper's after it.
    refused = view(state="crashed", start_refused=True, detail="the bind source /srv is gone")
    assert semantic(refused, None, now) == (
        "start refused",
        "its start was refused before anything ran: the bind source /srv is gone",
    )
    noisy = "bwrap: Can't find source path /l: No such file\nexitfd event\ndo_slirp is exiting\n"
    assert semantic(view(state="crashed", start_refused=True, detail=noisy), None, now)[1] == (
        "its start was refused before anything ran: bwrap: Can't find source path /l: No such file"
    )
    assert semantic(view(state="stopped"), limited, now) == (
        "stopped",
        "not running; it is meant to: start it",
    )
    assert semantic(view(paused=True, pending_messages=2), limited, now) == (
        "paused",
        "paused by the operator; 2 message(s) wait (resume it to continue)",
    )
    login = wire.AgentReport("needs_login", now, detail="claude has no credentials")
    assert semantic(view(), login, now) == (
        "needs login",
        "claude has no credentials; log it in with `hyperhive login alice`",
    )
    word, reason = semantic(view(), limited, now)
    assert word == "rate limited"
    assert reason.startswith("rate limited until ")
    assert reason.endswith("(in 1m): You've hit your limit")
    lost = wire.AgentReport("disconnected", now)
    assert semantic(view(), lost, now)[0] == "lost the hive"
