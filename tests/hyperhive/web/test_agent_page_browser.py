"""The per-agent page in a real browser: Debian's Chromium, headless, driven by Playwright.

One `hyperhive serve --demo` (the real harness and the real `claude` against the scripted
model, on the default backend) serves the module: alice runs the demo's turns, ``hermit`` runs
with its network off, ``guest`` starts without a credential, and ``forger`` is stopped and its
page socket served by a hostile stand-in (`hyperhive.testing.hostile_harness`) that answers
everything with HTML and script, and ``scribe`` is stopped and its page socket served with a
canned turn holding every row kind. Screenshots go to the directory printed at the end.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .test_web_browser import Hive, open_chromium, shot

if TYPE_CHECKING:
    from collections.abc import Iterator

from hyperhive.testing import run_cli

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect
pytestmark = pytest.mark.slow
SLOW = 90_000  # ms: claude turns of several agents on a shared two-core machine
TOKEN = "sk-ant-oat01-" + "t" * 60


class AgentHive(Hive):
    stand_ins: list[subprocess.Popen[bytes]]

    def cli(self, *args: str) -> None:
        done = run_cli(self.state, *args, timeout=60)
        assert done.returncode == 0, done.stderr

    def page_socket(self, name: str) -> Path:
        return self.state / "agents" / name / "run" / "page" / "page.sock"


@pytest.fixture(scope="module")
def hive() -> Iterator[AgentHive]:
    root = Path(tempfile.mkdtemp(prefix="hh-page-", dir="/tmp"))
    running = AgentHive(root)
    running.stand_ins = []
    running.start()
    try:
        running.cli("spawn", "hermit", "--no-network")
        running.cli("spawn", "guest")
        command = [sys.executable, "-m", "hyperhive.testing.hostile_harness"]
        for name, mode in (("forger", "markup"), ("scribe", "canned")):
            running.cli("spawn", name)
            running.cli("stop", name)
            socket = str(running.page_socket(name))
            stand_in = subprocess.Popen([*command, "--socket", socket, "--mode", mode])
            running.stand_ins.append(stand_in)
            _wait_for(running.page_socket(name).exists, 20)
        yield running
    finally:
        for stand_in in running.stand_ins:
            stand_in.terminate()
            stand_in.wait(10)
        running.close()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with open_chromium() as context:
        yield context


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    page = browser.new_page()
    page.errors = []
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    page.on("dialog", lambda dialog: page.errors.append(f"dialog: {dialog.message}"))
    page.set_default_timeout(15_000)
    try:
        yield page
    finally:
        page.close()


def _open(page: Any, hive: AgentHive, name: str) -> Any:
    page.goto(f"{hive.url}agent/{name}/")
    expect(page.locator("#b-harness")).to_have_text("harness alive", timeout=SLOW)
    expect(page.locator("#conn")).to_have_text("live", timeout=SLOW)
    return page.locator("#term-live")


def test_a_turn_with_text_a_tool_call_and_an_edit_renders_live(
    page: Any, hive: AgentHive, screenshots: Path
) -> None:
    term = _open(page, hive, "alice")
    expect(term.locator(".row.tool.msg", has_text="send to bob")).to_have_count(1, timeout=SLOW)
    hive.cli("send", "alice", "show your tools")
    text = term.locator(".row.text", has_text="a plan, edit it and run a command")
    expect(text).to_have_count(1, timeout=SLOW)
    expect(text.locator("strong")).to_have_text("write")  # markdown
    write = term.locator(".row.tool.write", has_text="Write /state/notes/plan.md")
    expect(write.locator(".idiff .ins").first).to_have_text("+ # plan")
    edit = term.locator(".row.tool.edit", has_text="Edit /state/notes/plan.md")
    expect(edit.locator(".idiff .del")).to_have_text("- step one", timeout=SLOW)
    expect(edit.locator(".idiff .ins")).to_have_text("+ step two")
    expect(term.locator(".row.tool.bash .cmd")).to_have_text("echo tools-ok", timeout=SLOW)
    expect(term.locator(".row.result.bash", has_text="tools-ok")).to_have_count(1, timeout=SLOW)
    send = term.locator(".row.tool.msg", has_text="send to operator").last
    expect(send.locator(".md strong")).to_have_text("alice", timeout=SLOW)
    expect(term.locator(".row.turn.end", has_text="turn ok").last).to_be_visible(timeout=SLOW)
    expect(page.locator("#b-activity")).to_have_text("idle", timeout=SLOW)
    expect(page.locator("#b-ctx")).to_contain_text("ctx ")
    expect(page.locator("#b-cost")).to_contain_text("cost $")
    plan = hive.state / "agents" / "alice" / "state" / "notes" / "plan.md"
    assert plan.read_text() == "# plan\n\nstep two\n"
    shot(page, screenshots, "agent-01-tools")
    # A cold load (a reload) shows the same rows once each, badges seeded at once.
    page.reload()
    expect(page.locator("#b-cost")).to_contain_text("cost $", timeout=10_000)
    expect(term.locator(".row.tool.edit", has_text="plan.md")).to_have_count(1)
    assert page.errors == []


def test_cancel_on_the_page_interrupts_a_turn_the_model_holds(
    page: Any, hive: AgentHive, screenshots: Path
) -> None:
    term = _open(page, hive, "alice")
    hive.cli("send", "alice", "hold on")
    expect(term.locator(".row.turn").last).to_contain_text("woken by inbox", timeout=SLOW)
    expect(page.locator("#b-activity")).to_have_text("thinking", timeout=SLOW)
    held = page.locator("#inbox .mail.inflight", has_text="hold on")
    expect(held.locator(".who")).to_have_text(" operator")  # the broker's view of its mail
    page.locator("#c-cancel").click()
    expect(term.locator(".row.note", has_text="cancel requested")).to_have_count(1)
    ended = term.locator(".row.turn.end.bad", has_text="turn interrupted")
    expect(ended).to_have_count(1, timeout=30_000)
    expect(page.locator("#b-activity")).to_have_text("interrupted", timeout=10_000)
    expect(term.locator(".row.unknown")).to_have_count(0)  # claude's every line has its row
    shot(page, screenshots, "agent-02-cancelled")
    assert page.errors == []


def test_a_model_switch_applies_to_the_next_turn(
    page: Any, hive: AgentHive, screenshots: Path
) -> None:
    term = _open(page, hive, "alice")
    page.locator("#model-input").fill("claude-haiku-4-5")
    page.locator("#model-apply").click()
    chosen = term.locator(".row.sys", has_text="model from the next turn: claude-haiku-4-5")
    expect(chosen).to_have_count(1)
    model = hive.state / "agents" / "alice" / "state" / "hyperhive-model"
    assert model.read_text() == "claude-haiku-4-5\n"
    hive.cli("send", "alice", "greet bob")
    # Its turn (and the one bob's answer wakes) runs on the new model.
    turn = term.locator(".row.turn:not(.end)", has_text="claude-haiku-4-5")
    expect(turn.first).to_be_visible(timeout=SLOW)
    expect(page.locator("#b-model")).to_have_text("model claude-haiku-4-5", timeout=SLOW)
    expect(term.locator(".row.turn.end").last).to_contain_text("turn ok", timeout=SLOW)
    shot(page, screenshots, "agent-03-model")
    page.locator("#model-input").fill("")
    page.locator("#model-apply").click()
    default = term.locator(".row.sys", has_text="model from the next turn: the default")
    expect(default).to_have_count(1)
    assert page.errors == []


def test_the_token_login_flow_stores_a_credential_and_the_agent_leaves_needs_login(
    page: Any, hive: AgentHive, screenshots: Path
) -> None:
    _open(page, hive, "guest")
    expect(page.locator("#login-panel")).to_be_visible(timeout=SLOW)
    expect(page.locator("#b-activity")).to_have_text("needs login")
    shot(page, screenshots, "agent-04-needs-login")
    # The manager is told, as a helper event in its inbox.
    _wait_for(lambda: {"event": "needs_login", "name": "guest"} in _manager_mail(hive), 40)
    # The dashboard, open beside it, shows the card's needs-login chip.
    board = page.context.new_page()
    board.goto(hive.url)
    card = board.locator('.container[data-name="guest"]')
    expect(card).to_contain_text("needs login", timeout=15_000)
    page.locator("#token-text").fill(f"Your OAuth token:\n\n{TOKEN}\n")
    page.locator("#login-token button[type=submit]").click()
    expect(page.locator("#login-panel")).to_be_hidden(timeout=SLOW)
    # The harness logged in: the card and the manager follow within about a second (the
    # daemon watches the agent's state directory), not at the next 10 s rescan.
    expect(card).not_to_contain_text("needs login", timeout=3_000)
    _wait_for(lambda: {"event": "logged_in", "name": "guest"} in _manager_mail(hive), 3)
    shot(board, screenshots, "agent-04b-dashboard-logged-in")
    board.close()
    expect(page.locator("#b-activity")).not_to_have_text("needs login", timeout=SLOW)
    stored = hive.state / "agents" / "guest" / "state" / "hyperhive-credentials.json"
    assert json.loads(stored.read_text()) == {"kind": "oauth_token", "value": TOKEN}
    assert stat.S_IMODE(os.stat(stored).st_mode) == 0o600
    assert TOKEN not in hive.daemon.log
    assert TOKEN not in (hive.state / "agents" / "guest" / "agent.log").read_text()
    expect(page.locator("#b-harness")).to_have_text("harness alive")
    assert page.errors == []


def _manager_mail(hive: AgentHive) -> list[Any]:
    """The helper events the manager was sent, from the dashboard's stored messages."""
    with urllib.request.urlopen(f"{hive.url}dashboard/history?limit=0", timeout=10) as reply:
        messages = json.load(reply)["messages"]
    return [json.loads(m["body"]) for m in messages if m["to"] == "manager" and m["from"] == "hive"]


