"""The original's host-socket verbs, byte for byte as its existing clients send them.

Each request is one line on a connection of its own (the original's clients connect, write one
line, read one line, close), written exactly as the public desktop client's wire mirror pins
it, and every answer is decoded against the shapes that client documents: flat
``{"version":1,"ok":...,"error":...}`` envelopes, ``agents``, ``agent_statuses`` rows with the
original's thirteen fields, ``urls``. The shapes are spelled out here, not taken from
`hyperhive.wire`, so a change to our wire types that breaks those clients fails this test.
"""

from __future__ import annotations

import json
import os
import re
from typing import TYPE_CHECKING, Any

import pytest
import trio
import trio.testing

from hyperhive import wire
from hyperhive.containers.settings import ContainerSettings
from hyperhive.testing import FakeWallClock, open_test_hive
from hyperhive.testing.fake_containers import FakeAgent, FakeBackend

if TYPE_CHECKING:
    from pathlib import Path

    from hyperhive.testing import TestHive


@pytest.fixture
def clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


# -- the documented shapes (the original's HostResponse, AgentStatusRow, HiveUrls) -------------

ENVELOPE = {"version": int, "ok": bool, "error": (str, type(None))}
ROW = {
    "name": str,
    "running": bool,
    "failed": bool,
    "needs_update": bool,
    "needs_login": bool,
    "paused": bool,
    "parent": (str, type(None)),
    "deployed_sha": (str, type(None)),
    "active_model": (str, type(None)),
    "status_text": (str, type(None)),
    "status_set_at": (str, type(None)),
    "url": (str, type(None)),
    "pending_reminders": int,
}
URLS = {"domain": (str, type(None)), "home": (str, type(None)), "forge": (str, type(None)),
        "matrix": (str, type(None))}  # fmt: skip
RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def check(obj: dict[str, Any], shape: dict[str, Any]) -> None:
    """Every documented key is present with its documented type (more keys are allowed)."""
    for key, kind in shape.items():
        assert key in obj, (key, obj)
        assert isinstance(obj[key], kind), (key, obj[key])
        assert kind is not int or not isinstance(obj[key], bool), (key, obj[key])


def response(line: bytes) -> dict[str, Any]:
    assert line.endswith(b"\n"), line
    assert line.count(b"\n") == 1, line
    obj: dict[str, Any] = json.loads(line)
    check(obj, ENVELOPE)
    assert obj["version"] == 1
    assert (obj["error"] is None) == obj["ok"], obj
    return obj


