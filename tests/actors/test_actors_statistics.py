"""Statistics snapshots: what a dashboard sees of a supervision tree at each moment."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import trio
import trio.testing

from actors import (
    ChildSpec,
    ChildStatistics,
    Strategy,
    Supervisor,
    SupervisorGaveUp,
    SupervisorStatistics,
)

MakeProbe = Callable[..., Any]


def child(sup: Supervisor, child_id: str) -> ChildStatistics:
    (found,) = [c for c in sup.statistics().children if c.id == child_id]
    assert isinstance(found, ChildStatistics)
    return found


async def test_child_statistics_follow_a_crash_and_restart(
    make_probe: MakeProbe, autojump_clock: trio.testing.MockClock
) -> None:
    worker = make_probe("worker", size=8)
    root = Supervisor("root", [worker.spec()], restart_delay=5.0)
    async with trio.open_nursery() as nursery:
        await trio.sleep(1.0)
        await nursery.start(root.run)
        assert child(root, "worker") == ChildStatistics(
            id="worker",
            state="running",
            restarts=0,
            last_error=None,
            queue_depth=0,
            queue_capacity=8,
            started_at=1.0,
        )
        await worker.crash("disk full")
        for text in ["a", "b", "c"]:
            await worker.note(text)
        await trio.sleep(2.0)
        restarting = child(root, "worker")
        assert (restarting.state, restarting.queue_depth) == ("restarting", 3)
        assert restarting.last_error == "RuntimeError('disk full')"
        await trio.sleep(3.5)  # the restart happened at 6.0
        assert child(root, "worker") == ChildStatistics(
            id="worker",
            state="running",
            restarts=1,
            last_error="RuntimeError('disk full')",
            queue_depth=0,
            queue_capacity=8,
            started_at=6.0,
            last_message_at=6.0,  # the queued notes, taken by the new incarnation
        )
        stats = root.statistics()
        assert (stats.state, stats.restarts, stats.last_error) == (
            "running",
            1,
            "RuntimeError('disk full')",
        )
        root.request_stop()


async def test_states_while_starting_and_while_stopping(
    make_probe: MakeProbe, autojump_clock: trio.testing.MockClock
) -> None:
    slow = make_probe("slow", ready_after=2.0, ignore_stop=True)
    root = Supervisor("root", [slow.spec(shutdown_timeout=4.0)])
    assert root.statistics().state == "stopped"
    async with trio.open_nursery() as nursery:
        nursery.start_soon(root.run)
        await trio.sleep(1.0)
        assert root.statistics().state == "starting"
        assert child(root, "slow").state == "starting"
        await trio.sleep(2.0)
        assert root.statistics().state == "running"
        root.request_stop()
        await trio.sleep(1.0)
        assert root.statistics().state == "stopping"
        assert child(root, "slow").state == "stopping"
    assert root.statistics().state == "stopped"
    assert child(root, "slow").state == "stopped"


async def test_after_giving_up_the_culprit_is_failed_and_the_rest_stopped(
    make_probe: MakeProbe,
) -> None:
    healthy, broken = make_probe("healthy"), make_probe("broken", fail_starts=99)
    root = Supervisor("root", [healthy.spec(), broken.spec()], intensity=1)
    with pytest.raises(SupervisorGaveUp):
        await root.run()
    stats = root.statistics()
    assert stats.state == "failed"
    assert [(c.id, c.state) for c in stats.children] == [
        ("healthy", "stopped"),
        ("broken", "failed"),
    ]


async def test_a_nested_supervisor_reports_its_own_subtree(
    make_probe: MakeProbe,
) -> None:
    a, b = make_probe("a"), make_probe("b")
    inner = Supervisor("inner", [b.spec()], strategy=Strategy.REST_FOR_ONE)
    root = Supervisor("root", [a.spec(), ChildSpec.for_supervisor(inner)])
    async with trio.open_nursery() as nursery:
        await nursery.start(root.run)
        await b.crash()
        await trio.testing.wait_all_tasks_blocked()
        stats = root.statistics()
        assert stats.restarts == 0
        assert [c.id for c in stats.children] == ["a", "inner"]
        nested = stats.children[1]
        assert isinstance(nested, SupervisorStatistics)
        assert (nested.strategy, nested.state, nested.restarts) == ("rest_for_one", "running", 1)
        assert [(c.id, c.restarts) for c in nested.children] == [("b", 1)]
        root.request_stop()


async def test_children_without_a_mailbox_report_no_queue(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def bare(*, task_status: trio.TaskStatus[None]) -> None:
        task_status.started()
        await trio.sleep_forever()

    root = Supervisor("root", [ChildSpec("bare", bare)])
    async with trio.open_nursery() as nursery:
        await nursery.start(root.run)
        stats = child(root, "bare")
        assert (stats.queue_depth, stats.queue_capacity) == (None, None)
        root.request_stop()
