"""The daemon's sockets as clients use them: real unix sockets, the real actor tree, in-process.

Every test runs the whole daemon (`open_test_hive`) under a short temporary directory and talks
to it only through its sockets, the way an agent harness, the manager or the CLI would.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from trio.testing import MockClock

from hyperhive import wire
from hyperhive.client import Client
from hyperhive.errors import RemoteError
from hyperhive.testing import FakeWallClock, TestHive, open_test_hive

MiB = 1024 * 1024


@pytest.fixture
def clock() -> MockClock:
    # Plain autojump: the test hive runs its stores inline, so virtual time is exact.
    return trio.testing.MockClock(autojump_threshold=0)


@pytest.fixture
async def hive(short_tmp: Path) -> AsyncIterator[TestHive]:
    async with open_test_hive(
        short_tmp / "s", clock=FakeWallClock(), agents=("alice", "bob", "carol")
    ) as hive:
        yield hive


class Raw:
    """A client that writes whatever bytes it is given and reads raw response objects."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.reader = wire.LineReader(stream, max_bytes=64 * MiB)

    async def ask(self, request: dict[str, Any] | bytes) -> dict[str, Any]:
        line = request if isinstance(request, bytes) else json.dumps(request).encode() + b"\n"
        await self.stream.send_all(line)
        return await self.answer()

    async def answer(self) -> dict[str, Any]:
        with trio.fail_after(300):  # virtual seconds: a missing answer fails, it never hangs
            line = await self.reader.read_line()
        assert line is not None, "the daemon closed the connection"
        reply: dict[str, Any] = json.loads(line)
        return reply


@contextlib.asynccontextmanager
async def raw(path: Path) -> AsyncIterator[Raw]:
    async with await trio.open_unix_socket(os.fspath(path)) as stream:
        yield Raw(stream)


async def send(client: Client, to: str, body: str) -> int:
    return (await client.call(wire.Send(to=to, body=body))).id


async def recv(client: Client, *, max: int = 32, wait: float = 0.0) -> tuple[wire.Delivery, ...]:
    reply = await client.call(wire.Recv(wait_seconds=wait, max=max))
    return reply.messages


def tree_nodes(node: wire.ActorInfo) -> list[wire.ActorInfo]:
    return [node, *(n for child in node.children for n in tree_nodes(child))]


def listeners_of(hive: TestHive) -> wire.ActorInfo:
    """The `listeners` supervisor as `status` shows it."""
    (listeners,) = [n for n in tree_nodes(hive.handles.status.status().tree) if n.id == "listeners"]
    return listeners


# --- send and recv ----------------------------------------------------------------------------


async def test_each_recipient_gets_its_mail_in_send_order(clock: MockClock, hive: TestHive) -> None:
    async with hive.agent("alice") as alice, hive.agent("carol") as carol, hive.agent("bob") as bob:
        sent = []
        for i in range(4):
            sent.append(await send(alice, "bob", f"a{i}"))
            sent.append(await send(carol, "bob", f"c{i}"))
        other = await send(alice, "carol", "not for bob")

        got = await recv(bob)

        assert [d.id for d in got] == sent
        assert [d.body for d in got] == ["a0", "c0", "a1", "c1", "a2", "c2", "a3", "c3"]
        assert [d.sender for d in got] == ["alice", "carol"] * 4
        assert {d.recipient for d in got} == {"bob"}
        assert all(d.attempt == 1 and not d.redelivered for d in got)
        assert [d.id for d in await recv(carol)] == [other]


async def test_recv_honours_max_and_caps_it_at_32(clock: MockClock, hive: TestHive) -> None:
    async with hive.agent("alice") as alice, hive.agent("bob") as bob:
        sent = [await send(alice, "bob", str(i)) for i in range(40)]

        first = await recv(bob, max=3)
        capped = await recv(bob, max=1000)
        rest = await recv(bob, max=32)

        assert [d.id for d in first] == sent[:3]
        assert [d.id for d in capped] == sent[3:35]
        assert [d.id for d in rest] == sent[35:]
        assert await recv(bob) == ()


