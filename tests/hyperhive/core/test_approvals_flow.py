"""The approval flow through a real daemon tree: real git, real sqlite, real sockets.

The manager's requests go through its own socket and the operator's decisions through the admin
socket; the proposed repo is edited with an ordinary git, as the manager's model would. Agents
are the fake backend's (in-process), so a deploy's rebuild takes milliseconds; the bwrap
versions of the sandbox parts are in tests/hyperhive/containers/test_containers_deploy.py.
These tests run real git processes, so they keep the real clock, each bounded.
"""

from __future__ import annotations

import contextlib
import json
import logging
import subprocess
from typing import TYPE_CHECKING

import pytest
import trio

from hyperhive import wire
from hyperhive.config_repo.seed import RepoPaths
from hyperhive.containers.settings import ContainerSettings
from hyperhive.core.approvals import DeployPolicy
from hyperhive.errors import RemoteError
from hyperhive.testing import open_test_hive
from hyperhive.testing.fake_containers import FakeAgent, FakeBackend
from hyperhive.testing.manager_git import ManagerGit

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from pathlib import Path

    from hyperhive.testing import TestHive

pytestmark = pytest.mark.timeout(120)
SECRET = "s3cr3t-Value-9f2c1e"
SETTINGS = ContainerSettings(
    ensure_manager=False,
    stop_grace=1.0,
    shutdown_grace=1.0,
    secret_environ={"HIVE_TOKEN": SECRET},
)
ENV_TOML = """\
[env]
GREETING = "hello from agent.toml"
"""


@contextlib.asynccontextmanager
async def flow_hive(
    root: Path, *, policy: DeployPolicy | None = None
) -> AsyncIterator[tuple[TestHive, FakeBackend]]:
    backend = FakeBackend(shutdown_grace=1.0)
    async with open_test_hive(
        root / "hive", backend=backend, containers=SETTINGS, deploy_policy=policy
    ) as hive:
        yield hive, backend


def env_payload(path: Path) -> Callable[[FakeAgent], object]:
    """A fake agent that writes its environment to `path` and runs until stopped."""

    async def payload(agent: FakeAgent) -> int:
        path.write_text(json.dumps(agent.env))
        await agent.stop_requested.wait()
        return 0

    return payload


async def until(check: Callable[[], object], what: str, within: float = 30.0) -> None:
    with trio.fail_after(within):
        while not check():
            await trio.sleep(0.05)
    del what


async def helper_events(hive: TestHive) -> list[wire.HelperEvent]:
    """What the hive told the manager so far (read and acked)."""
    deliveries = await hive.handles.messages.recv("manager", max=100, wait_seconds=0)
    await hive.handles.messages.ack_turn("manager")
    return [wire.decode_helper_event(d.body) for d in deliveries if d.sender == "hive"]


async def wait_helper(hive: TestHive, kind: type[object], seen: list[wire.HelperEvent]) -> object:
    with trio.fail_after(30):
        while True:
            seen += await helper_events(hive)
            found = [event for event in seen if isinstance(event, kind)]
            if found:
                return found[-1]
            await trio.sleep(0.05)


def repos(hive: TestHive) -> RepoPaths:
    return RepoPaths(hive.paths.configs_dir)


def tags_at(hive: TestHive, name: str, commit: str) -> set[str]:
    done = subprocess.run(
        ["git", "--git-dir", str(repos(hive).applied(name)), "tag", "--points-at", commit],
        capture_output=True,
        text=True,
        check=True,
    )
    return set(done.stdout.split())


def git_show(hive: TestHive, name: str, *args: str) -> str:
    done = subprocess.run(
        ["git", "--git-dir", str(repos(hive).applied(name)), *args],
        capture_output=True,
        check=True,
    )
    return done.stdout.decode("utf-8", errors="replace")


