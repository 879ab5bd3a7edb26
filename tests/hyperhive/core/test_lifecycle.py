"""Lifecycle actions through a real daemon tree on real sockets, with the fake backend."""

from __future__ import annotations

import contextlib
import hashlib
import json
from typing import TYPE_CHECKING

import pytest
import trio
import trio.testing

from actors import Mailbox
from hyperhive import wire
from hyperhive.containers.settings import ContainerSettings
from hyperhive.core.rescanner import Rescanner
from hyperhive.errors import Conflict, ContainerError, InvalidName, RemoteError, UnknownAgent
from hyperhive.testing import FakeWallClock, open_test_hive
from hyperhive.testing.fake_containers import FakeAgent, FakeBackend

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from hyperhive.core.agents import AgentsHandle
    from hyperhive.testing import TestHive


@pytest.fixture
def clock() -> trio.testing.MockClock:
    # Plain autojump: the test hive runs its stores inline, so virtual time is exact.
    return trio.testing.MockClock(autojump_threshold=0)


SETTINGS = ContainerSettings(ensure_manager=False, stop_grace=2.0, shutdown_grace=1.0)


def _hive(
    root: Path, backend: FakeBackend, settings: ContainerSettings = SETTINGS
) -> contextlib.AbstractAsyncContextManager[TestHive]:
    return open_test_hive(root, clock=FakeWallClock(), backend=backend, containers=settings)


def _row(name: str, state: str = "running") -> wire.ContainerView:
    return wire.ContainerView(name=name, role="agent", state=state, wanted="running", network=True)


class _Published(list[wire.EventPayload]):
    def extend_args(self, *payloads: wire.EventPayload) -> None:
        self.extend(payloads)


def lifecycle_of(hive: TestHive) -> AgentsHandle:
    """The lifecycle verbs, as every surface reaches them: the agents actor's handle."""
    return hive.handles.agents


async def manager_inbox(hive: TestHive, wait: float = 0.0) -> list[wire.HelperEvent]:
    deliveries = await hive.handles.messages.recv("manager", max=32, wait_seconds=wait)
    return [wire.decode_helper_event(d.body) for d in deliveries if d.sender == "hive"]


async def report(hive: TestHive, name: str, starts: int = 1) -> dict[str, object]:
    path = hive.paths.agent_state_dir(name) / "probe-report.json"
    with trio.fail_after(5):
        while True:
            if path.exists():
                data: dict[str, object] = json.loads(path.read_text())
                if data["starts"] == starts:
                    return data
            await trio.sleep(0.01)


async def test_spawn_runs_the_agent_on_its_own_socket(short_tmp: Path) -> None:
    backend = FakeBackend()
    async with _hive(short_tmp, backend) as hive:
        await lifecycle_of(hive).spawn("alice")
        view = await lifecycle_of(hive).view("alice")
        assert (view.state, view.wanted, view.role, view.network) == (
            "running",
            "running",
            "agent",
            True,
        )
        seen = await report(hive, "alice")
        # The fake agent said hello on its own socket: the operator got it *from alice*.
        assert '"ok":true' in str(seen["socket"])
        async with hive.operator() as operator:
            inbox = await operator.call(wire.ReadInbox())
        assert [(m.sender, m.body) for m in inbox.messages] == [("alice", "hello from alice")]
        record = json.loads((hive.paths.agent_dir("alice") / "agent.json").read_text())
        assert record == {
            "name": "alice",
            "role": "agent",
            "network": True,
            "wanted": "running",
            "paused": False,
            "deploy": None,
            "parent": None,  # the operator's spawn
        }


@pytest.mark.parametrize("name", ["Alice", "a" * 12, "../x", "x/y", "manager", "-a", "a-", ""])
async def test_bad_names_are_refused_and_nothing_is_created(short_tmp: Path, name: str) -> None:
    async with _hive(short_tmp, FakeBackend()) as hive:
        with pytest.raises(InvalidName):
            await lifecycle_of(hive).spawn(name)
        assert list(hive.paths.agents_dir.iterdir()) == []


async def test_spawning_twice_is_a_conflict(short_tmp: Path) -> None:
    async with _hive(short_tmp, FakeBackend()) as hive:
        await lifecycle_of(hive).spawn("alice")
        with pytest.raises(Conflict, match="already exists"):
            await lifecycle_of(hive).spawn("alice")


def _old_web_port(name: str) -> int:
    """The hashed port names once got in 9000-9003 (what made spawns collide)."""
    digest = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big")
    return 9000 + digest % 4


