"""Reminders through a running hive, on its real sockets, in virtual time.

Every test runs under trio's plain `autojump_clock`, with a `FakeWallClock` moving alongside:
the test hive runs its stores inline (`hyperhive.testing.inline`), so the clock jumps only
when the whole hive is idle and every wait is exact. pytest-trio only uses a clock the test
itself requests.
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING

import pytest
import trio
import trio.testing

from hyperhive import wire
from hyperhive.containers.settings import ContainerSettings
from hyperhive.errors import RemoteError
from hyperhive.testing import FakeWallClock, open_test_hive

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from hyperhive.client import Client
    from hyperhive.testing import TestHive

THREE_DAYS = 3 * 86400.0
# The container rescanner polls every 10 s of virtual time at a few ms of real time per pass;
# over days of virtual time that would cost minutes. Nothing here needs it, so it runs weekly.
QUIET = ContainerSettings(backend="none", ensure_manager=False, rescan_interval=7 * 86400.0)


@pytest.fixture
async def hive(short_tmp: Path, wall: FakeWallClock) -> AsyncIterator[TestHive]:
    async with open_test_hive(
        short_tmp, clock=wall, agents=("alice", "bob"), containers=QUIET
    ) as hive:
        yield hive


async def inbox(client: Client, wait: float = 5.0, count: int = 1) -> list[wire.Delivery]:
    """The agent's messages, until `count` arrived or `wait` seconds passed (polling past the
    daemon's 180 s long-poll cap), acked."""
    deadline = trio.current_time() + wait
    messages: list[wire.Delivery] = []
    while True:
        remaining = max(0.0, deadline - trio.current_time())
        reply = await client.call(wire.Recv(wait_seconds=remaining, max=32))
        messages.extend(reply.messages)
        if len(messages) >= count or trio.current_time() >= deadline:
            break
    await client.call(wire.AckTurn())
    return messages


async def reminders(hive: TestHive, **query: object) -> list[wire.Reminder]:
    async with hive.operator() as operator:
        reply = await operator.call(wire.ListReminders(**query))  # type: ignore[arg-type]
    return list(reply.reminders)


async def event_payloads(hive: TestHive) -> list[wire.EventPayload]:
    await trio.testing.wait_all_tasks_blocked()
    async with hive.operator() as operator:
        history = await operator.call(wire.History(limit=500))
    return [event.payload for event in history.events]


async def test_a_reminder_set_for_three_days_fires_at_exactly_that_time(
    hive: TestHive, wall: FakeWallClock, autojump_clock: trio.testing.MockClock
) -> None:
    async with hive.agent("bob") as bob:
        start, set_at = trio.current_time(), wall.now()
        scheduled = await bob.call(
            wire.Remind(message="check the deploy", delay_seconds=THREE_DAYS)
        )
        assert scheduled.due_at == set_at + THREE_DAYS
        await trio.sleep(THREE_DAYS - 1)
        assert await inbox(bob, wait=0) == []
        (message,) = await inbox(bob, wait=10)
        assert trio.current_time() == start + THREE_DAYS
        assert message.sender == "hive"
        assert message.sent_at == scheduled.due_at
        assert wire.decode_helper_event(message.body) == wire.ReminderDue(
            scheduled.id, "check the deploy"
        )
    (row,) = await reminders(hive, delivered=True)
    assert (row.state, row.fired_at, row.failure) == ("delivered", scheduled.due_at, None)
    assert await reminders(hive) == []  # delivered ones are not listed by default
    payloads = await event_payloads(hive)
    assert [type(p).__name__ for p in payloads if type(p).__name__.startswith("Reminder")] == [
        "ReminderSet",
        "ReminderFired",
    ]


async def test_at_takes_a_wall_clock_time(
    hive: TestHive, wall: FakeWallClock, autojump_clock: trio.testing.MockClock
) -> None:
    async with hive.agent("bob") as bob:
        start = trio.current_time()
        when = datetime.datetime.fromtimestamp(wall.now() + 7200, tz=datetime.UTC)
        scheduled = await bob.call(wire.Remind(message="standup", at=when.isoformat()))
        (message,) = await inbox(bob, wait=7300)
        assert trio.current_time() == pytest.approx(start + 7200)
        assert wire.decode_helper_event(message.body) == wire.ReminderDue(scheduled.id, "standup")


