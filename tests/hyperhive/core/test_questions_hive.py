"""Questions through a running hive, on its real sockets, as agents and the operator use them.

Every test runs under trio's plain `autojump_clock`, with a `FakeWallClock` moving alongside:
the test hive runs its stores inline (`hyperhive.testing.inline`), so the clock jumps only
when the whole hive is idle and every wait is exact. pytest-trio only uses a clock the test
itself requests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import trio
import trio.testing

from hyperhive import wire
from hyperhive.errors import RemoteError
from hyperhive.testing import FakeWallClock, open_test_hive

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from hyperhive.client import Client
    from hyperhive.testing import TestHive


@pytest.fixture
async def hive(short_tmp: Path, wall: FakeWallClock) -> AsyncIterator[TestHive]:
    async with open_test_hive(short_tmp, clock=wall, agents=("alice", "bob", "carol")) as hive:
        yield hive


async def helper_events(client: Client, wait: float = 5.0) -> list[wire.HelperEvent]:
    """What the hive told this agent within `wait` seconds: its messages from `hive`, decoded,
    then acked. Waits past the daemon's 180 s long-poll cap by polling again."""
    deadline = trio.current_time() + wait
    while True:
        remaining = max(0.0, deadline - trio.current_time())
        reply = await client.call(wire.Recv(wait_seconds=remaining, max=32))
        if reply.messages or trio.current_time() >= deadline:
            break
    assert {m.sender for m in reply.messages} <= {wire.HELPER_SENDER}
    await client.call(wire.AckTurn())
    return [wire.decode_helper_event(m.body) for m in reply.messages]


async def event_payloads(client: Client) -> list[wire.EventPayload]:
    await trio.testing.wait_all_tasks_blocked()
    history = await client.call(wire.History(limit=200))
    return [event.payload for event in history.events]


async def test_operator_answers_and_the_asker_is_told(
    hive: TestHive, autojump_clock: trio.testing.MockClock
) -> None:
    async with hive.agent("alice") as alice, hive.operator() as operator:
        asked = await alice.call(wire.Ask(question="ship it?", options=("yes", "no")))
        queue = await operator.call(wire.ListQuestions())
        assert [(q.id, q.asker, q.target, q.question) for q in queue.questions] == [
            (asked.id, "alice", "operator", "ship it?")
        ]
        resolved = await operator.call(wire.Answer(id=asked.id, answer="yes"))
        assert resolved.question.answerer == "operator"

        assert await helper_events(alice) == [
            wire.QuestionAnswered(asked.id, "ship it?", "yes", "operator")
        ]
        assert (await operator.call(wire.ListQuestions())).questions == ()
        history = await operator.call(wire.ListQuestions(answered=True))
        assert [(q.id, q.answer) for q in history.questions] == [(asked.id, "yes")]


async def test_peer_question_reaches_its_target_and_never_the_operator(
    hive: TestHive, autojump_clock: trio.testing.MockClock
) -> None:
    async with (
        hive.agent("alice") as alice,
        hive.agent("bob") as bob,
        hive.agent("carol") as carol,
        hive.operator() as operator,
    ):
        ask = wire.Ask(question="which db?", options=("sqlite", "pg"), multi=True, to="bob")
        asked = await alice.call(ask)
        assert await helper_events(bob) == [
            wire.QuestionAsked(asked.id, "alice", "which db?", ("sqlite", "pg"), True)
        ]
        assert (await operator.call(wire.ListQuestions())).questions == ()

        for outsider in (carol, alice):
            with pytest.raises(RemoteError, match="only bob or the operator can answer it"):
                await outsider.call(wire.Answer(id=asked.id, answer="pg"))
        await bob.call(wire.Answer(id=asked.id, answer="sqlite"))
        assert await helper_events(alice) == [
            wire.QuestionAnswered(asked.id, "which db?", "sqlite", "bob")
        ]
        with pytest.raises(RemoteError, match="already answered \\(by bob\\)"):
            await bob.call(wire.Answer(id=asked.id, answer="pg"))
        assert await helper_events(alice, wait=0) == []


