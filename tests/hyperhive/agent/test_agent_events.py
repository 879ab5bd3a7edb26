"""The events bus: live feed, sqlite history that survives a restart, age-based retention."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import trio

from hyperhive import wire
from hyperhive.agent.events import KEEP_SECONDS, open_event_bus
from hyperhive.testing import FakeWallClock

if TYPE_CHECKING:
    from pathlib import Path


async def test_events_reach_subscribers_and_the_history_in_order(tmp_path: Path) -> None:
    clock = FakeWallClock()
    path = tmp_path / "events.sqlite"
    async with open_event_bus(path, clock) as bus:
        feed = bus.subscribe()
        bus.publish(wire.StreamLine({"type": "system", "subtype": "init"}))
        bus.note("hello")
        received = [await feed._receive.receive(), await feed._receive.receive()]
        assert [e.kind for e in received] == ["stream", "note"]
        assert [e.seq for e in received] == [1, 2]
    async with open_event_bus(path, clock) as bus:
        # A restarted harness continues the sequence and still has the history.
        assert bus.publish(wire.Note("again")).seq == 3
        await bus.flush()
    async with open_event_bus(path, clock) as bus:
        history = await bus.history(10)
        assert [(e.seq, e.kind) for e in history] == [(1, "stream"), (2, "note"), (3, "note")]
        assert history[1].data == {"text": "hello"}
        assert [e.seq for e in await bus.history(10, after_seq=2)] == [3]
        assert [e.seq for e in await bus.history(1)] == [3]


async def test_a_subscriber_that_falls_behind_is_cut_off_not_waited_for(tmp_path: Path) -> None:
    async with open_event_bus(None, FakeWallClock()) as bus:
        slow = bus.subscribe(capacity=2)
        for n in range(5):
            bus.publish(wire.Note(str(n)))
        seen = [event.data["text"] async for event in slow]
        assert seen == ["0", "1"]
        assert slow.lagged


async def test_old_events_are_vacuumed_by_age(tmp_path: Path) -> None:
    clock = FakeWallClock()
    async with open_event_bus(tmp_path / "events.sqlite", clock) as bus:
        bus.note("old")
        await bus.flush()
        await bus.vacuum()
        assert [e.data["text"] for e in await bus.history()] == ["old"]
        clock.advance(KEEP_SECONDS + 60)
        bus.note("new")
        await bus.flush()
        await bus.vacuum()  # (the hourly sweep may have got there first)
        assert [e.data["text"] for e in await bus.history()] == ["new"]


async def test_the_history_connection_is_only_ever_used_by_one_thread(tmp_path: Path) -> None:
    """Issue 9: the writer, history reads and vacuum once shared a connection across threads."""
    clock = FakeWallClock()
    threads: set[int] = set()
    async with open_event_bus(tmp_path / "events.sqlite", clock) as bus:
        assert bus._db is not None
        await bus._db.run(
            lambda conn: conn.set_trace_callback(lambda _sql: threads.add(threading.get_ident()))
        )

        async def reader() -> None:
            for _ in range(20):
                await bus.history(50)

        async def sweeper() -> None:
            for _ in range(20):
                await bus.vacuum()

        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(reader)
            nursery.start_soon(sweeper)
            for n in range(2000):
                bus.publish(wire.Note(str(n)))
                if n % 100 == 0:
                    await trio.sleep(0)
        await bus.flush()
        assert len(await bus.history(5000)) == 2000
        owner = bus._db.ident
    assert threads == {owner}
    assert owner != threading.get_ident()


async def test_an_event_too_deep_to_encode_is_kept_as_a_marker(tmp_path: Path) -> None:
    async with open_event_bus(tmp_path / "events.sqlite", FakeWallClock()) as bus:
        deep: dict[str, object] = {}
        node = deep
        for _ in range(50_000):
            node["x"] = node = {}
        bus.publish(wire.StreamLine(deep))
        bus.note("still writing")
        await bus.flush()
        kinds = [(e.kind, e.data) for e in await bus.history()]
    assert kinds == [
        ("stream", {"unencodable": "RecursionError"}),
        ("note", {"text": "still writing"}),
    ]