async def propose(
    hive: TestHive, git: ManagerGit, name: str, files: dict[str, str], why: str = "a change"
) -> tuple[str, int]:
    """Commit `files` in `name`'s proposed repo and ask for it, as the manager."""
    sha = git.commit(repos(hive).proposed(name), files, why)
    async with hive.manager() as manager:
        submitted = await manager.call(
            wire.RequestApplyCommit(agent=name, commit_ref=sha[:10], description=why)
        )
    return sha, submitted.id


async def running_alice(hive: TestHive, backend: FakeBackend, root: Path) -> Path:
    """Alice spawned by the operator, her config repos seeded by the manager."""
    env_file = root / "alice-env.json"
    backend.set_payload("alice", env_payload(env_file))
    await hive.handles.agents.spawn("alice")
    await until(env_file.exists, "alice runs")
    async with hive.manager() as manager:
        ready = await manager.call(wire.RequestInitConfig(name="alice"))
    assert (ready.path, ready.applied_path) == ("/agents/alice/config", "/applied/alice")
    return env_file


async def test_an_approved_commit_is_deployed_and_the_agent_runs_it(short_tmp: Path) -> None:
    git = ManagerGit(short_tmp / "manager-home")
    async with flow_hive(short_tmp) as (hive, backend):
        env_file = await running_alice(hive, backend, short_tmp)
        assert "GREETING" not in json.loads(env_file.read_text())
        seen: list[wire.HelperEvent] = []
        feed = await hive.handles.events.subscribe()
        sha, id = await propose(hive, git, "alice", {"agent.toml": ENV_TOML}, "greet people")

        async with hive.operator() as operator:
            (pending,) = (await operator.call(wire.ListPending())).approvals
            assert (pending.id, pending.agent, pending.kind, pending.status) == (
                id, "alice", "apply_commit", "pending",
            )  # fmt: skip
            assert (pending.commit_ref, pending.fetched_sha) == (sha[:10], sha)
            assert pending.requested_at.endswith("Z")
            detail = await operator.call(wire.ShowApproval(id=id))
            assert '+GREETING = "hello from agent.toml"' in detail.diff
            assert [(c.area, c.effect, c.subject) for c in detail.capabilities] == [
                ("env", "grants", "GREETING")
            ]
            env_file.unlink()
            approved = (await operator.call(wire.Approve(id=id))).approval
            assert approved.status == "approved"
            assert approved.resolved_at is not None

        await wait_helper(hive, wire.ConfigDeployed, seen)
        await until(env_file.exists, "alice restarted")
        assert json.loads(env_file.read_text())["GREETING"] == "hello from agent.toml"
        assert tags_at(hive, "alice", sha) == {
            f"proposal/{id}", f"approved/{id}", f"building/{id}", f"deployed/{id}"
        }  # fmt: skip
        assert git_show(hive, "alice", "rev-parse", "main").strip() == sha
        assert hive.handles.agents.deployed_id("alice") == id
        view = await hive.handles.agents.view("alice")
        assert (view.state, view.deployed_sha) == ("running", sha)
        deploy = hive.paths.deploy_dir("alice", id)
        assert (deploy / "config" / "agent.toml").read_text() == ENV_TOML
        assert [type(e).__name__ for e in seen] == ["ApprovalApproved", "ConfigDeployed"]

        async with hive.operator() as operator:
            assert (await operator.call(wire.ListPending())).approvals == ()
            config = await operator.call(wire.ShowConfig(name="alice"))
        assert (config.main, config.agent_toml, config.deploy) == (sha, ENV_TOML, id)
        assert [(t.stage, t.id) for t in config.tags if t.id == id] == [
            ("proposal", id), ("approved", id), ("building", id), ("deployed", id)
        ]  # fmt: skip
        kinds: list[str] = []
        with trio.move_on_after(2):
            async with contextlib.aclosing(feed.batches()) as batches:
                async for batch in batches:
                    kinds += [wire.EVENTS.tag_of(type(e.payload)) for e in batch]
                    if kinds.count("config_ref_changed") >= 5:
                        break
        hive.handles.events.unsubscribe(feed)
        assert "approval_added" in kinds
        assert "approval_resolved" in kinds
        assert kinds.count("config_ref_changed") >= 5  # four tags and main