def _wait_for(check: Any, seconds: float) -> None:
    import time

    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_the_stats_page_shows_the_turns_just_run(
    page: Any, hive: AgentHive, screenshots: Path
) -> None:
    page.goto(f"{hive.url}agent/alice/stats")
    totals = page.locator("#totals")
    expect(totals).to_contain_text("turns", timeout=15_000)
    turns = int(totals.get_attribute("data-turns") or 0)
    assert turns >= 4  # the demo's greeting, the tools, the cancelled hold, the model switch
    expect(page.locator("#recent tr")).to_have_count(min(turns, 20) + 1)
    expect(page.locator("#results")).to_contain_text("interrupted")
    expect(page.locator("#tools")).to_contain_text("Edit")
    _charts_drawn(page)
    page.locator("#bucket").select_option("day")
    expect(page.locator("#charts img").first).to_have_attribute("src", re_contains("bucket=day"))
    _charts_drawn(page)
    shot(page, screenshots, "agent-05-stats")
    assert page.errors == []


def _charts_drawn(page: Any) -> None:
    images = page.locator("#charts img")
    expect(images).to_have_count(6)
    for image in images.all():
        _wait_for(lambda img=image: img.evaluate("i => i.complete && i.naturalWidth > 0"), 15)


def re_contains(text: str) -> Any:
    return re.compile(re.escape(text))


