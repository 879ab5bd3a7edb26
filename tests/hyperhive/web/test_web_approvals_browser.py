"""The approvals panel in Chromium, driving real approvals: approve deploys, deny records why.

A real daemon with its real dashboard (fake containers, real git, real sqlite) is served from
a thread while Playwright drives the page. The manager's side is its own socket and an
ordinary git in its proposed repo, as its model would do it.
"""

from __future__ import annotations

import json
import queue
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import trio

from hyperhive import wire
from hyperhive.client import open_client
from hyperhive.config import StatePaths
from hyperhive.config_repo.seed import RepoPaths
from hyperhive.testing.manager_git import ManagerGit

from .conftest import open_web

playwright_api = pytest.importorskip("playwright.sync_api")
from .test_web_browser import open_chromium  # noqa: E402

pytestmark = pytest.mark.slow
expect = playwright_api.expect
MORE_MEMORY = '[env]\nGREETING = "<b>hi</b>"\n\n[limits]\nmemory = "512M"\n'
NETWORK_OFF = "[network]\nenabled = false\n"


def _serve(ports: queue.Queue[Any], stop: threading.Event, root: Path) -> None:
    git = ManagerGit(root / "manager-home")

    async def main() -> None:
        async with open_web(root / "hive", agents=("alice",)) as web:
            async with open_client(web.hive.paths.manager_socket) as manager:
                await manager.call(wire.RequestInitConfig(name="alice"))
                repo = RepoPaths(web.hive.paths.configs_dir).proposed("alice")
                base = git(repo, "rev-parse", "HEAD")
                first = git.commit(repo, {"agent.toml": MORE_MEMORY}, "greet")
                await manager.call(
                    wire.RequestApplyCommit(
                        agent="alice", commit_ref=first, description="<i>greet</i> people"
                    )
                )
                git(repo, "reset", "--quiet", "--hard", base)
                second = git.commit(repo, {"agent.toml": NETWORK_OFF}, "cut the network")
                await manager.call(
                    wire.RequestApplyCommit(
                        agent="alice", commit_ref=second, description="no network"
                    )
                )
            ports.put((web.port, first, second))
            await trio.to_thread.run_sync(stop.wait)

    trio.run(main)


def _admin(state: Path, request: wire.Request[Any]) -> Any:
    async def call() -> Any:
        async with open_client(StatePaths(state).admin_socket) as client:
            return await client.call(request)

    return trio.run(call)


def _tags(state: Path, commit: str) -> set[str]:
    applied = RepoPaths(StatePaths(state).configs_dir).applied("alice")
    done = subprocess.run(
        ["git", "--git-dir", str(applied), "tag", "--points-at", commit],
        capture_output=True,
        text=True,
        check=True,
    )
    return set(done.stdout.split())


def test_approve_deploys_and_deny_records_its_reason(screenshots: Path) -> None:
    ports: queue.Queue[Any] = queue.Queue()
    stop = threading.Event()
    root = Path(tempfile.mkdtemp(prefix="hh-appr-", dir="/tmp"))
    state = root / "hive"
    server = threading.Thread(target=_serve, args=(ports, stop, root), daemon=True)
    server.start()
    try:
        port, first, second = ports.get(timeout=60)
        with open_chromium() as context:
            page = context.new_page()
            problems: list[str] = []
            page.on("pageerror", lambda exc: problems.append(str(exc)))
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.goto(f"http://127.0.0.1:{port}/")
            cards = page.locator(".approval")
            expect(cards).to_have_count(2)
            greet = page.locator('.approval[data-id="1"]')
            # the real diff, per line, beside the real capability diff; agent text stays text
            expect(greet.locator("td.d2h-ins:not(.d2h-code-linenumber)").first).to_contain_text(
                "GREETING"
            )
            expect(greet.locator(".caps")).to_contain_text("+ env GREETING")
            expect(greet.locator(".caps")).to_contain_text("- limit memory")
            expect(greet.locator(".text")).to_have_text("<i>greet</i> people")
            expect(page.locator("#banner")).to_contain_text("2 approvals")
            cut = page.locator('.approval[data-id="2"]')
            expect(cut.locator(".caps")).to_contain_text("- network egress")
            page.screenshot(path=str(screenshots / "08-approvals.png"))

            greet.locator("button.approve").click()
            expect(greet).to_have_count(0)
            deadline = time.monotonic() + 30
            while "deployed/1" not in _tags(state, first):
                assert time.monotonic() < deadline, "approval 1 was never deployed"
                time.sleep(0.1)
            config = _admin(state, wire.ShowConfig(name="alice"))
            assert (config.main, config.deploy) == (first, 1)
            expect(page.locator("#flow")).to_contain_text("alice runs config " + first[:12])

            cut.locator("button.deny").click()
            cut.locator("button.confirm-deny").click()  # no reason yet: refused on the page
            expect(page.locator("#toast")).to_contain_text("needs a reason")
            assert _admin(state, wire.ListPending()).approvals[0].status == "pending"
            cut.locator("textarea.reason").fill("keep alice online")
            page.screenshot(path=str(screenshots / "09-deny-reason.png"))
            cut.locator("button.confirm-deny").click()
            expect(cut).to_have_count(0)
            expect(page.locator("#approvals")).to_contain_text("nothing waits for approval")
            (row,) = [a for a in _admin(state, wire.ListPending(all=True)).approvals if a.id == 2]
            assert (row.status, row.note) == ("denied", "keep alice online")
            deadline = time.monotonic() + 30
            while "denied/2" not in _tags(state, second):
                assert time.monotonic() < deadline, "approval 2 was never tagged denied"
                time.sleep(0.1)
            expect(page.locator("#flow")).to_contain_text("approval #2 denied: keep alice online")
            assert problems == [], json.dumps(problems)
    finally:
        stop.set()
        server.join(30)
