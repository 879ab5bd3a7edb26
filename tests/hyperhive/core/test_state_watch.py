"""The state watch: a harness's login change reaches the manager and the dashboard within a
second or so (not at the next 10 s rescan), and an agent rewriting its files in a loop costs a
bounded number of rescans and events while the daemon serves everyone else.

Real daemon tree (fake containers), real inotify, real files; the login flip comes from the real
turn loop (`hyperhive.agent.harness`, a scripted runtime) writing into the agent's state
directory. Real time here (inotify is real I/O), each test under a hard deadline.
"""

from __future__ import annotations

import contextlib
import itertools
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
import pytest
import trio
import trio.testing

from actors import Mailbox
from hyperhive import wire
from hyperhive.agent.login import LoginState
from hyperhive.containers.settings import ContainerSettings
from hyperhive.core.rescanner import TELL_BURST, TELL_EVERY, Rescanner
from hyperhive.core.state_watch import StateWatch
from hyperhive.testing import FakeWallClock, TestHive, open_test_hive
from hyperhive.testing.agent import next_event, open_test_harness
from hyperhive.testing.fake_containers import FakeBackend
from hyperhive.testing.turn_runner import ScriptedRunner

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from hyperhive.core.events import Subscriber

WITH_MANAGER = ContainerSettings(ensure_manager=True, stop_grace=2.0, shutdown_grace=1.0)


@contextlib.asynccontextmanager
async def _hive(state: Path, *agents: str) -> AsyncIterator[TestHive]:
    async with open_test_hive(state, backend=FakeBackend(), containers=WITH_MANAGER) as hive:
        await hive.tree.agents.autostarted.wait()
        for name in agents:
            await hive.handles.agents.spawn(name)
        yield hive


def _helper_events(deliveries: list[wire.Delivery]) -> list[wire.HelperEvent]:
    return [wire.decode_helper_event(d.body) for d in deliveries if d.sender == wire.HELPER_SENDER]


async def _manager_told(hive: TestHive) -> list[wire.HelperEvent]:
    return _helper_events(await hive.handles.messages.pending("manager", 1000))


async def _wait_told(hive: TestHive, event: wire.HelperEvent) -> None:
    while event not in await _manager_told(hive):
        await trio.sleep(0.02)


async def _wait_row(subscriber: Subscriber, name: str, needs_login: bool) -> None:
    """Until the hub says `name`'s row (what the dashboard's card shows) has `needs_login`."""
    while True:
        for event in await subscriber.next_batch():
            payload = event.payload
            if (
                isinstance(payload, wire.ContainerStateChanged)
                and payload.container.name == name
                and payload.container.needs_login == needs_login
            ):
                return


async def test_a_login_flip_reaches_the_manager_and_the_card_within_two_seconds(
    short_tmp: Path,
) -> None:
    with trio.fail_after(60):
        async with _hive(short_tmp / "hive", "alice") as hive:
            assert hive.tree.state_watch is not None
            logged_in = False

            async def check() -> LoginState:
                return LoginState(logged_in, "api_key" if logged_in else "none", "no credentials")

            state = hive.paths.agent_state_dir("alice")
            with trio.fail_after(10):
                while "alice" not in hive.tree.state_watch.watching:
                    await trio.sleep(0.02)
            cards = await hive.handles.events.subscribe()
            clock = FakeWallClock()
            harness_cm = open_test_harness(
                hive, "alice", state, ScriptedRunner(), clock, login_check=check
            )
            async with harness_cm as (harness, feed):
                await next_event(feed, "needs_login")
                flipped = trio.current_time()
                with trio.fail_after(2):
                    await _wait_told(hive, wire.AgentNeedsLogin("alice"))
                    await _wait_row(cards, "alice", needs_login=True)
                took = trio.current_time() - flipped
                logged_in = True
                harness.login_changed()
                await next_event(feed, "logged_in")
                flipped = trio.current_time()
                with trio.fail_after(2):
                    await _wait_told(hive, wire.AgentLoggedIn("alice"))
                    await _wait_row(cards, "alice", needs_login=False)
            # Each change told once, well before the 10 s rescan.
            told = await _manager_told(hive)
            assert told.count(wire.AgentNeedsLogin("alice")) == 1
            assert told.count(wire.AgentLoggedIn("alice")) == 1
            assert took < 2
            assert trio.current_time() - flipped < 2
            hive.handles.events.unsubscribe(cards)