async def test_a_sooner_reminder_wakes_the_scheduler_early(
    hive: TestHive, autojump_clock: trio.testing.MockClock
) -> None:
    async with hive.agent("bob") as bob:
        start = trio.current_time()
        await bob.call(wire.Remind(message="later", delay_seconds=THREE_DAYS))
        soon = await bob.call(wire.Remind(message="soon", delay_seconds=10))
        (message,) = await inbox(bob, wait=60)
        assert trio.current_time() == start + 10
        assert wire.decode_helper_event(message.body) == wire.ReminderDue(soon.id, "soon")


async def test_reminders_due_while_stopped_fire_on_start(
    short_tmp: Path, autojump_clock: trio.testing.MockClock
) -> None:
    wall = FakeWallClock()
    async with (
        open_test_hive(short_tmp, clock=wall, agents=("bob",), containers=QUIET) as hive,
        hive.agent("bob") as bob,
    ):
        missed = await bob.call(wire.Remind(message="missed", delay_seconds=3600))
        later = await bob.call(wire.Remind(message="later", delay_seconds=3 * 3600))
    wall.advance(2 * 3600)  # the daemon was down for two hours
    async with (
        open_test_hive(short_tmp, clock=wall, containers=QUIET) as hive,
        hive.agent("bob") as bob,
    ):
        start = trio.current_time()
        (first,) = await inbox(bob)
        assert trio.current_time() == start  # at once, not after another hour
        assert wire.decode_helper_event(first.body) == wire.ReminderDue(missed.id, "missed")
        # The other one keeps its wall-clock time: one more hour.
        (second,) = await inbox(bob, wait=2 * 3600)
        assert trio.current_time() == pytest.approx(start + 3600)
        assert wire.decode_helper_event(second.body) == wire.ReminderDue(later.id, "later")


async def test_file_path_writes_the_message_into_the_state_dir(
    hive: TestHive, autojump_clock: trio.testing.MockClock
) -> None:
    long_text = "step 1: look at the logs\n" * 200
    async with hive.agent("bob") as bob:
        absolute = await bob.call(
            wire.Remind(message=long_text, delay_seconds=60, file_path="/state/notes/todo.md")
        )
        relative = await bob.call(
            wire.Remind(message="short", delay_seconds=60, file_path="inbox/r.txt")
        )
        messages = await inbox(bob, wait=120, count=2)
    events = [wire.decode_helper_event(m.body) for m in messages]
    state = hive.paths.agent_state_dir("bob")
    assert (state / "notes" / "todo.md").read_text() == long_text
    assert (state / "inbox" / "r.txt").read_text() == "short"
    assert events == [
        wire.ReminderDue(
            absolute.id,
            f"reminder #{absolute.id}: its message ({len(long_text)} bytes) is in "
            "/state/notes/todo.md",
            "/state/notes/todo.md",
        ),
        wire.ReminderDue(
            relative.id, f"reminder #{relative.id}: its message (5 bytes) is in /state/inbox/r.txt",
            "/state/inbox/r.txt",
        ),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("file_path", "says"),
    [("../escape.txt", "uses '..'"), ("/etc/cron.d/x", "outside /state"), ("/state", "itself")],
)
async def test_file_paths_that_escape_are_refused_up_front(
    hive: TestHive, file_path: str, says: str, autojump_clock: trio.testing.MockClock
) -> None:
    async with hive.agent("bob") as bob:
        with pytest.raises(RemoteError, match=None) as caught:
            await bob.call(wire.Remind(message="x", delay_seconds=1, file_path=file_path))
        assert says in str(caught.value)
    assert await reminders(hive) == []


async def test_a_symlink_out_of_the_state_dir_is_a_recorded_failure(
    hive: TestHive, short_tmp: Path, autojump_clock: trio.testing.MockClock
) -> None:
    outside = short_tmp / "outside"
    outside.mkdir()
    state = hive.paths.agent_state_dir("bob")
    state.mkdir(parents=True, exist_ok=True)
    (state / "notes").symlink_to(outside)  # what a hostile agent could do inside /state
    async with hive.agent("bob") as bob:
        scheduled = await bob.call(
            wire.Remind(message="payload", delay_seconds=60, file_path="/state/notes/x.md")
        )
        assert await inbox(bob, wait=120) == []
        ends = await bob.call(wire.GetLooseEnds())
    assert list(outside.iterdir()) == []
    (row,) = ends.reminders
    assert (row.id, row.state) == (scheduled.id, "failed")
    assert row.failure is not None
    assert "never followed" in row.failure
    failed = [p for p in await event_payloads(hive) if isinstance(p, wire.ReminderFailed)]
    assert [p.reminder.id for p in failed] == [scheduled.id]


