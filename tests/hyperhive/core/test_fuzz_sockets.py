"""Issue 9: a fuzz run of generated request lines against the admin, manager and agent sockets.

The lines are derived from the wire types (`wire.REQUESTS` and each field's declared
`wire.Bound`): for every command and every field, the values at and just past its bounds,
integers past 64 bits and past 4300 digits, every wrong JSON type, deep nesting, invalid UTF-8,
lone surrogates, oversized strings and lists, unknown and missing keys, and whole lines of
garbage. They are pipelined in batches on one connection per socket while a probe on another
connection keeps asking the daemon something simple.

What must hold throughout: every line gets exactly one well-formed answer, in order; no answer
is an internal error; no actor restarts; nothing is logged at ERROR; the probe is answered every
time. The run is seeded, so a failure reproduces.
"""

from __future__ import annotations

import json
import logging
import os
import random
import types
import typing
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
import trio.testing
from trio.testing import MockClock

from hyperhive import wire
from hyperhive.testing import FakeWallClock, TestHive, open_test_hive

pytestmark = pytest.mark.slow

SEED = 9
BATCH = 64
# Turns the connection into an event feed: it takes no more requests, so it is fuzzed alone.
FEEDS = {"subscribe", "subscribe_agent_status"}
OUTCOMES: dict[bool, int] = {True: 0, False: 0}


@pytest.fixture
def clock() -> MockClock:
    # Plain autojump: the test hive runs its stores inline, so virtual time is exact.
    return trio.testing.MockClock(autojump_threshold=0)


@pytest.fixture
async def hive(short_tmp: Path) -> AsyncIterator[TestHive]:
    async with open_test_hive(short_tmp / "s", clock=FakeWallClock(), agents=("alice", "bob")) as h:
        yield h


# --- the generator ----------------------------------------------------------------------------

WRONG_TYPES: list[Any] = [None, True, False, 0, -1, 1.5, "", "text", [], [1], {}, {"a": 1}]
HUGE_INTS = [2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64, 2**64 + 1, 10**100, -(10**100)]


def base_kind(hint: Any) -> Any:
    """int, float, str, bool or tuple for a field's type (its non-None half if optional)."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = args[0]
    return typing.get_origin(hint) or hint


def valid_value(kind: Any, bound: wire.Bound | None) -> Any:
    if kind is bool:
        return False
    if kind in (int, float):
        return kind(bound.low) if bound is not None and bound.low is not None else kind(0)
    if kind is tuple:
        return ["a"]
    return "x"


def hostile_values(kind: Any, bound: wire.Bound | None) -> Iterator[Any]:
    """Every value at or past the field's edge, then every wrong type."""
    if kind in (int, float) and bound is not None and bound.low is not None:
        low, high = bound.low, bound.high
        assert high is not None
        yield from (low, high, low - 1, high + 1, low - 0.5, high + 0.5)
        if kind is int:
            yield from (int(low), int(high), int(low) - 1, int(high) + 1)
    if kind in (int, float):
        yield from HUGE_INTS
        yield from (1e308, -1e308, 5e-324)
    if kind is str or kind is tuple:
        chars = bound.chars if bound is not None and bound.chars is not None else 64
        yield from ("", " ", "\x00", "\ud800", "a\udfffb", "🙂" * 3, "[/x]", "\x1b]0;t\x07")
        yield from ("x" * chars, "x" * (chars + 1), "é" * (chars + 1))
    if kind is tuple:
        items = bound.items if bound is not None and bound.items is not None else 8
        yield from (["a"] * items, ["a"] * (items + 1), [str(i) for i in range(items)])
        yield from ([1], [None], [["a"]], [{"a": "b"}], "ab")
    yield from WRONG_TYPES
    yield nested(20)
    yield nested(600)


def nested(levels: int) -> Any:
    value: Any = []
    for _ in range(levels):
        value = [value]
    return value


def encode(obj: Any) -> bytes:
    """JSON as Python writes it: lone surrogates as \\u escapes, big integers verbatim."""
    return json.dumps(obj, ensure_ascii=True).encode() + b"\n"