async def test_names_whose_old_web_ports_collided_both_spawn(short_tmp: Path) -> None:
    # Regression (issue 14): a second name that hashed to the first one's web port was refused
    # at spawn; the page is served by the daemon now, so nothing per agent listens on a port.
    first = "a0"
    second = next(f"a{n}" for n in range(1, 100) if _old_web_port(f"a{n}") == _old_web_port(first))
    backend = FakeBackend()
    async with _hive(short_tmp, backend) as hive:
        await lifecycle_of(hive).spawn(first)
        await lifecycle_of(hive).spawn(second)
        assert {first, second} <= set(await backend.list())


async def test_stop_is_remembered_and_is_no_crash(short_tmp: Path) -> None:
    async with _hive(short_tmp, FakeBackend()) as hive:
        await lifecycle_of(hive).spawn("alice")
        await lifecycle_of(hive).stop("alice")
        view = await lifecycle_of(hive).view("alice")
        assert (view.state, view.wanted) == ("stopped", "stopped")
        await trio.testing.wait_all_tasks_blocked()
        assert await manager_inbox(hive) == []
        assert hive.tree.crash_watch is not None
        assert hive.tree.crash_watch.reported == 0


async def test_a_crash_reaches_the_manager_and_the_dashboard(short_tmp: Path) -> None:
    backend = FakeBackend()
    async with _hive(short_tmp, backend) as hive:
        await lifecycle_of(hive).spawn("alice")
        await backend.crash("alice", 3)
        (event,) = await manager_inbox(hive, wait=2.0)
        assert event == wire.ContainerCrash("alice", 3, "crash hook: exit 3")
        history = await hive.handles.events.history(100)
        crashed = [
            e.payload for e in history.events if isinstance(e.payload, wire.ContainerCrashed)
        ]
        assert crashed == [wire.ContainerCrashed("alice", 3, "crash hook: exit 3")]
        view = await lifecycle_of(hive).view("alice")
        assert (view.state, view.exit_code, view.wanted) == ("crashed", 3, "running")


async def test_a_stop_the_agent_ignores_completes_through_the_kill(short_tmp: Path) -> None:
    backend = FakeBackend()
    async with _hive(short_tmp, backend) as hive:
        await lifecycle_of(hive).spawn("alice")
        await backend.hang_stop("alice")
        started = trio.current_time()
        await lifecycle_of(hive).stop("alice")
        assert SETTINGS.stop_grace <= trio.current_time() - started < SETTINGS.stop_grace + 1
        view = await lifecycle_of(hive).view("alice")
        assert (view.state, view.exit_code) == ("stopped", 137)
        assert await manager_inbox(hive) == []


async def test_an_action_in_flight_shows_and_blocks_others_but_not_kill(short_tmp: Path) -> None:
    backend = FakeBackend()
    async with _hive(short_tmp, backend) as hive:
        lifecycle = lifecycle_of(hive)
        await lifecycle.spawn("alice")
        await backend.hang_stop("alice")
        started = trio.current_time()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lifecycle.stop, "alice")
            await trio.testing.wait_all_tasks_blocked()
            assert lifecycle.transient("alice") == "stopping"
            assert (await lifecycle.view("alice")).transient == "stopping"
            with pytest.raises(Conflict, match="busy"):
                await lifecycle.restart("alice")
            await lifecycle.kill("alice")  # ends the stop long before its grace runs out
        assert trio.current_time() - started < SETTINGS.stop_grace
        assert lifecycle.transient("alice") is None
        assert (await lifecycle.view("alice")).state == "stopped"
        assert await manager_inbox(hive) == []


async def test_restart_keeps_state(short_tmp: Path) -> None:
    async with _hive(short_tmp, FakeBackend()) as hive:
        await lifecycle_of(hive).spawn("alice")
        await report(hive, "alice", starts=1)
        await lifecycle_of(hive).restart("alice")
        assert (await report(hive, "alice", starts=2))["starts"] == 2


async def test_rebuild_restarts_a_running_agent_and_leaves_a_stopped_one(short_tmp: Path) -> None:
    backend = FakeBackend()
    async with _hive(short_tmp, backend) as hive:
        lifecycle = lifecycle_of(hive)
        await lifecycle.spawn("alice")
        await lifecycle.spawn("bob")
        await lifecycle.stop("bob")
        await lifecycle.rebuild("alice")
        await lifecycle.rebuild("bob")
        assert (await report(hive, "alice", starts=2))["starts"] == 2
        assert (await lifecycle.view("alice")).state == "running"
        assert (await lifecycle.view("bob")).state == "stopped"