def test_markup_in_the_stream_and_from_a_hostile_harness_runs_nothing(
    page: Any, hive: AgentHive, screenshots: Path
) -> None:
    term = _open(page, hive, "alice")
    hive.cli("send", "alice", "xss")
    expect(term.locator(".row.text", has_text="<script>window.__pwned=1</script>")).to_have_count(
        1, timeout=SLOW
    )
    expect(term.locator(".row.tool.write", has_text='onerror="window.__pwned=2"')).to_have_count(1)
    expect(term.locator(".row.tool.bash .cmd", has_text="<script>")).to_have_count(1, timeout=SLOW)
    expect(term.locator(".row.turn.end").last).to_contain_text("turn ok", timeout=SLOW)
    for what in ("script", "img", 'a[href^="javascript"]'):
        expect(term.locator(what)).to_have_count(0)
    assert page.evaluate("window.__pwned") is None
    shot(page, screenshots, "agent-06-markup-as-text")
    # A harness answering every request with HTML and script: shown as text, nothing breaks.
    page.goto(f"{hive.url}agent/forger/")
    forged = page.locator("#term-live")
    expect(forged.locator(".row.note", has_text="<script>").first).to_be_visible(timeout=15_000)
    expect(forged.locator(".row.unknown").first).to_be_visible()
    expect(page.locator("#b-activity")).to_contain_text("unknown (<script>")
    expect(page.locator("#login-panel")).to_be_visible()  # it claims to be logged out
    expect(page.locator("#login-flow a")).to_have_count(0)
    live = forged.locator(".row[data-seq]")
    before = live.count()
    _wait_for(lambda: live.count() > before, 10)  # its feed keeps coming, as text
    for what in ("script", "img", 'a[href^="javascript"]'):
        expect(page.locator(f"#term-live {what}, #side {what}")).to_have_count(0)
    page.goto(f"{hive.url}agent/forger/stats")
    expect(page.locator("#models")).to_contain_text("<script>", timeout=15_000)
    page.goto(hive.url)
    expect(page.locator('.container[data-name="forger"]')).to_have_count(1, timeout=15_000)
    assert page.evaluate("window.__pwned") is None
    shot(page, screenshots, "agent-07-hostile-harness")
    assert page.errors == []