def command_lines(cmd: str, cls: type[Any], rng: random.Random) -> Iterator[bytes]:
    hints = typing.get_type_hints(cls, vars(wire))
    bounds = wire.field_bounds(cls)
    fields = {f.name: (base_kind(hints[f.name]), bounds.get(f.name)) for f in attrs.fields(cls)}
    baseline = {name: valid_value(kind, bound) for name, (kind, bound) in fields.items()}
    yield encode({"cmd": cmd, **baseline})
    yield encode({"cmd": cmd})  # every required field missing
    yield encode({"cmd": cmd, **baseline, "unknown_key": nested(3)})
    for name, (kind, bound) in fields.items():
        for value in hostile_values(kind, bound):
            yield encode({"cmd": cmd, **baseline, name: value})
        yield encode({"cmd": cmd, **{k: v for k, v in baseline.items() if k != name}})
        # the field twice: JSON parsers keep the last one
        yield f'{{"cmd":"{cmd}","{name}":1,"{name}":"two"}}\n'.encode()
        # an integer of 4301 digits and a line of nested arrays, where the field goes
        yield b'{"cmd":"%s","%s":%s}\n' % (cmd.encode(), name.encode(), b"9" * 4301)
        yield b'{"cmd":"%s","%s":%s}\n' % (cmd.encode(), name.encode(), b"[" * 1200 + b"]" * 1200)
        # raw invalid UTF-8 inside the field's string
        yield b'{"cmd":"%s","%s":"\xff\xfe\xc3("}\n' % (cmd.encode(), name.encode())
    for _ in range(60):  # random mixes of hostile values across every field at once
        mix = {
            name: rng.choice(list(hostile_values(kind, bound)))
            for name, (kind, bound) in fields.items()
        }
        yield encode({"cmd": cmd, **mix})


def garbage_lines(rng: random.Random) -> Iterator[bytes]:
    yield from (b"\n", b"   \n", b"null\n", b"[]\n", b"42\n", b'"cmd"\n', b"{\n", b"}\n")
    yield from (b'{"cmd":null}\n', b'{"cmd":7}\n', b'{"cmd":["send"]}\n', b'{"cmd":"nope"}\n')
    yield from (b'{"cmd":"' + b"x" * 100_000 + b'"}\n', b"\xff" * 100 + b"\n", b"{NaN}\n")
    yield b'{"cmd":"send","to":"bob","body":"' + b"x" * (wire.MAX_LINE_BYTES + 1) + b'"}\n'
    for _ in range(200):
        yield (
            bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200))).replace(b"\n", b" ")
            + b"\n"
        )


def fuzz_lines(seed: int) -> list[bytes]:
    rng = random.Random(seed)
    lines = list(garbage_lines(rng))
    for _, entry in sorted(wire.COMMANDS.items()):
        if entry.cmd not in FEEDS:  # a variant (start by scope) is fuzzed under its own tag
            lines += command_lines(entry.cmd, entry.request, rng)
    return lines


def test_the_generator_covers_every_command_with_thousands_of_lines() -> None:
    lines = fuzz_lines(SEED)
    assert len(lines) >= 3400  # three sockets: over 10,000 lines in all
    for cmd in {entry.cmd for entry in wire.COMMANDS.values()} - FEEDS:
        assert any(line.startswith(b'{"cmd": "%s"' % cmd.encode()) for line in lines), cmd
    assert all(line.endswith(b"\n") and line.count(b"\n") == 1 for line in lines)


# --- the run ----------------------------------------------------------------------------------


class Conn:
    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.reader = wire.LineReader(stream, max_bytes=64 * wire.MAX_LINE_BYTES)

    async def answers(self, count: int) -> list[dict[str, Any]]:
        replies = []
        for _ in range(count):
            with trio.fail_after(600):  # virtual seconds: a parked recv waits at most 180
                line = await self.reader.read_line()
            assert line is not None, "the daemon closed the connection"
            replies.append(json.loads(line))
        return replies


