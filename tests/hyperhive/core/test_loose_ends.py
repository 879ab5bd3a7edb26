"""Loose ends: the pure aggregate, and what each identity sees and may cancel in a live hive."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import trio
import trio.testing

from hyperhive import wire
from hyperhive.core import loose_ends
from hyperhive.core.listener import Identity
from hyperhive.errors import BadRequest, RemoteError
from hyperhive.testing import FakeWallClock, open_test_hive

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from hyperhive.client import Client
    from hyperhive.testing import TestHive


def _q(id: int, answered: bool = False) -> wire.Question:
    return wire.Question(
        id, "alice", "operator", "q", (), False, 1.0, answered_at=2.0 if answered else None
    )


def _r(id: int, state: str) -> wire.Reminder:
    return wire.Reminder(id, "alice", "m", 1.0, 2.0, state)


def test_assemble_keeps_only_what_is_open_oldest_first() -> None:
    ends = loose_ends.assemble(
        [_q(3), _q(1), _q(2, answered=True)],
        [_r(5, "failed"), _r(4, "pending"), _r(6, "delivered")],
    )
    assert [q.id for q in ends.questions] == [1, 3]
    assert [(r.id, r.state) for r in ends.reminders] == [(4, "pending"), (5, "failed")]
    assert ends.approvals == ()
    assert loose_ends.count(ends) == 4


def test_scope_is_own_for_agents_and_hive_wide_for_manager_and_operator() -> None:
    assert loose_ends.scope(Identity("agent", "alice")) == "alice"
    assert loose_ends.scope(Identity("manager", "manager")) is None
    assert loose_ends.scope(Identity("operator", "operator")) is None


def test_cancel_kind_names_what_it_accepts() -> None:
    assert loose_ends.cancel_kind("question") == "question"
    assert loose_ends.cancel_kind("reminder") == "reminder"
    assert loose_ends.cancel_kind("approval", "manager") == "approval"
    assert loose_ends.cancel_kind("approval", "operator") == "approval"
    with pytest.raises(BadRequest, match=r"only the manager .* or the operator"):
        loose_ends.cancel_kind("approval")
    with pytest.raises(BadRequest, match="use one of: question, reminder, approval"):
        loose_ends.cancel_kind("Question")


# -- in a live hive ------------------------------------------------------------------------


@pytest.fixture
async def hive(short_tmp: Path) -> AsyncIterator[TestHive]:
    agents = ("alice", "bob", "carol")
    async with open_test_hive(short_tmp, clock=FakeWallClock(), agents=agents) as hive:
        yield hive


async def _ends(client: Client) -> tuple[list[int], list[int]]:
    ends = await client.call(wire.GetLooseEnds())
    assert ends.approvals == ()  # approvals arrive with a later issue
    return [q.id for q in ends.questions], [r.id for r in ends.reminders]


async def test_each_agent_sees_its_own_and_the_manager_sees_all(
    hive: TestHive, autojump_clock: trio.testing.MockClock
) -> None:
    async with (
        hive.agent("alice") as alice,
        hive.agent("bob") as bob,
        hive.agent("carol") as carol,
        hive.manager() as manager,
        hive.operator() as operator,
    ):
        to_operator = (await alice.call(wire.Ask(question="1"))).id
        alice_to_bob = (await alice.call(wire.Ask(question="2", to="bob"))).id
        bob_to_carol = (await bob.call(wire.Ask(question="3", to="carol"))).id
        alice_reminder = (await alice.call(wire.Remind(message="a", delay_seconds=600))).id
        bob_reminder = (await bob.call(wire.Remind(message="b", delay_seconds=900))).id

        assert await _ends(alice) == ([to_operator, alice_to_bob], [alice_reminder])
        assert await _ends(bob) == ([alice_to_bob, bob_to_carol], [bob_reminder])
        assert await _ends(carol) == ([bob_to_carol], [])
        everything = ([to_operator, alice_to_bob, bob_to_carol], [alice_reminder, bob_reminder])
        assert await _ends(manager) == everything
        assert await _ends(operator) == everything

        await bob.call(wire.Answer(id=alice_to_bob, answer="yes"))
        await trio.sleep(700)  # alice's reminder is delivered
        assert await _ends(alice) == ([to_operator], [])
        assert await _ends(bob) == ([bob_to_carol], [bob_reminder])


async def test_a_failed_reminder_stays_a_loose_end_until_dismissed(
    hive: TestHive, autojump_clock: trio.testing.MockClock
) -> None:
    async with hive.agent("alice") as alice, hive.agent("bob") as bob:
        failing = await alice.call(wire.Remind(message="x", delay_seconds=5, file_path="notes/x"))
        notes = hive.paths.agent_state_dir("alice") / "notes"
        notes.mkdir(parents=True)
        (notes / "x").mkdir()  # a directory where the file should go: the write fails
        await trio.sleep(10)
        ends = await alice.call(wire.GetLooseEnds())
        (row,) = ends.reminders
        assert (row.id, row.state) == (failing.id, "failed")
        assert row.failure == "could not write /state/notes/x: Is a directory"
        with pytest.raises(RemoteError, match="only alice or the manager"):
            await bob.call(wire.CancelLooseEnd(kind="reminder", id=failing.id))
        await alice.call(wire.CancelLooseEnd(kind="reminder", id=failing.id))
        assert await _ends(alice) == ([], [])


async def test_an_agent_cannot_cancel_an_approval_and_an_unknown_one_is_named(
    hive: TestHive, autojump_clock: trio.testing.MockClock
) -> None:
    async with hive.manager() as manager, hive.agent("alice") as alice:
        with pytest.raises(RemoteError, match=r"only the manager .* or the operator"):
            await alice.call(wire.CancelLooseEnd(kind="approval", id=1))
        with pytest.raises(RemoteError, match="there is no approval 1"):
            await manager.call(wire.CancelLooseEnd(kind="approval", id=1))


async def test_the_operator_may_cancel_any_loose_end(
    hive: TestHive, autojump_clock: trio.testing.MockClock
) -> None:
    async with hive.agent("alice") as alice, hive.operator() as operator:
        asked = await alice.call(wire.Ask(question="q", to="bob"))
        reminder = await alice.call(wire.Remind(message="m", delay_seconds=60))
        await operator.call(wire.CancelLooseEnd(kind="question", id=asked.id))
        await operator.call(wire.CancelLooseEnd(kind="reminder", id=reminder.id))
        reply = await alice.call(wire.Recv(wait_seconds=120, max=8))
        assert [wire.decode_helper_event(m.body) for m in reply.messages] == [
            wire.QuestionAnswered(asked.id, "q", "[cancelled by operator]", "operator")
        ]
        assert await _ends(alice) == ([], [])