@pytest.mark.parametrize(
    ("fields", "complaint"),
    [
        ({"max": 0}, "max must be from 1 to 10000"),
        ({"max": -5}, "max must be from 1"),
        ({"max": 2**63}, "max must be from 1"),
        ({"wait_seconds": -1}, "wait_seconds must be from 0"),
        ({"wait_seconds": -0.001, "max": 4}, "wait_seconds must be from 0"),
        ({"max": "3"}, "expected int"),
        ({"max": True}, "expected int"),
        ({"wait_seconds": "soon"}, "expected float"),
    ],
)
async def test_recv_refuses_bad_limits_with_a_sentence(
    clock: MockClock, hive: TestHive, fields: dict[str, Any], complaint: str
) -> None:
    async with hive.agent("alice") as alice:
        await send(alice, "bob", "still here")
    async with raw(hive.paths.agent_socket("bob")) as conn:
        reply = await conn.ask({"cmd": "recv", **fields})
        assert reply["ok"] is False
        assert complaint in reply["error"]
        # Refusing took nothing out of the inbox.
        reply = await conn.ask({"cmd": "recv"})
        assert [m["body"] for m in reply["messages"]] == ["still here"]


async def test_recv_refuses_a_nan_wait(clock: MockClock, hive: TestHive) -> None:
    # Python's json accepts the non-standard NaN literal; it must not reach the broker's timer.
    async with raw(hive.paths.agent_socket("bob")) as conn:
        reply = await conn.ask(b'{"cmd":"recv","wait_seconds":NaN}\n')
        assert reply["ok"] is False
        # Refused where the line is decoded: no float field on the wire may be non-finite.
        assert "@ .wait_seconds" in reply["error"]
        async with hive.agent("alice") as alice, hive.agent("bob") as bob:
            await send(alice, "bob", "after nan")
            assert [d.body for d in await recv(bob)] == ["after nan"]
        assert all(n.restarts == 0 for n in tree_nodes(hive.handles.status.status().tree))


async def test_a_blocked_recv_returns_the_moment_mail_lands(
    clock: MockClock, hive: TestHive
) -> None:
    async with hive.agent("alice") as alice, hive.agent("bob") as bob:
        woke: list[tuple[float, tuple[wire.Delivery, ...]]] = []

        async def wait_for_mail() -> None:
            start = trio.current_time()
            got = await recv(bob, wait=60)
            woke.append((trio.current_time() - start, got))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(wait_for_mail)
            await trio.sleep(5)  # bob is parked; the clock jumps while nothing happens
            assert woke == []
            sent = await send(alice, "bob", "wake up")

        (elapsed, got), *_ = woke
        assert [d.id for d in got] == [sent]
        assert 5 <= elapsed < 5.5, "recv should return when the message lands, not at 60 s"


async def test_a_blocked_recv_returns_empty_after_its_wait(
    clock: MockClock, hive: TestHive
) -> None:
    async with hive.agent("bob") as bob:
        start = trio.current_time()
        assert await recv(bob, wait=7) == ()
        assert trio.current_time() - start == pytest.approx(7, abs=0.01)


async def test_recv_waits_at_most_180_seconds(clock: MockClock, hive: TestHive) -> None:
    async with hive.agent("bob") as bob:
        start = trio.current_time()
        assert await recv(bob, wait=10_000) == ()
        assert trio.current_time() - start == pytest.approx(180, abs=0.01)


async def test_several_waiters_for_one_recipient_are_served_in_arrival_order(
    clock: MockClock,
    hive: TestHive,
) -> None:
    results: dict[int, tuple[wire.Delivery, ...]] = {}

    async def waiter(index: int) -> None:
        async with hive.agent("bob") as bob:
            results[index] = await recv(bob, wait=60)

    async with hive.agent("alice") as alice, trio.open_nursery() as nursery:
        for index in range(3):
            nursery.start_soon(waiter, index)
            await trio.testing.wait_all_tasks_blocked()
        for body in ("first", "second", "third"):
            await send(alice, "bob", body)
            await trio.testing.wait_all_tasks_blocked()

    assert {i: [d.body for d in got] for i, got in results.items()} == {
        0: ["first"],
        1: ["second"],
        2: ["third"],
    }


async def test_a_waiter_whose_client_left_is_not_handed_mail(
    clock: MockClock, hive: TestHive
) -> None:
    async with raw(hive.paths.agent_socket("bob")) as gone:
        await gone.stream.send_all(b'{"cmd":"recv","wait_seconds":60}\n')
        await trio.testing.wait_all_tasks_blocked()
    await trio.testing.wait_all_tasks_blocked()

    async with hive.agent("alice") as alice, hive.agent("bob") as bob:
        sent = await send(alice, "bob", "for whoever is still listening")
        got = await recv(bob, wait=5)

    assert [(d.id, d.attempt, d.redelivered) for d in got] == [(sent, 1, False)]