async def connect(path: Path) -> Conn:
    return Conn(await trio.open_unix_socket(os.fspath(path)))


def restarts(hive: TestHive) -> dict[str, int]:
    def walk(node: wire.ActorInfo) -> list[wire.ActorInfo]:
        return [node, *(n for child in node.children for n in walk(child))]

    return {n.id: n.restarts for n in walk(hive.handles.status.status().tree) if n.restarts}


async def fuzz(path: Path, lines: list[bytes]) -> int:
    conn = await connect(path)
    answered = 0
    async with conn.stream:
        for start in range(0, len(lines), BATCH):
            batch = lines[start : start + BATCH]
            async with trio.open_nursery() as nursery:
                # Written while answers are read: a batch can exceed the socket's buffer.
                nursery.start_soon(conn.stream.send_all, b"".join(batch))
                replies = await conn.answers(len(batch))
            for line, reply in zip(batch, replies, strict=True):
                assert set(reply) >= {"version", "ok", "error"}, (line[:200], reply)
                OUTCOMES[reply["ok"]] += 1
                assert reply["version"] == 1
                if reply["ok"] is False:
                    assert isinstance(reply["error"], str), (line[:200], reply)
                    assert reply["error"], (line[:200], reply)
                    assert "internal error" not in reply["error"], line[:200]
            answered += len(batch)
    return answered


async def probe(hive: TestHive, done: trio.Event, answered: list[float]) -> None:
    """Ask for status on the admin socket and whoami on bob's, over and over, until done."""
    admin = await connect(hive.paths.admin_socket)
    bob = await connect(hive.paths.agent_socket("bob"))
    async with admin.stream, bob.stream:
        while not done.is_set():
            for conn, line, key in (
                (admin, b'{"cmd":"status"}\n', "tree"),
                (bob, b'{"cmd":"whoami"}\n', "name"),
            ):
                await conn.stream.send_all(line)
                with trio.fail_after(60):
                    (reply,) = await conn.answers(1)
                assert reply["ok"] is True, reply
                assert key in reply, reply
                answered.append(trio.current_time())
            await trio.sleep(1)


async def test_issue9_ten_thousand_hostile_lines_never_hurt_the_daemon(
    clock: MockClock, hive: TestHive, caplog: pytest.LogCaptureFixture
) -> None:
    lines = fuzz_lines(SEED)
    targets = [
        hive.paths.admin_socket,
        hive.paths.manager_socket,
        hive.paths.agent_socket("alice"),
    ]
    done = trio.Event()
    probes: list[float] = []
    counts: list[int] = []

    async def run_all() -> None:
        for path in targets:
            counts.append(await fuzz(path, lines))
        done.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(probe, hive, done, probes)
        nursery.start_soon(run_all)

    assert sum(counts) >= 10_000
    assert OUTCOMES[True] >= 500, "valid baselines reached the handlers, not only the decoder"
    assert counts == [len(lines)] * 3
    assert len(probes) >= 10, "the probe was answered throughout"
    assert restarts(hive) == {}
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    # And the daemon still does real work afterwards.
    async with hive.agent("alice") as alice, hive.agent("bob") as bob:
        await alice.call(wire.Send(to="bob", body="still here"))
        await bob.call(wire.RequeueInflight())
        bodies = []
        while got := (await bob.call(wire.Recv(max=32))).messages:
            bodies += [d.body for d in got]
            await bob.call(wire.AckTurn())
        assert bodies[-1] == "still here"


async def test_issue9_hostile_subscribe_lines_each_get_one_answer(
    clock: MockClock, hive: TestHive
) -> None:
    rng = random.Random(SEED)
    lines = list(command_lines("subscribe", wire.SubscribeEvents, rng))
    for line in lines:
        conn = await connect(hive.paths.admin_socket)
        async with conn.stream:
            await conn.stream.send_all(line)
            (reply,) = await conn.answers(1)
            assert reply["version"] == 1
    assert restarts(hive) == {}