async def test_an_owner_removed_before_the_due_time_is_a_recorded_failure(
    hive: TestHive, autojump_clock: trio.testing.MockClock
) -> None:
    async with hive.agent("alice") as alice:
        scheduled = await alice.call(wire.Remind(message="hi", delay_seconds=600))
    async with hive.operator() as operator:
        await operator.call(wire.UnregisterAgent(name="alice"))
    await trio.sleep(601)
    (row,) = await reminders(hive, owner="alice")
    assert (row.id, row.state, row.fired_at) == (scheduled.id, "failed", row.due_at)
    assert row.failure == (
        "'alice' is not a registered agent any more (destroyed?), so the reminder could not "
        "be delivered"
    )


async def test_cancel_deletes_a_reminder_before_it_fires(
    hive: TestHive, autojump_clock: trio.testing.MockClock
) -> None:
    async with hive.agent("alice") as alice, hive.agent("bob") as bob, hive.manager() as manager:
        mine = await alice.call(wire.Remind(message="a", delay_seconds=100))
        other = await alice.call(wire.Remind(message="b", delay_seconds=100))
        with pytest.raises(RemoteError, match="belongs to alice; only alice or the manager"):
            await bob.call(wire.CancelLooseEnd(kind="reminder", id=mine.id))
        await alice.call(wire.CancelLooseEnd(kind="reminder", id=mine.id))
        await manager.call(wire.CancelLooseEnd(kind="reminder", id=other.id))
        with pytest.raises(RemoteError, match=f"no reminder #{mine.id}"):
            await alice.call(wire.CancelLooseEnd(kind="reminder", id=mine.id))
        assert await inbox(alice, wait=300) == []
    cancelled = [p for p in await event_payloads(hive) if isinstance(p, wire.ReminderCancelled)]
    assert cancelled == [
        wire.ReminderCancelled(mine.id, "alice", "alice"),
        wire.ReminderCancelled(other.id, "alice", "manager"),
    ]


async def test_a_delivered_reminder_cannot_be_cancelled(
    hive: TestHive, autojump_clock: trio.testing.MockClock
) -> None:
    async with hive.agent("alice") as alice:
        scheduled = await alice.call(wire.Remind(message="a", delay_seconds=5))
        assert len(await inbox(alice, wait=10)) == 1
        with pytest.raises(RemoteError, match="already delivered"):
            await alice.call(wire.CancelLooseEnd(kind="reminder", id=scheduled.id))


async def test_bad_reminders_say_what_is_wrong(
    hive: TestHive, autojump_clock: trio.testing.MockClock
) -> None:
    async with hive.agent("alice") as alice:
        for request, says in [
            (wire.Remind(message="x"), "exactly one of delay_seconds or at"),
            (wire.Remind(message="x", delay_seconds=-1), "delay_seconds must be from 0 to"),
            (wire.Remind(message="x", at="2030-01-01 09:00"), "has no timezone"),
            (wire.Remind(message="  ", delay_seconds=1), "message is empty"),
        ]:
            with pytest.raises(RemoteError, match=None) as caught:
                await alice.call(request)
            assert says in str(caught.value)
        with pytest.raises(RemoteError, match="unknown loose-end kind 'thing'"):
            await alice.call(wire.CancelLooseEnd(kind="thing", id=1))


async def test_whoami_and_pending_counts(
    short_tmp: Path, wall: FakeWallClock, autojump_clock: trio.testing.MockClock
) -> None:
    async with (
        open_test_hive(
            short_tmp, clock=wall, agents=("alice",), containers=QUIET, operator_pronouns="she/her"
        ) as hive,
        hive.agent("alice") as alice,
        hive.manager() as manager,
    ):
        for delay in (10, 20):
            await alice.call(wire.Remind(message="x", delay_seconds=delay))
        me = await alice.call(wire.Whoami())
        assert me == wire.WhoamiReply("alice", "agent", "she/her", me.hyperhive_version, 2)
        boss = await manager.call(wire.Whoami())
        assert (boss.name, boss.role, boss.pending_reminders) == ("manager", "manager", 0)
        assert await hive.handles.reminders.pending_counts() == {"alice": 2}
        await inbox(alice, wait=15)
        assert (await alice.call(wire.Whoami())).pending_reminders == 1
