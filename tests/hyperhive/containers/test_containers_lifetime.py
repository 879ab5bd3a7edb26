"""A sandbox lives exactly as long as the daemon process: not 10 s, not a moment longer.

Issue 9: bwrap's `--die-with-parent` (PR_SET_PDEATHSIG) fires when the *thread* that forked
bwrap exits, and trio forks from worker threads it retires after 10 s idle, so every agent
died 10 s after its start. These tests use real time on purpose: the fault is a real thread
retiring after a real 10 s.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import time
from pathlib import Path

import attrs
import pytest
import trio

from hyperhive.containers import _spawn
from hyperhive.containers.base import AgentState
from hyperhive.containers.bwrap import BwrapBackend, bwrap_works, detect_wall
from hyperhive.errors import StartFailed
from hyperhive.testing import DaemonProcess, run_cli
from hyperhive.testing.conformance import PROBE_COMMAND, ProbeFaults, make_spec, wait_report

pytestmark = pytest.mark.slow
needs_bwrap = pytest.mark.skipif(
    shutil.which("bwrap") is None or bwrap_works() is not None,
    reason="bubblewrap is not installed or cannot sandbox here (./bootstrap test installs it)",
)
TRIO_WORKER_IDLE = 10.0  # trio retires an idle worker thread after this long


def _live_processes_mentioning(text: str) -> list[int]:
    """Host pids (not zombies) whose command line contains `text`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text.encode() in cmdline and state != "Z":
            found.append(int(entry))
    return found


@needs_bwrap
async def test_a_bwrap_agent_and_an_exec_outlive_trios_idle_worker_threads(
    short_tmp: Path,
) -> None:
    backend = BwrapBackend(runtime_dir=short_tmp / "runtime", shutdown_grace=1.0)
    spec = make_spec(short_tmp, "alice")
    async with trio.open_nursery() as nursery:
        await nursery.start(backend.run)
        await backend.create(spec)
        await backend.start("alice")
        await wait_report(spec.state_dir, starts=1)
        exec_result: list[int] = []

        async def long_exec() -> None:
            seconds = TRIO_WORKER_IDLE + 2
            done = await backend.exec("alice", ["/bin/sh", "-c", f"sleep {seconds}; echo done"])
            exec_result.append(done.returncode)

        nursery.start_soon(long_exec)
        # Nothing else touches a worker thread meanwhile, so the one that forked (on the old
        # code) retires and takes both sandboxes with it.
        await trio.sleep(TRIO_WORKER_IDLE + 3)
        assert exec_result == [0]
        status = await backend.status("alice")
        assert status.state is AgentState.RUNNING
        await ProbeFaults(short_tmp).crash("alice", 7)  # it still obeys: it is alive
        exited = await backend.exits().receive()
        assert (exited.name, exited.exit_code) == ("alice", 7)
        backend.request_stop()


@needs_bwrap
def test_a_sigkilled_daemon_leaves_no_sandbox_behind(short_tmp: Path) -> None:
    command = shlex.join(PROBE_COMMAND)
    extra = ("--backend", "bwrap", "--agent-command", command, "--no-manager")
    state = short_tmp / "agents" / "alice" / "state"
    with DaemonProcess(short_tmp, *extra) as daemon:
        result = run_cli(short_tmp, "spawn", "alice")
        assert result.returncode == 0, result.stderr
        deadline = time.monotonic() + 20
        while not (state / "probe-report.json").exists():
            assert time.monotonic() < deadline, daemon.log
            time.sleep(0.05)
        assert json.loads((state / "probe-report.json").read_text())["starts"] == 1
        sandbox = _live_processes_mentioning(str(state))
        assert sandbox  # bwrap, its init and the probe
        daemon.signal(signal.SIGKILL)
        daemon.wait(timeout=10)
    deadline = time.monotonic() + 5
    while left := _live_processes_mentioning(str(state)):
        assert time.monotonic() < deadline, f"sandbox processes survived the daemon: {left}"
        time.sleep(0.05)


@needs_bwrap
async def test_a_cancelled_bwrap_start_leaves_no_sandbox_behind(short_tmp: Path) -> None:
    # A "bwrap" that never reports its sandbox keeps `start` waiting; cancel it there.
    marker = short_tmp / "started"
    fake = short_tmp / "slow-bwrap"
    fake.write_text(f"#!/bin/sh\necho $$ > {marker}.tmp\nmv {marker}.tmp {marker}\nexec sleep 60\n")
    fake.chmod(0o755)
    backend = BwrapBackend(runtime_dir=short_tmp / "runtime", bwrap=str(fake))
    spec = make_spec(short_tmp, "alice")
    async with trio.open_nursery() as nursery:
        await nursery.start(backend.run)
        await backend.create(spec)
        with trio.CancelScope() as scope:

            async def cancel_once_forked() -> None:
                with trio.fail_after(10):
                    while not marker.exists():  # another process writes it
                        await trio.sleep(0.01)
                scope.cancel()

            nursery.start_soon(cancel_once_forked)
            await backend.start("alice")
        assert scope.cancelled_caught
        pid = int(marker.read_text())
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # killed and reaped before the cancellation went on
        assert (await backend.status("alice")).state is AgentState.STOPPED
        backend.request_stop()


