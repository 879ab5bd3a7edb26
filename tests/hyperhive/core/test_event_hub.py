"""The event hub as its clients see it: `subscribe` and `history` on the admin socket."""

from __future__ import annotations

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
from hyperhive.client import Client
from hyperhive.core import events
from hyperhive.testing import FakeWallClock, TestHive, open_test_hive


@pytest.fixture
def clock() -> MockClock:
    # Plain autojump: the test hive runs its stores inline, so virtual time is exact.
    return trio.testing.MockClock(autojump_threshold=0)


@pytest.fixture
async def hive(short_tmp: Path) -> AsyncIterator[TestHive]:
    async with open_test_hive(short_tmp / "s", clock=FakeWallClock(), agents=("alice", "bob")) as h:
        yield h


async def send(client: Client, to: str, body: str) -> int:
    return (await client.call(wire.Send(to=to, body=body))).id


async def read_until(feed: AsyncIterator[wire.Event], last_seq: int) -> list[wire.Event]:
    """Feed frames up to and including seq `last_seq` (a gap frame carries its last seq)."""
    frames: list[wire.Event] = []
    with trio.fail_after(60):
        async for event in feed:
            frames.append(event)
            if event.seq >= last_seq:
                return frames
    raise AssertionError(f"feed ended at {frames[-1].seq if frames else None}, before {last_seq}")


async def test_subscribe_then_history_sees_every_event_exactly_once(
    clock: MockClock, hive: TestHive
) -> None:
    async with (
        hive.operator() as feed_conn,
        hive.operator() as query,
        hive.agent("alice") as alice,
        hive.agent("bob") as bob,
    ):
        await send(alice, "bob", "before subscribing")
        feed = await feed_conn.subscribe()
        # This one lands in both the feed and the history: the overlap the seq dedupes.
        overlap = await send(alice, "bob", "between subscribe and history")
        past = await query.call(wire.History(limit=1000))
        for i in range(5):
            await send(bob, "alice", f"after history {i}")
        await bob.call(wire.Recv(max=32))
        final = (await query.call(wire.History(limit=0))).seq

        frames = await read_until(feed, final)

    assert past.events[-1].seq == past.seq
    assert any(f.seq <= past.seq for f in frames), "the feed overlapped the history"
    shown = list(past.events) + [f for f in frames if f.seq > past.seq]
    assert [e.seq for e in shown] == list(range(1, final + 1))

    payloads = [e.payload for e in shown]
    assert [p for p in payloads if isinstance(p, wire.AgentRegistered)] == [
        wire.AgentRegistered("alice"),
        wire.AgentRegistered("bob"),
    ]
    sent = [p.message for p in payloads if isinstance(p, wire.MessageSent)]
    assert [m.body for m in sent] == [
        "before subscribing",
        "between subscribe and history",
        *(f"after history {i}" for i in range(5)),
    ]
    assert sent[1].id == overlap
    delivered = [p for p in payloads if isinstance(p, wire.MessageDelivered)]
    assert delivered == [wire.MessageDelivered(m.id, "bob", 1) for m in sent[:2]]


async def test_a_subscriber_that_does_not_read_is_told_exactly_what_it_missed(
    clock: MockClock, hive: TestHive, caplog: pytest.LogCaptureFixture
) -> None:
    to_hub = hive.tree.hub._mailbox
    stalled: events.Subscriber = await to_hub.call(
        lambda reply: events.AddSubscriber(reply, capacity=4), timeout=5
    )
    first = hive.tree.hub.seq + 1
    # A second, real client that subscribes over the socket and then never reads a byte.
    idle = await trio.open_unix_socket(os.fspath(hive.paths.admin_socket))
    await idle.send_all(b'{"cmd":"subscribe"}\n')

    start = trio.current_time()
    async with hive.agent("alice") as alice, hive.agent("bob") as bob:
        for i in range(300):
            await send(alice, "bob", f"burst {i} " + "x" * 500)
            await bob.call(wire.Recv(max=32))
    # Rate-0 clock: had anything waited on the stalled subscribers (a send timeout, a full
    # queue), trio's clock would have jumped to that deadline.
    assert trio.current_time() == start
    await trio.testing.wait_all_tasks_blocked()
    last = hive.tree.hub.seq
    assert last - first + 1 == 600

    taken = stalled.queue.take()
    assert [e.seq for e in taken[:4]] == [first, first + 1, first + 2, first + 3]
    assert taken[4] == wire.Event(last, taken[4].at, wire.EventGap(first + 4, last), taken[0].boot)
    assert taken[0].boot == hive.handles.events.boot != ""
    assert len(taken) == 5
    await idle.aclose()
    hive.handles.events.unsubscribe(stalled)
    await trio.testing.wait_all_tasks_blocked()
    # A subscriber leaving is not an error worth a traceback in the daemon's log.
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_a_slow_socket_subscriber_gets_a_gap_frame_and_then_the_live_stream(
    clock: MockClock, hive: TestHive
) -> None:
    async with hive.operator() as conn:
        feed = await conn.subscribe()
        first = hive.tree.hub.seq + 1
        # Far more than the subscriber's queue (1024) plus what the socket buffers: the client
        # reads nothing while 4000 sends are pipelined and committed.
        lines = b"".join(
            json.dumps({"cmd": "send", "to": "bob", "body": f"{i:05} " + "y" * 200}).encode()
            + b"\n"
            for i in range(4000)
        )
        path = os.fspath(hive.paths.agent_socket("alice"))
        async with await trio.open_unix_socket(path) as s, trio.open_nursery() as nursery:
            nursery.start_soon(s.send_all, lines)
            reader = wire.LineReader(s)
            for _ in range(4000):
                line = await reader.read_line()
                assert line is not None
                assert json.loads(line)["ok"] is True
        last = hive.tree.hub.seq
        assert last - first + 1 == 4000

        frames = await read_until(feed, last)
        async with hive.agent("alice") as alice:
            await send(alice, "bob", "after the gap")
        (live,) = await read_until(feed, last + 1)

    covered: list[int] = []
    gaps = 0
    for frame in frames:
        if isinstance(frame.payload, wire.EventGap):
            gaps += 1
            covered += range(frame.payload.first_seq, frame.payload.last_seq + 1)
        else:
            covered.append(frame.seq)
    assert gaps >= 1
    assert covered == list(range(first, last + 1)), "every seq is either delivered or reported"
    assert isinstance(live.payload, wire.MessageSent)
    assert live.payload.message.body == "after the gap"


async def test_issue9_a_commit_slowed_by_a_busy_machine_moves_no_virtual_time(
    clock: MockClock, hive: TestHive, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The subscriber test above timed out on a busy machine: while an fsync took more than the
    # clock's autojump threshold, virtual time leapt to the 30 s call timeout. A commit that
    # takes 0.7 real seconds must cost no virtual time at all.
    import time

    from hyperhive.core.broker_store import BrokerStore

    slow_once = [True]
    send_many = BrokerStore.send_many

    def slow_send_many(self: BrokerStore, items: Any) -> Any:
        if slow_once and slow_once.pop():
            time.sleep(0.7)  # a real stall in the worker thread, as a loaded disk gives
        return send_many(self, items)

    monkeypatch.setattr(BrokerStore, "send_many", slow_send_many)
    async with hive.agent("alice") as alice:
        start = trio.current_time()
        await send(alice, "bob", "slow commit")
        assert trio.current_time() == start
