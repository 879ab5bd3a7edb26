"""Mailbox and Reply on their own, with a hand-written reader standing in for the actor."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from actors import ActorCrashed, ActorTimeout, Mailbox, MailboxFull, MailboxStatistics, Reply


async def drain(mailbox: Mailbox[str], into: list[str]) -> None:
    async for msg in mailbox.inbox:
        into.append(msg)


async def test_inbox_yields_casts_in_order() -> None:
    mailbox: Mailbox[str] = Mailbox("m", size=4)
    for msg in ["a", "b", "c"]:
        await mailbox.cast(msg)
    received: list[str] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(drain, mailbox, received)
        await trio.testing.wait_all_tasks_blocked()
        mailbox.request_stop()
    assert received == ["a", "b", "c"]


async def test_cast_waits_while_the_mailbox_is_full() -> None:
    mailbox: Mailbox[str] = Mailbox("m", size=2)
    await mailbox.cast("a")
    await mailbox.cast("b")
    queued = trio.Event()

    async def third() -> None:
        await mailbox.cast("c")
        queued.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(third)
        await trio.testing.wait_all_tasks_blocked()
        assert not queued.is_set()
        assert await mailbox.inbox.__anext__() == "a"
        await queued.wait()
    stats = mailbox.statistics()
    assert (stats.name, stats.depth, stats.capacity, stats.taken) == ("m", 2, 2, 1)


async def test_statistics_say_when_the_actor_last_took_a_message(
    autojump_clock: trio.testing.MockClock,
) -> None:
    mailbox: Mailbox[str] = Mailbox("m", size=4)
    assert mailbox.statistics().last_taken_at is None
    await trio.sleep(5)
    mailbox.cast_nowait("a")
    mailbox.cast_nowait("b")
    assert await mailbox.inbox.__anext__() == "a"
    assert mailbox.statistics().last_taken_at == 5.0
    await trio.sleep(2)
    assert mailbox.inbox.receive_nowait() == "b"
    assert mailbox.statistics() == MailboxStatistics("m", 0, 4, last_taken_at=7.0, taken=2)


async def test_cast_nowait_raises_mailbox_full_and_keeps_the_queue() -> None:
    mailbox: Mailbox[str] = Mailbox("orders", size=1)
    mailbox.cast_nowait("first")
    with pytest.raises(MailboxFull, match="'orders' is full") as caught:
        mailbox.cast_nowait("second")
    assert caught.value.actor == "orders"
    assert await mailbox.inbox.__anext__() == "first"
    assert mailbox.statistics().depth == 0


async def test_request_stop_wakes_a_receive_in_progress_and_loses_nothing() -> None:
    mailbox: Mailbox[str] = Mailbox("m")
    received: list[str] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(drain, mailbox, received)
        await trio.testing.wait_all_tasks_blocked()
        mailbox.request_stop()
    await mailbox.cast("later")
    assert received == []
    assert mailbox.statistics().depth == 1


async def test_a_stopped_inbox_ends_at_once_and_leaves_the_queue_for_the_next_reader() -> None:
    mailbox: Mailbox[str] = Mailbox("m")
    await mailbox.cast("kept")
    mailbox.request_stop()
    received: list[str] = []
    await drain(mailbox, received)
    assert received == []
    mailbox._reset()  # what the supervisor does before it starts the actor again
    async with trio.open_nursery() as nursery:
        nursery.start_soon(drain, mailbox, received)
        await trio.testing.wait_all_tasks_blocked()
        mailbox.request_stop()
    assert received == ["kept"]


@pytest.mark.parametrize("fail_first", [True, False])
async def test_only_the_first_answer_counts(fail_first: bool) -> None:
    mailbox: Mailbox[Reply[int]] = Mailbox("adder")

    async def answer_twice() -> None:
        reply = await mailbox.inbox.__anext__()
        if fail_first:
            reply.fail(ValueError("no negative numbers"))
            reply.send(1)
        else:
            reply.send(1)
            reply.fail(ValueError("no negative numbers"))
        assert reply.answered

    async with trio.open_nursery() as nursery:
        nursery.start_soon(answer_twice)
        if fail_first:
            with pytest.raises(ValueError, match="no negative numbers"):
                await mailbox.call(lambda reply: reply)
        else:
            assert await mailbox.call(lambda reply: reply) == 1


async def test_an_actors_own_too_slow_error_is_not_mistaken_for_the_call_timeout() -> None:
    mailbox: Mailbox[Reply[int]] = Mailbox("proxy")

    async def forward_timeout() -> None:
        reply = await mailbox.inbox.__anext__()
        reply.fail(trio.TooSlowError())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(forward_timeout)
        with pytest.raises(trio.TooSlowError):
            await mailbox.call(lambda reply: reply)


@pytest.mark.parametrize("timeout", [0.5, 5.0, 30.0])
async def test_call_without_an_answer_times_out_at_exactly_its_timeout(
    timeout: float, autojump_clock: trio.testing.MockClock
) -> None:
    mailbox: Mailbox[Reply[int]] = Mailbox("sleepy")
    start = trio.current_time()
    with pytest.raises(ActorTimeout, match=f"'sleepy' did not answer within {timeout}s") as caught:
        await mailbox.call(lambda reply: reply, timeout=timeout)
    assert trio.current_time() - start == timeout
    assert (caught.value.actor, caught.value.timeout) == ("sleepy", timeout)
    # The request stays queued; answering it after the caller gave up is harmless.
    late = await mailbox.inbox.__anext__()
    late.send(1)
    assert late.answered


async def test_call_timeout_also_covers_waiting_for_room(
    autojump_clock: trio.testing.MockClock,
) -> None:
    mailbox: Mailbox[Reply[int] | str] = Mailbox("busy", size=1)
    await mailbox.cast("filler")
    with pytest.raises(ActorTimeout):
        await mailbox.call(lambda reply: reply, timeout=2.0)
    assert trio.current_time() == 2.0
    assert mailbox.statistics().depth == 1


@pytest.mark.parametrize("size", [0, -1])
def test_mailbox_size_must_be_at_least_one(size: int) -> None:
    with pytest.raises(ValueError, match="size must be >= 1"):
        Mailbox("m", size)


def test_statistics_and_repr_report_depth_and_capacity() -> None:
    mailbox: Mailbox[str] = Mailbox("m", size=3)
    mailbox.cast_nowait("a")
    mailbox.cast_nowait("b")
    assert mailbox.statistics() == MailboxStatistics(name="m", depth=2, capacity=3)
    assert repr(mailbox) == "<Mailbox 'm' 2/3>"


async def test_receive_nowait_drains_what_is_queued_and_tracks_calls() -> None:
    mailbox: Mailbox[object] = Mailbox("drain", size=8)
    for n in range(3):
        mailbox.cast_nowait(n)
    inbox = mailbox.inbox
    assert [inbox.receive_nowait() for _ in range(3)] == [0, 1, 2]
    with pytest.raises(trio.WouldBlock):
        inbox.receive_nowait()
    mailbox.request_stop()
    mailbox.cast_nowait(3)
    with pytest.raises(trio.WouldBlock):
        inbox.receive_nowait()


async def test_a_request_taken_with_receive_nowait_fails_its_caller_on_crash(
    autojump_clock: trio.testing.MockClock,
) -> None:
    mailbox: Mailbox[Reply[int]] = Mailbox("drain", size=8)
    async with trio.open_nursery() as nursery:

        async def caller() -> None:
            with pytest.raises(ActorCrashed):
                await mailbox.call(lambda reply: reply, timeout=60)
            assert trio.current_time() < 1

        nursery.start_soon(caller)
        await trio.testing.wait_all_tasks_blocked()
        mailbox.inbox.receive_nowait()
        mailbox._actor_exited(RuntimeError("boom"))


async def test_reply_is_abandoned_once_the_caller_gives_up(
    autojump_clock: trio.testing.MockClock,
) -> None:
    mailbox: Mailbox[Reply[int]] = Mailbox("slow", size=8)
    with pytest.raises(ActorTimeout):
        await mailbox.call(lambda reply: reply, timeout=5)
    held = mailbox.inbox.receive_nowait()
    assert held.abandoned
    assert not held.answered
    answered: Mailbox[Reply[int]] = Mailbox("fast", size=8)
    async with trio.open_nursery() as nursery:

        async def answer() -> None:
            reply = await answered.inbox.__anext__()
            assert not reply.abandoned
            reply.send(7)

        nursery.start_soon(answer)
        assert await answered.call(lambda reply: reply, timeout=5) == 7


async def test_an_answer_that_reaches_no_one_goes_to_on_lost(
    autojump_clock: trio.testing.MockClock,
) -> None:
    mailbox: Mailbox[Reply[str]] = Mailbox("lease", size=8)
    lost: list[str] = []
    # The caller gives up first; the actor answers later: the answer is handed to on_lost.
    with pytest.raises(ActorTimeout):
        await mailbox.call(lambda reply: reply, timeout=1, on_lost=lost.append)
    late = mailbox.inbox.receive_nowait()
    late.send("leased after the caller left")
    assert lost == ["leased after the caller left"]

    # The caller is cancelled in the same instant the answer lands: on_lost gets it too.
    async with trio.open_nursery() as nursery:

        async def caller() -> None:
            await mailbox.call(lambda reply: reply, timeout=60, on_lost=lost.append)
            raise AssertionError("the call should have been cancelled")

        nursery.start_soon(caller)
        await trio.testing.wait_all_tasks_blocked()
        held = mailbox.inbox.receive_nowait()
        nursery.cancel_scope.cancel()
        held.send("answered as the caller was cancelled")
    # The cancel was delivered first, so the caller never returns the answer: on_lost has it.
    assert lost[1:] == ["answered as the caller was cancelled"]
    answered: Mailbox[Reply[str]] = Mailbox("fast", size=8)
    async with trio.open_nursery() as nursery:

        async def answer() -> None:
            (await answered.inbox.__anext__()).send("delivered")

        nursery.start_soon(answer)
        got = await answered.call(lambda reply: reply, timeout=5, on_lost=lost.append)
    assert got == "delivered"
    assert "delivered" not in lost
