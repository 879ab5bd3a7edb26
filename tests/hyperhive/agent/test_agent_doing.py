"""What the agent is doing, from its turn loop and its live stream (the harness's reporter),
and the words the daemon reads it into; and the page's badge numbers (pure: no trio)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs

from hyperhive import wire
from hyperhive.agent.activity import Activity
from hyperhive.agent.report import Reporter
from hyperhive.core.container_view import doing


@attrs.define
class _Clock:
    at: float = 1_700_000_000.0

    def now(self) -> float:
        return self.at


def _reporter(tmp_path: Path) -> tuple[Reporter, Path]:
    path = tmp_path / wire.REPORT_FILE
    return Reporter(path, _Clock()), path


def _on_disk(path: Path) -> wire.AgentReport:
    return wire.decode_report(path.read_bytes())


def _tool_use(name: str, id: str, **extra: Any) -> dict[str, Any]:
    block = {"type": "tool_use", "id": id, "name": name, "input": {}}
    return {"type": "assistant", "message": {"content": [block]}, **extra}


def _tool_result(id: str) -> dict[str, Any]:
    block = {"type": "tool_result", "tool_use_id": id, "content": "ok"}
    return {"type": "user", "message": {"content": [block]}}


def _last(result: str) -> wire.LastTurn:
    return wire.LastTurn(ended_at=1_700_000_001.0, duration_ms=900, result=result)


def test_a_turn_goes_thinking_running_a_tool_waiting_on_recv_and_back_to_idle(
    tmp_path: Path,
) -> None:
    reporter, path = _reporter(tmp_path)
    reporter.state("idle")
    assert doing(reporter.report, 0) == ("idle", "waiting for mail")
    reporter.state("running")
    assert doing(reporter.report, 0) == ("working", "thinking")
    reporter.stream(_tool_use("Bash", "t1"))
    assert reporter.report.tool == "Bash"
    assert doing(_on_disk(path), 0) == ("working", "running Bash")  # the file says so too
    reporter.stream(_tool_result("t1"))
    reporter.stream(_tool_use(wire.RECV_TOOL, "t2"))
    assert doing(_on_disk(path), 0) == ("working", "waiting on recv")
    reporter.stream(_tool_result("t2"))
    assert doing(reporter.report, 0) == ("working", "thinking")
    reporter.stream(_tool_use("Read", "t3"))
    reporter.turn_ended(_last("ok"), turns=1, failures=0)
    reporter.state("idle")
    report = _on_disk(path)
    assert (report.state, report.tool, report.turns) == ("idle", None, 1)
    assert report.last_turn == _last("ok")
    assert doing(report, 0) == ("idle", "waiting for mail")


def test_api_retries_rate_limits_and_backoffs_say_why_and_until_when(tmp_path: Path) -> None:
    reporter, path = _reporter(tmp_path)
    reporter.state("running")
    retry = {"type": "system", "subtype": "api_retry", "attempt": 3, "max_retries": 10}
    reporter.stream({**retry, "error": "overloaded", "error_status": 529})
    assert reporter.report.retry == wire.ApiRetrying(3, 10, "overloaded", 529)
    assert doing(_on_disk(path), 0) == ("retrying", "API retry 3 of 10: overloaded (529)")
    reporter.stream(_tool_use("Bash", "t1"))  # the API answered: the retry is over
    assert doing(reporter.report, 0) == ("working", "running Bash")
    now = reporter.report.since
    reporter.state("rate_limited", detail="429 from the API", until=now + 60)
    word, reason = doing(_on_disk(path), now)
    assert word == "rate limited"
    assert reason.startswith("rate limited until ")
    assert reason.endswith("(in 1m): 429 from the API")
    reporter.state("backing_off", detail="claude died", until=now + 10)
    word, reason = doing(reporter.report, now)
    assert word == "backing off"
    assert "claude died" in reason
    assert "(in 10s)" in reason


def test_a_cancelled_turn_stays_interrupted_until_new_work_and_login_is_said(
    tmp_path: Path,
) -> None:
    reporter, path = _reporter(tmp_path)
    reporter.state("running")
    reporter.turn_ended(_last("interrupted"), turns=1, failures=0)
    reporter.state("idle")
    reporter.state("idle")  # the parked loop's next poll
    assert _on_disk(path).interrupted
    assert doing(reporter.report, 0)[0] == "interrupted"
    reporter.state("running")
    assert doing(reporter.report, 0) == ("working", "thinking")
    reporter.state("needs_login", detail="no key")
    assert doing(_on_disk(path), 0, name="bob") == (
        "needs login",
        "no key; log it in with `hyperhive login bob`",
    )
    reporter.state("idle")
    assert doing(reporter.report, 0)[0] == "idle"
    assert doing(reporter.report, 0, paused=True, pending_messages=2) == (
        "paused",
        "paused by the operator; 2 message(s) wait (resume it to continue)",
    )


def test_a_sub_agents_steps_do_not_replace_the_task_tool_and_unknowns_show_as_such(
    tmp_path: Path,
) -> None:
    reporter, _ = _reporter(tmp_path)
    reporter.state("running")
    reporter.stream(_tool_use("Task", "t1"))
    reporter.stream(_tool_use("Bash", "s1", parent_tool_use_id="t1"))
    assert reporter.report.tool == "Task"
    reporter.state("idle")
    reporter.stream(_tool_use("Bash", "t2"))  # a stray line outside a turn changes nothing
    assert reporter.report.tool is None
    assert doing(wire.AgentReport("something-new", 0.0), 0)[0] == "unknown (something-new)"
    assert doing(None, 0) == ("starting", "its harness has not reported yet")


def test_badges_are_seeded_from_the_newest_turn_stats_row_and_follow_usage() -> None:
    activity = Activity()
    activity.seed({"model": "m0", "ctx_tokens": 1234, "context_window": 200000, "cost_usd": 0.5})
    report = wire.AgentReport("idle", 0.0)
    state = activity.state(report, "claude", wire.LoginFlow())
    assert (state.report, state.model, state.ctx, state.context_window, state.cost_usd) == (
        report,
        "m0",
        1234,
        200000,
        0.5,
    )
    activity.observe(1, "usage", {"ctx": 99, "cost_usd": 0.01, "context_window": None})
    activity.observe(2, "turn_ended", {"outcome": "ok", "model": "m1"})
    assert (activity.ctx, activity.cost_usd, activity.context_window) == (99, 0.01, 200000)
    assert (activity.model, activity.last_seq) == ("m1", 2)
    activity.observe(3, "needs_login", {"detail": "no key"})
    assert activity.logged_in is False
    activity.observe(4, "logged_in", {"method": "oauth_token"})
    assert activity.logged_in is True