async def test_destroy_keeps_a_tombstone_that_spawn_revives(short_tmp: Path) -> None:
    async with _hive(short_tmp, FakeBackend()) as hive:
        lifecycle = lifecycle_of(hive)
        await lifecycle.spawn("alice")
        await report(hive, "alice")
        await lifecycle.destroy("alice")
        assert not hive.paths.agent_socket(hive.paths.agent_dir("alice").name).exists()
        assert "alice" not in hive.handles.agents.names()
        (tombstone,) = await lifecycle.tombstones()
        assert (tombstone.name, tombstone.role) == ("alice", "agent")
        assert (hive.paths.agent_state_dir("alice") / "probe-counter").read_text() == "1"
        with pytest.raises(RemoteError, match="unknown agent 'alice'"):
            async with hive.operator() as operator:
                await operator.call(wire.Send(to="alice", body="hi"))
        await lifecycle.spawn("alice")
        assert (await report(hive, "alice", starts=2))["starts"] == 2
        assert await lifecycle.tombstones() == []


async def test_destroy_purge_removes_everything(short_tmp: Path) -> None:
    async with _hive(short_tmp, FakeBackend()) as hive:
        lifecycle = lifecycle_of(hive)
        await lifecycle.spawn("alice")
        await lifecycle.spawn("bob")
        await lifecycle.destroy("alice", purge=True)
        assert not hive.paths.agent_dir("alice").exists()
        await lifecycle.destroy("bob")
        assert hive.paths.agent_dir("bob").exists()
        await lifecycle.destroy("bob", purge=True)  # purges the tombstone
        assert not hive.paths.agent_dir("bob").exists()
        with pytest.raises(UnknownAgent):
            await lifecycle.destroy("bob", purge=True)


async def test_a_new_daemon_starts_what_should_run_and_creates_the_manager(
    short_tmp: Path,
) -> None:
    async with _hive(short_tmp, FakeBackend()) as hive:
        await lifecycle_of(hive).spawn("alice")
        await lifecycle_of(hive).spawn("bob")
        await lifecycle_of(hive).stop("bob")
    backend = FakeBackend()
    with_manager = ContainerSettings(ensure_manager=True, stop_grace=2.0, shutdown_grace=1.0)
    async with _hive(short_tmp, backend, with_manager) as hive:
        await hive.tree.agents.autostarted.wait()
        lifecycle = lifecycle_of(hive)
        assert (await lifecycle.view("alice")).state == "running"
        assert (await lifecycle.view("bob")).state == "stopped"
        manager = await lifecycle.view("manager")
        assert (manager.role, manager.state) == ("manager", "running")
        seen = await report(hive, "manager")
        env = seen["env"]
        assert isinstance(env, dict)
        assert env["HYPERHIVE_ROLE"] == "manager"
        assert env["HYPERHIVE_SOCKET"] == str(hive.paths.manager_socket)
        assert "manager" not in hive.handles.agents.names()


async def test_the_shutdown_stops_agents_without_changing_what_they_want(short_tmp: Path) -> None:
    backend = FakeBackend()
    async with _hive(short_tmp, backend) as hive:
        await lifecycle_of(hive).spawn("alice")
    assert (await backend.status("alice")).state.value == "stopped"
    record = json.loads((short_tmp / "agents" / "alice" / "agent.json").read_text())
    assert record["wanted"] == "running"


async def test_without_a_backend_agents_are_sockets_only(short_tmp: Path) -> None:
    async with open_test_hive(short_tmp, clock=FakeWallClock(), agents=("alice",)) as hive:
        with pytest.raises(ContainerError, match="--backend none"):
            await lifecycle_of(hive).spawn("bob")
        (view,) = (await lifecycle_of(hive).views()).values()
        assert (view.name, view.state) == ("alice", "absent")
        async with hive.operator() as operator:
            await operator.call(wire.UnregisterAgent(name="alice"))
        # Unregister is destroy: the socket goes, the state stays as a tombstone.
        assert not hive.paths.agent_socket_dir("alice").exists()
        assert [t.name for t in (await hive.handles.agents.tombstones())] == ["alice"]


async def test_logs_show_what_the_agent_wrote(short_tmp: Path) -> None:
    async with _hive(short_tmp, FakeBackend()) as hive:
        await lifecycle_of(hive).spawn("alice")
        await report(hive, "alice")
        assert "agent alice started" in await lifecycle_of(hive).logs("alice", lines=10)


