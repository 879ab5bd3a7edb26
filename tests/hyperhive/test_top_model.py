"""`hyperhive top` without a terminal: its keys, its model, and the screen it draws.

The screen is rendered by rich at a fixed size and read back as text, so these tests see the
same rows and cropping a terminal of that size would.
"""

from __future__ import annotations

import pytest
from rich.console import Console

from hyperhive import wire
from hyperhive.top.approvals import parse_rows
from hyperhive.top.keys import KeyDecoder
from hyperhive.top.model import (
    Answer,
    Approve,
    Deny,
    Follow,
    Quit,
    Send,
    ShowTree,
    TopModel,
    scroll_window,
)
from hyperhive.top.screen import render

NOW = 1_800_000_000.0
MARKUP = "[bold]not bold[/bold] [link=https://example.invalid]x[/link] [/oops]"
ESCAPES = "\x1b]0;pwned\x07\x1b[2Jcleared\u202eevil"


def _view(name: str, **changes: object) -> wire.ContainerView:
    fields: dict[str, object] = {
        "name": name,
        "role": "manager" if name == "manager" else "agent",
        "state": "running",
        "wanted": "running",
        "network": True,
        **changes,
    }
    return wire.ContainerView(**fields)  # type: ignore[arg-type]


def _question(id: int, asker: str = "a03", text: str = "Which colour?") -> wire.Question:
    return wire.Question(id, asker, "operator", text, ("blue", "green"), False, NOW - 30)


def _approval(id: int, agent: str = "a05", description: str = "give a05 the web") -> wire.Approval:
    return wire.Approval(
        id, agent, "apply_commit", "2027-01-15T08:00:00Z", "pending", description, "a1b2c3d4e5f6"
    )


def _hive(agents: int = 40) -> TopModel:
    model = TopModel()
    model.load_agents([_view("manager"), *(_view(f"a{i:02d}") for i in range(1, agents + 1))])
    model.load_questions([_question(1), _question(2, "a07", "Ship it?")])
    model.load_approvals([_approval(7)])
    for seq in range(1, 6):
        message = wire.Message(seq, "a01", "a02", f"message {seq}", NOW - 10 + seq)
        model.apply(wire.Event(seq, NOW, wire.MessageSent(message)))
    return model


def _screen(model: TopModel, columns: int, lines: int) -> list[str]:
    console = Console(
        width=columns, height=lines, force_terminal=True, color_system=None, legacy_windows=False
    )
    with console.capture() as captured:
        console.print(render(model, now=NOW, height=lines))
    shown = captured.get().splitlines()
    return shown


def _keys(model: TopModel, *keys: str) -> list[object]:
    return [c for c in (model.on_key(k) for k in keys) if c is not None]


# -- keys -------------------------------------------------------------------------------------


def test_the_decoder_names_keys_and_joins_split_reads() -> None:
    decoder = KeyDecoder()
    assert decoder.feed(b"a\x1b[A\x1b[6~\t\x1b[Z\r\x7f") == [
        "a",
        "up",
        "pagedown",
        "tab",
        "backtab",
        "enter",
        "backspace",
    ]
    assert decoder.feed(b"\x1b[") == []  # the rest of the sequence comes with the next read
    assert decoder.feed(b"B\xc3") == ["down"]
    assert decoder.feed(b"\xa9") == ["é"]
    assert decoder.feed(b"\x1b") == ["escape"]
    assert decoder.feed(b"\x1b[200~x\x1b[99;5u") == ["x"]  # unknown sequences are dropped
    assert decoder.feed(b"\x1bOA\x03") == ["up", "ctrl-c"]


# -- the model --------------------------------------------------------------------------------


def test_answering_a_question_from_the_keys() -> None:
    model = _hive()
    assert _keys(model, "tab") == []
    assert model.focus == "questions"
    assert _keys(model, "down", "a") == []
    assert model.prompt is not None
    assert "a07: Ship it?" in model.prompt.label
    assert _keys(model, "tab") == []  # Tab cycles the options into the text
    assert model.prompt.text == "blue"
    _keys(model, "ctrl-u", *"yes, today", "backspace", "y")
    assert _keys(model, "enter") == [Answer(2, "yes, today")]
    assert model.prompt is None


def test_an_empty_answer_is_not_sent_and_escape_cancels() -> None:
    model = _hive()
    _keys(model, "tab", "a")
    assert _keys(model, "enter") == []
    assert model.status_is_error
    assert model.prompt is not None
    _keys(model, "escape")
    assert model.prompt is None


