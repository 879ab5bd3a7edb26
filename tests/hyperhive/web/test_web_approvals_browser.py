"""The approvals panel in Chromium, over the interface the approval flow implements.

The approval flow itself (config repos, deploys) is issue 12's; until it is wired into the
daemon, this drives the panel against a desk that records what the page asked of it, on a
real daemon with its real dashboard, served from a thread while Playwright drives the page.
"""

from __future__ import annotations

import queue
import tempfile
import threading
from pathlib import Path

import attrs
import pytest
import trio

from hyperhive.errors import Conflict, NotFound
from hyperhive.web import ApprovalView

from .conftest import open_web

playwright_api = pytest.importorskip("playwright.sync_api")
from .test_web_browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

pytestmark = pytest.mark.slow
expect = playwright_api.expect
DIFF = """diff --git a/agent.toml b/agent.toml
--- a/agent.toml
+++ b/agent.toml
@@ -1,3 +1,3 @@
 model = "sonnet"
-network = false
+network = true
 memory_max = "4G"
"""


class Desk:
    def __init__(self) -> None:
        self.approvals = {
            id: ApprovalView(
                id=id,
                agent=agent,
                kind="apply_commit",
                status="pending",
                description=f"<b>{agent}</b> wants the network",
                commit_ref=f"{id:x}" * 40,
                requested_at=1.0,
                diff=DIFF,
                capabilities=("+ network on",),
            )
            for id, agent in ((1, "alice"), (2, "bob"))
        }
        self.calls: list[tuple[str, int, str]] = []

    async def open(self) -> list[ApprovalView]:
        return [a for a in self.approvals.values() if a.status == "pending"]

    async def approve(self, id: int) -> ApprovalView:
        return self._decide(id, "approved", "")

    async def deny(self, id: int, reason: str) -> ApprovalView:
        return self._decide(id, "denied", reason)

    def _decide(self, id: int, status: str, reason: str) -> ApprovalView:
        if id not in self.approvals:
            raise NotFound(f"no approval {id}")
        if self.approvals[id].status != "pending":
            raise Conflict(f"approval {id} is {self.approvals[id].status}")
        self.calls.append((status, id, reason))
        self.approvals[id] = attrs.evolve(self.approvals[id], status=status, note=reason or None)
        return self.approvals[id]


def _serve(desk: Desk, ports: queue.Queue[int], stop: threading.Event, root: Path) -> None:
    async def main() -> None:
        async with open_web(root / "hive", approvals=desk, agents=("alice", "bob")) as web:
            ports.put(web.port)
            await trio.to_thread.run_sync(stop.wait)

    trio.run(main)


def test_approve_and_deny_with_a_reason_on_the_page(screenshots: Path) -> None:
    desk = Desk()
    ports: queue.Queue[int] = queue.Queue()
    stop = threading.Event()
    root = Path(tempfile.mkdtemp(prefix="hh-appr-", dir="/tmp"))
    server = threading.Thread(target=_serve, args=(desk, ports, stop, root), daemon=True)
    server.start()
    try:
        port = ports.get(timeout=30)
        profile = tempfile.mkdtemp(prefix="hh-chromium-", dir="/tmp")
        with playwright_api.sync_playwright() as p:
            context = p.chromium.launch_persistent_context(
                profile,
                executable_path=str(CHROMIUM),
                args=CHROMIUM_ARGS,
                headless=True,
                viewport={"width": 1500, "height": 950},
            )
            page = context.new_page()
            problems: list[str] = []
            page.on("pageerror", lambda exc: problems.append(str(exc)))
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.goto(f"http://127.0.0.1:{port}/")
            cards = page.locator(".approval")
            expect(cards).to_have_count(2)
            alice = page.locator('.approval[data-id="1"]')
            # the diff, per line, beside the capability diff; agent text stays text
            expect(alice.locator("td.d2h-ins:not(.d2h-code-linenumber)")).to_contain_text(
                "network = true"
            )
            expect(alice.locator("td.d2h-del:not(.d2h-code-linenumber)")).to_contain_text(
                "network = false"
            )
            expect(alice.locator(".caps")).to_have_text("+ network on")
            expect(alice.locator(".text")).to_have_text("<b>alice</b> wants the network")
            expect(page.locator("#banner")).to_contain_text("2 approvals")
            page.screenshot(path=str(screenshots / "08-approvals.png"))
            alice.locator("button.approve").click()
            expect(alice).to_have_count(0)
            assert desk.calls == [("approved", 1, "")]
            bob = page.locator('.approval[data-id="2"]')
            bob.locator("button.deny").click()
            bob.locator("button.confirm-deny").click()  # no reason yet: refused on the page
            expect(page.locator("#toast")).to_contain_text("needs a reason")
            assert desk.calls == [("approved", 1, "")]
            bob.locator("textarea.reason").fill("no network for bob")
            page.screenshot(path=str(screenshots / "09-deny-reason.png"))
            bob.locator("button.confirm-deny").click()
            expect(bob).to_have_count(0)
            assert desk.calls[-1] == ("denied", 2, "no network for bob")
            expect(page.locator("#approvals")).to_contain_text("nothing waits for approval")
            assert problems == []
            context.close()
    finally:
        stop.set()
        server.join(30)
