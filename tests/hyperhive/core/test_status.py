"""`status`: every actor of the tree reports its queue and when it last took a message."""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio.testing

from hyperhive import wire
from hyperhive.containers.settings import ContainerSettings
from hyperhive.testing import FakeWallClock, open_test_hive
from hyperhive.testing.fake_containers import FakeBackend

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


def actors(node: wire.ActorInfo) -> Iterator[wire.ActorInfo]:
    if node.kind == "actor":
        yield node
    for child in node.children:
        yield from actors(child)


async def test_every_actor_shows_its_queue_and_last_activity(
    short_tmp: Path, autojump_clock: trio.testing.MockClock
) -> None:
    wall = FakeWallClock()
    settings = ContainerSettings(ensure_manager=False, stop_grace=2.0, shutdown_grace=1.0)
    hive = open_test_hive(
        short_tmp, clock=wall, backend=FakeBackend(), containers=settings, agents=("alice",)
    )
    async with hive as running, running.operator() as operator, running.agent("alice") as alice:
        await operator.call(wire.Spawn(name="bob"))
        await alice.call(wire.Send(to="bob", body="hi"))
        await alice.call(wire.Remind(message="later", delay_seconds=7200))
        await alice.call(wire.Ask(question="ok?"))
        await trio.sleep(3601)  # the vacuum's hourly tick
        status = await operator.call(wire.GetStatus())
    nodes = {node.id: node for node in actors(status.tree)}
    assert {
        "events",
        "broker",
        "broker-vacuum",
        "questions",
        "reminders",
        "containers",
        "crash-watch",
        "rescanner",
        "admin-socket",
        "manager-socket",
        "alice-socket",
        "bob-socket",
        "agents",
    } <= set(nodes)
    for node in nodes.values():
        assert node.queue_depth is not None, node.id
    for busy in (
        "events",
        "broker",
        "broker-vacuum",
        "questions",
        "reminders",
        "rescanner",
        "admin-socket",
        "alice-socket",
        "agents",
    ):
        assert nodes[busy].last_message_at is not None, busy
        assert nodes[busy].last_message_at <= status.at
    assert nodes["broker"].counters["stored"] >= 1
    assert nodes["reminders"].counters["due_timers"] == 1
    assert nodes["alice-socket"].counters["requests"] >= 3
    assert nodes["agents"].counters["actions"] >= 1