async def test_the_operator_may_override_a_peer(
    hive: TestHive, autojump_clock: trio.testing.MockClock
) -> None:
    async with hive.agent("alice") as alice, hive.operator() as operator:
        asked = await alice.call(wire.Ask(question="deploy?", to="bob"))
        await operator.call(wire.Answer(id=asked.id, answer="not today"))
        assert await helper_events(alice) == [
            wire.QuestionAnswered(asked.id, "deploy?", "not today", "operator")
        ]


async def test_only_the_operator_answers_operator_questions(
    hive: TestHive, autojump_clock: trio.testing.MockClock
) -> None:
    async with hive.agent("alice") as alice, hive.agent("bob") as bob, hive.manager() as manager:
        asked = await alice.call(wire.Ask(question="budget?"))
        for who in (bob, manager, alice):
            with pytest.raises(RemoteError, match="only the operator can answer it"):
                await who.call(wire.Answer(id=asked.id, answer="lots"))


async def test_bad_asks_are_refused_and_store_nothing(
    hive: TestHive, autojump_clock: trio.testing.MockClock
) -> None:
    async with hive.agent("alice") as alice, hive.manager() as manager, hive.operator() as op:
        with pytest.raises(RemoteError, match="cannot ask yourself"):
            await alice.call(wire.Ask(question="me?", to="alice"))
        with pytest.raises(RemoteError, match="cannot ask yourself"):
            await manager.call(wire.Ask(question="me?", to="manager"))
        with pytest.raises(RemoteError, match="unknown agent 'zed'"):
            await alice.call(wire.Ask(question="you?", to="zed"))
        with pytest.raises(RemoteError, match="question is empty"):
            await alice.call(wire.Ask(question=" "))
        with pytest.raises(RemoteError, match="no question #99"):
            await op.call(wire.Answer(id=99, answer="x"))
        ends = await manager.call(wire.GetLooseEnds())
        assert ends.questions == ()


async def test_the_operator_cannot_ask_and_agents_cannot_list_the_queue(
    hive: TestHive, autojump_clock: trio.testing.MockClock
) -> None:
    async with hive.operator() as operator, hive.agent("alice") as alice:
        with pytest.raises(RemoteError, match="'ask' is not available to the operator"):
            await operator.call(wire.Ask(question="q"))
        with pytest.raises(RemoteError, match="'questions' is not available to alice"):
            await alice.call(wire.ListQuestions())


async def test_ttl_expiry_answers_at_exactly_the_ttl(
    hive: TestHive, wall: FakeWallClock, autojump_clock: trio.testing.MockClock
) -> None:
    async with hive.agent("alice") as alice, hive.operator() as operator:
        start = trio.current_time()
        asked = await alice.call(wire.Ask(question="lunch?", ttl_seconds=600))
        assert await helper_events(alice, wait=599) == []
        events = await helper_events(alice, wait=5)
        assert trio.current_time() == pytest.approx(start + 600)
        assert events == [
            wire.QuestionAnswered(
                asked.id,
                "lunch?",
                "[expired: no answer from operator within 10 minutes. Decide without it, "
                "or ask again if you still need it]",
                "ttl-watchdog",
            )
        ]
        assert (await operator.call(wire.ListQuestions())).questions == ()
        with pytest.raises(RemoteError, match="already answered \\(by ttl-watchdog\\)"):
            await operator.call(wire.Answer(id=asked.id, answer="sure"))


async def test_an_answer_before_the_ttl_cancels_the_watchdog(
    hive: TestHive, autojump_clock: trio.testing.MockClock
) -> None:
    async with hive.agent("alice") as alice, hive.agent("bob") as bob:
        asked = await alice.call(wire.Ask(question="ok?", ttl_seconds=60, to="bob"))
        await helper_events(bob)
        await bob.call(wire.Answer(id=asked.id, answer="ok"))
        assert [e.answerer for e in await helper_events(alice)] == ["bob"]  # type: ignore[union-attr]
        assert await helper_events(alice, wait=120) == []