async def test_a_half_closed_client_still_gets_its_parked_recv(
    clock: MockClock, hive: TestHive
) -> None:
    # `printf '...' | socat - UNIX-CONNECT:...` shuts its write side and waits for the answer.
    async with raw(hive.paths.agent_socket("bob")) as conn:
        await conn.stream.send_all(b'{"cmd":"recv","wait_seconds":60}\n')
        await conn.stream.send_eof()
        await trio.testing.wait_all_tasks_blocked()
        async with hive.agent("alice") as alice:
            sent = await send(alice, "bob", "still wanted")
        reply = await conn.answer()
        assert [m["id"] for m in reply["messages"]] == [sent]


# --- lease semantics over the sockets ---------------------------------------------------------


async def test_unacked_mail_comes_back_flagged_after_requeue(
    clock: MockClock, hive: TestHive
) -> None:
    async with hive.agent("alice") as alice, hive.agent("bob") as bob:
        sent = [await send(alice, "bob", body) for body in ("one", "two")]
        assert [d.attempt for d in await recv(bob)] == [1, 1]

        assert await recv(bob) == (), "leased mail is not handed out twice"
        requeued = await bob.call(wire.RequeueInflight())
        assert requeued.count == 2
        later = await send(alice, "bob", "three")
        again = await recv(bob)

        assert [(d.id, d.attempt, d.redelivered) for d in again] == [
            (sent[0], 2, True),
            (sent[1], 2, True),
            (later, 1, False),
        ]


async def test_ack_turn_acks_only_the_callers_deliveries(clock: MockClock, hive: TestHive) -> None:
    async with hive.agent("alice") as alice, hive.agent("bob") as bob, hive.agent("carol") as carol:
        to_bob = await send(alice, "bob", "for bob")
        to_carol = await send(alice, "carol", "for carol")
        await recv(bob)
        await recv(carol)

        assert (await bob.call(wire.AckTurn())).count == 1
        assert (await bob.call(wire.RequeueInflight())).count == 0
        assert (await carol.call(wire.RequeueInflight())).count == 1

        assert await recv(bob) == ()
        assert [(d.id, d.redelivered) for d in await recv(carol)] == [(to_carol, True)]
        assert to_bob != to_carol


async def test_a_message_is_dead_lettered_after_five_redeliveries(
    clock: MockClock, hive: TestHive
) -> None:
    async with hive.operator() as operator:
        subscription = await operator.subscribe()
        async with hive.agent("alice") as alice, hive.agent("bob") as bob:
            sent = await send(alice, "bob", "poison")
            attempts = []
            for _ in range(6):
                attempts += [d.attempt for d in await recv(bob)]
                await bob.call(wire.RequeueInflight())
            assert attempts == [1, 2, 3, 4, 5, 6]
            assert await recv(bob) == (), "a dead letter is not delivered"

        async with hive.operator() as admin:
            letters = (await admin.call(wire.ListDeadLetters())).letters
            assert [(x.id, x.sender, x.recipient, x.body, x.attempts) for x in letters] == [
                (sent, "alice", "bob", "poison", 6)
            ]
            mine = await admin.call(wire.ListDeadLetters(recipient="bob"))
            assert mine.letters == letters
            others = await admin.call(wire.ListDeadLetters(recipient="carol"))
            assert others.letters == ()

        with trio.fail_after(5):
            async for event in subscription:
                if isinstance(event.payload, wire.MessageDeadLettered):
                    assert event.payload == wire.MessageDeadLettered(sent, "bob", 6)
                    break


async def test_a_replayed_dead_letter_is_delivered_again_even_to_a_parked_recv(
    clock: MockClock,
    hive: TestHive,
) -> None:
    async with hive.agent("alice") as alice, hive.agent("bob") as bob, hive.operator() as admin:
        sent = await send(alice, "bob", "second chance")
        for _ in range(6):
            await recv(bob)
            await bob.call(wire.RequeueInflight())

        woke: list[tuple[float, tuple[wire.Delivery, ...]]] = []

        async def wait_for_mail() -> None:
            async with hive.agent("bob") as parked:
                start = trio.current_time()
                got = await recv(parked, wait=60)
                woke.append((trio.current_time() - start, got))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(wait_for_mail)
            await trio.sleep(1)
            replayed = await admin.call(wire.ReplayDead(id=sent))

        assert replayed.id == sent
        (elapsed, got), *_ = woke
        assert [(d.id, d.body, d.attempt, d.redelivered) for d in got] == [
            (sent, "second chance", 1, False)
        ]
        assert elapsed < 1.5, "a replay wakes a parked recv like a send does"
        assert (await admin.call(wire.ListDeadLetters())).letters == ()