_WRITER = textwrap.dedent(
    """
    import os, sys, time
    state = sys.argv[1]
    report, sentinel = os.path.join(state, "hyperhive-report.json"), os.path.join(
        state, "hyperhive-needs-login")
    end = time.monotonic() + float(sys.argv[2])
    n = 0
    while time.monotonic() < end:
        n += 1
        with open(report + ".tmp", "w") as f:
            f.write('{"state": "running", "since": %d, "tool": "t%d"}' % (n, n))
        os.replace(report + ".tmp", report)
        if n % 2:
            open(sentinel, "w").close()
        else:
            os.unlink(sentinel)
    print(n)
    """
)


@pytest.mark.slow
async def test_an_agent_rewriting_its_files_in_a_loop_costs_a_bounded_number_of_events(
    short_tmp: Path,
) -> None:
    seconds = 4.0
    with trio.fail_after(90):
        async with _hive(short_tmp / "hive", "alice", "bob") as hive:
            watch = hive.tree.state_watch
            with trio.fail_after(10):
                while not {"alice", "bob"} <= watch.watching:
                    await trio.sleep(0.02)
            hub = await hive.handles.events.subscribe()
            asked_before = watch.asked
            state = hive.paths.agent_state_dir("alice")
            writer = await trio.lowlevel.open_process(
                [sys.executable, "-c", _WRITER, str(state), str(seconds)], stdout=subprocess.PIPE
            )
            started = trio.current_time()
            # Meanwhile the daemon answers everyone else, and sees bob's own change.
            await trio.sleep(1.0)
            sentinel = hive.paths.agent_state_dir("bob") / wire.NEEDS_LOGIN
            sentinel.write_text("no credentials\n")
            with trio.fail_after(5):
                await _wait_told(hive, wire.AgentNeedsLogin("bob"))
            slowest = 0.0
            while trio.current_time() - started < seconds:
                before = trio.current_time()
                with trio.fail_after(5):
                    async with hive.operator() as operator:
                        await operator.call(wire.Send(to="bob", body="still there?"))
                        await operator.call(wire.ListContainers())
                slowest = max(slowest, trio.current_time() - before)
                await trio.sleep(0.1)
            with trio.fail_after(10):
                assert writer.stdout is not None
                written = int((await writer.stdout.receive_some(100)).decode())
                await writer.wait()
            await trio.sleep(1.5)  # what the watch still had queued
            elapsed = trio.current_time() - started
            rows = [
                e
                for e in hub.take_nowait()
                if isinstance(e.payload, wire.ContainerStateChanged)
                and e.payload.container.name == "alice"
            ]
            hive.handles.events.unsubscribe(hub)
            told = [
                e
                for e in await _manager_told(hive)
                if isinstance(e, wire.AgentNeedsLogin | wire.AgentLoggedIn) and e.name == "alice"
            ]
    assert written > 500  # it really did write in a loop
    # It followed alice's writes, at most one rescan a second (plus the 10 s rescan, and
    # slack for bob's), however many thousand writes that was.
    assert 2 <= watch.asked - asked_before <= elapsed + 3
    assert len(rows) <= elapsed + 3
    # The manager heard of alice's flips a burst's worth at most, not thousands.
    assert len(told) <= TELL_BURST
    assert slowest < 5