async def test_a_sooner_ttl_wakes_the_watchdog_early(
    hive: TestHive, autojump_clock: trio.testing.MockClock
) -> None:
    async with hive.agent("alice") as alice:
        start = trio.current_time()
        await alice.call(wire.Ask(question="late", ttl_seconds=3600))
        soon = await alice.call(wire.Ask(question="soon", ttl_seconds=30))
        events = await helper_events(alice, wait=60)
        assert [e.id for e in events] == [soon.id]  # type: ignore[union-attr]
        assert trio.current_time() == pytest.approx(start + 30)


async def test_a_ttl_that_ran_out_while_stopped_expires_on_start(
    short_tmp: Path, autojump_clock: trio.testing.MockClock
) -> None:
    wall = FakeWallClock()
    async with (
        open_test_hive(short_tmp, clock=wall, agents=("alice",)) as hive,
        hive.agent("alice") as alice,
    ):
        asked = await alice.call(wire.Ask(question="still there?", ttl_seconds=60))
    wall.advance(3600)  # the daemon was down for an hour
    async with open_test_hive(short_tmp, clock=wall) as hive, hive.agent("alice") as alice:
        start = trio.current_time()
        events = await helper_events(alice)
        assert trio.current_time() == pytest.approx(start)
        assert [(e.id, e.answerer) for e in events] == [(asked.id, "ttl-watchdog")]  # type: ignore[union-attr]


async def test_cancelling_a_question_unblocks_its_asker(
    hive: TestHive, autojump_clock: trio.testing.MockClock
) -> None:
    async with (
        hive.agent("alice") as alice,
        hive.agent("bob") as bob,
        hive.manager() as manager,
    ):
        first = await alice.call(wire.Ask(question="one?", to="bob"))
        second = await alice.call(wire.Ask(question="two?"))
        await helper_events(bob)
        with pytest.raises(RemoteError, match="only alice or the manager can cancel it"):
            await bob.call(wire.CancelLooseEnd(kind="question", id=first.id))
        await alice.call(wire.CancelLooseEnd(kind="question", id=first.id))
        await manager.call(wire.CancelLooseEnd(kind="question", id=second.id))
        assert await helper_events(alice) == [
            wire.QuestionAnswered(first.id, "one?", "[cancelled by alice]", "alice"),
            wire.QuestionAnswered(second.id, "two?", "[cancelled by manager]", "manager"),
        ]
        with pytest.raises(RemoteError, match="already answered"):
            await bob.call(wire.Answer(id=first.id, answer="late"))


async def test_an_asker_removed_meanwhile_does_not_block_the_answer(
    hive: TestHive, autojump_clock: trio.testing.MockClock
) -> None:
    async with hive.agent("carol") as carol:
        asked = await carol.call(wire.Ask(question="anyone?"))
    async with hive.operator() as operator:
        await operator.call(wire.UnregisterAgent(name="carol"))
        resolved = await operator.call(wire.Answer(id=asked.id, answer="hi"))
        assert resolved.question.answer == "hi"
        assert (await operator.call(wire.ListQuestions())).questions == ()


async def test_question_events_reach_the_dashboard(
    hive: TestHive, autojump_clock: trio.testing.MockClock
) -> None:
    async with hive.agent("alice") as alice, hive.operator() as operator:
        asked = await alice.call(wire.Ask(question="ship?"))
        await operator.call(wire.Answer(id=asked.id, answer="yes"))
        payloads = await event_payloads(operator)
        added = [p for p in payloads if isinstance(p, wire.QuestionAdded)]
        resolved = [p for p in payloads if isinstance(p, wire.QuestionResolved)]
        assert [(p.question.id, p.question.answer) for p in added] == [(asked.id, None)]
        assert [(p.question.id, p.question.answer) for p in resolved] == [(asked.id, "yes")]
