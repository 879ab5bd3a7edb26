"""`hyperhive logout` as a user runs it: a real daemon, the real harness, the real CLI.

The process backend runs each agent's real harness; nothing runs `claude`, since no mail
arrives: the harness reports `needs login` from the credential it finds (or does not) at
start. Real processes, so the real clock: every wait polls `list --json` with a deadline.
"""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path

import pytest
import trio

from hyperhive import wire
from hyperhive.client import open_client
from hyperhive.config import StatePaths
from hyperhive.testing import DaemonProcess, cli_error, cli_ok

pytestmark = pytest.mark.slow

CREDENTIAL_FILE = "hyperhive-credentials.json"


def doing(state: Path, name: str) -> str:
    listed = json.loads(cli_ok(state, "list", "--json"))
    [view] = [v for v in listed["containers"] if v["name"] == name]
    return str(view["semantic"])


def wait_doing(state: Path, name: str, word: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while (seen := doing(state, name)) != word:
        assert time.monotonic() < deadline, f"{name} still {seen!r}, not {word!r}"
        time.sleep(0.3)


def events(state: Path) -> list[wire.EventPayload]:
    async def read() -> wire.HistoryReply:
        async with open_client(StatePaths(state).admin_socket) as client:
            return await client.call(wire.History(limit=1000))

    return [event.payload for event in trio.run(read).events]


def test_logout_takes_the_credential_back_and_the_agent_needs_login_again(
    short_tmp: Path,
) -> None:
    key = f"sk-ant-api03-{secrets.token_hex(16)}"
    alice_file = short_tmp / "agents" / "alice" / "state" / CREDENTIAL_FILE
    bob_file = short_tmp / "agents" / "bob" / "state" / CREDENTIAL_FILE
    serve = ("--backend", "process", "--no-manager", "--no-dashboard")
    with DaemonProcess(short_tmp, *serve) as daemon:
        cli_ok(short_tmp, "spawn", "alice")
        wait_doing(short_tmp, "alice", "needs login")

        cli_ok(short_tmp, "login", "alice", stdin=key + "\n")
        assert key in alice_file.read_text()  # the credential reached the agent's state dir
        wait_doing(short_tmp, "alice", "idle")

        out = cli_ok(short_tmp, "logout", "alice")
        assert out == (f"logged alice out: removed /state/{CREDENTIAL_FILE}; restarted it\n"), out
        assert not alice_file.exists()
        wait_doing(short_tmp, "alice", "needs login")
        assert "needs login" in cli_ok(short_tmp, "list")
        # Once more: nothing left to remove, and it is still restarted (it runs).
        again = cli_ok(short_tmp, "logout", "alice")
        assert again == "logged alice out: removed no credential file; restarted it\n"

        assert "unknown agent 'bob'; nothing was removed" in cli_error(short_tmp, "logout", "bob")

        # Without NAME: undo `login` without NAME, the hive's credential. Alice was logged
        # out by name, so the hive's credential is not hers; bob, spawned after, uses it.
        cli_ok(short_tmp, "login", stdin=key + "\n")
        cli_ok(short_tmp, "spawn", "bob")
        assert key in bob_file.read_text()
        wait_doing(short_tmp, "bob", "idle")
        assert doing(short_tmp, "alice") == "needs login"
        refused = cli_error(short_tmp, "logout")  # no terminal to confirm on
        assert "without confirmation; pass --yes" in refused
        assert bob_file.exists()

        out = cli_ok(short_tmp, "logout", "--yes")
        assert out.splitlines() == [
            "forgot the hive's credential",
            f"logged bob out: removed /state/{CREDENTIAL_FILE}; restarted it",
        ]
        assert not bob_file.exists()
        wait_doing(short_tmp, "bob", "needs login")
        assert not (short_tmp / "credentials" / "hive.json").exists()
        assert cli_ok(short_tmp, "logout", "--yes").splitlines() == [
            "no hive credential was stored",
            "no agent had a copy of it",
        ]

        credential_events = [
            e
            for e in events(short_tmp)
            if isinstance(e, wire.CredentialSaved | wire.CredentialRemoved)
        ]
        assert credential_events == [
            wire.CredentialSaved(hive=False, variables=("ANTHROPIC_API_KEY",), agents=("alice",)),
            wire.CredentialRemoved(hive=False, agents=("alice",)),
            wire.CredentialRemoved(hive=False, agents=("alice",)),
            wire.CredentialSaved(hive=True, variables=("ANTHROPIC_API_KEY",), agents=()),
            wire.CredentialRemoved(hive=True, agents=("bob",)),
        ]
        assert key not in repr(events(short_tmp))
    assert key not in daemon.log
