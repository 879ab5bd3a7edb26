"""The dashboard in a real browser: Debian's Chromium, headless, driven by Playwright.

One `hyperhive serve --demo` (the real harness and the real `claude` against the scripted
model, on the default backend) serves the whole module; the tests run in order and the last
one restarts it. Each main state is saved as a screenshot under the directory printed at the
end of the run (`HYPERHIVE_SCREENSHOTS` picks it).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from hyperhive import wire
from hyperhive.testing import DaemonProcess, run_cli

if TYPE_CHECKING:
    from collections.abc import Iterator

playwright_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():  # pragma: no cover - ./bootstrap test installs it
    if os.environ.get("CI"):
        raise RuntimeError("CI must have Debian's chromium (./bootstrap test installs it)")
    pytest.skip("no /usr/bin/chromium (apt-get install chromium)", allow_module_level=True)

pytestmark = pytest.mark.slow
expect = playwright_api.expect
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextlib.contextmanager
def open_chromium() -> Iterator[Any]:
    """Debian's Chromium under Playwright with a fresh profile: its browser context, closed
    and the profile removed on the way out."""
    profile = Path(tempfile.mkdtemp(prefix="hh-chromium-", dir="/tmp"))
    try:
        with playwright_api.sync_playwright() as p:
            context = p.chromium.launch_persistent_context(
                str(profile),
                executable_path=str(CHROMIUM),
                args=CHROMIUM_ARGS,
                headless=True,
                viewport={"width": 1500, "height": 950},
            )
            try:
                yield context
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


SLOW = 90_000  # ms: the first claude turns of three agents on a shared two-core machine


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Hive:
    def __init__(self, root: Path) -> None:
        self.state = root / "hive"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.daemon = self._daemon()

    def _daemon(self) -> DaemonProcess:
        env = {"HYPERHIVE_BACKEND": "auto", "HYPERHIVE_DASHBOARD": f"127.0.0.1:{self.port}"}
        return DaemonProcess(self.state, "--demo", env=env)

    def start(self) -> None:
        self.daemon.start(timeout=60)

    def stop(self) -> None:
        self.daemon.signal(signal.SIGTERM)
        assert self.daemon.wait(30) == 0

    def start_again(self) -> None:
        """A new daemon on the same state directory and the same port."""
        self.daemon = self._daemon()
        self.start()

    def close(self) -> None:
        self.daemon.__exit__(None, None, None)  # SIGTERM if it still runs, then wait


@pytest.fixture(scope="module")
def hive() -> Iterator[Hive]:
    root = Path(tempfile.mkdtemp(prefix="hh-web-", dir="/tmp"))
    running = Hive(root)
    running.start()
    try:
        yield running
    finally:
        running.close()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def page(hive: Hive, screenshots: Path) -> Iterator[object]:
    with open_chromium() as context:
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("dialog", lambda dialog: errors.append(f"dialog: {dialog.message}"))
        page.set_default_timeout(15_000)
        page.goto(hive.url)
        page.errors = errors
        yield page


def shot(page: object, screenshots: Path, name: str) -> None:
    page.screenshot(path=str(screenshots / f"{name}.png"))  # type: ignore[attr-defined]


def test_the_page_loads_with_the_demo_hive(page: object, screenshots: Path) -> None:
    for name in ("alice", "bob", "manager"):
        card = page.locator(f'.container[data-name="{name}"]')  # type: ignore[attr-defined]
        expect(card).to_have_attribute("data-state", "running", timeout=SLOW)
    expect(page.locator("#conn")).to_have_text("live")  # type: ignore[attr-defined]
    flow = page.locator("#flow-live")  # type: ignore[attr-defined]
    expect(flow).to_contain_text("hello bob, I am alice", timeout=SLOW)
    expect(flow).to_contain_text("nice to meet you, alice", timeout=SLOW)
    question = page.locator('.question:has(.name:text-is("bob"))')  # type: ignore[attr-defined]
    expect(question).to_contain_text("Which colour", timeout=SLOW)
    expect(page.locator("#banner")).to_contain_text("1 question")  # type: ignore[attr-defined]
    shot(page, screenshots, "01-demo-hive")
    assert page.errors == []  # type: ignore[attr-defined]


def test_a_message_sent_from_the_cli_appears_live(
    page: object, hive: Hive, screenshots: Path
) -> None:
    flow = page.locator("#flow-live")  # type: ignore[attr-defined]
    sent = run_cli(hive.state, "send", "alice", "a word *from the cli*")
    assert sent.returncode == 0, sent.stderr
    row = flow.locator('.row.msg:has(.who:text-is("operator"))', has_text="a word from the cli")
    expect(row).to_have_count(1, timeout=10_000)
    expect(row.locator("em")).to_have_text("from the cli")  # markdown, rendered
    reply = flow.locator(".row.msg", has_text="got your message")
    expect(reply.locator("strong")).to_have_text("alice", timeout=SLOW)
    # Her card says how that turn ended (seen by the next rescan of her report).
    card = page.locator('.container[data-name="alice"]')  # type: ignore[attr-defined]
    expect(card.locator(".chip.last-turn")).to_contain_text("last turn ok", timeout=30_000)
    shot(page, screenshots, "02-message-flow")


def test_a_question_answered_on_the_page_reaches_the_asking_agent(
    page: object, hive: Hive, screenshots: Path
) -> None:
    question = page.locator('.question:has(.name:text-is("bob"))')  # type: ignore[attr-defined]
    question.locator("button.option", has_text="teal").click()
    expect(question).to_have_count(0)
    # bob thanks the operator once the answer is in its inbox and its turn read it
    inbox = page.locator("#inbox")  # type: ignore[attr-defined]
    expect(inbox).to_contain_text("you picked teal", timeout=SLOW)
    answered = run_cli(hive.state, "questions", "--answered", "--json")
    assert '"answer": "teal"' in answered.stdout
    shot(page, screenshots, "03-question-answered")


def test_agent_markup_shows_as_text_and_runs_nothing(
    page: object, hive: Hive, screenshots: Path
) -> None:
    import trio

    from hyperhive.client import open_client

    body = (
        'look: <img src=x onerror="window.__pwned=1"> and '
        "<script>window.__pwned=2</script> [x](javascript:window.__pwned=3) **still bold**"
    )

    async def send_as_alice() -> None:
        async with open_client(hive.state / "agents" / "alice" / "run" / "hive.sock") as alice:
            await alice.call(wire.Send(to="operator", body=body))

    trio.run(send_as_alice)
    inbox = page.locator("#inbox")  # type: ignore[attr-defined]
    expect(inbox).to_contain_text('<img src=x onerror="window.__pwned=1">', timeout=10_000)
    expect(inbox).to_contain_text("<script>window.__pwned=2</script>")
    flow = page.locator("#flow-live")  # type: ignore[attr-defined]
    row = flow.locator(".row.msg", has_text="<script>window.__pwned=2</script>")
    expect(row).to_have_count(1)
    expect(row.locator("strong")).to_have_text("still bold")
    for where in (inbox, flow):
        expect(where.locator("img")).to_have_count(0)
        expect(where.locator("script")).to_have_count(0)
        expect(where.locator('a[href^="javascript"]')).to_have_count(0)
    assert page.evaluate("window.__pwned") is None  # type: ignore[attr-defined]
    assert page.errors == []  # type: ignore[attr-defined]
    shot(page, screenshots, "04-agent-markup-as-text")


def test_a_file_path_in_a_message_opens_a_text_preview(
    page: object, hive: Hive, screenshots: Path
) -> None:
    import trio

    from hyperhive.client import open_client

    notes = hive.state / "agents" / "alice" / "state" / "notes"
    notes.mkdir(parents=True, exist_ok=True)
    (notes / "plan.md").write_text("step 1: <b>greet</b>\nstep 2: rest\n")

    async def send_as_alice() -> None:
        async with open_client(hive.state / "agents" / "alice" / "run" / "hive.sock") as alice:
            body = "the plan is in /state/notes/plan.md, see there"
            await alice.call(wire.Send(to="operator", body=body))

    trio.run(send_as_alice)
    flow = page.locator("#flow-live")  # type: ignore[attr-defined]
    link = flow.locator("button.file-ref", has_text="/state/notes/plan.md")
    expect(link).to_have_count(1, timeout=10_000)
    link.click()
    dialog = page.locator("#logs-dialog")  # type: ignore[attr-defined]
    expect(dialog.locator("#logs-text")).to_have_text("step 1: <b>greet</b>\nstep 2: rest\n")
    shot(page, screenshots, "05-file-preview")
    dialog.locator("#logs-close").click()


def test_the_log_viewer_follows_an_agent_s_log(page: object) -> None:
    card = page.locator('.container[data-name="alice"]')  # type: ignore[attr-defined]
    card.locator('button[data-action="logs"]').click()
    text = page.locator("#logs-text")  # type: ignore[attr-defined]
    expect(text).to_contain_text("hyperhive agent serving: alice", timeout=10_000)
    page.locator("#logs-close").click()  # type: ignore[attr-defined]


def _payload_pid(state: Path, name: str) -> int:
    """The agent's own process: the sandbox init's child on bwrap, the pid file's otherwise."""
    pid = int(next((state / "containers").glob(f"*/{name}.pid")).read_text().split()[0])
    if Path(f"/proc/{pid}/comm").read_text().strip() != "bwrap":
        return pid
    for _ in range(2):  # bwrap -> the sandbox's init -> the payload
        pid = int(Path(f"/proc/{pid}/task/{pid}/children").read_text().split()[0])
    return pid