async def test_a_spawned_child_is_forked_by_the_long_lived_spawner_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import subprocess
    import threading

    forked_in: list[threading.Thread] = []
    real_popen = subprocess.Popen

    def recording_popen(*args: object, **kwargs: object) -> subprocess.Popen[bytes]:
        forked_in.append(threading.current_thread())
        return real_popen(*args, **kwargs)  # type: ignore[call-overload,no-any-return]

    monkeypatch.setattr(subprocess, "Popen", recording_popen)
    with trio.fail_after(10):
        first = await _spawn.run_process(["true"])
        second = await _spawn.run_process(["/bin/sh", "-c", "echo out; echo err >&2; exit 3"])
    assert first.returncode == 0
    assert (second.returncode, second.stdout, second.stderr) == (3, b"out\n", b"err\n")
    assert forked_in == [_spawn.spawner_thread()] * 2
    assert forked_in[0] is not threading.main_thread()
    assert forked_in[0].is_alive()


async def test_a_cancelled_run_process_kills_its_child(short_tmp: Path) -> None:
    marker = short_tmp / "pid"
    script = f"echo $$ > {marker}.tmp; mv {marker}.tmp {marker}; exec sleep 60"
    with trio.move_on_after(10) as scope:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_spawn.run_process, ["/bin/sh", "-c", script])
            while not marker.exists():  # another process writes it
                await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
    assert not scope.cancelled_caught
    with pytest.raises(ProcessLookupError):
        os.kill(int(marker.read_text()), 0)


def test_making_a_backend_runs_nothing_and_needs_no_test_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Issue 9: the bubblewrap probe ran (blocking) inside trio.run, twice per start, and
    # make_backend imported hyperhive.testing. Now `serve` resolves the backend once, before
    # the event loop, and make_backend only builds what it is told.
    import subprocess
    import sys

    from hyperhive.config import StatePaths
    from hyperhive.containers.settings import ContainerSettings, make_backend
    from hyperhive.errors import ConfigError

    def no_subprocess(*args: object, **kwargs: object) -> None:
        raise AssertionError("make_backend ran a subprocess")

    monkeypatch.setattr(subprocess, "run", no_subprocess)
    monkeypatch.setattr(subprocess, "Popen", no_subprocess)
    paths = StatePaths(tmp_path)
    for kind in ("bwrap", "process"):
        backend = make_backend(ContainerSettings(backend=kind), paths)  # type: ignore[arg-type]
        assert backend is not None
        assert backend.kind == kind
    with pytest.raises(ConfigError, match="resolve"):
        make_backend(ContainerSettings(backend="auto"), paths)
    with pytest.raises(ConfigError, match="unknown backend 'fake'"):
        make_backend(ContainerSettings(backend="fake"), paths)  # type: ignore[arg-type]
    source = Path(sys.modules["hyperhive.containers.settings"].__file__ or "").read_text()
    assert "hyperhive.testing" not in source


@needs_bwrap
async def test_a_start_whose_network_fails_leaves_no_sandbox_and_never_runs_the_agent(
    short_tmp: Path,
) -> None:
    """bwrap runs the payload at --block-fd's end too, before its own --die-with-parent is
    armed: a start given up after bwrap reported its sandbox once left that sandbox behind,
    and the agent ran in it, unwatched, beyond the daemon."""
    wall = await trio.to_thread.run_sync(detect_wall)
    if wall.slirp4netns is None:
        pytest.skip("no user-mode network here (slirp4netns, /dev/net/tun)")
    broken = attrs.evolve(wall, ip="/bin/false")  # tap0 cannot be configured: the start fails
    backend = BwrapBackend(runtime_dir=short_tmp / "runtime", shutdown_grace=1.0, wall=broken)
    spec = make_spec(short_tmp, "alice")
    async with trio.open_nursery() as nursery:
        await nursery.start(backend.run)
        await backend.create(spec)
        with pytest.raises(StartFailed, match="ip could not set up the agent's network"):
            await backend.start("alice")
        await trio.sleep(2.0)  # what a leftover sandbox would need to start the probe
        assert not (spec.state_dir / "probe-report.json").exists()
        assert _live_processes_mentioning(str(spec.state_dir)) == []
        backend.request_stop()
