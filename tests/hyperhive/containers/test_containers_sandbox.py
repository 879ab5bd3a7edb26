"""Real agents under a real daemon: the bwrap sandbox holds, crashes are reported in time.

The agent is the probe (`hyperhive.testing.probe_agent`): it reports what it could read, write
and reach from inside its container, then obeys commands left in its state directory.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
import trio

from hyperhive import wire
from hyperhive.containers.base import AgentSpec
from hyperhive.containers.bwrap import BwrapBackend, bwrap_argv, bwrap_works, sandbox_environment
from hyperhive.containers.mounts import runtime_binds
from hyperhive.containers.settings import ContainerSettings
from hyperhive.testing import open_test_hive
from hyperhive.testing.conformance import PROBE_COMMAND, ProbeFaults, wait_report

pytestmark = pytest.mark.slow
needs_bwrap = pytest.mark.skipif(
    shutil.which("bwrap") is None or bwrap_works() is not None,
    reason="bubblewrap is not installed or cannot sandbox here (./bootstrap test installs it)",
)
REPO = Path(__file__).resolve().parents[3]


def settings(backend: str) -> ContainerSettings:
    return ContainerSettings(
        backend=backend,  # type: ignore[arg-type]
        agent_command=PROBE_COMMAND,
        ensure_manager=False,
        stop_grace=2.0,
        shutdown_grace=1.0,
    )


def _command(state_dir: Path, command: str) -> None:
    scratch = state_dir / "probe-command.tmp"
    scratch.write_text(command)
    scratch.replace(state_dir / "probe-command")


@needs_bwrap
async def test_the_bwrap_sandbox_holds(short_tmp: Path) -> None:
    paths_root = short_tmp
    config = paths_root / "agents" / "alice" / "config"
    config.mkdir(parents=True)
    (config / "probe.txt").write_text("model = test\n")
    bob_state = paths_root / "agents" / "bob" / "state"
    bob_state.mkdir(parents=True)
    (bob_state / "secret").write_text("bob's")
    host_targets = [
        "/etc/hh-probe-evil",
        "/usr/hh-probe-evil",
        str(REPO / "hh-probe-evil"),
        str(Path(sys.executable).resolve().parent / "hh-probe-evil"),
        str(bob_state / "evil"),
        "/tmp/hh-probe-evil",
    ]
    (config / "probe-targets.json").write_text(json.dumps(host_targets))
    hidden = [
        str(paths_root / "admin.sock"),
        str(paths_root / "broker.sqlite"),
        str(bob_state / "secret"),
        str(paths_root / "agents" / "alice" / "agent.json"),
    ]
    (config / "probe-hidden.json").write_text(json.dumps(hidden))
    async with open_test_hive(paths_root, containers=settings("bwrap")) as hive:
        lifecycle = hive.handles.agents
        assert lifecycle is not None
        assert hive.tree.backend is not None
        assert hive.tree.backend.kind == "bwrap"
        await lifecycle.spawn("alice")
        state = hive.paths.agent_state_dir("alice")
        report = await wait_report(state, starts=1)

        # Its config reads, and is read-only.
        assert report["config"] == "model = test\n"
        assert report["config_write"] == "EROFS"
        # It sees itself under the sandbox paths, HOME inside its state.
        assert report["env"] == {
            "HYPERHIVE_AGENT": "alice",
            "HYPERHIVE_ROLE": "agent",
            "HYPERHIVE_SOCKET": "/run/hyperhive/hive.sock",
            "HYPERHIVE_AGENT_STATE": "/state",
            "HYPERHIVE_CONFIG_DIR": "/config",
            "HYPERHIVE_OPERATOR_PRONOUNS": "they/them",  # the daemon's --operator-pronouns
        }
        assert (report["home"], report["cwd"]) == ("/state/home", "/state")
        # No host path is writable; /tmp is its own.
        writes = report["host_writes"]
        assert isinstance(writes, dict)
        assert {t: r for t, r in writes.items() if r == "ok"} == {"/tmp/hh-probe-evil": "ok"}
        assert all(not Path(target).exists() for target in host_targets)
        # The hive's state (admin socket, other agents' files) is not even visible.
        assert report["visible"] == dict.fromkeys(hidden, False)
        # Its socket reaches the daemon, as itself.
        assert json.loads(str(report["socket"]))["ok"] is True
        async with hive.operator() as operator:
            inbox = await operator.call(wire.ReadInbox())
        assert [(m.sender, m.body) for m in inbox.messages] == [("alice", "hello from alice")]

        # State persists across a restart.
        await lifecycle.restart("alice")
        assert (await wait_report(state, starts=2))["starts"] == 2
        assert (state / "probe-counter").read_text() == "2"


@needs_bwrap
async def test_an_agent_without_network_still_reaches_its_socket(short_tmp: Path) -> None:
    async with open_test_hive(short_tmp, containers=settings("bwrap")) as hive:
        lifecycle = hive.handles.agents
        assert lifecycle is not None
        await lifecycle.spawn("alice", network=False)
        report = await wait_report(hive.paths.agent_state_dir("alice"), starts=1)
        assert json.loads(str(report["socket"]))["ok"] is True
        code = "import socket; print(socket.if_nameindex())"
        backend = hive.tree.backend
        assert backend is not None
        with trio.fail_after(20):
            result = await backend.exec("alice", [sys.executable, "-S", "-c", code])
        assert result.stdout.decode().strip() == "[(1, 'lo')]"


@pytest.mark.parametrize("backend", ["process", pytest.param("bwrap", marks=needs_bwrap)], ids=str)
async def test_a_crash_reaches_the_manager_within_two_seconds(
    short_tmp: Path, backend: str
) -> None:
    async with open_test_hive(short_tmp, containers=settings(backend)) as hive:
        lifecycle = hive.handles.agents
        assert lifecycle is not None
        await lifecycle.spawn("alice")
        state = hive.paths.agent_state_dir("alice")
        await wait_report(state, starts=1)
        crashed_at = trio.current_time()
        _command(state, "exit 3")
        deliveries = await hive.handles.messages.recv("manager", wait_seconds=2.0)
        assert trio.current_time() - crashed_at < 2.0
        (delivery,) = deliveries
        event = wire.decode_helper_event(delivery.body)
        assert isinstance(event, wire.ContainerCrash)
        assert (delivery.sender, event.name, event.exit_code) == ("hive", "alice", 3)
        assert "agent alice exiting with 3" in event.detail
        assert (await lifecycle.view("alice")).state == "crashed"


@pytest.mark.parametrize("backend", ["process", pytest.param("bwrap", marks=needs_bwrap)], ids=str)
async def test_stopping_an_agent_that_ignores_sigterm_ends_in_the_kill(
    short_tmp: Path, backend: str
) -> None:
    async with open_test_hive(short_tmp, containers=settings(backend)) as hive:
        lifecycle = hive.handles.agents
        assert lifecycle is not None
        await lifecycle.spawn("alice")
        await wait_report(hive.paths.agent_state_dir("alice"), starts=1)
        await ProbeFaults(hive.paths.agents_dir).hang_stop("alice")
        started = trio.current_time()
        with trio.fail_after(10):
            await lifecycle.stop("alice")
        assert trio.current_time() - started >= 2.0  # the grace period was given
        view = await lifecycle.view("alice")
        assert (view.state, view.exit_code) == ("stopped", 137)
        assert await hive.handles.messages.recv("manager") == ()  # a stop is no crash


def test_the_bwrap_command_line_is_pinned(tmp_path: Path) -> None:
    spec = AgentSpec(
        name="alice",
        role="agent",
        state_dir=Path("/h/agents/alice/state"),
        config_dir=Path("/h/agents/alice/config"),
        socket_dir=Path("/h/agents/alice/run"),
        log_path=Path("/h/agents/alice/agent.log"),
        argv=("/usr/bin/python3", "-m", "hyperhive", "agent", "serve"),
        env={"ANTHROPIC_API_KEY": "sk-secret"},
        network=False,
    )
    argv = bwrap_argv(
        spec,
        ["/launcher", "--", *spec.argv],
        system=[("usr", None), ("bin", "usr/bin"), ("lib64", None)],
        etc=[("ssl", None), ("localtime", "/usr/share/zoneinfo/UTC")],
        generated={"passwd": Path("/h/containers/bwrap/etc/alice/passwd")},
        runtime=[Path("/opt/py")],
        privileged=True,
        tmp_size=1024,
        seccomp_fd=4,
        status_fd=5,
        block_fd=6,
    )
    assert argv == [
        "bwrap",
        "--ro-bind", "/usr", "/usr",
        "--symlink", "usr/bin", "/bin",
        "--ro-bind", "/lib64", "/lib64",
        "--proc", "/proc", "--dev", "/dev",
        "--perms", "1777", "--size", "1024", "--tmpfs", "/tmp",
        "--perms", "1777", "--size", "1024", "--tmpfs", "/dev/shm",
        "--perms", "0755", "--tmpfs", "/run",
        "--perms", "0755", "--dir", "/etc",
        "--perms", "0755", "--dir", "/opt",
        "--ro-bind", "/etc/ssl", "/etc/ssl",
        "--symlink", "/usr/share/zoneinfo/UTC", "/etc/localtime",
        "--ro-bind", "/h/containers/bwrap/etc/alice/passwd", "/etc/passwd",
        "--ro-bind", "/opt/py", "/opt/py",
        "--bind", "/h/agents/alice/state", "/state",
        "--ro-bind", "/h/agents/alice/config", "/config",
        "--bind", "/h/agents/alice/run", "/run/hyperhive",
        "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
        "--unshare-net",
        "--hostname", "alice",
        "--die-with-parent", "--new-session", "--cap-drop", "ALL",
        "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add", "CAP_SETPCAP",
        "--chdir", "/",
        "--seccomp", "4",
        "--json-status-fd", "5",
        "--block-fd", "6",
        "--", "/launcher", "--", "/usr/bin/python3", "-m", "hyperhive", "agent", "serve",
    ]  # fmt: skip
    assert not any("sk-secret" in arg for arg in argv)  # secrets travel in the environment
    env = sandbox_environment(spec)
    assert env["ANTHROPIC_API_KEY"] == "sk-secret"
    assert env["HOME"] == "/state/home"
    # An unprivileged daemon: bwrap makes its own user namespace, and keeps no capability.
    unprivileged = bwrap_argv(spec, spec.argv, system=[], etc=[], generated={})
    assert "--unshare-user" in unprivileged
    assert "--disable-userns" in unprivileged
    assert "--cap-add" not in unprivileged


def test_the_sandbox_mounts_an_allowlist_of_the_host(tmp_path: Path) -> None:
    backend = BwrapBackend(runtime_dir=tmp_path)
    spec = AgentSpec("a", "agent", tmp_path, tmp_path, tmp_path, tmp_path / "log", ("true",))
    argv = backend.argv(spec, ["true"])
    sources = {argv[i + 1] for i, arg in enumerate(argv) if arg in ("--ro-bind", "--bind")}
    for path in ("/root", "/home", "/srv", "/opt", "/var", "/mnt", "/etc", "/"):
        assert path not in sources
    assert "/etc/shadow" not in sources
    assert all(not s.startswith("/etc/") or s[5:].split("/")[0] != "shadow" for s in sources)
    assert "/usr" in sources


def test_the_harness_runtime_is_bound_into_the_sandbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A CI clone under /tmp, a pyenv under /root: both would be missing from the allowlist.
    venv = Path(tempfile.mkdtemp(prefix="hh-venv-", dir="/tmp"))
    try:
        (venv / "lib" / "site-packages").mkdir(parents=True)
        monkeypatch.setattr(sys, "prefix", str(venv))
        binds = runtime_binds()
        assert venv in binds
        assert Path(sys.base_prefix) in binds or Path(sys.base_prefix).is_relative_to("/usr")
        assert all(Path("/usr") not in p.parents for p in binds)
        assert not any(o in p.parents for p in binds for o in binds)  # no bind inside another
    finally:
        shutil.rmtree(venv)


@needs_bwrap
@pytest.mark.skipif(os.geteuid() != 0, reason="per-agent uids need a root daemon")
async def test_a_file_the_daemon_writes_for_an_agent_is_its_own(short_tmp: Path) -> None:
    """Issue: a root daemon wrote reminder files as root, 0644, into the agent's state."""
    async with open_test_hive(short_tmp, containers=settings("bwrap")) as hive:
        lifecycle, backend = hive.handles.agents, hive.tree.backend
        assert lifecycle is not None
        assert backend is not None
        await lifecycle.spawn("alice")
        state = hive.paths.agent_state_dir("alice")
        await wait_report(state, starts=1)
        async with hive.agent("alice") as alice:
            await alice.call(wire.Remind(message="right away", delay_seconds=0, file_path="n/x.md"))
        note = state / "n" / "x.md"
        with trio.fail_after(20):
            while not note.exists():
                await trio.sleep(0.01)
        uids = json.loads((hive.paths.containers_dir / "bwrap" / "uids.json").read_text())
        with trio.fail_after(30):
            inside = await backend.exec(
                "alice",
                ["/bin/sh", "-c", "id -u; cat /state/n/x.md; echo ' and more' >> /state/n/x.md"],
            )
    uid = uids["alice"]
    assert uid >= 1_900_000
    found = {
        p.name: (p.stat().st_uid, p.stat().st_gid, p.stat().st_mode & 0o777)
        for p in (note, note.parent)
    }
    assert found == {"x.md": (uid, uid, 0o600), "n": (uid, uid, 0o700)}
    assert (inside.returncode, inside.stdout.decode()) == (0, f"{uid}\nright away"), inside.stderr
    assert note.read_text() == "right away and more\n"
