"""Issue 9, item 2: no request can crash an actor, let alone the daemon.

Each test is one of the issue's reproductions, sent as raw lines on the real sockets of a whole
in-process daemon. A refused request gets `ok:false` with a sentence naming the field; nothing
an agent sends counts against the supervisor's restart intensity, so after each test every actor
still has zero restarts and the daemon answers on another connection.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from trio.testing import MockClock

from hyperhive import wire
from hyperhive.testing import FakeWallClock, TestHive, open_test_hive

BEYOND_INT64 = 2**63  # one past sqlite's largest integer


@pytest.fixture
def clock() -> MockClock:
    # Plain autojump: the test hive runs its stores inline, so virtual time is exact.
    return trio.testing.MockClock(autojump_threshold=0)


@pytest.fixture
async def hive(short_tmp: Path) -> AsyncIterator[TestHive]:
    async with open_test_hive(
        short_tmp / "s", clock=FakeWallClock(), agents=("alice", "bob")
    ) as hive:
        yield hive


class Raw:
    """Writes whatever bytes it is given; reads raw response objects."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.reader = wire.LineReader(stream, max_bytes=64 * wire.MAX_LINE_BYTES)

    async def ask(self, request: dict[str, Any] | bytes) -> dict[str, Any]:
        line = request if isinstance(request, bytes) else json.dumps(request).encode() + b"\n"
        await self.stream.send_all(line)
        return await self.answer()

    async def answer(self) -> dict[str, Any]:
        with trio.fail_after(120):
            line = await self.reader.read_line()
        assert line is not None, "the daemon closed the connection"
        reply: dict[str, Any] = json.loads(line)
        return reply


@contextlib.asynccontextmanager
async def raw(path: Path) -> AsyncIterator[Raw]:
    async with await trio.open_unix_socket(os.fspath(path)) as stream:
        yield Raw(stream)


def restarts(hive: TestHive) -> dict[str, int]:
    def walk(node: wire.ActorInfo) -> list[wire.ActorInfo]:
        return [node, *(n for child in node.children for n in walk(child))]

    return {n.id: n.restarts for n in walk(hive.handles.status.status().tree) if n.restarts}


async def assert_still_serving(hive: TestHive) -> None:
    """Nothing restarted, and a fresh connection on each kind of socket is answered."""
    assert restarts(hive) == {}
    async with raw(hive.paths.admin_socket) as admin:
        assert (await admin.ask({"cmd": "status"}))["ok"] is True
    async with raw(hive.paths.agent_socket("bob")) as bob:
        assert (await bob.ask({"cmd": "whoami"}))["name"] == "bob"


@pytest.mark.parametrize("socket", ["agent", "manager"])
async def test_issue9_an_answer_id_past_64_bits_is_refused_four_times_over(
    clock: MockClock, hive: TestHive, socket: str
) -> None:
    # On main the id overflowed sqlite, the OverflowError crashed the questions actor, and the
    # fourth crash within 60 s exceeded the root's intensity: `serve` ended.
    path = hive.paths.agent_socket("alice") if socket == "agent" else hive.paths.manager_socket
    async with raw(path) as conn:
        for _ in range(4):
            reply = await conn.ask({"cmd": "answer", "id": BEYOND_INT64, "answer": "x"})
            assert reply == {
                "version": 1,
                "ok": False,
                "error": "bad answer: id must be from 1 to 9223372036854775807",
            }
    await assert_still_serving(hive)


@pytest.mark.parametrize("kind", ["question", "reminder"])
async def test_issue9_cancel_loose_end_with_an_id_past_64_bits_is_refused(
    clock: MockClock, hive: TestHive, kind: str
) -> None:
    async with raw(hive.paths.agent_socket("alice")) as conn:
        for _ in range(4):
            reply = await conn.ask({"cmd": "cancel_loose_end", "kind": kind, "id": BEYOND_INT64})
            assert reply["ok"] is False
            assert reply["error"] == (
                "bad cancel_loose_end: id must be from 1 to 9223372036854775807"
            )
    await assert_still_serving(hive)


