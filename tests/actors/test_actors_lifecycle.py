"""Ordered start, reverse stop, bounded shutdown, dynamic children and nested supervisors."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
import trio
import trio.testing

from actors import ActorStopped, ChildSpec, Restart, Strategy, Supervisor, SupervisorGaveUp

MakeProbe = Callable[..., Any]


# ---- start and stop order ---------------------------------------------------------------


async def test_children_start_in_order_and_each_sees_the_earlier_ones_ready(
    make_probe: MakeProbe, autojump_clock: trio.testing.MockClock
) -> None:
    a, b, c = make_probe("a", ready_after=2.0), make_probe("b", ready_after=3.0), make_probe("c")
    b.peers, c.peers = [a], [a, b]
    root = Supervisor("root", [a.spec(), b.spec(), c.spec()])
    async with trio.open_nursery() as nursery:
        await nursery.start(root.run)
        # started() came only once every child was ready: 2 s for a, then 3 s for b.
        assert trio.current_time() == 5.0
        assert b.saw_ready == {"a": True}
        assert c.saw_ready == {"a": True, "b": True}
        root.request_stop()


async def test_request_stop_stops_children_in_reverse_order_and_returns(
    make_probe: MakeProbe, timeline: list[str]
) -> None:
    probes = [make_probe(name) for name in "abc"]
    root = Supervisor("root", [p.spec() for p in probes])
    async with trio.open_nursery() as nursery:
        await nursery.start(root.run)
        root.request_stop()
        root.request_stop()  # idempotent
    assert timeline == ["start a", "start b", "start c", "stop c", "stop b", "stop a"]
    assert root.statistics().state == "stopped"
    assert [child.state for child in root.statistics().children] == ["stopped"] * 3


@pytest.mark.parametrize("shutdown_timeout", [0.5, 2.0, 10.0])
async def test_shutdown_is_bounded_even_when_a_child_ignores_the_stop_request(
    shutdown_timeout: float,
    make_probe: MakeProbe,
    timeline: list[str],
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="actors")
    a, stubborn = make_probe("a"), make_probe("stubborn", ignore_stop=True)
    root = Supervisor("root", [a.spec(), stubborn.spec(shutdown_timeout=shutdown_timeout)])
    async with trio.open_nursery() as nursery:
        await nursery.start(root.run)
        root.request_stop()
    assert trio.current_time() == shutdown_timeout
    assert timeline[-2:] == ["stop stubborn", "stop a"]
    (record,) = caplog.records
    assert (record.context, record.child) == ("shutdown_error", "stubborn")
    assert record.reason == f"did not stop within {shutdown_timeout}s; cancelling it"


async def test_an_on_stop_hook_is_asked_first_and_a_child_with_no_way_to_ask_is_cancelled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    stop_polite = trio.Event()
    ended: list[tuple[str, float]] = []

    async def polite(*, task_status: trio.TaskStatus[None]) -> None:
        task_status.started()
        await stop_polite.wait()
        await trio.sleep(1.0)  # tidying up takes a second
        ended.append(("polite", trio.current_time()))

    async def mute(*, task_status: trio.TaskStatus[None]) -> None:
        task_status.started()
        try:
            await trio.sleep_forever()
        finally:
            ended.append(("mute", trio.current_time()))

    root = Supervisor(
        "root",
        [
            ChildSpec("polite", polite, on_stop=stop_polite.set, shutdown_timeout=5.0),
            ChildSpec("mute", mute, shutdown_timeout=5.0),
        ],
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(root.run)
        root.request_stop()
    assert ended == [("mute", 0.0), ("polite", 1.0)]


async def test_a_child_that_fails_while_being_stopped_is_not_restarted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="actors")
    asked = trio.Event()
    starts = 0

    async def grumpy(*, task_status: trio.TaskStatus[None]) -> None:
        nonlocal starts
        starts += 1
        task_status.started()
        await asked.wait()
        raise RuntimeError("do not want to stop")

    root = Supervisor("root", [ChildSpec("grumpy", grumpy, on_stop=asked.set)])
    async with trio.open_nursery() as nursery:
        await nursery.start(root.run)
        root.request_stop()
    assert starts == 1
    assert [(r.context, r.reason) for r in caplog.records] == [
        ("shutdown_error", "RuntimeError('do not want to stop')")
    ]


# ---- dynamic children -------------------------------------------------------------------


async def test_start_child_appends_a_ready_child_and_terminate_child_removes_it(
    make_probe: MakeProbe, timeline: list[str]
) -> None:
    a, late = make_probe("a"), make_probe("late")
    root = Supervisor("root", [a.spec()])
    async with trio.open_nursery() as nursery:
        await nursery.start(root.run)
        await root.start_child(late.spec())
        assert late.ready
        assert root.which_children() == ["a", "late"]
        await root.terminate_child("late")
        assert not late.ready
        assert root.which_children() == ["a"]
        root.request_stop()
    assert timeline == ["start a", "start late", "stop late", "stop a"]


async def test_terminate_child_uses_the_bounded_stop_protocol(
    make_probe: MakeProbe, autojump_clock: trio.testing.MockClock
) -> None:
    stubborn = make_probe("stubborn", ignore_stop=True)
    root = Supervisor("root", [])
    async with trio.open_nursery() as nursery:
        await nursery.start(root.run)
        await root.start_child(stubborn.spec(shutdown_timeout=3.0))
        await root.terminate_child("stubborn")
        assert trio.current_time() == 3.0
        assert root.which_children() == []
        root.request_stop()


async def test_a_failed_start_child_raises_to_the_caller_and_adds_nothing(
    make_probe: MakeProbe,
) -> None:
    broken = make_probe("broken", fail_starts=1)
    root = Supervisor("root", [], intensity=0)  # would give up on any counted failure
    async with trio.open_nursery() as nursery:
        await nursery.start(root.run)
        with pytest.raises(RuntimeError, match="broken start 1 failed"):
            await root.start_child(broken.spec())
        assert root.which_children() == []
        # OTP: the error goes to the caller and does not count towards intensity.
        await root.start_child(broken.spec())
        assert root.which_children() == ["broken"]
        assert root.statistics().state == "running"
        root.request_stop()


async def test_dynamic_children_reject_duplicate_and_unknown_ids(make_probe: MakeProbe) -> None:
    a = make_probe("a")
    root = Supervisor("root", [a.spec()])
    async with trio.open_nursery() as nursery:
        await nursery.start(root.run)
        with pytest.raises(ValueError, match="already has a child 'a'"):
            await root.start_child(make_probe("a").spec())
        with pytest.raises(LookupError, match="has no child 'ghost'"):
            await root.terminate_child("ghost")
        assert root.which_children() == ["a"]
        root.request_stop()


async def test_dynamic_children_are_restarted_like_any_other(
    make_probe: MakeProbe, timeline: list[str]
) -> None:
    a, late = make_probe("a"), make_probe("late")
    root = Supervisor("root", [a.spec()], strategy=Strategy.REST_FOR_ONE)
    async with trio.open_nursery() as nursery:
        await nursery.start(root.run)
        await root.start_child(late.spec())
        await a.crash()
        await trio.testing.wait_all_tasks_blocked()
        assert (a.starts, late.starts) == (2, 2)
        assert timeline[-4:] == ["stop a", "stop late", "start a", "start late"]
        root.request_stop()


async def test_commands_to_a_supervisor_that_is_not_running_raise_actor_stopped(
    make_probe: MakeProbe,
) -> None:
    root = Supervisor("root", [])
    with pytest.raises(ActorStopped, match="'root'"):
        await root.start_child(make_probe("a").spec())
    async with trio.open_nursery() as nursery:
        await nursery.start(root.run)
        root.request_stop()
    with pytest.raises(ActorStopped):
        await root.terminate_child("a")


async def test_commands_queued_when_the_supervisor_stops_fail_with_actor_stopped(
    make_probe: MakeProbe, autojump_clock: trio.testing.MockClock
) -> None:
    slow = make_probe("slow", ignore_stop=True)
    root = Supervisor("root", [slow.spec(shutdown_timeout=1.0)])
    outcomes: list[str] = []

    async def add_late() -> None:
        try:
            await root.start_child(make_probe("late").spec())
        except ActorStopped:
            outcomes.append("stopped")

    async with trio.open_nursery() as nursery:
        await nursery.start(root.run)
        root.request_stop()
        nursery.start_soon(add_late)
    assert outcomes == ["stopped"]
    assert root.which_children() == ["slow"]


# ---- nested supervisors -----------------------------------------------------------------


async def test_an_inner_supervisor_that_gives_up_is_restarted_by_its_parent(
    autojump_clock: trio.testing.MockClock,
) -> None:
    starts = 0

    async def doomed(*, task_status: trio.TaskStatus[None]) -> None:
        nonlocal starts
        starts += 1
        task_status.started()
        await trio.sleep(1.0)
        raise RuntimeError("disk full")

    inner = Supervisor("inner", [ChildSpec("doomed", doomed)], intensity=2, period=60)
    outer = Supervisor("outer", [ChildSpec.for_supervisor(inner)], intensity=1, period=60)
    with pytest.raises(SupervisorGaveUp) as caught:
        await outer.run()

    # Each inner run starts its child intensity + 1 = 3 times; outer restarts inner once.
    assert starts == 3 * 2
    assert (caught.value.supervisor_id, caught.value.child_id) == ("outer", "inner")
    inner_gave_up = caught.value.last_exc
    assert isinstance(inner_gave_up, SupervisorGaveUp)
    assert (inner_gave_up.supervisor_id, inner_gave_up.child_id) == ("inner", "doomed")
    assert trio.current_time() == 6.0


async def test_stopping_the_root_stops_the_whole_tree_depth_first_in_reverse(
    make_probe: MakeProbe, timeline: list[str]
) -> None:
    x, a, b, y = (make_probe(name) for name in "xaby")
    inner = Supervisor("inner", [a.spec(), b.spec()])
    root = Supervisor("root", [x.spec(), ChildSpec.for_supervisor(inner), y.spec()])
    async with trio.open_nursery() as nursery:
        await nursery.start(root.run)
        assert timeline == ["start x", "start a", "start b", "start y"]
        root.request_stop()
    assert timeline[4:] == ["stop y", "stop b", "stop a", "stop x"]


def test_for_supervisor_wires_start_stop_and_statistics_to_the_supervisor() -> None:
    inner = Supervisor("inner", [])
    spec = ChildSpec.for_supervisor(inner, restart=Restart.TRANSIENT)
    assert (spec.id, spec.restart, spec.shutdown_timeout) == ("inner", Restart.TRANSIENT, 30.0)
    assert spec.start == inner.run
    assert spec.on_stop == inner.request_stop
    assert spec.statistics == inner.statistics


def test_duplicate_child_ids_are_rejected() -> None:
    async def child(*, task_status: trio.TaskStatus[None]) -> None:
        task_status.started()

    with pytest.raises(ValueError, match="duplicate child id 'a'"):
        Supervisor("root", [ChildSpec("a", child), ChildSpec("a", child)])