async def test_deny_with_a_reason_tags_it_and_tells_the_manager(short_tmp: Path) -> None:
    git = ManagerGit(short_tmp / "manager-home")
    async with flow_hive(short_tmp) as (hive, backend):
        await running_alice(hive, backend, short_tmp)
        sha, id = await propose(hive, git, "alice", {"agent.toml": ENV_TOML})
        async with hive.operator() as operator:
            denied = (await operator.call(wire.Deny(id=id, note="not this week"))).approval
            assert (denied.status, denied.note) == ("denied", "not this week")
            with pytest.raises(RemoteError, match=f"approval {id} is denied"):
                await operator.call(wire.Approve(id=id))
            with pytest.raises(RemoteError, match="there is no approval 99"):
                await operator.call(wire.Approve(id=99))
        seen: list[wire.HelperEvent] = []
        event = await wait_helper(hive, wire.ApprovalDenied, seen)
        assert event == wire.ApprovalDenied(id, "alice", "apply_commit", "not this week")
        await until(lambda: f"denied/{id}" in tags_at(hive, "alice", sha), "tagged")
        message = git_show(hive, "alice", "tag", "-l", "--format=%(contents)", f"denied/{id}")
        assert message.strip() == "not this week"
        assert git_show(hive, "alice", "rev-parse", "main").strip() != sha
        assert hive.handles.agents.deployed_id("alice") is None


async def test_a_failing_build_leaves_the_agent_on_its_old_config(short_tmp: Path) -> None:
    git = ManagerGit(short_tmp / "manager-home")
    async with flow_hive(short_tmp) as (hive, backend):
        env_file = await running_alice(hive, backend, short_tmp)
        before = env_file.read_text()
        toml = ENV_TOML + '\n[build]\ncommands = ["echo building", "echo oops >&2; exit 3"]\n'
        sha, id = await propose(hive, git, "alice", {"agent.toml": toml})
        async with hive.operator() as operator:
            await operator.call(wire.Approve(id=id))
        seen: list[wire.HelperEvent] = []
        failed = await wait_helper(hive, wire.ConfigFailed, seen)
        assert isinstance(failed, wire.ConfigFailed)
        assert "build command 2 (echo oops >&2; exit 3) exited with status 3" in failed.error
        assert "oops" in failed.error
        assert tags_at(hive, "alice", sha) == {
            f"proposal/{id}", f"approved/{id}", f"building/{id}", f"failed/{id}"
        }  # fmt: skip
        message = git_show(hive, "alice", "tag", "-l", "--format=%(contents)", f"failed/{id}")
        assert "exited with status 3" in message
        async with hive.operator() as operator:
            (row,) = (await operator.call(wire.ListPending(all=True))).approvals
        assert (row.status, row.note) == ("failed", failed.error)
        # The agent was never touched: same process, same environment, no deploy.
        assert env_file.read_text() == before
        assert hive.handles.agents.deployed_id("alice") is None
        assert ("update", "alice") not in backend.calls
        assert (await hive.handles.agents.view("alice")).state == "running"


async def test_an_invalid_agent_toml_fails_with_the_field_path(short_tmp: Path) -> None:
    git = ManagerGit(short_tmp / "manager-home")
    async with flow_hive(short_tmp) as (hive, backend):
        await running_alice(hive, backend, short_tmp)
        sha, id = await propose(hive, git, "alice", {"agent.toml": '[env]\nHOME = "/x"\n'})
        async with hive.operator() as operator:
            detail = await operator.call(wire.ShowApproval(id=id))
            assert detail.capability_error is not None
            assert "env.HOME: the hive sets this variable itself" in detail.capability_error
            await operator.call(wire.Approve(id=id))
        failed = await wait_helper(hive, wire.ConfigFailed, [])
        assert isinstance(failed, wire.ConfigFailed)
        assert failed.error == "agent.toml: env.HOME: the hive sets this variable itself"
        assert f"failed/{id}" in tags_at(hive, "alice", sha)