def test_an_agent_with_the_network_off_has_a_working_page(
    page: Any, hive: AgentHive, screenshots: Path
) -> None:
    term = _open(page, hive, "hermit")
    hive.cli("send", "hermit", "show your tools")
    expect(term.locator(".row.tool.edit", has_text="plan.md")).to_have_count(1, timeout=SLOW)
    expect(term.locator(".row.turn.end").last).to_contain_text("turn ok", timeout=SLOW)
    page.locator("#c-compact").click()
    expect(term.locator(".row.note", has_text="compaction requested")).to_have_count(1)
    expect(page.locator("#b-cost")).to_contain_text("cost $", timeout=10_000)
    cost, ctx = page.locator("#b-cost").text_content(), page.locator("#b-ctx").text_content()
    # A new harness paints the last turn's badges from its turn stats, before any turn.
    hive.cli("restart", "hermit")
    _open(page, hive, "hermit")
    expect(page.locator("#b-cost")).to_have_text(cost or "")
    expect(page.locator("#b-ctx")).to_have_text(ctx or "")
    page.goto(hive.url)
    card = page.locator('.container[data-name="hermit"]')
    expect(card).to_contain_text("no network", timeout=15_000)
    expect(card.locator(".activity")).to_have_count(1, timeout=30_000)
    shot(page, screenshots, "agent-08-network-off")
    assert page.errors == []


