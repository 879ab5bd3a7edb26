"""The broker actor on its own: group commit, per-item refusals, events, and the vacuum sweep.

The broker runs exactly as the daemon runs it (its own mailbox, a real sqlite file, a real event
hub) but is constructed directly, so a test can watch the SQL it issues.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
import trio.testing
from trio.testing import MockClock

from actors import Mailbox
from hyperhive import wire
from hyperhive.core import broker, events
from hyperhive.core.broker_store import BrokerStore
from hyperhive.core.limits import LimitLog, Limits
from hyperhive.errors import BadRequest, HyperhiveError, UnknownAgent
from hyperhive.testing import FakeWallClock, TestHive, inline, open_test_hive

AGENTS = frozenset({"alice", "bob", "operator", "manager"})


@pytest.fixture
def clock() -> MockClock:
    # Plain autojump: the test hive runs its stores inline, so virtual time is exact.
    return trio.testing.MockClock(autojump_threshold=0)


class TracedStore(BrokerStore):
    """The real store, recording every SQL statement its connection runs (from any thread)."""

    statements: list[str] = []  # noqa: RUF012 - replaced per instance in __init__

    def __init__(self, path: Path, **kwargs: Any) -> None:
        super().__init__(path, **kwargs)
        self.statements = []
        # The trace callback is sqlite's own hook: it sees exactly what reaches the database.
        self._conn.set_trace_callback(self.statements.append)

    def count(self, prefix: str) -> int:
        return sum(1 for s in self.statements if s.strip().upper().startswith(prefix))


@attrs.define
class Harness:
    to_broker: Mailbox[broker.BrokerMsg]
    to_hub: Mailbox[events.HubMsg]
    path: Path
    stores: list[TracedStore]

    @property
    def store(self) -> TracedStore:
        return self.stores[-1]

    async def send(
        self, sender: str, *items: tuple[str, str]
    ) -> list[wire.Message | HyperhiveError]:
        return await self.to_broker.call(
            lambda reply: broker.SendMessages(sender, items, reply), timeout=30
        )

    async def recv(self, recipient: str, max: int = 32) -> tuple[wire.Delivery, ...]:
        return await self.to_broker.call(
            lambda reply: broker.Receive(recipient, max, 0.0, reply), timeout=30
        )

    def committed_ids(self) -> set[int]:
        """Ids another connection can see: only what a COMMIT made durable."""
        with contextlib.closing(sqlite3.connect(self.path)) as reader:
            return {row[0] for row in reader.execute("SELECT id FROM messages")}


@pytest.fixture
async def harness(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Harness]:
    stores: list[TracedStore] = []

    def traced(path: Path, **kwargs: Any) -> TracedStore:
        stores.append(TracedStore(path, **kwargs))
        return stores[-1]

    monkeypatch.setattr(broker, "BrokerStore", traced)
    to_broker: Mailbox[broker.BrokerMsg] = Mailbox("broker", size=4096)
    to_hub: Mailbox[events.HubMsg] = Mailbox("events", size=1024)
    wall = FakeWallClock()
    hub = events.EventHub(to_hub, wall)
    hub_handle = events.EventsHandle(to_hub)
    actor = broker.Broker(
        to_broker,
        path=tmp_path / "broker.sqlite",
        clock=wall,
        offload=inline,
        events=hub_handle,
        known=AGENTS.__contains__,
        limits=Limits(),
        limit_log=LimitLog(hub_handle.publish),
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(hub.run)
        await nursery.start(actor.run)
        yield Harness(to_broker, to_hub, tmp_path / "broker.sqlite", stores)
        nursery.cancel_scope.cancel()


async def test_concurrent_sends_share_commits_and_each_reply_follows_its_commit(
    clock: MockClock, harness: Harness
) -> None:
    store = harness.store
    begins_before = store.count("BEGIN")
    replies: dict[int, wire.Message] = {}
    visible_at_reply: dict[int, bool] = {}

    async def sender(index: int) -> None:
        (result,) = await harness.send("alice", ("bob", f"message {index}"))
        assert isinstance(result, wire.Message)
        # The moment the reply arrives, a separate connection must already see the row: the
        # reply came after the COMMIT, not before.
        visible_at_reply[index] = result.id in harness.committed_ids()
        replies[index] = result

    async with trio.open_nursery() as nursery:
        for index in range(200):
            nursery.start_soon(sender, index)

    transactions = store.count("BEGIN") - begins_before
    assert len(replies) == 200
    assert all(visible_at_reply.values())
    assert store.count("COMMIT") >= transactions
    assert 1 <= transactions <= 10, f"200 sends took {transactions} transactions"
    # Group commit does not reorder: ids follow the order the sends reached the broker, and
    # bob receives them in that order.
    got = [d.id for _ in range(7) for d in await harness.recv("bob")]
    assert got == sorted(m.id for m in replies.values())


async def test_a_refused_send_fails_alone_inside_a_shared_batch(
    clock: MockClock, harness: Harness
) -> None:
    store = harness.store
    begins_before = store.count("BEGIN")
    results: dict[str, list[wire.Message | HyperhiveError]] = {}

    async def sender(key: str, items: tuple[tuple[str, str], ...]) -> None:
        results[key] = await harness.send("alice", *items)

    async with trio.open_nursery() as nursery:
        for index in range(10):
            nursery.start_soon(sender, f"good{index}", (("bob", f"fine {index}"),))
        nursery.start_soon(sender, "surrogate", (("bob", "broken \ud800 text"),))
        nursery.start_soon(sender, "stranger", (("nobody", "hello?"),))
        nursery.start_soon(
            sender, "mixed", (("bob", "ok before"), ("bob", "bad \udfff"), ("bob", "ok after"))
        )

    assert store.count("BEGIN") - begins_before <= 3
    (surrogate,) = results["surrogate"]
    assert isinstance(surrogate, BadRequest)
    assert "not valid unicode" in str(surrogate)
    (stranger,) = results["stranger"]
    assert isinstance(stranger, UnknownAgent)
    assert "unknown agent 'nobody'" in str(stranger)
    before, bad, after = results["mixed"]
    assert isinstance(bad, BadRequest)
    assert isinstance(before, wire.Message)
    assert isinstance(after, wire.Message)
    good = [r for key, (r, *_) in results.items() if key.startswith("good")]
    assert all(isinstance(r, wire.Message) for r in good)

    bodies = [d.body for d in await harness.recv("bob")]
    assert sorted(bodies) == sorted([f"fine {i}" for i in range(10)] + ["ok before", "ok after"])
    assert bodies.index("ok before") < bodies.index("ok after")
    assert len(harness.committed_ids()) == 12


async def test_sends_and_deliveries_are_published_to_the_hub(
    clock: MockClock, harness: Harness
) -> None:
    subscriber: events.Subscriber = await harness.to_hub.call(
        lambda reply: events.AddSubscriber(reply), timeout=5
    )
    (message,) = await harness.send("alice", ("bob", "hello"))
    (delivery,) = await harness.recv("bob")
    assert isinstance(message, wire.Message)

    seen: list[wire.EventPayload] = []
    with trio.fail_after(5):
        async with contextlib.aclosing(subscriber.batches()) as batches:
            async for batch in batches:
                seen += [event.payload for event in batch]
                if len(seen) >= 2:
                    break
    assert seen == [
        wire.MessageSent(message),
        wire.MessageDelivered(message.id, "bob", 1),
    ]
    assert delivery.id == message.id


# --- vacuum -----------------------------------------------------------------------------------


DAY = 86400.0


def rows(path: Path) -> dict[str, str]:
    """Each message body with its state, read from the file by a separate connection."""
    query = """
        SELECT body, CASE
            WHEN dead_at IS NOT NULL THEN 'dead'
            WHEN acked_at IS NOT NULL THEN 'acked'
            WHEN delivered_at IS NOT NULL THEN 'inflight'
            ELSE 'pending' END
        FROM messages
    """
    with contextlib.closing(sqlite3.connect(path)) as db:
        return dict(db.execute(query).fetchall())


async def test_vacuum_removes_only_old_acked_rows_at_the_hourly_tick(
    clock: MockClock, short_tmp: Path
) -> None:
    from hyperhive.client import Client

    async def send(client: Client, to: str, body: str) -> None:
        await client.call(wire.Send(to=to, body=body))

    async def recv(client: Client) -> None:
        await client.call(wire.Recv(max=32))

    wall = FakeWallClock()
    async with open_test_hive(short_tmp / "s", clock=wall, agents=("alice", "bob")) as hive:
        h: TestHive = hive
        start = trio.current_time()
        async with h.agent("alice") as alice, h.agent("bob") as bob:
            await send(alice, "bob", "old acked")
            await recv(bob)
            await bob.call(wire.AckTurn())
            await send(alice, "bob", "old dead")
            for _ in range(6):
                await recv(bob)
                await bob.call(wire.RequeueInflight())
            await send(alice, "bob", "old inflight")
            await recv(bob)
            await send(alice, "bob", "old pending")
            await send(alice, "operator", "old operator mail")  # settled on arrival

            # A month passes on the wall clock (the daemon was suspended, say).
            wall.advance(30 * DAY + 600)
            await send(bob, "alice", "recent acked")
            await recv(alice)
            await alice.call(wire.AckTurn())

        before = rows(h.paths.broker_db)
        assert before["old acked"] == "acked"
        await trio.sleep_until(start + 3600 - 1)
        assert rows(h.paths.broker_db) == before, "nothing is removed before the hourly tick"

        await trio.sleep_until(start + 3600 + 1)
        assert rows(h.paths.broker_db) == {
            "old dead": "dead",
            "old inflight": "inflight",
            "old pending": "pending",
            "recent acked": "acked",
        }

        # A year later, acked rows are all gone; unacked and dead ones never go.
        wall.advance(365 * DAY)
        await trio.sleep_until(start + 2 * 3600 + 1)
        assert rows(h.paths.broker_db) == {
            "old dead": "dead",
            "old inflight": "inflight",
            "old pending": "pending",
        }
        tree = h.handles.status.status().tree
        assert [c.restarts for c in tree.children if c.id == "broker-vacuum"] == [0]