async def test_a_crash_looping_deploy_is_rolled_back(short_tmp: Path) -> None:
    git = ManagerGit(short_tmp / "manager-home")
    policy = DeployPolicy(crashes=3, window=600.0)
    async with flow_hive(short_tmp, policy=policy) as (hive, backend):
        env_file = await running_alice(hive, backend, short_tmp)
        good_sha, good = await propose(hive, git, "alice", {"agent.toml": ENV_TOML}, "good")
        async with hive.operator() as operator:
            await operator.call(wire.Approve(id=good))
        seen: list[wire.HelperEvent] = []
        await wait_helper(hive, wire.ConfigDeployed, seen)
        bad_toml = ENV_TOML.replace("hello from agent.toml", "bad")
        bad_sha, bad = await propose(hive, git, "alice", {"agent.toml": bad_toml}, "bad")
        async with hive.operator() as operator:
            await operator.call(wire.Approve(id=bad))
        with trio.fail_after(30):
            while hive.handles.agents.deployed_id("alice") != bad or len(seen) < 4:
                seen += await helper_events(hive)
                await trio.sleep(0.05)
        assert git_show(hive, "alice", "rev-parse", "main").strip() == bad_sha

        for crash in range(3):
            await until(lambda: _running(backend, "alice"), f"alice runs before crash {crash}")
            await backend.crash("alice", 1)
        rolled = await wait_helper(hive, wire.ConfigRolledBack, seen)
        assert isinstance(rolled, wire.ConfigRolledBack)
        assert (rolled.id, rolled.commit) == (bad, good_sha)
        assert rolled.reason.startswith("rolled back: crash loop (3 crashes within 10 min)")
        await until(lambda: hive.handles.agents.deployed_id("alice") == good, "back on good")
        await until(lambda: _running(backend, "alice"), "alice runs the good config again")
        await until(env_file.exists, "alice wrote her environment")
        await until(lambda: "bad" not in env_file.read_text(), "the good environment")
        assert json.loads(env_file.read_text())["GREETING"] == "hello from agent.toml"
        assert git_show(hive, "alice", "rev-parse", "main").strip() == good_sha
        message = git_show(hive, "alice", "tag", "-l", "--format=%(contents)", f"failed/{bad}")
        assert message.startswith("rolled back: crash loop")
        assert tags_at(hive, "alice", bad_sha) >= {f"deployed/{bad}", f"failed/{bad}"}
        async with hive.operator() as operator:
            rows = (await operator.call(wire.ListPending(all=True))).approvals
        by_id = {row.id: row for row in rows}
        assert (by_id[bad].status, by_id[good].status) == ("failed", "approved")
        assert by_id[bad].note == rolled.reason
        history = await hive.handles.events.history(500)
        resolved = [
            e.payload.approval
            for e in history.events
            if isinstance(e.payload, wire.ApprovalResolved) and e.payload.approval.id == bad
        ]
        assert resolved[-1].status == "failed"


def _running(backend: FakeBackend, name: str) -> bool:
    return backend.is_running(name)


