"""Who spawned an agent and an update waiting for it, where the operator looks: `hyperhive
list` and the dashboard's agent card (Debian's Chromium, headless, Playwright).

A real daemon (the probe on the process backend, real git, real sqlite) with its real
dashboard. The manager's side is its own socket and an ordinary git in its proposed repo: it
asks to spawn bob, and to deploy a config to alice whose build waits on a gate file, so the
update stays pending until the test opens the gate. Real processes, so the real clock; every
wait has a deadline.
"""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path
from typing import Any

import pytest
import trio

from hyperhive import wire
from hyperhive.client import open_client
from hyperhive.config import StatePaths
from hyperhive.config_repo.seed import RepoPaths
from hyperhive.testing import DaemonProcess, cli_ok
from hyperhive.testing.conformance import PROBE_COMMAND
from hyperhive.testing.manager_git import ManagerGit

playwright_api = pytest.importorskip("playwright.sync_api")
from .test_web_browser import free_port, open_chromium  # noqa: E402

pytestmark = pytest.mark.slow
expect = playwright_api.expect


def call(socket: Path, request: wire.Request[Any]) -> Any:
    async def talk() -> Any:
        async with open_client(socket) as client:
            return await client.call(request)

    return trio.run(talk)


def rows(state: Path) -> dict[str, dict[str, Any]]:
    listed = json.loads(cli_ok(state, "list", "--json"))
    return {view["name"]: view for view in listed["containers"]}


def wait_for(check: Any, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def list_line(state: Path, name: str) -> str:
    """`name`'s line of the `list` table (a wide terminal: rich folds nothing)."""
    [line] = [line for line in cli_ok(state, "list").splitlines() if f"│ {name} " in line]
    return line


def test_list_and_the_card_show_who_spawned_an_agent_and_a_pending_update(
    short_tmp: Path, screenshots: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    state = short_tmp / "hive"
    gate = short_tmp / "gate"
    git = ManagerGit(short_tmp / "manager-home")
    port = free_port()
    serve = ("--backend", "process", "--agent-command", shlex.join(PROBE_COMMAND), "--no-manager")
    env = {"HYPERHIVE_DASHBOARD": f"127.0.0.1:{port}"}
    manager = StatePaths(state).manager_socket
    repos = RepoPaths(StatePaths(state).configs_dir)
    with DaemonProcess(state, *serve, env=env):
        cli_ok(state, "spawn", "alice")
        call(manager, wire.RequestInitConfig(name="bob"))
        sha = git.commit(repos.proposed("bob"), {"agent.toml": '[env]\nROLE = "helper"\n'}, "bob")
        spawn = call(manager, wire.RequestSpawn(name="bob", commit_ref=sha, description="bob"))
        cli_ok(state, "approve", str(spawn.id))
        wait_for(lambda: rows(state).get("bob", {}).get("state") == "running")

        call(manager, wire.RequestInitConfig(name="alice"))
        build = f'[build]\ncommands = ["while [ ! -e {gate} ]; do sleep 0.05; done"]\n'
        sha = git.commit(repos.proposed("alice"), {"agent.toml": build}, "gated")
        update = call(
            manager, wire.RequestApplyCommit(agent="alice", commit_ref=sha, description="gated")
        )
        cli_ok(state, "approve", str(update.id))
        wait_for(lambda: rows(state)["alice"]["needs_update"])

        seen = rows(state)
        assert (seen["alice"]["parent"], seen["bob"]["parent"]) == (None, "manager")
        assert not seen["bob"]["needs_update"]
        alice, bob = list_line(state, "alice"), list_line(state, "bob")
        assert "update pending" in alice
        assert "spawned by" not in alice
        assert "spawned by manager" in bob
        assert "update pending" not in bob
        roster = call(StatePaths(state).admin_socket, wire.GetAgentStatus()).agent_statuses
        by_name = {row.name: row for row in roster}
        assert (by_name["alice"].needs_update, by_name["alice"].parent) == (True, None)
        assert (by_name["bob"].needs_update, by_name["bob"].parent) == (False, "manager")

        with open_chromium() as context:
            page = context.new_page()
            problems: list[str] = []
            page.on("pageerror", lambda exc: problems.append(str(exc)))
            page.set_default_timeout(15_000)
            page.goto(f"http://127.0.0.1:{port}/")
            alice_card = page.locator('.container[data-name="alice"]')
            bob_card = page.locator('.container[data-name="bob"]')
            alice_chips = alice_card.locator(".title .chip")
            bob_chips = bob_card.locator(".title .chip")
            expect(alice_chips.filter(has_text="update pending")).to_have_count(1)
            expect(bob_chips.filter(has_text="spawned by manager")).to_have_count(1)
            expect(alice_chips.filter(has_text="spawned by")).to_have_count(0)
            expect(bob_chips.filter(has_text="update pending")).to_have_count(0)
            page.screenshot(path=str(screenshots / "origin-and-update.png"))

            gate.touch()  # the build ends, the deploy finishes: the card follows live
            expect(alice_chips.filter(has_text="update pending")).to_have_count(0, timeout=60_000)
            expect(bob_chips.filter(has_text="spawned by manager")).to_have_count(1)
            assert problems == []
        wait_for(lambda: not rows(state)["alice"]["needs_update"])
        assert "update pending" not in list_line(state, "alice")