async def test_a_dropped_dead_letter_is_gone(clock: MockClock, hive: TestHive) -> None:
    async with hive.agent("alice") as alice, hive.agent("bob") as bob, hive.operator() as admin:
        sent = await send(alice, "bob", "let it go")
        for _ in range(6):
            await recv(bob)
            await bob.call(wire.RequeueInflight())

        await admin.call(wire.DropDead(id=sent))

        assert (await admin.call(wire.ListDeadLetters())).letters == ()
        assert await recv(bob) == ()
        with pytest.raises(RemoteError, match=f"no dead letter with id {sent}"):
            await admin.call(wire.DropDead(id=sent))
        with pytest.raises(RemoteError, match=f"no dead letter with id {sent}"):
            await admin.call(wire.ReplayDead(id=sent))


# --- refused sends ----------------------------------------------------------------------------


def stored_rows(hive: TestHive) -> int:
    with contextlib.closing(sqlite3.connect(hive.paths.broker_db)) as db:
        count: int = db.execute("SELECT count(*) FROM messages").fetchone()[0]
    return count


@pytest.mark.parametrize("name", ["nobody", "Bob", "bob!", "", "../bob", "operatorx"])
async def test_a_send_to_an_unknown_recipient_is_refused_and_stores_nothing(
    clock: MockClock, hive: TestHive, name: str
) -> None:
    async with raw(hive.paths.agent_socket("alice")) as conn:
        reply = await conn.ask({"cmd": "send", "to": name, "body": "hello?"})
        assert reply["ok"] is False
        assert f"unknown agent {name!r}" in reply["error"]
        assert "nothing was sent" in reply["error"]
        assert stored_rows(hive) == 0


async def test_a_body_with_a_lone_surrogate_is_refused(clock: MockClock, hive: TestHive) -> None:
    async with raw(hive.paths.agent_socket("alice")) as conn:
        reply = await conn.ask(b'{"cmd":"send","to":"bob","body":"half \\ud83d a smile"}\n')
        assert reply["ok"] is False
        assert "not valid unicode" in reply["error"]
        reply = await conn.ask({"cmd": "send", "to": "\ud800", "body": "hello?"})
        assert reply["error"] == (
            "bad send: to is not valid unicode text (it holds a lone surrogate)"
        )
        assert stored_rows(hive) == 0
        reply = await conn.ask({"cmd": "send", "to": "bob", "body": "whole \U0001f600 smile"})
        assert reply["ok"] is True
        async with hive.agent("bob") as bob:
            assert [d.body for d in await recv(bob)] == ["whole \U0001f600 smile"]


# --- identity = socket ------------------------------------------------------------------------


async def test_an_agent_sends_only_as_itself(clock: MockClock, hive: TestHive) -> None:
    async with raw(hive.paths.agent_socket("alice")) as conn:
        for claim in ({"from": "carol"}, {"sender": "operator"}, {"from": "manager", "as": "bob"}):
            reply = await conn.ask({"cmd": "send", "to": "bob", "body": "who am i", **claim})
            assert reply["ok"] is True
        async with hive.agent("bob") as bob:
            assert {d.sender for d in await recv(bob)} == {"alice"}


OPERATOR_ONLY = [
    {"cmd": "status"},
    {"cmd": "register_agent", "name": "mallory"},
    {"cmd": "unregister_agent", "name": "bob"},
    {"cmd": "list_agents"},
    {"cmd": "inbox"},
    {"cmd": "dead_letters"},
    {"cmd": "replay_dead", "id": 1},
    {"cmd": "drop_dead", "id": 1},
    {"cmd": "history"},
    {"cmd": "subscribe"},
]


@pytest.mark.parametrize("socket", ["alice", "manager"])
async def test_agent_and_manager_sockets_refuse_operator_commands(
    clock: MockClock, hive: TestHive, socket: str
) -> None:
    path = hive.paths.manager_socket if socket == "manager" else hive.paths.agent_socket(socket)
    async with raw(path) as conn:
        for request in OPERATOR_ONLY:
            reply = await conn.ask(request)
            assert reply == {
                "version": 1,
                "ok": False,
                "error": f"{request['cmd']!r} is not available to {socket}",
            }
        assert hive.handles.agents.names() == ["alice", "bob", "carol"]
        # The connection is still a plain request/response connection (not a feed).
        assert (await conn.ask({"cmd": "recv"}))["ok"] is True


