"""Mailboxes under supervision: what happens to casts and calls around crashes and restarts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import trio
import trio.testing

from actors import ActorCrashed, ActorStopped, ActorTimeout, Supervisor

MakeProbe = Callable[..., Any]


async def test_messages_queued_behind_a_crash_reach_the_restarted_actor_in_order(
    make_probe: MakeProbe, timeline: list[str], autojump_clock: trio.testing.MockClock
) -> None:
    worker = make_probe("worker", size=16)
    root = Supervisor("root", [worker.spec()], restart_delay=2.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(root.run)
        await worker.note("a")
        await worker.crash()
        await worker.note("b")
        await worker.note("c")
        await trio.sleep(1.0)  # halfway through the restart delay
        assert worker.starts == 1
        assert not worker.ready
        await worker.note("d")
        await trio.sleep(1.5)
        root.request_stop()
    assert timeline == [
        "start worker",
        "worker got a",
        "stop worker",
        "start worker",
        "worker got b",
        "worker got c",
        "worker got d",
        "stop worker",
    ]


async def test_a_call_held_by_an_actor_that_crashes_fails_at_once(
    make_probe: MakeProbe, autojump_clock: trio.testing.MockClock
) -> None:
    worker = make_probe("worker")
    root = Supervisor("root", [worker.spec()])
    async with trio.open_nursery() as nursery:
        await nursery.start(root.run)
        with pytest.raises(ActorCrashed, match="'worker' crashed") as caught:
            await worker.call_and_crash("disk full", timeout=30)
        assert trio.current_time() == 0.0  # not after the 30 s timeout
        assert caught.value.actor == "worker"
        assert repr(caught.value.cause) == "RuntimeError('disk full')"
        assert caught.value.__cause__ is caught.value.cause
        # The restarted actor answers the next call.
        assert await worker.echo("again") == "AGAIN"
        root.request_stop()


async def test_calls_still_queued_when_the_actor_crashes_are_answered_after_the_restart(
    make_probe: MakeProbe,
) -> None:
    worker = make_probe("worker")
    root = Supervisor("root", [worker.spec()])
    answers: list[str] = []

    async def ask(text: str) -> None:
        answers.append(await worker.echo(text))

    async with trio.open_nursery() as nursery:
        await nursery.start(root.run)
        async with trio.open_nursery() as callers:
            await worker.crash()
            callers.start_soon(ask, "one")
            await trio.testing.wait_all_tasks_blocked()
            callers.start_soon(ask, "two")
        assert answers == ["ONE", "TWO"]
        assert worker.starts == 2
        root.request_stop()


async def test_a_call_held_by_an_actor_that_is_stopped_fails_with_actor_stopped(
    make_probe: MakeProbe,
) -> None:
    worker = make_probe("worker")
    root = Supervisor("root", [worker.spec()])
    async with trio.open_nursery() as nursery:
        await nursery.start(root.run)

        async def stop_soon() -> None:
            await trio.testing.wait_all_tasks_blocked()
            root.request_stop()

        nursery.start_soon(stop_soon)
        with pytest.raises(ActorStopped, match="'worker' stopped before answering"):
            await worker.call_and_hold(timeout=30)


@pytest.mark.parametrize("timeout", [0.25, 5.0])
async def test_a_call_nobody_answers_times_out_and_the_actor_keeps_serving(
    timeout: float, make_probe: MakeProbe, autojump_clock: trio.testing.MockClock
) -> None:
    worker = make_probe("worker")
    root = Supervisor("root", [worker.spec()])
    async with trio.open_nursery() as nursery:
        await nursery.start(root.run)
        with pytest.raises(ActorTimeout, match=f"'worker' did not answer within {timeout}s"):
            await worker.call_and_hold(timeout=timeout)
        assert trio.current_time() == timeout
        assert await worker.echo("still there") == "STILL THERE"
        assert worker.starts == 1
        root.request_stop()
