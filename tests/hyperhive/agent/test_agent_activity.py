"""What the agent is doing, from its live events (pure: no trio, no I/O)."""

from __future__ import annotations

from typing import Any

from hyperhive import wire
from hyperhive.agent.activity import Activity
from hyperhive.tui import activity_text


def _feed(activity: Activity, *events: tuple[str, dict[str, Any]]) -> None:
    for seq, (kind, data) in enumerate(events, start=activity.last_seq + 1):
        activity.observe(seq, 1000.0 + seq, kind, data)


def _tool_use(name: str, id: str) -> tuple[str, dict[str, Any]]:
    block = {"type": "tool_use", "id": id, "name": name, "input": {}}
    return "stream", {"type": "assistant", "message": {"content": [block]}}


def _tool_result(id: str) -> tuple[str, dict[str, Any]]:
    block = {"type": "tool_result", "tool_use_id": id, "content": "ok"}
    return "stream", {"type": "user", "message": {"content": [block]}}


def test_a_turn_goes_thinking_running_a_tool_waiting_on_recv_and_back_to_idle() -> None:
    activity = Activity.starting(0.0)
    _feed(activity, ("state", {"state": "idle"}))
    assert activity.report.activity == "idle"
    _feed(activity, ("state", {"state": "running"}), ("turn_started", {"messages": 1}))
    assert activity.report.activity == "thinking"
    _feed(activity, _tool_use("Bash", "t1"))
    assert (activity.report.activity, activity.report.tool) == ("tool", "Bash")
    assert activity_text(activity.report, now=0) == "running Bash"
    _feed(activity, _tool_result("t1"), _tool_use("mcp__hive__recv", "t2"))
    assert activity.report.activity == "waiting_recv"
    assert activity_text(activity.report, now=0) == "waiting on recv"
    _feed(activity, _tool_result("t2"))
    assert activity.report.activity == "thinking"
    _feed(activity, ("turn_ended", {"outcome": "ok", "model": "m1"}), ("state", {"state": "idle"}))
    assert (activity.report.activity, activity.model) == ("idle", "m1")


def test_api_retries_rate_limits_and_backoffs_say_why_and_until_when() -> None:
    activity = Activity.starting(0.0)
    _feed(activity, ("state", {"state": "running"}), ("turn_started", {"messages": 1}))
    retry = {"type": "system", "subtype": "api_retry", "attempt": 3, "max_retries": 10}
    _feed(activity, ("stream", {**retry, "error": "overloaded", "error_status": 529}))
    assert activity.report.activity == "retrying"
    assert activity.report.detail == "API retry 3 of 10: overloaded (529)"
    _feed(activity, ("state", {"state": "rate_limited"}))
    _feed(activity, ("rate_limited", {"retry_in": 60.0, "detail": "429 from the API"}))
    report = activity.report
    assert (report.activity, report.detail) == ("rate_limited", "429 from the API")
    assert report.until is not None
    assert report.until > report.since
    assert activity_text(report, now=report.since).startswith("rate limited until ")
    _feed(activity, ("state", {"state": "backing_off"}))
    _feed(activity, ("backing_off", {"outcome": "failed", "detail": "claude died", "retry_in": 10}))
    assert activity.report.activity == "backing_off"
    assert "claude died" in activity_text(activity.report, now=0)


def test_a_cancelled_turn_stays_interrupted_until_new_work_and_login_is_tracked() -> None:
    activity = Activity.starting(0.0)
    _feed(activity, ("turn_started", {"messages": 1}), ("turn_ended", {"outcome": "interrupted"}))
    _feed(activity, ("state", {"state": "idle"}))
    assert activity.report.activity == "interrupted"
    _feed(activity, ("state", {"state": "running"}), ("turn_started", {"messages": 1}))
    assert activity.report.activity == "thinking"
    _feed(activity, ("state", {"state": "needs_login"}), ("needs_login", {"detail": "no key"}))
    assert (activity.report.activity, activity.logged_in) == ("needs_login", False)
    _feed(activity, ("logged_in", {"method": "oauth_token"}))
    assert (activity.report.activity, activity.logged_in) == ("idle", True)


def test_badges_are_seeded_from_the_newest_turn_stats_row_and_follow_usage() -> None:
    activity = Activity.starting(0.0)
    activity.seed({"model": "m0", "ctx_tokens": 1234, "context_window": 200000, "cost_usd": 0.5})
    state = activity.state("claude", wire.LoginFlow())
    assert (state.model, state.ctx, state.context_window, state.cost_usd) == (
        "m0",
        1234,
        200000,
        0.5,
    )
    _feed(activity, ("usage", {"ctx": 99, "cost_usd": 0.01, "context_window": None}))
    assert (activity.ctx, activity.cost_usd, activity.context_window) == (99, 0.01, 200000)


def test_a_sub_agents_steps_do_not_replace_the_task_tool_and_unknowns_show_as_such() -> None:
    activity = Activity.starting(0.0)
    _feed(activity, ("turn_started", {"messages": 1}), _tool_use("Task", "t1"))
    kind, data = _tool_use("Bash", "s1")
    _feed(activity, (kind, {**data, "parent_tool_use_id": "t1"}))
    assert activity.report.tool == "Task"
    report = wire.HarnessReport("something-new", 0.0)
    assert activity_text(report, now=0) == "unknown (something-new)"
    assert activity_text(None, now=0) == "-"