@pytest.fixture
def virtual() -> trio.testing.MockClock:
    """Trio's autojump clock (pytest-trio runs a test on a clock a fixture returns)."""
    return trio.testing.MockClock(autojump_threshold=0)


async def test_a_held_back_login_change_is_told_once_the_agent_may_be_told_again(
    virtual: trio.testing.MockClock,
) -> None:
    """The rescanner's allowance, on virtual time: a burst, then one per interval, and where
    the agent ended up is told in the end."""
    told: list[wire.HelperEvent] = []
    needs = {"flag": False}
    row = wire.ContainerView("alice", "agent", "running", "running", True)

    async def build(names: object) -> dict[str, wire.ContainerView]:
        return {"alice": attrs.evolve(row, needs_login=needs["flag"])}

    async def tell(event: wire.HelperEvent) -> None:
        told.append(event)

    rescanner = Rescanner(
        Mailbox("rescanner", size=4),
        build=build,
        publish=lambda *events: None,
        interval=None,
        tell_manager=tell,
    )
    await rescanner.rescan(None)  # first sight: nothing to tell
    assert told == []
    for _ in range(20):
        needs["flag"] = not needs["flag"]
        await rescanner.rescan(["alice"])
    assert len(told) == TELL_BURST
    needs["flag"] = True  # where it ends up
    await rescanner.rescan(None)
    assert len(told) == TELL_BURST  # held back
    await trio.sleep(TELL_EVERY)
    await rescanner.rescan(None)
    await rescanner.rescan(None)
    assert told[-1] == wire.AgentNeedsLogin("alice")
    assert len(told) == TELL_BURST + 1


async def test_the_watch_asks_at_most_once_a_gap_per_agent(
    virtual: trio.testing.MockClock,
) -> None:
    """The coalescing alone, on virtual time: a flood of changes to one agent is one rescan
    per gap; another agent's change is not held up by it."""
    asked: list[tuple[float, str]] = []
    watch = StateWatch(
        names=list,
        state_dir=lambda name: short_tmp_unused / name,
        on_change=lambda name: asked.append((trio.current_time(), name)),
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch._flush)
        start = trio.current_time()
        for step in range(5000):  # five seconds of changes, one a millisecond
            watch._changed("alice")
            if step == 2500:
                bob_at = trio.current_time()
                watch._changed("bob")
            await trio.sleep(0.001)
        await trio.sleep(2)
        nursery.cancel_scope.cancel()
    alice = [at - start for at, name in asked if name == "alice"]
    bob = [at - bob_at for at, name in asked if name == "bob"]
    assert alice[0] < 0.2  # the first change after a quiet spell: at once (after settling)
    assert 5 <= len(alice) <= 6
    assert all(b - a >= 1.0 - 1e-9 for a, b in itertools.pairwise(alice))
    assert len(bob) == 1
    assert bob[0] < 0.2


short_tmp_unused = Path("/nonexistent")


async def test_a_state_directory_that_is_a_link_is_not_watched(short_tmp: Path) -> None:
    """inotify on the directory itself, never through a symlink: a linked state directory
    gets no watch (its row is still read, and refused, at each rescan)."""
    (short_tmp / "alice").mkdir()
    target = short_tmp / "somewhere"
    target.mkdir()
    (short_tmp / "evil").symlink_to(target)
    asked: list[str] = []
    watch = StateWatch(
        names=lambda: ["alice", "evil"],
        state_dir=lambda name: short_tmp / name,
        on_change=asked.append,
    )
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(watch.run)
            assert watch.watching == {"alice"}
            (target / wire.NEEDS_LOGIN).write_text("x\n")
            (short_tmp / "alice" / "unrelated.txt").write_text("x\n")
            (short_tmp / "alice" / wire.NEEDS_LOGIN).write_text("x\n")
            while not asked:
                await trio.sleep(0.02)
            await trio.sleep(0.5)
            nursery.cancel_scope.cancel()
    assert asked == ["alice"]
