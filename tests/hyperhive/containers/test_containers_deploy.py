"""Issue 12: a deploy in the bwrap wall, with real git, real bwrap and the probe as every agent.

The manager (the probe, as the manager) edits nothing itself here: its commits are made with an
ordinary git on the host, as `tests/hyperhive/core/test_approvals_flow.py` does; what is tried
from inside is what each container can see and write. A deploy of alice's `agent.toml` (an
env value, a secret by reference, a build step) is approved; then alice's probe reports its
environment, its read-only `/config` and `/tools`, and that neither another agent's config nor
the config repos are visible to it, while the manager's probe reports `/agents` writable and
`/applied` read-only. The secret's value reaches alice's environment and no process's
command line, no repo, no build log.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import trio

from hyperhive import wire
from hyperhive.config_repo.seed import RepoPaths
from hyperhive.containers.bwrap import bwrap_works
from hyperhive.containers.settings import ContainerSettings
from hyperhive.testing import open_test_hive
from hyperhive.testing.conformance import PROBE_COMMAND, wait_report
from hyperhive.testing.manager_git import ManagerGit

if TYPE_CHECKING:
    from hyperhive.testing import TestHive

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(180),
    pytest.mark.skipif(
        shutil.which("bwrap") is None or bwrap_works() is not None,
        reason="bubblewrap is not installed or cannot sandbox here (./bootstrap test installs it)",
    ),
]
SECRET = "wall-s3cret-5b1d07"
AGENT_TOML = """\
[env]
GREETING = "hello from the deploy"

[secrets]
API_TOKEN = "env:HIVE_API_TOKEN"

[build]
commands = [
    "echo built by the deploy > /tools/hello.txt",
    "echo \\"token:${API_TOKEN:-none} tools:$HYPERHIVE_TOOLS\\" > /tools/build-env.txt",
]
"""


def settings() -> ContainerSettings:
    return ContainerSettings(
        backend="bwrap",
        agent_command=PROBE_COMMAND,
        ensure_manager=True,
        stop_grace=2.0,
        shutdown_grace=1.0,
        secret_environ={"HIVE_API_TOKEN": SECRET},
    )


def _git(hive: TestHive, name: str, *args: str) -> str:
    applied = RepoPaths(hive.paths.configs_dir).applied(name)
    done = subprocess.run(
        ["git", "--git-dir", str(applied), *args], capture_output=True, check=True, timeout=60
    )
    return done.stdout.decode("utf-8", errors="replace")


def _command_lines() -> str:
    """Every process's command line, as `ps` shows them."""
    lines = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            lines.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:
            continue
    return "\n".join(lines)


async def _deployed(hive: TestHive, id: int) -> wire.HelperEvent:
    """The helper event that ends approval `id`'s deploy (ConfigDeployed or ConfigFailed)."""
    with trio.fail_after(120):
        while True:
            for delivery in await hive.handles.messages.recv("manager", max=100, wait_seconds=1):
                if delivery.sender == wire.HELPER_SENDER:
                    event = wire.decode_helper_event(delivery.body)
                    ended = isinstance(event, wire.ConfigDeployed | wire.ConfigFailed)
                    if ended and getattr(event, "id", None) == id:
                        return event
            await hive.handles.messages.ack_turn("manager")