async def test_an_agent_cannot_read_another_agents_mail(clock: MockClock, hive: TestHive) -> None:
    async with hive.agent("alice") as alice:
        sent = await send(alice, "bob", "private")
    async with raw(hive.paths.agent_socket("alice")) as conn:
        for claim in ({"recipient": "bob"}, {"name": "bob"}, {"to": "bob", "as": "bob"}):
            reply = await conn.ask({"cmd": "recv", "max": 32, **claim})
            assert reply["ok"] is True
            assert reply["messages"] == []
        # Neither can alice settle or requeue bob's leases.
        async with hive.agent("bob") as bob:
            await recv(bob)
            assert (await conn.ask({"cmd": "ack_turn", "name": "bob"}))["count"] == 0
            assert (await conn.ask({"cmd": "requeue_inflight", "name": "bob"}))["count"] == 0
            assert (await bob.call(wire.RequeueInflight())).count == 1
            assert [d.id for d in await recv(bob)] == [sent]


async def test_the_manager_socket_acts_as_the_manager(clock: MockClock, hive: TestHive) -> None:
    async with hive.manager() as manager, hive.agent("alice") as alice:
        await send(manager, "alice", "from the manager")
        await send(alice, "manager", "to the manager")
        got_alice = await recv(alice)
        got_manager = await recv(manager)
    assert [(d.sender, d.body) for d in got_alice] == [("manager", "from the manager")]
    assert [(d.sender, d.recipient, d.body) for d in got_manager] == [
        ("alice", "manager", "to the manager")
    ]


async def test_the_operator_sends_as_operator_and_reads_its_inbox(
    clock: MockClock, hive: TestHive
) -> None:
    async with hive.operator() as operator, hive.agent("alice") as alice:
        await send(operator, "alice", "hello from the operator")
        got = await recv(alice)
        assert [(d.sender, d.body) for d in got] == [("operator", "hello from the operator")]

        first = await send(alice, "operator", "done")
        second = await send(alice, "operator", "also this")
        inbox = await operator.call(wire.ReadInbox(limit=10))
        assert [(m.id, m.sender, m.body) for m in inbox.messages] == [
            (second, "alice", "also this"),
            (first, "alice", "done"),
        ]
        newest = await operator.call(wire.ReadInbox(limit=1))
        assert [m.id for m in newest.messages] == [second]
        with pytest.raises(RemoteError, match="'recv' is not available to the operator"):
            await recv(operator)


async def test_sockets_are_private_to_the_user(clock: MockClock, hive: TestHive) -> None:
    assert stat.S_IMODE(hive.paths.admin_socket.stat().st_mode) == 0o600
    # The agent's socket admits its directory's group: the agent's own under a root daemon's
    # bwrap backend (docs/security.md); the directory and the state root keep everyone else out.
    assert stat.S_IMODE(hive.paths.agent_socket("alice").stat().st_mode) == 0o660
    assert stat.S_IMODE(hive.paths.agent_socket_dir("alice").stat().st_mode) == 0o700
    assert stat.S_IMODE(hive.paths.root.stat().st_mode) == 0o700


# --- bad input --------------------------------------------------------------------------------


BAD_LINES: list[tuple[bytes, str]] = [
    (b"this is not json\n", "not valid JSON"),
    (b"[1, 2, 3]\n", "expected a JSON object"),
    (b'{"to": "bob"}\n', 'missing "cmd"'),
    (b'{"cmd": "launch_missiles"}\n', "unknown cmd 'launch_missiles'"),
    (b'{"cmd": "send", "to": 5, "body": "x"}\n', "bad send: "),
    (b'{"cmd": "send", "to": "bob"}\n', "bad send: "),
    (b'{"cmd": "recv", "max": [1]}\n', "bad recv: "),
    (b"\xff\xfe{}\n", "not valid JSON"),
    (b"\n", "empty request"),
    (b"   \n", "empty request"),
]