async def test_a_branch_name_or_an_unknown_commit_is_refused(short_tmp: Path) -> None:
    git = ManagerGit(short_tmp / "manager-home")
    async with flow_hive(short_tmp) as (hive, backend):
        await running_alice(hive, backend, short_tmp)
        git.commit(repos(hive).proposed("alice"), {"agent.toml": ENV_TOML})
        async with hive.manager() as manager:
            for ref in ("main", "HEAD", "HEAD~1", "refs/heads/main", "v1.0", "abc123"):
                with pytest.raises(RemoteError, match="commit_ref must be a commit sha"):
                    await manager.call(
                        wire.RequestApplyCommit(agent="alice", commit_ref=ref, description="x")
                    )
            with pytest.raises(RemoteError, match="no commit deadbeef0 in alice's proposed"):
                await manager.call(
                    wire.RequestApplyCommit(agent="alice", commit_ref="deadbeef0", description="x")
                )
            with pytest.raises(RemoteError, match="carol does not exist"):
                await manager.call(
                    wire.RequestApplyCommit(agent="carol", commit_ref="deadbeef0", description="x")
                )
        async with hive.operator() as operator:
            assert (await operator.call(wire.ListPending())).approvals == ()


async def test_hooks_and_fsmonitor_in_the_proposed_repo_run_nothing(short_tmp: Path) -> None:
    git = ManagerGit(short_tmp / "manager-home")
    marker = short_tmp / "sprung"
    async with flow_hive(short_tmp) as (hive, backend):
        await running_alice(hive, backend, short_tmp)
        proposed = repos(hive).proposed("alice")
        sha = git.commit(proposed, {"agent.toml": ENV_TOML})
        trap = short_tmp / "trap.sh"
        trap.write_text(f'#!/bin/sh\necho "$0 $*" >> {marker}\n')
        trap.chmod(0o755)
        hooks = proposed / ".git" / "hooks"
        hooks.mkdir(exist_ok=True)
        for hook in ("pre-commit", "post-checkout", "post-merge", "reference-transaction",
                     "pre-auto-gc", "post-rewrite", "fsmonitor-watchman", "pre-push"):  # fmt: skip
            (hooks / hook).symlink_to(trap)
        git(proposed, "config", "core.fsmonitor", str(trap))
        git(proposed, "config", "core.hooksPath", str(hooks))
        # An ordinary git there springs it.
        git(proposed, "status")
        assert marker.exists()
        marker.unlink()

        async with hive.manager() as manager:
            submitted = await manager.call(
                wire.RequestApplyCommit(agent="alice", commit_ref=sha, description="trap")
            )
        async with hive.operator() as operator:
            await operator.call(wire.ShowApproval(id=submitted.id))
            await operator.call(wire.Approve(id=submitted.id))
        await wait_helper(hive, wire.ConfigDeployed, [])
        assert not marker.exists()


async def test_the_manager_cannot_approve_deny_or_destroy(short_tmp: Path) -> None:
    git = ManagerGit(short_tmp / "manager-home")
    async with flow_hive(short_tmp) as (hive, backend):
        await running_alice(hive, backend, short_tmp)
        sha, id = await propose(hive, git, "alice", {"agent.toml": ENV_TOML})
        async with hive.manager() as manager:
            for request in (
                wire.Approve(id=id),
                wire.Deny(id=id, note="x"),
                wire.Destroy(name="alice"),
                wire.UnregisterAgent(name="alice"),
                wire.ListPending(),
            ):
                with pytest.raises(RemoteError, match="is not available to manager"):
                    await manager.call(request)
            for request in (wire.StopAgent(name="manager"), wire.KillAgent(name="manager")):
                with pytest.raises(RemoteError, match=r"the manager cannot .* itself"):
                    await manager.call(request)
            # What it may do: stop and start the agents, and withdraw its own request.
            assert (await manager.call(wire.StopAgent(name="alice"))).container.state == "stopped"
            assert (await manager.call(wire.StartAgent(name="alice"))).container.state == "running"
            ends = await manager.call(wire.GetLooseEnds())
            assert [(a.id, a.agent) for a in ends.approvals] == [(id, "alice")]
            await manager.call(wire.CancelLooseEnd(kind="approval", id=id))
            assert (await manager.call(wire.GetLooseEnds())).approvals == ()
        async with hive.operator() as operator:
            (row,) = (await operator.call(wire.ListPending(all=True))).approvals
            assert (row.status, row.note) == ("cancelled", None)
        cancelled = await wait_helper(hive, wire.ApprovalCancelled, [])
        reason = "cancelled: withdrawn by the manager"
        assert cancelled == wire.ApprovalCancelled(id, "alice", "manager", reason)
        await until(lambda: f"denied/{id}" in tags_at(hive, "alice", sha), "tagged")
        message = git_show(hive, "alice", "tag", "-l", "--format=%(contents)", f"denied/{id}")
        assert message.strip() == reason
        assert "alice" in hive.handles.agents.names()