def test_sending_to_the_selected_agent() -> None:
    model = _hive()
    _keys(model, "down", "down")
    assert model.current("agents") == "a02"
    assert _keys(model, "s", *"hello", "enter") == [Send("a02", "hello")]


def test_the_selection_stays_on_its_agent_when_rows_come_and_go() -> None:
    model = _hive()
    _keys(model, "down", "down", "down")
    assert model.current("agents") == "a03"
    model.apply(wire.Event(100, NOW, wire.ContainerRemoved("a01")))
    assert model.current("agents") == "a03"
    model.apply(wire.Event(101, NOW, wire.ContainerStateChanged(_view("a00"))))
    assert model.current("agents") == "a03"


def test_approving_asks_first_and_denying_asks_for_a_reason() -> None:
    model = _hive()
    _keys(model, "tab", "tab")
    assert model.focus == "approvals"
    assert _keys(model, "y") == []  # opens the approval with its diff, and asks
    assert (model.overlay, model.confirm) == ("approval", "approve")
    assert _keys(model, "y") == [Approve(7)]
    _keys(model, "n")
    assert model.confirm == "deny"
    assert _keys(model, "x") == []  # any other key: nothing decided
    assert model.confirm is None
    _keys(model, "enter", "n", "y")
    assert model.prompt is not None
    assert model.prompt.kind == "deny"
    assert _keys(model, *"too broad", "enter") == [Deny(7, "too broad")]


def test_no_approval_flow_says_so_instead_of_deciding() -> None:
    model = _hive()
    model.load_approvals(None, "unknown cmd 'pending'")
    _keys(model, "tab", "tab", "y")
    assert model.overlay is None
    assert "no approval flow here" in model.status


def test_following_a_log_and_the_other_commands() -> None:
    model = _hive()
    assert _keys(model, "l") == [Follow("manager")]
    assert model.following == "manager"
    assert _keys(model, "escape") == [Follow(None)]
    assert _keys(model, "t") == [ShowTree()]
    assert _keys(model, "escape", "q") == [Quit()]
    assert _keys(model, "ctrl-c") == [Quit()]


def test_events_update_rows_questions_and_the_flow_once() -> None:
    model = TopModel()
    question = _question(3)
    events = [
        wire.Event(1, NOW, wire.ContainerStateChanged(_view("bob", state="crashed"))),
        wire.Event(2, NOW, wire.QuestionAdded(question)),
        wire.Event(3, NOW, wire.ContainerCrashed("bob", 137, "oom")),
        wire.Event(4, NOW, wire.QuestionAdded(question)),
    ]
    for event in events:
        model.apply(event)
    model.apply(events[2])  # the history and the feed overlap: shown once
    assert model.agents["bob"].state == "crashed"
    assert list(model.questions) == [3]
    assert [line.kind for line in model.flow] == ["crash"]
    answered = wire.Question(3, "a03", "operator", "?", (), False, NOW, answer="blue")
    model.apply(wire.Event(5, NOW, wire.QuestionResolved(answered)))
    assert model.questions == {}


@pytest.mark.parametrize(
    ("count", "cursor", "offset", "visible", "first"),
    [
        (5, 4, 0, 10, 0),
        (40, 0, 0, 10, 0),
        (40, 15, 0, 10, 6),
        (40, 15, 8, 10, 8),
        (40, 3, 8, 10, 3),
    ],
)
def test_scroll_window(count: int, cursor: int, offset: int, visible: int, first: int) -> None:
    assert scroll_window(count, cursor, offset, visible) == first


# -- the screen -------------------------------------------------------------------------------


@pytest.mark.parametrize(("columns", "lines"), [(80, 24), (120, 50)])
def test_every_pane_is_on_screen_with_40_agents(columns: int, lines: int) -> None:
    shown = _screen(_hive(40), columns, lines)
    assert len(shown) == lines
    assert all(len(line) <= columns for line in shown)
    text = "\n".join(shown)
    assert "hyperhive top · 41 agents · 41 running · 2 questions · 1 approvals" in text
    assert " agents 1-" in text
    assert "of 41 ↓" in text
    assert " questions (2)" in text
    assert " approvals (1)" in text
    assert " messages (5)" in text
    assert "#1 30s a03: Which colour? [blue / green]" in text
    assert "#7 a05 apply_commit a1b2c3d4e5f6 give" in text
    assert "a01 → a02: message 5" in text
    assert shown[-1].startswith("?:help q:quit")


