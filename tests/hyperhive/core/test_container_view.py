"""The pure parts: view building, the rescan diff, crash decisions, web ports, agent records."""

from __future__ import annotations

from pathlib import Path

import pytest

from hyperhive import wire
from hyperhive.config import StatePaths
from hyperhive.containers.base import AgentExited, AgentState, AgentStatus
from hyperhive.core import container_view
from hyperhive.core.crash_watch import is_crash
from hyperhive.core.registry import AgentRecord, AgentRegistry
from hyperhive.errors import Conflict, UnknownAgent


def view(name: str, state: str = "running", **changes: object) -> wire.ContainerView:
    fields: dict[str, object] = {
        "name": name,
        "role": "agent",
        "state": state,
        "wanted": "running",
        "network": True,
    }
    fields.update(changes)
    return wire.ContainerView(**fields)  # type: ignore[arg-type]


def test_the_diff_names_only_what_changed() -> None:
    old = {"a": view("a"), "b": view("b"), "c": view("c")}
    new = {"a": view("a"), "b": view("b", "crashed", exit_code=3), "d": view("d")}
    changed, removed = container_view.diff_views(old, new)
    assert changed == [view("b", "crashed", exit_code=3), view("d")]
    assert removed == ["c"]
    assert container_view.diff_views(new, new) == ([], [])


def test_a_view_joins_record_status_and_flags(tmp_path: Path) -> None:
    state, home = tmp_path / "state", tmp_path
    state.mkdir()
    (state / "hyperhive-needs-login").touch()
    (state / "hyperhive-model").write_text("claude-opus-4\n")
    (home / "deployed-sha").write_text("abc123\n")
    flags = container_view.read_flags(state, home)
    row = container_view.build_view(
        AgentRecord("alice", network=False, wanted="stopped"),
        AgentStatus("alice", AgentState.CRASHED, exit_code=137, detail="x" * 5000),
        transient="starting",
        flags=flags,
        pending_reminders=2,
    )
    assert row == wire.ContainerView(
        name="alice",
        role="agent",
        state="crashed",
        wanted="stopped",
        network=False,
        transient="starting",
        exit_code=137,
        detail="x" * 2000,
        needs_login=True,
        rate_limited=False,
        model="claude-opus-4",
        deployed_sha="abc123",
        pending_reminders=2,
        semantic="starting",
        reason="starting (an operator action is in flight)",
    )
    assert container_view.build_view(AgentRecord("bob"), None).state == "absent"


@pytest.mark.parametrize(
    ("requested", "transient", "crash"),
    [(False, None, True), (True, None, False), (False, "restarting", False)],
)
def test_only_exits_nobody_asked_for_are_crashes(
    requested: bool, transient: str | None, crash: bool
) -> None:
    assert is_crash(AgentExited("a", 1, requested), transient) is crash


def test_records_tolerate_old_and_broken_files(tmp_path: Path) -> None:
    paths = StatePaths(tmp_path)
    paths.ensure()
    AgentRegistry(paths).register("alice")

    def loaded() -> AgentRecord:
        # Records are read once, when the registry loads (a daemon start), and cached.
        return AgentRegistry(paths).record("alice")

    (paths.agent_dir("alice") / "agent.json").write_text('{"name": "alice"}\n')
    assert loaded() == AgentRecord("alice")
    (paths.agent_dir("alice") / "agent.json").write_text("not json")
    assert loaded() == AgentRecord("alice")
    (paths.agent_dir("alice") / "agent.json").write_text(
        '{"role": "root", "network": "no", "wanted": "stopped", "web_port": true}'
    )
    assert loaded() == AgentRecord("alice", wanted="stopped")


def test_a_record_is_read_once_and_written_through(tmp_path: Path) -> None:
    paths = StatePaths(tmp_path)
    paths.ensure()
    registry = AgentRegistry(paths)
    registry.register("alice")
    marker = paths.agent_dir("alice") / "agent.json"
    marker.write_text("not json")  # nothing re-reads it while the daemon runs
    assert registry.record("alice") == AgentRecord("alice")
    registry.save(AgentRecord("alice", wanted="stopped"))
    assert registry.record("alice").wanted == "stopped"
    assert AgentRegistry(paths).record("alice").wanted == "stopped"


def test_tombstones_are_listed_and_purged(tmp_path: Path) -> None:
    paths = StatePaths(tmp_path)
    paths.ensure()
    registry = AgentRegistry(paths)
    registry.register("alice", AgentRecord("alice"))
    paths.agent_state_dir("alice").mkdir()
    registry.retire("alice", destroyed_at=5.0)
    assert registry.tombstones() == [wire.Tombstone("alice", "agent", 5.0)]
    assert paths.agent_state_dir("alice").exists()
    assert not paths.agent_socket_dir("alice").exists()
    assert AgentRegistry(paths).names() == []  # a restarted daemon does not revive it
    registry.purge("alice")
    assert not paths.agent_dir("alice").exists()
    with pytest.raises(UnknownAgent):
        registry.purge("alice")
    registry.register("bob")
    with pytest.raises(Conflict, match="live agent"):
        registry.purge("bob")