def test_a_killed_agent_shows_as_crashed_within_two_seconds(
    page: object, hive: Hive, screenshots: Path
) -> None:
    card = page.locator('.container[data-name="bob"]')  # type: ignore[attr-defined]
    expect(card).to_have_attribute("data-state", "running")
    os.kill(_payload_pid(hive.state, "bob"), signal.SIGKILL)
    killed = time.monotonic()
    expect(card).to_have_attribute("data-state", "crashed", timeout=2_000)
    assert time.monotonic() - killed < 2.0
    expect(page.locator("#banner")).to_contain_text("bob crashed")  # type: ignore[attr-defined]
    expect(card.locator(".detail")).to_contain_text("exit status")
    shot(page, screenshots, "06-agent-crashed")
    card.locator('button[data-action="restart"]').click()
    expect(card).to_have_attribute("data-state", "running", timeout=30_000)


def test_pausing_from_the_page_shows_on_the_card_and_in_list(
    page: object, hive: Hive, screenshots: Path
) -> None:
    card = page.locator('.container[data-name="alice"]')  # type: ignore[attr-defined]
    card.locator('button[data-action="pause"]').click()
    expect(card.locator(".chip", has_text="paused")).to_have_count(1, timeout=10_000)
    expect(card.locator(".why")).to_contain_text("paused by the operator", timeout=10_000)
    shot(page, screenshots, "07-agent-paused")
    listed = run_cli(hive.state, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {c["name"]: c for c in json.loads(listed.stdout)["containers"]}
    assert rows["alice"]["paused"]
    assert rows["alice"]["semantic"] == "paused"
    card.locator('button[data-action="resume"]').click()
    expect(card.locator(".chip", has_text="paused")).to_have_count(0, timeout=10_000)


def test_the_approvals_panel_says_when_nothing_waits(page: object) -> None:
    panel = page.locator("#approvals-panel")  # type: ignore[attr-defined]
    expect(panel).to_contain_text("nothing waits for approval")


def test_after_a_daemon_restart_the_page_reconnects_and_shows_nothing_twice(
    page: object, hive: Hive, screenshots: Path
) -> None:
    flow = page.locator("#flow-live")  # type: ignore[attr-defined]
    before = flow.locator(".row.msg").count()
    hive.stop()
    expect(page.locator("#conn")).not_to_have_text("live", timeout=10_000)  # type: ignore[attr-defined]
    hive.start_again()
    expect(page.locator("#conn")).to_have_text("live", timeout=15_000)  # type: ignore[attr-defined]
    assert run_cli(hive.state, "send", "alice", "after the restart").returncode == 0
    mine = flow.locator('.row.msg:has(.who:text-is("operator"))', has_text="after the restart")
    expect(mine).to_have_count(1, timeout=10_000)
    ids = flow.locator(".row.msg").evaluate_all("rows => rows.map(r => r.dataset.id)")
    assert len(ids) == len(set(ids))
    assert len(ids) > before
    expect(flow.locator(".row.msg", has_text="hello bob, I am alice")).to_have_count(1)
    texts = flow.locator(".row.sys").all_inner_texts()
    assert len(texts) == len(set(texts)) or all(re.search("joined|left|asks", t) for t in texts)
    shot(page, screenshots, "08-after-restart")
    assert page.errors == []  # type: ignore[attr-defined]