def rows(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    assert obj["ok"], obj
    found = {}
    for row in obj["agent_statuses"]:
        check(row, ROW)
        if row["status_set_at"] is not None:
            assert RFC3339.match(row["status_set_at"]), row
        assert (row["status_text"] is None) == (row["status_set_at"] is None), row
        found[row["name"]] = row
    return found


async def one(hive: TestHive, line: bytes) -> dict[str, Any]:
    """One request on a connection of its own: write the line, read one line, close."""
    with trio.fail_after(60):
        async with await trio.open_unix_socket(os.fspath(hive.paths.admin_socket)) as stream:
            await stream.send_all(line)
            return response(await read_line(stream, bytearray()))


async def read_line(stream: trio.SocketStream, buffer: bytearray) -> bytes:
    while b"\n" not in buffer:
        chunk = await stream.receive_some(65536)
        assert chunk, "the daemon closed the connection"
        buffer += chunk
    end = buffer.index(b"\n") + 1
    line = bytes(buffer[:end])
    del buffer[:end]
    return line


# -- agents that say what they are doing -------------------------------------------------------


async def says_it_is_triaging(agent: FakeAgent) -> int:
    """A fake harness: sets its status on its own socket and reports an idle turn loop."""
    line = json.dumps({"cmd": "set_status", "text": "triaging the CI failures"}).encode() + b"\n"
    async with await trio.open_unix_socket(str(agent.spec.socket_dir / "hive.sock")) as s:
        await s.send_all(line)
        assert json.loads(await read_line(s, bytearray()))["ok"]
    report = wire.AgentReport("idle", 1700000000.0)
    (agent.spec.state_dir / wire.REPORT_FILE).write_bytes(wire.encode_report(report))
    (agent.spec.state_dir / wire.MODEL_FILE).write_text("claude-opus-4\n")
    await agent.stop_requested.wait()
    return 0


SETTINGS = ContainerSettings(ensure_manager=True, stop_grace=2.0, shutdown_grace=1.0)


async def test_the_originals_lines_get_the_originals_answers(
    short_tmp: Path, clock: trio.testing.MockClock
) -> None:
    backend = FakeBackend()
    backend.set_payload("alice", says_it_is_triaging)
    async with open_test_hive(
        short_tmp / "s", clock=FakeWallClock(), backend=backend, containers=SETTINGS
    ) as hive:
        await hive.handles.agents.wait_autostarted()
        hive.handles.urls.serve_home("http://127.0.0.1:7801/")
        await hive.handles.agents.spawn("alice")
        await hive.handles.agents.spawn("bob")
        (hive.paths.agent_dir("alice") / wire.DEPLOYED_SHA).write_text("0123456789abcdef01\n")
        await hive.handles.reminders.remind("bob", wire.Remind("check ci", delay_seconds=600))
        await trio.testing.wait_all_tasks_blocked()

        listed = await one(hive, b'{"cmd":"list"}\n')
        assert listed["ok"]
        assert listed["agents"] == ["alice", "bob", "manager"]

        roster = rows(await one(hive, b'{"cmd":"agent_status"}\n'))
        assert set(roster) == {"alice", "bob", "manager"}
        alice, bob = roster["alice"], roster["bob"]
        assert alice["running"]
        assert not alice["failed"]
        assert not alice["paused"]
        assert alice["status_text"] == "triaging the CI failures"
        assert alice["deployed_sha"] == "0123456789ab"
        assert alice["active_model"] == "claude-opus-4"
        assert alice["url"] == "http://127.0.0.1:7801/agent/alice/"
        assert bob["status_text"] is None
        assert bob["pending_reminders"] == 1
        assert roster["manager"]["parent"] is None

        urls = await one(hive, b'{"cmd":"urls"}\n')
        check(urls["urls"], URLS)
        assert urls["urls"] == {
            "domain": "127.0.0.1",
            "home": "http://127.0.0.1:7801/",
            "forge": None,
            "matrix": None,
        }

        paused = await one(hive, b'{"cmd":"set_paused","name":"alice","paused":true}\n')
        assert paused["ok"]
        assert rows(await one(hive, b'{"cmd":"agent_status"}\n'))["alice"]["paused"]
        again = await one(hive, b'{"cmd":"set_paused","name":"alice","paused":true}\n')
        assert again["ok"]  # idempotent both ways
        assert (await one(hive, b'{"cmd":"set_paused","name":"alice","paused":false}\n'))["ok"]

        stopped = await one(
            hive, b'{"cmd":"stop","scope":{"agent_names":["bob"]},"graceful":true}\n'
        )
        assert stopped["ok"]
        assert not rows(await one(hive, b'{"cmd":"agent_status"}\n'))["bob"]["running"]
        started = await one(hive, b'{"cmd":"start","scope":{"agent_names":["bob"]}}\n')
        assert started["ok"]
        assert rows(await one(hive, b'{"cmd":"agent_status"}\n'))["bob"]["running"]
        restarted = await one(hive, b'{"cmd":"restart","name":"bob"}\n')
        assert restarted["ok"]
        assert backend.calls.count(("start", "bob")) == 3

        # A scope naming nobody never means "everything": refused, nothing stops.
        for line in (
            b'{"cmd":"stop","scope":{"agent_names":[]},"graceful":false}\n',
            b'{"cmd":"stop","scope":{},"graceful":true}\n',
            b'{"cmd":"start","scope":{}}\n',
        ):
            refused = await one(hive, line)
            assert not refused["ok"], refused
            assert "names no agent" in refused["error"], refused
        refused = await one(hive, b'{"cmd":"start","scope":{"forge":true}}\n')
        assert not refused["ok"]
        assert "runs no forge" in refused["error"]
        refused = await one(hive, b'{"cmd":"stop","scope":{"agent_names":["bob","nobody"]}}\n')
        assert not refused["ok"]
        assert "'nobody'" in refused["error"]
        assert all(
            row["running"] for row in rows(await one(hive, b'{"cmd":"agent_status"}\n')).values()
        )

        unknown = await one(hive, b'{"cmd":"frobnicate"}\n')
        assert not unknown["ok"]
        assert unknown["error"].startswith("unknown cmd 'frobnicate'; known commands: ")


async def test_subscribe_agent_status_streams_each_changed_row(
    short_tmp: Path, clock: trio.testing.MockClock
) -> None:
    backend = FakeBackend()
    async with open_test_hive(
        short_tmp / "s", clock=FakeWallClock(), backend=backend, containers=SETTINGS
    ) as hive:
        await hive.handles.agents.wait_autostarted()
        await hive.handles.agents.spawn("alice")
        await hive.handles.agents.spawn("bob")
        await trio.testing.wait_all_tasks_blocked()
        with trio.fail_after(120):
            async with await trio.open_unix_socket(os.fspath(hive.paths.admin_socket)) as feed:
                await feed.send_all(b'{"cmd":"subscribe_agent_status"}\n')
                buffer = bytearray()
                ack = response(await read_line(feed, buffer))
                assert ack["ok"]
                assert "agent_statuses" not in ack

                assert (await one(hive, b'{"cmd":"set_paused","name":"bob","paused":true}\n'))["ok"]
                change = response(await read_line(feed, buffer))
                (row,) = rows(change).values()  # one row: the agent that changed
                assert (row["name"], row["paused"], row["running"]) == ("bob", True, True)

                await one(hive, b'{"cmd":"stop","scope":{"agent_names":["alice"]}}\n')
                seen = []
                while not seen or seen[-1]["running"]:
                    (row,) = rows(response(await read_line(feed, buffer))).values()
                    assert row["name"] == "alice"  # bob's row did not change again
                    seen.append(row)
                # A change the original's row does not carry (disk use, notes) sends nothing.
                await hive.tree.rescanner.rescan(None)
                await trio.testing.wait_all_tasks_blocked()
                with trio.move_on_after(30):
                    extra = await read_line(feed, buffer)
                    raise AssertionError(f"an unchanged row was sent: {extra!r}")