async def test_a_secret_reaches_the_agent_and_nowhere_else(
    short_tmp: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    git = ManagerGit(short_tmp / "manager-home")
    async with flow_hive(short_tmp) as (hive, backend):
        env_file = await running_alice(hive, backend, short_tmp)
        toml = ENV_TOML + '\n[secrets]\nAPI_TOKEN = "env:HIVE_TOKEN"\n'
        sha, id = await propose(hive, git, "alice", {"agent.toml": toml}, "give it the token")
        async with hive.operator() as operator:
            detail = await operator.call(wire.ShowApproval(id=id))
            env_file.unlink()
            await operator.call(wire.Approve(id=id))
            await wait_helper(hive, wire.ConfigDeployed, [])
            config = await operator.call(wire.ShowConfig(name="alice"))
        await until(env_file.exists, "alice restarted")
        assert json.loads(env_file.read_text())["API_TOKEN"] == SECRET  # it got there
        history = await hive.handles.events.history(1000)
        shown = {
            "capability diff": json.dumps(wire.to_json(detail)),
            "config": json.dumps(wire.to_json(config)),
            "events": json.dumps(wire.to_json(history)),
            "daemon log": caplog.text,
            "applied repo": git_show(hive, "alice", "log", "-p", "--all")
            + git_show(hive, "alice", "cat-file", "--batch-all-objects", "--batch"),
            "deploy dir": "".join(
                path.read_text(errors="replace")
                for path in hive.paths.deploy_dir("alice", id).rglob("*")
                if path.is_file()
            ),
            "agent record": (hive.paths.agent_dir("alice") / "agent.json").read_text(),
        }
        assert "+ secret API_TOKEN from env:HIVE_TOKEN" in _lines(detail)
        for where, text in shown.items():
            assert SECRET not in text, where
        del sha


def _lines(detail: wire.ApprovalDetail) -> list[str]:
    from hyperhive.config_repo.capabilities import Change, render_text

    changes = [Change(c.area, c.effect, c.subject, c.before, c.after) for c in detail.capabilities]  # type: ignore[arg-type]
    return render_text(changes).splitlines()


async def test_a_spawn_through_the_flow_creates_the_agent(short_tmp: Path) -> None:
    git = ManagerGit(short_tmp / "manager-home")
    async with flow_hive(short_tmp) as (hive, backend):
        env_file = short_tmp / "carol-env.json"
        backend.set_payload("carol", env_payload(env_file))
        async with hive.manager() as manager:
            ready = await manager.call(wire.RequestInitConfig(name="carol"))
            sha = git.commit(
                repos(hive).proposed("carol"),
                {"agent.toml": "[network]\nenabled = false\n\n" + ENV_TOML},
                "carol keeps the notes",
            )
            submitted = await manager.call(
                wire.RequestSpawn(name="carol", commit_ref=sha, description="a note keeper")
            )
            with pytest.raises(RemoteError, match="a spawn of carol is already waiting"):
                await manager.call(
                    wire.RequestSpawn(name="carol", commit_ref=sha, description="again")
                )
        assert ready.seed != sha
        async with hive.operator() as operator:
            detail = await operator.call(wire.ShowApproval(id=submitted.id))
            assert detail.base is None  # against nothing: the whole config
            assert "+GREETING" in detail.diff
            assert ("env", "grants", "GREETING") in [
                (c.area, c.effect, c.subject) for c in detail.capabilities
            ]
            await operator.call(wire.Approve(id=submitted.id))
        await wait_helper(hive, wire.ConfigDeployed, [])
        await until(env_file.exists, "carol runs")
        assert json.loads(env_file.read_text())["GREETING"] == "hello from agent.toml"
        view = await hive.handles.agents.view("carol")
        assert (view.state, view.network, view.deployed_sha) == ("running", False, sha)
        assert tags_at(hive, "carol", sha) >= {f"deployed/{submitted.id}"}


async def _statuses(hive: TestHive) -> dict[str, wire.AgentStatusRow]:
    async with hive.operator() as operator:
        reply = await operator.call(wire.GetAgentStatus())
    return {row.name: row for row in reply.agent_statuses}


async def test_agent_status_names_the_parent_and_an_approved_config_not_yet_deployed(
    short_tmp: Path,
) -> None:
    """Issue: the original's `agent_status` rows always said needs_update false, parent null."""
    git = ManagerGit(short_tmp / "manager-home")
    gate = short_tmp / "let-the-build-finish"
    async with flow_hive(short_tmp) as (hive, backend):
        await running_alice(hive, backend, short_tmp)  # the operator's spawn: no parent
        async with hive.manager() as manager:
            await manager.call(wire.RequestInitConfig(name="carol"))
            sha = git.commit(repos(hive).proposed("carol"), {"agent.toml": ENV_TOML}, "carol")
            spawn = await manager.call(
                wire.RequestSpawn(name="carol", commit_ref=sha, description="a note keeper")
            )
        async with hive.operator() as operator:
            await operator.call(wire.Approve(id=spawn.id))
        seen: list[wire.HelperEvent] = []
        await wait_helper(hive, wire.ConfigDeployed, seen)
        before = await _statuses(hive)

        build = f'\n[build]\ncommands = ["while [ ! -e {gate} ]; do sleep 0.05; done"]\n'
        _, id = await propose(hive, git, "alice", {"agent.toml": ENV_TOML + build})
        with trio.fail_after(60):
            async with await trio.open_unix_socket(str(hive.paths.admin_socket)) as feed:
                await feed.send_all(b'{"cmd":"subscribe_agent_status"}\n')
                lines = _Lines(feed)
                assert json.loads(await lines.next())["ok"]
                async with hive.operator() as operator:
                    await operator.call(wire.Approve(id=id))
                waiting = await _statuses(hive)
                streamed = [await lines.row("alice")]
                gate.touch()
                while streamed[-1]["needs_update"] or not streamed[-1]["running"]:
                    streamed.append(await lines.row("alice"))
        await wait_helper(hive, wire.ConfigDeployed, seen)
        after = await _statuses(hive)

    assert {n: (r.parent, r.needs_update) for n, r in before.items()} == {
        "alice": (None, False),
        "carol": ("manager", False),
    }
    assert (waiting["alice"].needs_update, waiting["carol"].needs_update) == (True, False)
    assert streamed[0]["needs_update"] is True  # pushed when the operator approved
    assert (after["alice"].needs_update, after["carol"].parent) == (False, "manager")


class _Lines:
    """JSON lines of one socket, read as they come."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self._stream, self._buffer = stream, bytearray()

    async def next(self) -> bytes:
        while b"\n" not in self._buffer:
            data = await self._stream.receive_some(65536)
            assert data, "the daemon closed the feed"
            self._buffer += data
        line, _, rest = bytes(self._buffer).partition(b"\n")
        self._buffer = bytearray(rest)
        return line

    async def row(self, name: str) -> dict[str, object]:
        """The next streamed row of `name` (other agents' rows are skipped)."""
        while True:
            for row in json.loads(await self.next())["agent_statuses"]:
                if row["name"] == name:
                    return dict(row)
