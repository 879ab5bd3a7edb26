"""Issue 9, item 4: every resource one agent can consume is bounded, with a clear error.

The whole daemon in-process on real sockets, with small limits so that each one is reached in
a few requests. Each test checks what the agent is told, that nothing past the limit was stored
or kept, and what the operator sees: a `limit_hit` event and a note in the agent's `list` row.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from trio.testing import MockClock

from hyperhive import wire
from hyperhive.client import Client
from hyperhive.core.daemon import raise_open_file_limit
from hyperhive.core.limits import LimitLog, Limits, TokenBucket
from hyperhive.core.questions import fair_share
from hyperhive.errors import ConfigError, RemoteError
from hyperhive.testing import FakeWallClock, TestHive, open_test_hive


@pytest.fixture
def clock() -> MockClock:
    # Plain autojump: the test hive runs its stores inline, so virtual time is exact.
    return trio.testing.MockClock(autojump_threshold=0)


@contextlib.asynccontextmanager
async def small_hive(short_tmp: Path, **limits: Any) -> AsyncIterator[TestHive]:
    async with open_test_hive(
        short_tmp / "s",
        clock=FakeWallClock(),
        agents=("alice", "bob", "carol"),
        limits=Limits(**limits),
    ) as hive:
        yield hive


async def settled() -> None:
    """Every task blocked and no worker thread busy (a task waiting on a thread counts as
    blocked for `wait_all_tasks_blocked`, and the broker pops in one)."""
    limiter = trio.to_thread.current_default_thread_limiter()
    while True:
        await trio.testing.wait_all_tasks_blocked()
        if limiter.borrowed_tokens == 0:
            return
        await trio.sleep(0)


async def send(client: Client, to: str, body: str) -> int:
    return (await client.call(wire.Send(to=to, body=body))).id


async def limit_events(hive: TestHive) -> list[wire.LimitHit]:
    async with hive.operator() as operator:
        history = await operator.call(wire.History(limit=1000))
    return [e.payload for e in history.events if isinstance(e.payload, wire.LimitHit)]


async def notes_of(hive: TestHive, name: str) -> tuple[str, ...]:
    async with hive.operator() as operator:
        views = await operator.call(wire.ListContainers())
    (view,) = [v for v in views.containers if v.name == name]
    return view.notes


async def pipeline(path: Path, lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    async with await trio.open_unix_socket(os.fspath(path)) as stream:
        await stream.send_all(b"".join(json.dumps(line).encode() + b"\n" for line in lines))
        reader = wire.LineReader(stream, max_bytes=64 * wire.MAX_LINE_BYTES)
        replies = []
        for _ in lines:
            line = await reader.read_line()
            assert line is not None
            replies.append(json.loads(line))
        return replies


async def test_issue9_a_body_past_the_limit_is_refused_by_name(
    clock: MockClock, short_tmp: Path
) -> None:
    async with small_hive(short_tmp, max_body_bytes=1000) as hive:
        async with hive.agent("alice") as alice:
            await send(alice, "bob", "é" * 500)  # 1000 bytes: exactly the limit
            with pytest.raises(RemoteError, match=None) as refused:
                await send(alice, "bob", "é" * 501)
        assert str(refused.value) == (
            "the message body is 1002 bytes, more than the limit of 1000 (max_body_bytes); "
            "nothing was sent. Put long text in a file under /state and send its path"
        )
        assert await limit_events(hive) == [
            wire.LimitHit("alice", "max_body_bytes", "a 1002-byte message was refused")
        ]
        assert await notes_of(hive, "alice") == (
            "hit limit max_body_bytes: a 1002-byte message was refused",
        )
        async with hive.agent("bob") as bob:
            got = await bob.call(wire.Recv(max=32))
        assert len(got.messages) == 1


async def test_issue9_the_default_body_limit_is_256_kib() -> None:
    assert Limits().max_body_bytes == 256 * 1024


async def test_issue9_one_agent_sending_too_fast_is_slowed_down(
    clock: MockClock, short_tmp: Path
) -> None:
    async with small_hive(short_tmp, send_rate=10, send_burst=20) as hive:
        lines = [{"cmd": "send", "to": "bob", "body": f"m{i}"} for i in range(25)]
        replies = await pipeline(hive.paths.agent_socket("alice"), lines)
        assert [r["ok"] for r in replies] == [True] * 20 + [False] * 5
        assert replies[-1]["error"].startswith("send rate limit: at most 10 messages a second")
        # Another agent is not slowed by alice, and alice gets tokens back as time passes.
        assert all(r["ok"] for r in await pipeline(hive.paths.agent_socket("carol"), lines[:20]))
        await trio.sleep(1.0)
        again = await pipeline(hive.paths.agent_socket("alice"), lines[:12])
        assert [r["ok"] for r in again] == [True] * 10 + [False] * 2
        # The operator is never rate-limited.
        assert all(r["ok"] for r in await pipeline(hive.paths.admin_socket, lines))
        events = await limit_events(hive)
        assert [(e.agent, e.limit) for e in events] == [("alice", "send_rate")]  # once a minute


async def test_issue9_a_full_inbox_refuses_and_tells_the_sender(
    clock: MockClock, short_tmp: Path
) -> None:
    async with small_hive(short_tmp, inbox_messages=5) as hive:
        async with hive.agent("alice") as alice, hive.agent("bob") as bob:
            for i in range(5):
                await send(alice, "bob", f"m{i}")
            with pytest.raises(RemoteError, match="bob's inbox is full: 5 messages it has not"):
                await send(alice, "bob", "one too many")
            await send(alice, "carol", "carol still gets mail")
            # Delivered but not acked still counts: the harness has not handled it yet.
            assert len((await bob.call(wire.Recv(max=2))).messages) == 2
            with pytest.raises(RemoteError, match="inbox is full"):
                await send(alice, "bob", "still too many")
            await bob.call(wire.AckTurn())
            await send(alice, "bob", "room again")
            await send(alice, "bob", "and again")
        assert await notes_of(hive, "bob") == (
            "hit limit inbox_messages: inbox full (5 unhandled); alice's sends refused",
        )
        assert await notes_of(hive, "alice") == ()


async def test_issue9_the_inbox_count_survives_a_restart(clock: MockClock, short_tmp: Path) -> None:
    async with small_hive(short_tmp, inbox_messages=3) as hive, hive.agent("alice") as alice:
        for i in range(3):
            await send(alice, "bob", f"m{i}")
    async with small_hive(short_tmp, inbox_messages=3) as hive, hive.agent("alice") as alice:
        with pytest.raises(RemoteError, match="bob's inbox is full"):
            await send(alice, "bob", "after restart")


async def test_issue9_pending_reminders_and_open_questions_are_capped(
    clock: MockClock, short_tmp: Path
) -> None:
    async with small_hive(short_tmp, pending_reminders=3, open_questions=2) as hive:
        async with hive.agent("alice") as alice, hive.agent("bob") as bob:
            for _ in range(3):
                await alice.call(wire.Remind(message="x", delay_seconds=600))
            with pytest.raises(RemoteError, match="you have 3 pending reminders"):
                await alice.call(wire.Remind(message="x", delay_seconds=600))
            await bob.call(wire.Remind(message="x", delay_seconds=600))
            first = await alice.call(wire.Ask(question="one?"))
            await alice.call(wire.Ask(question="two?"))
            with pytest.raises(RemoteError, match="you have 2 open questions"):
                await alice.call(wire.Ask(question="three?"))
            await alice.call(wire.CancelLooseEnd(kind="question", id=first.id))
            await alice.call(wire.Ask(question="three?"))
        notes = await notes_of(hive, "alice")
        assert notes == (
            "hit limit open_questions: 2 questions open",
            "hit limit pending_reminders: 3 reminders pending",
        )


async def test_issue9_one_agent_cannot_starve_the_operators_question_list(
    clock: MockClock, short_tmp: Path
) -> None:
    async with small_hive(short_tmp, open_questions=200) as hive:
        async with hive.agent("alice") as alice, hive.agent("bob") as bob:
            for i in range(150):
                await alice.call(wire.Ask(question=f"alice #{i}"))
            late = await bob.call(wire.Ask(question="bob, late"))
        async with hive.operator() as operator:
            listed = await operator.call(wire.ListQuestions())
    assert len(listed.questions) == 100
    assert late.id in [q.id for q in listed.questions]
    assert [q.id for q in listed.questions] == sorted(q.id for q in listed.questions)


def test_fair_share_takes_round_robin_by_asker() -> None:
    def q(id: int, asker: str) -> wire.Question:
        return wire.Question(id, asker, "operator", "?", (), False, 0.0)

    rows = [q(1, "a"), q(2, "a"), q(3, "a"), q(4, "b"), q(5, "a"), q(6, "c")]
    assert [r.id for r in fair_share(rows, 4)] == [1, 2, 4, 6]
    assert [r.id for r in fair_share(rows, 10)] == [1, 2, 3, 4, 5, 6]
    assert fair_share(rows, 0) == []


async def test_issue9_connections_per_agent_are_capped(clock: MockClock, short_tmp: Path) -> None:
    async with small_hive(short_tmp, connections=4) as hive:
        path = os.fspath(hive.paths.agent_socket("alice"))
        held = [await trio.open_unix_socket(path) for _ in range(4)]
        for stream in held:  # each is served
            await stream.send_all(b'{"cmd":"whoami"}\n')
            assert b'"ok":true' in await stream.receive_some(65536)
        extra = await trio.open_unix_socket(path)
        refused = wire.LineReader(extra)
        line = await refused.read_line()
        assert line is not None
        assert json.loads(line)["error"] == (
            "alice already has 4 connections open (the connections limit); close some and "
            "connect again"
        )
        assert await refused.read_line() is None  # and closed
        await extra.aclose()
        # Other identities are not affected; closing one frees a place.
        async with hive.agent("bob") as bob:
            await bob.call(wire.Whoami())
        await held.pop().aclose()
        await settled()
        async with hive.agent("alice") as alice:
            assert (await alice.call(wire.Whoami())).name == "alice"
        for stream in held:
            await stream.aclose()
        assert await notes_of(hive, "alice") == (
            "hit limit connections: more than 4 connections at once",
        )


async def test_issue9_parked_recvs_are_capped_and_a_send_wakes_only_one(
    clock: MockClock, short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hyperhive.core.broker_store import BrokerStore

    pops: list[str] = []
    pop = BrokerStore.pop

    def counting_pop(self: BrokerStore, recipient: str, max: int) -> list[wire.Delivery]:
        pops.append(recipient)
        return pop(self, recipient, max)

    async with small_hive(short_tmp, parked_recvs=20, connections=64) as hive:
        path = os.fspath(hive.paths.agent_socket("bob"))
        parked = [await trio.open_unix_socket(path) for _ in range(21)]
        for stream in parked:
            await stream.send_all(b'{"cmd":"recv","wait_seconds":100}\n')
        await settled()
        # The 21st is refused at once; 20 wait.
        answers = []
        for stream in parked:
            with trio.move_on_after(1):
                answers.append(await stream.receive_some(65536))
        refused = [a for a in answers if b'"ok":false' in a]
        assert len(refused) == 1
        assert b"bob already has 20 recvs waiting (the parked_recvs limit)" in refused[0]
        monkeypatch.setattr(BrokerStore, "pop", counting_pop)
        async with hive.agent("alice") as alice:
            await send(alice, "bob", "one message")
        await settled()
        # On main every parked waiter was popped for every send: 20 pops for one message.
        assert pops.count("bob") == 1
        for stream in parked:
            await stream.aclose()


async def test_issue9_a_closed_clients_parked_recv_is_released_at_once(
    clock: MockClock, short_tmp: Path
) -> None:
    async with small_hive(short_tmp) as hive:
        await trio.testing.wait_all_tasks_blocked()
        before = len(os.listdir("/proc/self/fd"))
        stream = await trio.open_unix_socket(os.fspath(hive.paths.agent_socket("bob")))
        await stream.send_all(b'{"cmd":"recv","wait_seconds":180}\n')
        await settled()
        start = trio.current_time()
        await stream.aclose()
        await settled()
        # The daemon's end is closed now, not 180 s later.
        assert len(os.listdir("/proc/self/fd")) == before
        assert trio.current_time() == start
        async with hive.agent("alice") as alice, hive.agent("bob") as bob:
            await send(alice, "bob", "for a live recv")
            got = await bob.call(wire.Recv(max=32))
        assert [d.body for d in got.messages] == ["for a live recv"]


async def test_issue9_events_keep_previews_and_a_history_reply_is_bounded(
    clock: MockClock, short_tmp: Path
) -> None:
    async with small_hive(
        short_tmp, preview_chars=100, history_reply_bytes=20_000, max_body_bytes=100_000
    ) as hive:
        async with hive.agent("alice") as alice:
            for i in range(200):
                await send(alice, "bob", f"{i:03} " + "x" * 50_000)
        async with hive.operator() as operator:
            history = await operator.call(wire.History(limit=1000))
            raw = await pipeline(hive.paths.admin_socket, [{"cmd": "history", "limit": 1000}])
    sent = [e.payload for e in history.events if isinstance(e.payload, wire.MessageSent)]
    assert sent, "the newest events are there"
    assert all(len(p.message.body) == 100 and p.message.body.endswith("…") for p in sent)
    assert all(p.body_bytes == 50_004 for p in sent)
    assert sent[-1].message.body.startswith("199 ")
    assert history.dropped > 0
    assert history.dropped + len(history.events) == history.events[-1].seq
    # The reply's events fit the bound; the envelope around them adds a few bytes.
    events = json.dumps(raw[0]["events"], separators=(",", ":"), ensure_ascii=False)
    assert len(events.encode()) < 20_000
    # What the hub keeps in memory is the preview, not 10 MB of bodies.
    kept = [p for _, _, p in hive.tree.hub._log._events if isinstance(p, wire.MessageSent)]
    assert max(len(p.message.body) for p in kept) == 100


def test_issue9_limits_are_configured_by_name() -> None:
    limits = Limits.parse(["max_body_bytes=1000", "send-rate=2.5", "connections=3"])
    assert (limits.max_body_bytes, limits.send_rate, limits.connections) == (1000, 2.5, 3)
    with pytest.raises(ConfigError, match="unknown limit 'bogus=1'; use NAME=VALUE"):
        Limits.parse(["bogus=1"])
    with pytest.raises(ConfigError, match="limit connections needs a number"):
        Limits.parse(["connections=many"])
    with pytest.raises(ConfigError, match="must be more than 0"):
        Limits.parse(["inbox_messages=0"])


def test_the_token_bucket_refills_at_its_rate() -> None:
    bucket = TokenBucket(rate=2, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(0.5)
    assert not bucket.take(0.5)
    assert [bucket.take(10.0) for _ in range(4)] == [True, True, True, False]


def test_a_limit_log_announces_once_a_minute_and_forgets_after_ten() -> None:
    now = [0.0]
    published: list[wire.EventPayload] = []
    log = LimitLog(published.append, now=lambda: now[0])
    log.hit("alice", "send_rate", "fast")
    now[0] = 30.0
    log.hit("alice", "send_rate", "faster")
    assert published == [wire.LimitHit("alice", "send_rate", "fast")]
    assert log.notes("alice") == ("hit limit send_rate: faster",)
    now[0] = 91.0
    log.hit("alice", "send_rate", "again")
    assert len(published) == 2
    now[0] = 700.0
    assert log.notes("alice") == ()


def test_issue9_serve_raises_its_open_file_limit_to_the_hard_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, hard), hard))
        assert raise_open_file_limit() == (hard, hard)
        assert resource.getrlimit(resource.RLIMIT_NOFILE) == (hard, hard)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