def test_a_terminal_too_small_for_every_row_shrinks_panes_without_losing_one() -> None:
    model = _hive(40)
    for seq in range(10, 60):
        message = wire.Message(seq, "a01", "a02", f"busy {seq}", NOW)
        model.apply(wire.Event(seq, NOW, wire.MessageSent(message)))
    model.load_questions([_question(i) for i in range(1, 30)])
    text = "\n".join(_screen(model, 80, 24))
    for title in (" agents ", " questions ", " approvals ", " messages "):
        assert title in text
    assert "busy 59" in text  # the newest message is the one kept


def test_the_agents_pane_scrolls_to_the_selection() -> None:
    model = _hive(40)
    _keys(model, "end")
    text = "\n".join(_screen(model, 80, 24))
    assert "a40" in text
    assert "a01 " not in text.split(" questions")[0]
    assert "↑" in text


def test_columns_the_daemon_has_no_figure_for_are_marked_not_guessed() -> None:
    model = TopModel()
    model.load_agents(
        [
            _view("alice", needs_login=True, model="claude-opus-4"),
            _view("bob", state="crashed", exit_code=137, network=False),
            _view("carol", rate_limited=True, pending_reminders=2),
        ]
    )
    shown = _screen(model, 120, 30)
    text = "\n".join(shown)
    assert "· = not reported yet" in text
    [alice] = [line for line in shown if line.startswith("alice")]
    assert "needs login" in alice
    assert "claude-opus-4" in alice
    assert alice.count("·") >= 3  # ctx, cost, last turn: she has run no turn
    [bob] = [line for line in shown if line.startswith("bob")]
    assert "crashed" in bob
    assert "exit 137" in bob
    assert "net off" in bob
    [carol] = [line for line in shown if line.startswith("carol")]
    assert "rate limited" in carol
    assert "2 rem" in carol


def test_an_agents_row_flags_a_pending_update_and_a_spawn_by_the_manager() -> None:
    model = TopModel()
    model.load_agents(
        [
            _view("alice", needs_update=True),
            _view("bob", parent="manager"),
            _view("carol", state="crashed", start_refused=True, semantic="start refused"),
        ]
    )
    shown = _screen(model, 120, 30)
    [alice] = [line for line in shown if line.startswith("alice")]
    [bob] = [line for line in shown if line.startswith("bob")]
    [carol] = [line for line in shown if line.startswith("carol")]
    assert "update pending" in alice
    assert "spawned by" not in alice
    assert "spawned by manager" in bob
    assert "update pending" not in bob
    assert "start refused" in carol
    # At 80 columns the flags still fit beside the rest (clipped at the edge, not wrapped).
    narrow = _screen(model, 80, 24)
    assert any(line.startswith("alice") and "update pending" in line for line in narrow)
    assert any(line.startswith("bob") and "spawned by" in line for line in narrow)


def test_an_agents_row_shows_why_its_mail_and_its_last_turn() -> None:
    last = wire.LastTurn(NOW - 120, 4200, "ok", ctx_tokens=48_000, cost_usd=0.42)
    failed = wire.LastTurn(NOW - 30, 900, "failed", detail="API Error: 529")
    model = TopModel()
    model.load_agents(
        [
            _view(
                "alice",
                semantic="working",
                status_text="fixing ci",
                last_turn=last,
                pending_messages=3,
                inflight_messages=2,
            ),
            _view(
                "bob", semantic="retrying", reason="API retry 3 of 10: overloaded", last_turn=failed
            ),
            _view("carol", semantic="paused", paused=True, pending_messages=1),
        ]
    )
    shown = _screen(model, 120, 30)
    [alice] = [line for line in shown if line.startswith("alice")]
    for part in ("fixing ci", "48k", "$0.42", "3+2", "2m"):
        assert part in alice, (part, alice)
    [bob] = [line for line in shown if line.startswith("bob")]
    assert "retrying" in bob
    assert "30s failed" in bob
    [carol] = [line for line in shown if line.startswith("carol")]
    assert "paused" in carol
    assert "1+0" in carol


def test_agent_text_is_shown_literally_everywhere() -> None:
    model = TopModel()
    model.load_agents([_view("alice", notes=(MARKUP,))])
    model.load_questions([_question(1, "alice", MARKUP + ESCAPES)])
    model.load_approvals([_approval(2, "alice", MARKUP)])
    message = wire.Message(1, "alice", "operator", ESCAPES + MARKUP, NOW)
    model.apply(wire.Event(1, NOW, wire.MessageSent(message)))
    text = "\n".join(_screen(model, 400, 30))
    assert text.count("[bold]not bold[/bold]") >= 4  # flags, question, approval, message
    assert "\x1b]0;pwned" not in text
    assert "\\x1b]0;pwned\\x07\\x1b[2Jcleared\\u202eevil" in text
    model.following = "alice"
    model.log_text = ESCAPES + "\n" + MARKUP
    text = "\n".join(_screen(model, 400, 30))
    assert "\\x1b]0;pwned" in text
    assert "[bold]not bold[/bold]" in text


