"""The demo hive's canned behaviours (pure: the scripted model's decisions)."""

from __future__ import annotations

import json

from hyperhive import wire
from hyperhive.agent.wake import build_wake_prompt
from hyperhive.testing.demo import demo_reply, plan
from hyperhive.testing.model_api import ApiRequest, Hold, Text, ToolCall


def _wake(*messages: tuple[str, str]) -> str:
    deliveries = [
        wire.Delivery(i, sender, "alice", body, 1.0, 1, False)
        for i, (sender, body) in enumerate(messages, 1)
    ]
    return build_wake_prompt(deliveries)


def test_each_message_gets_its_canned_action_in_order() -> None:
    wake = _wake(
        ("operator", "greet bob"),
        ("operator", "ask me anything"),
        ("operator", "what's up?"),
        ("bob", "hello alice, I am bob"),
        ("bob", "nice to meet you, alice"),
    )
    calls = plan("alice", wake)
    assert [(c.name, c.input.get("to")) for c in calls] == [
        ("mcp__hive__send", "bob"),
        ("mcp__hive__ask", None),
        ("mcp__hive__send", "operator"),
        ("mcp__hive__send", "bob"),
    ]
    assert calls[0].input["body"] == "hello bob, I am alice"
    assert calls[2].input["body"] == "**alice** got your message:\n\n> what's up?"


def test_helper_events_are_understood() -> None:
    answered = wire.encode_helper_event(wire.QuestionAnswered(3, "colour?", "teal", "operator"))
    cancelled = wire.encode_helper_event(
        wire.QuestionAnswered(4, "colour?", "[cancelled by operator]", "operator")
    )
    crash = wire.encode_helper_event(wire.ContainerCrash("bob", 137, "killed"))
    asked = wire.encode_helper_event(wire.QuestionAsked(5, "bob", "ok?", ("yes", "no")))
    calls = plan(
        "alice", _wake(("hive", answered), ("hive", cancelled), ("hive", crash), ("hive", asked))
    )
    assert calls[0].input["body"] == "thanks, operator: you picked **teal** (question #3)"
    assert calls[1].input["body"] == "ok, never mind question #4"
    assert "bob crashed (exit status 137)" in calls[2].input["body"]
    assert (calls[3].name, calls[3].input) == ("mcp__hive__answer", {"id": 5, "answer": "yes"})


def _request(messages: list[dict[str, object]]) -> ApiRequest:
    body = {"tools": [{"name": "mcp__hive__send"}], "messages": messages}
    return ApiRequest("POST", "/v1/messages", {}, body)


def test_the_reply_is_the_next_call_not_yet_made_then_the_end_of_the_turn() -> None:
    wake = _wake(("operator", "greet bob"), ("operator", "greet carol"))
    first = demo_reply("alice", _request([{"role": "user", "content": wake}]))
    assert isinstance(first, ToolCall)
    assert first.input["to"] == "bob"
    used = {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "x"}]}
    result = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1"}]}
    second = demo_reply("alice", _request([{"role": "user", "content": wake}, used, result]))
    assert isinstance(second, ToolCall)
    assert second.input["to"] == "carol"
    done = demo_reply(
        "alice", _request([{"role": "user", "content": wake}, used, result, used, result])
    )
    assert done == Text("done.")


def test_side_requests_without_the_hive_s_tools_get_the_default() -> None:
    side = ApiRequest("POST", "/v1/messages", {}, {"messages": [{"role": "user", "content": "x"}]})
    assert demo_reply("alice", side) == Text("ok.")


def test_the_scripted_api_command_runs_a_command_against_itself() -> None:
    import subprocess
    import sys

    client = (
        "import json, os, sys, urllib.request\n"
        "body = {'tools': [{'name': 'mcp__hive__send'}], 'messages': [{'role': 'user', "
        "'content': 'You have 1 new message(s).\\n\\n---\\n\\nfrom: operator\\n\\ngreet bob'}]}\n"
        "request = urllib.request.Request(os.environ['ANTHROPIC_BASE_URL'] + '/v1/messages',"
        " data=json.dumps(body).encode(), method='POST')\n"
        "reply = json.load(urllib.request.urlopen(request, timeout=10))\n"
        "print(json.dumps(reply['content'][1]['input']))\n"
        "sys.exit(7)\n"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "hyperhive.testing.scripted_api",
            "--script",
            "demo",
            "--",
            sys.executable,
            "-c",
            client,
        ],
        env={"HYPERHIVE_AGENT": "alice", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 7, done.stderr
    assert '"body": "hello bob, I am alice"' in done.stdout


def test_the_page_behaviours_write_edit_run_hold_and_carry_markup() -> None:
    calls = plan("alice", _wake(("operator", "show your tools")), "/st")
    assert [c.name for c in calls] == ["Write", "Edit", "Bash", "mcp__hive__send"]
    assert calls[0].input["file_path"] == calls[1].input["file_path"] == "/st/notes/plan.md"
    assert (calls[1].input["old_string"], calls[1].input["new_string"]) == ("step one", "step two")
    xss = plan("alice", _wake(("operator", "xss")))
    assert all("<script>" in json.dumps(c.input) for c in xss)
    held = demo_reply(
        "alice", _request([{"role": "user", "content": _wake(("operator", "hold on"))}])
    )
    assert isinstance(held, Hold)
    again = build_wake_prompt(
        [wire.Delivery(1, "operator", "alice", "hold on", 1.0, 1, False)],
        retried_ids=frozenset({1}),
    )
    let_go = demo_reply("alice", _request([{"role": "user", "content": again}]))
    assert let_go == Text("nothing to do.")
