"""`hyperhive questions`, `answer` and `reminders` as a user runs them, against a real daemon.

An agent's side is played by a client on its real socket; the operator's side is the real CLI
in a child process. Real time, so every wait has a hard bound.
"""

from __future__ import annotations

import json
import subprocess
from functools import partial
from typing import TYPE_CHECKING

import pytest
import trio

from hyperhive import wire
from hyperhive.client import open_client
from hyperhive.config import StatePaths
from hyperhive.testing import DaemonProcess, run_cli

if TYPE_CHECKING:
    from pathlib import Path

    from hyperhive.client import Client

pytestmark = pytest.mark.slow


async def cli(state_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = await trio.to_thread.run_sync(partial(run_cli, state_dir, *args))
    assert "Traceback" not in result.stderr
    return result


async def helper_events(client: Client) -> list[wire.HelperEvent]:
    reply = await client.call(wire.Recv(wait_seconds=10, max=8))
    await client.call(wire.AckTurn())
    return [wire.decode_helper_event(m.body) for m in reply.messages]


async def test_the_operator_lists_and_answers_questions(
    short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # a wide terminal: rows are not wrapped
    paths = StatePaths(short_tmp)
    env = {"HYPERHIVE_OPERATOR_PRONOUNS": "she/her"}
    with trio.fail_after(60), DaemonProcess(short_tmp, "--backend", "none", env=env):
        for name in ("alice", "bob"):
            assert (await cli(short_tmp, "register", name)).returncode == 0
        async with open_client(paths.agent_socket("alice")) as alice:
            me = await alice.call(wire.Whoami())
            assert (me.name, me.role, me.pronouns) == ("alice", "agent", "she/her")

            ask = wire.Ask(question="ship the release?", options=("yes", "no"), ttl_seconds=3600)
            asked = await alice.call(ask)
            peer = await alice.call(wire.Ask(question="peer secret?", to="bob"))

            table = await cli(short_tmp, "questions")
            assert table.returncode == 0, table.stderr
            assert "ship the release?" in table.stdout
            assert "yes / no" in table.stdout
            assert "peer secret?" not in table.stdout
            listed = json.loads((await cli(short_tmp, "questions", "--json")).stdout)
            assert [q["id"] for q in listed["questions"]] == [asked.id]
            assert listed["questions"][0]["target"] == "operator"

            answered = await cli(short_tmp, "answer", str(asked.id), "yes, ship it")
            assert answered.returncode == 0, answered.stderr
            assert f"answered #{asked.id} for alice" in answered.stdout
            assert await helper_events(alice) == [
                wire.QuestionAnswered(asked.id, "ship the release?", "yes, ship it", "operator")
            ]
            assert "ship the release?" not in (await cli(short_tmp, "questions")).stdout
            history = await cli(short_tmp, "questions", "--answered")
            assert "yes, ship it" in history.stdout

            again = await cli(short_tmp, "answer", str(asked.id), "no")
            assert again.returncode == 1
            assert "already answered (by operator)" in again.stderr
            missing = await cli(short_tmp, "answer", "999", "x")
            assert missing.returncode == 1
            assert "no question #999" in missing.stderr
            # The operator may override a peer question by its id.
            override = await cli(short_tmp, "answer", str(peer.id), "ask me instead")
            assert override.returncode == 0, override.stderr


async def test_the_operator_sees_and_cancels_reminders(
    short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # a wide terminal: rows are not wrapped
    paths = StatePaths(short_tmp)
    with trio.fail_after(60), DaemonProcess(short_tmp, "--backend", "none"):
        assert (await cli(short_tmp, "register", "alice")).returncode == 0
        async with open_client(paths.agent_socket("alice")) as alice:
            later = await alice.call(
                wire.Remind(message="check the nightly build", delay_seconds=3600)
            )
            now = await alice.call(
                wire.Remind(message="right away", delay_seconds=0, file_path="notes/now.md")
            )
            assert await helper_events(alice) == [
                wire.ReminderDue(
                    now.id,
                    f"reminder #{now.id}: its message (10 bytes) is in /state/notes/now.md",
                    "/state/notes/now.md",
                )
            ]
            assert (paths.agent_state_dir("alice") / "notes" / "now.md").read_text() == (
                "right away"
            )
            assert (await alice.call(wire.Whoami())).pending_reminders == 1

            table = await cli(short_tmp, "reminders")
            assert table.returncode == 0, table.stderr
            assert "check the nightly build" in table.stdout
            assert "pending" in table.stdout
            assert "right away" not in table.stdout
            every = json.loads((await cli(short_tmp, "reminders", "--delivered", "--json")).stdout)
            states = {r["id"]: r["state"] for r in every["reminders"]}
            assert states == {later.id: "pending", now.id: "delivered"}

            cancelled = await cli(short_tmp, "reminders", "--cancel", str(later.id))
            assert cancelled.returncode == 0, cancelled.stderr
            listed = json.loads((await cli(short_tmp, "reminders", "--json")).stdout)
            assert listed["reminders"] == []
            ends = await alice.call(wire.GetLooseEnds())
            assert ends.reminders == ()