def test_every_row_kind_renders_as_the_taxonomy_says(
    page: Any, hive: AgentHive, screenshots: Path
) -> None:
    term = _open(page, hive, "scribe")
    expect(page.locator("#b-activity")).to_have_text(
        "retrying: API retry 2 of 10: overloaded (529)"
    )
    expect(page.locator("#b-ctx")).to_have_text("ctx 12.4k / 200.0k")
    turn = term.locator(".row.turn:not(.end)")
    expect(turn).to_contain_text("woken by inbox · 1 message(s) · claude-sonnet-4-5")
    expect(term.locator(".row.stderr")).to_have_text("!warning: a line on stderr")
    expect(term.locator(".row.note", has_text="compaction requested")).to_have_count(1)
    expect(term.locator(".row.sys.init")).to_contain_text("session s-1")
    expect(term.locator(".row.warn")).to_contain_text("API retry 2 of 10: overloaded (529)")
    thinking = term.locator(".row.thinking")
    expect(thinking).to_contain_text("thinking")
    assert thinking.evaluate("d => d.open") is False  # collapsed
    task = term.locator(".row.tool.task")
    expect(task).to_contain_text("Task sub-agent: survey the notes")
    assert task.evaluate("d => d.open") is False
    # The sub-agent's own steps stand apart; its tool result closes the Task.
    expect(term.locator(".row.sub")).to_have_count(3)
    expect(term.locator(".row.text.sub")).to_contain_text("sub-agent says hi")
    expect(term.locator(".row.tool.read.sub")).to_contain_text("Read /state/notes/a.md")
    expect(term.locator(".row.result:not(.sub)", has_text="survey done")).to_have_count(1)
    multi = term.locator(".row.tool.edit", has_text="MultiEdit /state/b.md")
    expect(multi.locator(".idiff")).to_have_count(2)
    expect(multi.locator(".del")).to_have_text(["- one", "- two"])
    expect(multi.locator(".ins")).to_have_text(["+ uno", "+ dos"])
    generic = term.locator(".row.tool.generic", has_text="notes · search")
    expect(generic.locator(".arg")).to_have_text(["query: colour", "limit: 3"])
    expect(term.locator(".row.tool.msg", has_text="recv (wait 30s)")).to_have_count(1)
    recv = term.locator(".row.result.recv")
    assert recv.evaluate("d => d.open") is True  # a recv result is open, as markdown
    expect(recv.locator("strong")).to_have_text("hello")
    ask = term.locator(".row.tool.msg", has_text="ask the operator")
    expect(ask.locator(".md em")).to_have_text("colour")
    expect(ask.locator(".opts")).to_have_text("options: a | b")
    expect(term.locator(".row.result.bad")).to_contain_text("no such agent")
    expect(term.locator(".row.unknown", has_text="unknown stream fancy_new_type")).to_have_count(1)
    expect(term.locator(".row.unknown", has_text="unknown event fancy_event")).to_have_count(1)
    expect(term.locator(".row.sys.result")).to_contain_text("result success · 4.2 s")
    expect(term.locator(".row.turn.end")).to_contain_text("turn ok · 4.3 s · ctx 12400 · $0.0123")
    shot(page, screenshots, "agent-09-row-kinds")
    # History backfill: the oldest lines come in place, once each.
    first = term.locator('.row[data-seq="1"]')
    expect(first).to_have_count(0)
    page.locator("#older").click()
    expect(first).to_have_text("│filler 1")
    expect(term.locator('.row[data-seq="30"]')).to_have_count(1)
    # Sticky scroll: the live lines keep the bottom in view until the operator scrolls up.
    term.evaluate("t => { t.scrollTop = 0; }")
    pill = page.locator("#term .tail-pill")
    expect(pill).to_have_text(re.compile(r"↓ [1-9][0-9]* new"))
    expect(pill).to_be_visible()
    pill.click()
    expect(pill).to_be_hidden()
    bottom = "t => t.scrollHeight - t.scrollTop - t.clientHeight < 24"
    _wait_for(lambda: term.evaluate(bottom), 5)
    assert page.errors == []


def test_the_inbox_follows_mail_as_it_arrives_is_taken_and_acked(
    page: Any, hive: AgentHive, screenshots: Path
) -> None:
    hive.cli("spawn", "postie")
    hive.cli("stop", "postie")
    page.goto(f"{hive.url}agent/postie/")
    inbox = page.locator("#inbox")
    expect(inbox).to_contain_text("no mail waiting", timeout=15_000)
    # Mail to a stopped agent waits, and shows on its open page without a reload, as text.
    parcel = 'hold on <script>window.__pwned=5</script><img src=x onerror="window.__pwned=6">'
    hive.cli("send", "postie", parcel)
    row = inbox.locator(".mail", has_text="hold on <script>")
    expect(row).to_have_class(re.compile(r"\bpending\b"), timeout=10_000)
    expect(row.locator(".text")).to_have_text(parcel)
    expect(row.locator(".who")).to_have_text(" operator")
    expect(page.locator("#inbox-count")).to_have_text("1")
    shot(page, screenshots, "agent-10-inbox-pending")
    # Started, the agent takes it: the row moves to in flight (the model holds that turn).
    hive.cli("start", "postie")
    expect(row).to_have_class(re.compile(r"\binflight\b"), timeout=SLOW)
    expect(row.locator(".chip").first).to_have_text("in flight")
    # Mail that arrives during the turn shows at once, pending behind it.
    hive.cli("send", "postie", "a second parcel")
    second = inbox.locator(".mail.pending", has_text="a second parcel")
    expect(second).to_have_count(1, timeout=10_000)
    expect(page.locator("#inbox-count")).to_have_text("2")
    shot(page, screenshots, "agent-11-inbox-in-flight")
    # Cancelled, the held turn ends; the next turn takes both, and acked they leave the inbox.
    expect(page.locator("#b-harness")).to_have_text("harness alive", timeout=SLOW)
    page.locator("#c-cancel").click()
    expect(inbox).to_contain_text("no mail waiting", timeout=SLOW)
    expect(page.locator("#inbox-count")).to_have_text("")
    for what in ("script", "img"):
        expect(page.locator(f"#side {what}")).to_have_count(0)
    assert page.evaluate("window.__pwned") is None
    assert page.errors == []