async def test_bad_input_gets_a_clear_answer_and_everyone_keeps_being_served(
    clock: MockClock, hive: TestHive, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    for path in (hive.paths.agent_socket("alice"), hive.paths.admin_socket):
        async with raw(path) as conn:
            for line, complaint in BAD_LINES:
                reply = await conn.ask(line)
                assert reply["ok"] is False, line
                assert complaint in reply["error"], (line, reply)
            # A 10 MiB line is skipped without being buffered, and the connection goes on.
            reply = await conn.ask(
                b'{"cmd":"send","to":"bob","body":"' + b"x" * (10 * MiB) + b'"}\n'
            )
            assert reply["ok"] is False
            assert "longer than" in reply["error"]
            assert (await conn.ask({"cmd": "send", "to": "bob", "body": "after"}))["ok"] is True

    # A client that leaves mid-line, and one that leaves while its recv is parked.
    async with raw(hive.paths.agent_socket("bob")) as cut:
        await cut.stream.send_all(b'{"cmd":"send","to":"ali')
    # (carol has no mail, so this recv really parks.)
    async with raw(hive.paths.agent_socket("carol")) as parked:
        await parked.stream.send_all(b'{"cmd":"recv","wait_seconds":100}\n')
        await trio.testing.wait_all_tasks_blocked()
    await trio.testing.wait_all_tasks_blocked()

    async with hive.agent("alice") as alice, hive.agent("bob") as bob, hive.agent("carol") as carol:
        await send(alice, "bob", "still working")
        await send(alice, "carol", "not lost to a closed client")
        assert [d.body for d in await recv(bob)] == ["after", "after", "still working"]
        assert [d.body for d in await recv(carol)] == ["not lost to a closed client"]

    tree = hive.handles.status.status().tree
    assert [(n.id, n.restarts) for n in tree_nodes(tree) if n.restarts] == []
    assert {n.state for n in tree_nodes(tree)} == {"running"}
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


# --- agents come and go -----------------------------------------------------------------------


async def test_register_opens_a_socket_and_unregister_closes_it(
    clock: MockClock, hive: TestHive
) -> None:
    path = hive.paths.agent_socket("dave")
    async with hive.operator() as admin:
        agents = await admin.call(wire.RegisterAgent(name="dave"))
        assert agents.agents == ("alice", "bob", "carol", "dave")
        assert path.is_socket()
        listeners = listeners_of(hive)
        assert "dave-socket" in [child.id for child in listeners.children]

        async with hive.agent("dave") as dave, hive.agent("alice") as alice:
            await send(alice, "dave", "welcome")
            assert [d.body for d in await recv(dave)] == ["welcome"]
            await send(alice, "dave", "left unread")

            agents = await admin.call(wire.UnregisterAgent(name="dave"))
            assert agents.agents == ("alice", "bob", "carol")
            assert not path.exists()
            listeners = listeners_of(hive)
            assert "dave-socket" not in [child.id for child in listeners.children]
            with pytest.raises(RemoteError, match="closed the connection"):
                await recv(dave)
            with pytest.raises(RemoteError, match="unknown agent 'dave'"):
                await send(alice, "dave", "anyone there?")

        with pytest.raises(RemoteError, match="unknown agent 'dave'"):
            await admin.call(wire.UnregisterAgent(name="dave"))

        # Coming back finds the mail that was left: unregistering keeps stored messages.
        await admin.call(wire.RegisterAgent(name="dave"))
        async with hive.agent("dave") as dave:
            assert [d.body for d in await recv(dave)] == ["left unread"]


@pytest.mark.parametrize("name", ["Dave", "operator", "manager", "x" * 12, "-x", "a/b", ""])
async def test_register_refuses_bad_names(clock: MockClock, hive: TestHive, name: str) -> None:
    async with hive.operator() as admin:
        with pytest.raises(RemoteError, match=r"agent name|reserved"):
            await admin.call(wire.RegisterAgent(name=name))
        assert (await admin.call(wire.ListAgents())).agents == (
            "alice",
            "bob",
            "carol",
        )


async def test_agents_get_their_sockets_back_after_a_restart(
    clock: MockClock, short_tmp: Path
) -> None:
    state = short_tmp / "s"
    async with open_test_hive(state, clock=FakeWallClock()) as hive, hive.operator() as admin:
        await admin.call(wire.RegisterAgent(name="alice"))
        await admin.call(wire.RegisterAgent(name="bob"))
        await send(admin, "bob", "kept across the restart")
    assert not (state / "agents" / "bob" / "run" / "hive.sock").exists()

    async with open_test_hive(state, clock=FakeWallClock()) as hive, hive.agent("bob") as bob:
        assert hive.handles.agents.names() == ["alice", "bob"]
        assert [d.body for d in await recv(bob)] == ["kept across the restart"]
        listeners = listeners_of(hive)
        assert {"alice-socket", "bob-socket"} <= {child.id for child in listeners.children}
