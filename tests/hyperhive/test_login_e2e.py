"""`hyperhive login` end to end: the real daemon, bwrap, the real harness and `claude`, a gateway.

The scripted model API stands in for a gateway: it listens in a network namespace of its own
(`hyperhive.testing.netns`), which the walled agents reach the way they would reach a real
gateway, out through slirp4netns and the host's routing (docs/security.md: never the host's
loopback). Nothing else is set up: the daemon's environment holds no credential, and the agents
get `ANTHROPIC_BASE_URL` and the key only from `hyperhive login`, typed on stdin.

What a user would notice: an agent waiting for a login takes its pending mail the moment it is
logged in, without a restart; an agent spawned afterwards completes a turn with no other setup;
and the key is nowhere it should not be: not in the daemon's log, any process's argv (sampled
all along), the events, the agents' logs, their config, or any file of the state directory but
the daemon's store and each agent's own credentials file.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import trio

from hyperhive.testing import DaemonProcess, run_cli
from hyperhive.testing.model_api import ToolCall
from hyperhive.testing.walled_claude import open_walled_api, walled_claude_problem

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(walled_claude_problem() is not None, reason=str(walled_claude_problem())),
]


class ArgvWatch:
    """Samples every process's command line in a thread; remembers any that holds `needle`."""

    def __init__(self, needle: str) -> None:
        self._needle = needle.encode()
        self.seen: list[str] = []
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ArgvWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.samples += 1
            for entry in Path("/proc").iterdir():
                if not entry.name.isdigit():
                    continue
                try:
                    argv = (entry / "cmdline").read_bytes()
                except OSError:
                    continue
                if self._needle in argv:
                    self.seen.append(argv.replace(b"\0", b" ").decode(errors="replace"))


def cli(state: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """`hyperhive ARGS --state-dir STATE`, the text on stdin (never argv) when given."""
    if stdin is None:
        return run_cli(state, *args, timeout=60)
    return subprocess.run(
        [sys.executable, "-m", "hyperhive", *args, "--state-dir", str(state)],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def run(state: Path, *args: str, stdin: str | None = None) -> str:
    done = await trio.to_thread.run_sync(lambda: cli(state, *args, stdin=stdin))
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


async def admin(state: Path, request: dict[str, object]) -> str:
    """One raw request on the admin socket; the answer line as text."""
    async with await trio.open_unix_socket(os.fspath(state / "admin.sock")) as stream:
        await stream.send_all(json.dumps(request).encode() + b"\n")
        answer = b""
        while not answer.endswith(b"\n"):
            chunk = await stream.receive_some(1 << 20)
            assert chunk, "the daemon closed the connection"
            answer += chunk
    assert json.loads(answer)["ok"], answer
    return answer.decode()


async def row(state: Path, name: str) -> dict[str, object]:
    listed = json.loads(await run(state, "list", "--json"))
    [found] = [view for view in listed["containers"] if view["name"] == name]
    return dict(found)


async def operator_mail(state: Path, count: int) -> list[tuple[str, str]]:
    """Wait until the operator's inbox holds `count` messages; (sender, body) of each."""
    while True:
        inbox = json.loads(await run(state, "inbox", "--json"))
        mail = [(m["from"], m["body"]) for m in inbox["messages"]]
        if len(mail) >= count:
            return sorted(mail)
        await trio.sleep(0.5)


async def test_login_gives_every_agent_the_gateway_and_keeps_the_key_to_them(
    short_tmp: Path,
) -> None:
    key = f"sk-ant-api03-{secrets.token_hex(16)}"
    state = short_tmp / "hive"
    with trio.fail_after(240), ArgvWatch(key) as argv_watch:
        async with open_walled_api() as api:
            greet = {"to": "operator", "body": "hello through the gateway"}
            api.fail_on_tool_errors().on("greet the operator", ToolCall("mcp__hive__send", greet))
            here = {"to": "operator", "body": "bob is here"}
            api.on("say you are here", ToolCall("mcp__hive__send", here))
            daemon = DaemonProcess(state, "--backend", "bwrap", "--no-manager", "--no-dashboard")
            await trio.to_thread.run_sync(daemon.start)
            try:
                await run(state, "spawn", "alice")
                while (await row(state, "alice"))["semantic"] != "needs login":
                    await trio.sleep(0.3)
                await run(state, "send", "alice", "please greet the operator")
                assert (await row(state, "alice"))["pending_messages"] == 1

                said = await run(
                    state,
                    "login",
                    stdin=f"ANTHROPIC_BASE_URL={api.base_url}\nANTHROPIC_API_KEY={key}\n"
                    "CLAUDE_CODE_MAX_RETRIES=0\n",
                )
                assert "alice" in said
                assert key not in said
                assert await operator_mail(state, 1) == [("alice", "hello through the gateway")]

                # Spawned after the login: nothing else to do, it just works.
                await run(state, "spawn", "bob")
                await run(state, "send", "bob", "please say you are here")
                assert await operator_mail(state, 2) == [
                    ("alice", "hello through the gateway"),
                    ("bob", "bob is here"),
                ]
                used = {r.headers.get("x-api-key") for r in api.requests} - {None}
                assert used == {key}  # the gateway saw the key it was given, and only it
                history = await admin(state, {"cmd": "history", "limit": 5000})
                logs = [await run(state, "logs", name, "--raw") for name in ("alice", "bob")]
            finally:
                await trio.to_thread.run_sync(daemon.__exit__, None, None, None)
    assert argv_watch.samples > 10
    assert argv_watch.seen == []
    assert key not in daemon.log
    assert key not in history
    for log in logs:
        assert key not in log
    holders = sorted(
        str(path.relative_to(state))
        for path in state.rglob("*")
        if path.is_file() and not path.is_symlink() and key.encode() in _bytes(path)
    )
    assert holders == [
        "agents/alice/state/hyperhive-credentials.json",
        "agents/bob/state/hyperhive-credentials.json",
        "credentials/hive.json",
    ]
    for name in ("alice", "bob"):
        given = state / "agents" / name / "state" / "hyperhive-credentials.json"
        assert given.stat().st_mode & 0o777 == 0o600
        assert given.stat().st_uid == (state / "agents" / name / "state").stat().st_uid
    assert (state / "credentials").stat().st_mode & 0o777 == 0o700


def _bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""