def test_log_out_removes_the_stored_credential_and_the_agent_needs_login_again(
    page: Any, hive: AgentHive, screenshots: Path
) -> None:
    hive.cli("spawn", "guestbook")
    _open(page, hive, "guestbook")
    expect(page.locator("#login-panel")).to_be_visible(timeout=SLOW)
    expect(page.locator("#logout-panel")).to_be_hidden()
    page.locator("#token-text").fill(TOKEN)
    page.locator("#login-token button[type=submit]").click()
    expect(page.locator("#login-panel")).to_be_hidden(timeout=SLOW)
    stored = hive.state / "agents" / "guestbook" / "state" / "hyperhive-credentials.json"
    assert stored.exists()
    expect(page.locator("#logout-panel")).to_be_visible(timeout=10_000)
    shot(page, screenshots, "agent-12-logged-in")
    logout = page.locator("#logout")
    logout.click()
    expect(logout).to_have_text("really log out? click again")
    assert stored.exists()  # one click only asks
    logout.click()
    expect(page.locator("#toast")).to_contain_text("hyperhive-credentials.json removed")
    # Restarted without it, the agent needs a login again: the page, the card, the manager.
    expect(page.locator("#login-panel")).to_be_visible(timeout=SLOW)
    expect(page.locator("#b-activity")).to_have_text("needs login", timeout=SLOW)
    expect(page.locator("#logout-panel")).to_be_hidden()
    assert not stored.exists()
    assert TOKEN not in hive.daemon.log
    _wait_for(lambda: {"event": "needs_login", "name": "guestbook"} in _manager_mail(hive), 30)
    shot(page, screenshots, "agent-13-logged-out")
    # Another restart does not give it a credential again.
    hive.cli("restart", "guestbook")
    _open(page, hive, "guestbook")
    expect(page.locator("#login-panel")).to_be_visible(timeout=SLOW)
    assert not stored.exists()
    assert page.errors == []


def test_a_stopped_agents_page_says_so_and_a_running_ones_lost_harness_is_an_error(
    page: Any, hive: AgentHive, screenshots: Path
) -> None:
    hive.cli("spawn", "sleeper")
    hive.cli("stop", "sleeper")
    # What a harness that needed a login leaves behind; it means nothing while it is stopped.
    sentinel = hive.state / "agents" / "sleeper" / "state" / "hyperhive-needs-login"
    sentinel.write_text("claude has no credentials\n")
    page.goto(f"{hive.url}agent/sleeper/")
    # Stopped is a normal state: said plainly where the live parts would be, no error toast.
    expect(page.locator("#conn")).to_have_text("not running", timeout=SLOW)
    note = page.locator("#not-running")
    expect(note).to_be_visible()
    expect(note).to_contain_text("sleeper is stopped; its terminal and controls come back")
    expect(page.locator("#b-harness")).to_have_text("harness not running")
    expect(page.locator("#b-container")).to_have_text("stopped")
    expect(page.locator("#c-cancel")).to_be_disabled()
    expect(page.locator("#login-panel")).to_be_hidden()  # it has no harness to log in
    # The history was asked for (and could not be had) before the stream said "not running".
    expect(page.locator("#toast")).to_be_hidden()
    shot(page, screenshots, "agent-14-stopped")

    # It starts: the live parts come back without a reload.
    hive.cli("start", "sleeper")
    expect(page.locator("#conn")).to_have_text("live", timeout=SLOW)
    expect(page.locator("#b-harness")).to_have_text("harness alive", timeout=SLOW)
    expect(note).to_be_hidden()
    expect(page.locator("#c-cancel")).to_be_enabled()

    # A running agent whose harness cannot be reached is an error, and the page says so.
    socket = hive.page_socket("sleeper")
    _wait_for(socket.exists, 20)
    socket.unlink()
    page.goto(f"{hive.url}agent/sleeper/")
    expect(page.locator("#toast")).to_contain_text("harness cannot be reached", timeout=SLOW)
    expect(page.locator("#conn")).to_have_text("harness down", timeout=SLOW)
    expect(page.locator("#b-harness")).to_have_text("harness unreachable")
    expect(note).to_be_hidden()
    assert page.errors == []
