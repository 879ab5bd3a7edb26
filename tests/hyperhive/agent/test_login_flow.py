"""Driving ``claude auth login`` over pipes: its URL shown, the pasted code fed back.

The real command needs Anthropic's servers, so a stand-in plays it: a real child process on
real pipes that prints a login address between terminal escapes, waits for a code on stdin
and exits 0 (storing a file, as claude stores its credential) only for the right one. Real
time, each test bounded.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

import pytest
import trio

from hyperhive.agent.login_flow import LoginFlowDriver, find_url
from hyperhive.errors import BadRequest

if TYPE_CHECKING:
    from pathlib import Path

URL = "https://claude.ai/oauth/authorize?code=true&client_id=abc&state=xyz"
_STAND_IN = f"""
import sys
sys.stdout.write("\\x1b[2mBrowser didn't open? Use the url below to sign in:\\x1b[0m\\n\\n")
sys.stdout.write("\\x1b]8;;{URL}\\x07{URL}\\x1b]8;;\\x07\\n\\nPaste code here if prompted > ")
sys.stdout.flush()
code = sys.stdin.readline().strip()
if code != "right-code":
    print("OAuth error: invalid code")
    sys.exit(1)
open("credentials.json", "w").write("{{}}")
print("Login successful.")
"""


def _driver(tmp_path: Path, done: list[bool], script: str = _STAND_IN) -> LoginFlowDriver:
    env = {"PATH": os.environ.get("PATH", "")}
    command = [sys.executable, "-c", script]
    return LoginFlowDriver(command, env, str(tmp_path), lambda: done.append(True))


async def _until(driver: LoginFlowDriver, *statuses: str) -> None:
    while driver.state().status not in statuses:
        await driver.wait_changed()


def test_the_url_is_found_between_terminal_escapes() -> None:
    assert find_url(f"\x1b[1mOpen\x1b[0m {URL}.\n") == URL
    assert find_url(f"\x1b]8;;{URL}\x07{URL}\x1b]8;;\x07") == URL
    assert find_url("no address here") is None


async def test_the_page_shows_the_url_and_the_right_code_logs_the_agent_in(
    tmp_path: Path,
) -> None:
    done: list[bool] = []
    driver = _driver(tmp_path, done)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            with pytest.raises(BadRequest, match="start one first"):
                await driver.submit("right-code")
            driver.start(nursery)
            assert driver.state().status == "starting"
            await _until(driver, "waiting_code")
            assert driver.state().url == URL
            with pytest.raises(BadRequest, match="one line"):
                await driver.submit("right-code\nrm -rf /")
            await driver.submit("  right-code ")
            assert driver.state().status == "checking"
            await _until(driver, "done", "failed")
    assert driver.state().status == "done"
    assert done == [True]
    assert (tmp_path / "credentials.json").exists()


async def test_a_wrong_code_fails_with_the_exit_status_and_a_new_start_replaces_a_flow(
    tmp_path: Path,
) -> None:
    done: list[bool] = []
    driver = _driver(tmp_path, done)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            driver.start(nursery)
            await _until(driver, "waiting_code")
            await driver.submit("wrong-code")
            await _until(driver, "done", "failed")
            assert driver.state().status == "failed"
            assert "exited with status 1" in driver.state().detail
            assert driver.state().url == URL  # still shown, to start again from
            driver.start(nursery)
            await _until(driver, "waiting_code")
            driver.start(nursery)  # the waiting one is ended, a new one waits
            await _until(driver, "waiting_code")
            await driver.submit("right-code")
            await _until(driver, "done", "failed")
    assert driver.state().status == "done"
    assert done == [True]


async def test_a_command_that_cannot_run_says_so(tmp_path: Path) -> None:
    driver = LoginFlowDriver([str(tmp_path / "no-claude")], {}, str(tmp_path), lambda: None)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            driver.start(nursery)
            await _until(driver, "done", "failed")
    assert driver.state().status == "failed"
    assert "cannot run claude auth login" in driver.state().detail