async def test_a_deploy_runs_in_the_wall_and_the_repos_stay_where_they_belong(
    short_tmp: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    root = short_tmp / "hive"
    repos = RepoPaths(root / "configs")
    manager_config = root / "agents" / "manager" / "config"
    manager_config.mkdir(parents=True)
    (manager_config / "probe-targets.json").write_text(
        json.dumps(["/agents/alice/config/probe-evil", "/applied/alice/probe-evil"])
    )
    (manager_config / "probe-wall.json").write_text(json.dumps({"read": ["/applied/alice/HEAD"]}))
    bob_config = root / "agents" / "bob" / "config"
    bob_config.mkdir(parents=True)
    (bob_config / "bobs-notes.txt").write_text("bob's own")
    git = ManagerGit(short_tmp / "git-home")

    async with open_test_hive(root, containers=settings()) as hive:
        agents = hive.handles.agents
        await wait_report(hive.paths.agent_state_dir("manager"), starts=1, within=60)
        await agents.spawn("alice")
        await agents.spawn("bob")
        alice_state = hive.paths.agent_state_dir("alice")
        await wait_report(alice_state, starts=1, within=60)
        async with hive.manager() as manager:
            await manager.call(wire.RequestInitConfig(name="alice"))
            await manager.call(wire.RequestInitConfig(name="bob"))
        proposed = repos.proposed("alice")
        hidden = [
            "/agents",
            "/applied",
            str(repos.root),
            str(bob_config / "bobs-notes.txt"),
            str(hive.paths.agent_config_dir("bob")),
            str(hive.paths.agent_deploys_dir("bob")),
        ]
        targets = ["/tools/probe-evil", "/config/agent.toml", str(proposed / "probe-evil")]
        files = {
            "agent.toml": AGENT_TOML,
            "probe-env.json": json.dumps(["GREETING", "API_TOKEN"]),
            "probe-hidden.json": json.dumps(hidden),
            "probe-targets.json": json.dumps(targets),
            "probe-wall.json": json.dumps({"read": ["/tools/hello.txt", "/tools/build-env.txt"]}),
        }
        sha = git.commit(proposed, files, "greet, with a token and a tool")
        async with hive.manager() as manager:
            asked = await manager.call(
                wire.RequestApplyCommit(agent="alice", commit_ref=sha, description="a deploy")
            )
        async with hive.operator() as operator:
            detail = await operator.call(wire.ShowApproval(id=asked.id))
            await operator.call(wire.Approve(id=asked.id))
        deployed = await _deployed(hive, asked.id)
        assert deployed == wire.ConfigDeployed(asked.id, "alice", sha), deployed
        report = await wait_report(alice_state, starts=2, within=60)
        processes = _command_lines()

        # The manager, restarted now that alice's repos exist: /agents writable, /applied not.
        await agents.restart("manager")
        manager_report = await wait_report(hive.paths.agent_state_dir("manager"), starts=2)

    # Alice runs the deploy: its env, its secret, its build's tools, all read-only.
    assert report["named_env"] == {"GREETING": "hello from the deploy", "API_TOKEN": SECRET}
    env = report["env"]
    assert isinstance(env, dict)
    assert (env["HYPERHIVE_CONFIG_DIR"], env["HYPERHIVE_TOOLS"]) == ("/config", "/tools")
    wall = report["wall"]
    assert isinstance(wall, dict)
    assert wall["read"] == {
        "/tools/hello.txt": "read: built by the deploy\n",
        "/tools/build-env.txt": "read: token:none tools:/tools\n",  # the build had no secret
    }
    assert report["config_write"] == "EROFS"
    assert report["host_writes"] == {
        "/tools/probe-evil": "EROFS",
        "/config/agent.toml": "EROFS",
        str(proposed / "probe-evil"): "ENOENT",  # the host's path does not exist in there
    }
    assert report["visible"] == dict.fromkeys(hidden, False)
    deploy = hive.paths.deploy_dir("alice", asked.id)
    assert (deploy / "config" / "agent.toml").read_text() == AGENT_TOML
    # The build's log: what the build printed (nothing) under hyperhive's line per command;
    # slirp4netns, which gave the build its network, logged to the daemon's log instead.
    commands = AGENT_TOML.split("commands = [\n")[1].split("\n]")[0].splitlines()
    expected_log = "".join(f"$ {json.loads(line.strip().rstrip(','))}\n" for line in commands)
    assert (deploy / "build.log").read_text() == expected_log
    assert "slirp4netns for alice: " in caplog.text
    assert not (deploy / "config" / "probe-evil").exists()

    # The manager: its proposed repos read-write, the applied ones read-only.
    writes = manager_report["host_writes"]
    assert writes == {"/agents/alice/config/probe-evil": "ok", "/applied/alice/probe-evil": "EROFS"}
    manager_wall = manager_report["wall"]
    assert isinstance(manager_wall, dict)
    assert manager_wall["read"] == {"/applied/alice/HEAD": "read: ref: refs/heads/main\n"}

    # The secret's value: in alice's environment only.
    shown = {
        "ps": processes,
        "capability diff": json.dumps(wire.to_json(detail)),
        "daemon log": caplog.text,
        "applied repo": _git(hive, "alice", "log", "-p", "--all")
        + _git(hive, "alice", "cat-file", "--batch-all-objects", "--batch"),
        "proposed repo": git(proposed, "log", "-p", "--all"),
        "deploy dir": "".join(
            path.read_text(errors="replace") for path in deploy.rglob("*") if path.is_file()
        ),
        "agent log": hive.paths.agent_log("alice").read_text(errors="replace"),
    }
    for where, text in shown.items():
        assert SECRET not in text, where