@pytest.mark.parametrize(
    ("request_", "error"),
    [
        ({"cmd": "reminders", "limit": BEYOND_INT64}, "bad reminders: limit must be from 0 to"),
        ({"cmd": "reminders", "limit": 2**62}, "bad reminders: limit must be from 0 to"),
        ({"cmd": "questions", "limit": BEYOND_INT64}, "bad questions: limit must be from 0 to"),
        ({"cmd": "questions", "answered": True, "limit": 2**63 - 1}, "bad questions: limit"),
        ({"cmd": "inbox", "limit": BEYOND_INT64}, "bad inbox: limit must be from 0 to"),
        ({"cmd": "inbox", "limit": -(2**63) - 1}, "bad inbox: "),
        ({"cmd": "replay_dead", "id": BEYOND_INT64}, "bad replay_dead: id must be from 1 to"),
        ({"cmd": "drop_dead", "id": BEYOND_INT64}, "bad drop_dead: id must be from 1 to"),
        ({"cmd": "history", "limit": BEYOND_INT64}, "bad history: limit must be from 0 to"),
        ({"cmd": "history", "limit": -1}, "bad history: limit must be from 0 to"),
        ({"cmd": "logs", "name": "bob", "lines": BEYOND_INT64}, "bad logs: lines must be from"),
    ],
)
async def test_issue9_admin_limits_and_ids_past_64_bits_are_refused_by_name(
    clock: MockClock,
    hive: TestHive,
    request_: dict[str, Any],
    error: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # On main `reminders` and `questions` crashed their actors; `inbox`, `replay_dead` and
    # `drop_dead` answered "internal error: OverflowError ...".
    async with raw(hive.paths.admin_socket) as admin:
        for _ in range(4):
            reply = await admin.ask(request_)
            assert reply["ok"] is False
            assert reply["error"].startswith(error), reply["error"]
    await assert_still_serving(hive)
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


def deeply_nested(levels: int) -> bytes:
    return b'{"cmd":"send","to":"bob","body":' + b"[" * levels + b"]" * levels + b"}\n"


@pytest.mark.parametrize(
    ("line", "error"),
    [
        (deeply_nested(1100), "not valid JSON: nested more than 16 levels"),
        (deeply_nested(200), "request nested more than 16 levels; nothing was done"),
        (b'{"cmd":"answer","id":' + b"7" * 4301 + b',"answer":"x"}\n', "more than 4300 digits"),
        (b'{"cmd":"send","to":"bob","body":"\xff\xfe"}\n', "not valid JSON"),
    ],
    ids=["nested-1100", "nested-200", "4301-digits", "invalid-utf8"],
)
async def test_issue9_an_unparsable_line_is_answered_and_the_pipelined_lines_behind_it_too(
    clock: MockClock, hive: TestHive, line: bytes, error: str
) -> None:
    # On main the line dropped the connection without a reply: 0 of 41 answered.
    behind = [
        json.dumps({"cmd": "send", "to": "bob", "body": f"behind {i}"}).encode() + b"\n"
        for i in range(40)
    ]
    async with raw(hive.paths.agent_socket("alice")) as conn:
        await conn.stream.send_all(line + b"".join(behind))
        first = await conn.answer()
        rest = [await conn.answer() for _ in behind]
    assert first["ok"] is False
    assert error in first["error"]
    assert [r["ok"] for r in rest] == [True] * 40
    async with raw(hive.paths.agent_socket("bob")) as bob:
        got = await bob.ask({"cmd": "recv", "max": 32})
        assert [m["body"] for m in got["messages"]] == [f"behind {i}" for i in range(32)]
    await assert_still_serving(hive)


@pytest.mark.parametrize(
    ("request_", "error"),
    [
        ({"cmd": "send", "to": "b" * 65, "body": "x"}, "bad send: to is longer than 64"),
        ({"cmd": "ask", "question": "q" * 16385}, "bad ask: question is longer than 16384"),
        ({"cmd": "ask", "question": "q", "options": ["o"] * 33}, "options has more than 32"),
        ({"cmd": "ask", "question": "q", "options": ["o" * 1025]}, "options item is longer"),
        ({"cmd": "answer", "id": 1, "answer": "a" * 65537}, "bad answer: answer is longer"),
        ({"cmd": "remind", "message": "m", "file_path": "f" * 4097}, "file_path is longer"),
        ({"cmd": "remind", "message": "m", "delay_seconds": 1e300}, "delay_seconds must be"),
        ({"cmd": "recv", "max": BEYOND_INT64}, "bad recv: max must be from 1 to 10000"),
        ({"cmd": "cancel_loose_end", "kind": "k" * 33, "id": 1}, "kind is longer than 32"),
    ],
)
async def test_issue9_every_string_list_and_number_has_a_bound(
    clock: MockClock, hive: TestHive, request_: dict[str, Any], error: str
) -> None:
    async with raw(hive.paths.agent_socket("alice")) as conn:
        reply = await conn.ask(request_)
    assert reply["ok"] is False
    assert error in reply["error"], reply["error"]
    await assert_still_serving(hive)


async def test_issue9_a_bug_inside_an_actor_is_one_internal_error_not_a_crash(
    clock: MockClock,
    hive: TestHive,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from hyperhive.core import questions

    def broken(*_: object) -> str:
        raise OverflowError("Python int too large to convert to SQLite INTEGER")

    monkeypatch.setattr(questions, "validate_answer", broken)
    async with raw(hive.paths.agent_socket("alice")) as conn:
        for _ in range(5):
            reply = await conn.ask({"cmd": "answer", "id": 1, "answer": "x"})
            assert reply == {"version": 1, "ok": False, "error": "internal error (logged)"}
    await assert_still_serving(hive)
    logged = [r for r in caplog.records if r.levelno >= logging.ERROR]
    # Once per request, with its traceback; the caller never sees the exception's text.
    assert len(logged) == 5
    assert all(r.exc_info and r.exc_info[0] is OverflowError for r in logged)