def test_an_approval_opens_with_its_diff() -> None:
    model = _hive()
    model.diff = (
        "--- a/agent.toml\n+++ b/agent.toml\n@@ -1 +1 @@\n-network = false\n+network = true"
    )
    _keys(model, "tab", "tab", "enter")
    text = "\n".join(_screen(model, 100, 30))
    assert "approval #7: apply_commit for a05" in text
    assert "commit a1b2c3d4e5f6" in text
    assert "+network = true" in text
    assert "y: approve · n: deny" in text
    model.diff = None
    _keys(model, "y")
    text = "\n".join(_screen(model, 100, 30))
    assert "(the daemon serves no diff for this approval)" in text
    assert "approve #7 and deploy it? y: yes" in text


def test_the_prompt_keeps_its_end_in_view() -> None:
    model = _hive()
    _keys(model, "s", *("word " * 40), *"THE-END")
    shown = _screen(model, 80, 24)
    assert "THE-END█" in shown[-2]
    assert "send to manager > …" in shown[-2]


def test_approval_rows_are_parsed_defensively() -> None:
    good = {
        "id": 3,
        "agent": "a05",
        "kind": "spawn",
        "requested_at": "2027-01-15T08:00:00Z",
        "status": "pending",
        "description": "x" * 10_000,
        "commit_ref": "a1b2c3d",
        "fetched_sha": None,
        "resolved_at": None,
        "note": None,
    }
    rows = parse_rows(
        {"approvals": [good, {**good, "id": "4"}, {**good, "agent": 5}, "junk", {**good, "id": 5}]}
    )
    assert [row.id for row in rows] == [3, 5]
    assert len(rows[0].description) == 4000
    assert parse_rows({"approvals": "nope"}) == []
    assert parse_rows(None) == []


def test_the_daemons_pending_reply_reads_back_as_its_own_wire_rows() -> None:
    sent = (
        wire.Approval(3, "a05", "spawn", "2027-01-15T08:00:00Z", "pending", "carol", "main"),
        wire.Approval(
            4, "a06", "apply_commit", "2027-01-15T08:01:00Z", "pending", "web", "a1b2c3",
            fetched_sha="a1b2c3" * 6 + "abcd", note="checked",
        ),
    )  # fmt: skip
    assert parse_rows(wire.to_json(wire.Approvals(sent))) == list(sent)


def test_a_long_diff_scrolls_and_the_decision_line_stays() -> None:
    model = _hive()
    model.diff = "\n".join(f"+line {i}" for i in range(100))
    _keys(model, "tab", "tab", "y")
    shown = _screen(model, 80, 24)
    assert "+line 0" in "\n".join(shown)
    assert "more lines: ↓" in shown[-3]
    assert "approve #7 and deploy it?" in shown[-3]
    model.confirm = None
    _keys(model, "pagedown", "pagedown", "down")
    text = "\n".join(_screen(model, 80, 24))
    assert "+line 0\n" not in text
    assert "+line 21" in text
    _keys(model, *["pagedown"] * 20)
    text = "\n".join(_screen(model, 80, 24))
    assert "+line 99" in text
    assert "more lines" not in text


def test_panes_take_the_lines_their_rows_need_and_give_the_rest_away() -> None:
    from hyperhive.top.screen import split_heights

    assert split_heights(21, (42, 3, 6)) == (12, 3, 6)  # 40 agents: the rest of the screen
    assert split_heights(21, (4, 2, 600)) == (4, 3, 14)  # two agents, a busy message flow
    assert split_heights(47, (42, 3, 600)) == (29, 3, 15)  # the rest by ratio
    assert split_heights(9, (42, 3, 6)) is None  # below the minimums: rich's ratios decide
    model = TopModel()
    model.load_agents([_view("manager"), _view("alice")])
    for seq in range(1, 40):
        message = wire.Message(seq, "alice", "manager", f"line {seq}", NOW)
        model.apply(wire.Event(seq, NOW, wire.MessageSent(message)))
    shown = _screen(model, 80, 24)
    assert shown[5].startswith(" questions (0)")  # right under the two agents
    assert "messages 27-39 of 39" in "\n".join(shown)