async def test_the_admin_socket_drives_the_lifecycle(short_tmp: Path) -> None:
    async with _hive(short_tmp, FakeBackend()) as hive, hive.operator() as operator:
        spawned = await operator.call(wire.Spawn(name="alice", network=False))
        assert (spawned.container.state, spawned.container.network) == ("running", False)
        stopped = await operator.call(wire.StopAgent(name="alice"))
        assert stopped.container.state == "stopped"
        listed = await operator.call(wire.ListContainers())
        assert [v.name for v in listed.containers] == ["alice"]
        with pytest.raises(RemoteError, match="invalid agent name"):
            await operator.call(wire.Spawn(name="Bad"))
        with pytest.raises(RemoteError, match="unknown agent 'nobody'"):
            await operator.call(wire.StartAgent(name="nobody"))
        await operator.call(wire.Destroy(name="alice"))
        tombs = await operator.call(wire.ListTombstones())
        assert [t.name for t in tombs.tombstones] == ["alice"]
        await operator.call(wire.PurgeTombstone(name="alice"))
        assert (await operator.call(wire.ListTombstones())).tombstones == ()


async def test_an_agent_socket_cannot_run_lifecycle_actions(short_tmp: Path) -> None:
    async with _hive(short_tmp, FakeBackend()) as hive:
        await lifecycle_of(hive).spawn("alice")
        async with hive.agent("alice") as agent:
            with pytest.raises(RemoteError, match="not available"):
                await agent.call(wire.KillAgent(name="alice"))
        assert (await lifecycle_of(hive).view("alice")).state == "running"


async def test_the_fake_payload_can_be_swapped(short_tmp: Path) -> None:
    backend = FakeBackend()

    async def exits_at_once(agent: FakeAgent) -> int:
        agent.log("bye")
        return 9

    backend.set_payload("alice", exits_at_once)
    async with _hive(short_tmp, backend) as hive:
        await lifecycle_of(hive).spawn("alice")
        (event,) = await manager_inbox(hive, wait=2.0)
        assert isinstance(event, wire.ContainerCrash)
        assert event.exit_code == 9


async def test_the_rescanner_publishes_only_what_changed() -> None:
    rows = {"alice": _row("alice"), "bob": _row("bob")}
    published = _Published()

    async def build(names: Sequence[str] | None) -> dict[str, wire.ContainerView]:
        return {n: v for n, v in rows.items() if names is None or n in names}

    rescanner = Rescanner(Mailbox("rescanner"), build=build, publish=published.extend_args)
    await rescanner.rescan(None)
    assert published == [
        wire.ContainerStateChanged(rows["alice"]),
        wire.ContainerStateChanged(rows["bob"]),
    ]
    published.clear()
    await rescanner.rescan(None)
    await rescanner.rescan(["alice"])
    assert published == []  # nothing changed, nothing published
    rows["alice"] = _row("alice", state="crashed")
    await rescanner.rescan(["alice"])
    assert published == [wire.ContainerStateChanged(rows["alice"])]
    published.clear()
    del rows["bob"]
    await rescanner.rescan(["bob"])
    assert published == [wire.ContainerRemoved("bob")]


async def test_the_dashboard_sees_an_agent_come_up(short_tmp: Path) -> None:
    async with _hive(short_tmp, FakeBackend()) as hive:
        await lifecycle_of(hive).spawn("alice")
        with trio.fail_after(30):
            while True:
                history = await hive.handles.events.history(1000)
                states = [
                    (e.payload.container.state, e.payload.container.transient)
                    for e in history.events
                    if isinstance(e.payload, wire.ContainerStateChanged)
                ]
                if ("running", None) in states:
                    break
                await trio.sleep(1)


async def test_a_leftover_report_of_an_older_harness_goes_at_the_next_start(
    short_tmp: Path,
) -> None:
    backend = FakeBackend()
    outside = short_tmp / "precious.json"
    outside.write_text("the host's")
    async with _hive(short_tmp, backend) as hive:
        agents = lifecycle_of(hive)
        for name in ("alice", "bob"):
            await agents.spawn(name)
            await agents.stop(name)
        alice = hive.paths.agent_state_dir("alice") / "hyperhive-state.json"
        alice.write_text('{"state": "idle"}')
        bob = hive.paths.agent_state_dir("bob") / "hyperhive-state.json"
        bob.symlink_to(outside)  # planted: the link goes, never what it points at
        await agents.start("alice")
        await agents.start("bob")
        assert not alice.exists()
        assert not bob.is_symlink()
        assert (await agents.view("alice")).state == "running"
    assert outside.read_text() == "the host's"
