"""One conformance suite for every container backend, so the fake cannot drift from the real.

`check_container_backend(make_backend, root)` runs every check in `CHECKS`, each against a
fresh backend from `make_backend(directory) -> (backend, faults)`. Real backends run the probe
agent (`hyperhive.testing.probe_agent`, command `PROBE_COMMAND`) and get their faults from
`ProbeFaults`; the fake backend is its own fault injector (`FakeFaults`).

The checks use real time with hard bounds (real backends run real processes); each finishes
in well under a second on a quiet machine.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import attrs
import trio

from hyperhive.containers.base import AgentExited, AgentSpec, AgentState, ContainerBackend
from hyperhive.errors import ContainerError
from hyperhive.testing import probe_agent

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from hyperhive.testing.fake_containers import FakeBackend

__all__ = [
    "CHECKS",
    "PROBE_COMMAND",
    "ConformanceContext",
    "FakeFaults",
    "Faults",
    "ProbeFaults",
    "check_container_backend",
    "make_spec",
    "run_check",
    "serve_echo_socket",
    "wait_report",
]

PROBE_COMMAND = (sys.executable, "-S", "-B", probe_agent.__file__)
CHECK_TIMEOUT = 30.0
CRASH_REPORT_SECONDS = 2.0  # the bound for bwrap and process


class Faults(Protocol):
    """How a check makes an agent misbehave on a given backend."""

    async def crash(self, name: str, code: int) -> None: ...

    async def hang_stop(self, name: str) -> None: ...

    async def fail_start(self, spec: AgentSpec) -> AgentSpec:
        """A spec whose start fails (call before `create`)."""
        ...


def make_spec(root: Path, name: str, *, network: bool = True) -> AgentSpec:
    """An agent spec under `root/name/` running the probe agent."""
    home = root / name
    return AgentSpec(
        name=name,
        role="agent",
        state_dir=home / "state",
        config_dir=home / "config",
        socket_dir=home / "run",
        log_path=home / "agent.log",
        argv=PROBE_COMMAND,
        network=network,
    )


@attrs.frozen
class ProbeFaults:
    """Faults for backends running the probe agent: commands through its state directory."""

    root: Path

    async def crash(self, name: str, code: int) -> None:
        await self._command(name, f"exit {code}")

    async def hang_stop(self, name: str) -> None:
        await self._command(name, "ignore-term")
        ack = self.root / name / "state" / "probe-ack"
        with trio.fail_after(10):
            # Polling: another process writes the file; nothing can wake us.
            while not ack.exists() or ack.read_text() != "ignore-term":  # noqa: ASYNC110
                await trio.sleep(0.01)

    async def fail_start(self, spec: AgentSpec) -> AgentSpec:
        return attrs.evolve(spec, argv=("/nonexistent/hyperhive-probe",))

    async def _command(self, name: str, command: str) -> None:
        state = self.root / name / "state"
        (state / "probe-ack").unlink(missing_ok=True)
        scratch = state / "probe-command.tmp"
        scratch.write_text(command)
        scratch.replace(state / "probe-command")


@attrs.frozen
class FakeFaults:
    """The fake backend's own fault hooks behind the `Faults` interface."""

    backend: FakeBackend

    async def crash(self, name: str, code: int) -> None:
        await self.backend.crash(name, code)

    async def hang_stop(self, name: str) -> None:
        await self.backend.hang_stop(name)

    async def fail_start(self, spec: AgentSpec) -> AgentSpec:
        await self.backend.fail_start(spec.name)
        return spec


@attrs.frozen
class ConformanceContext:
    backend: ContainerBackend
    faults: Faults
    root: Path

    def spec(self, name: str, *, network: bool = True) -> AgentSpec:
        return make_spec(self.root, name, network=network)

    async def next_exit(self, name: str, within: float = 10.0) -> AgentExited:
        """The next exit the backend reports for `name` (others are skipped)."""
        with trio.fail_after(within):
            while True:
                exited = await self.backend.exits().receive()
                if exited.name == name:
                    return exited

    async def running(self, name: str) -> dict[str, object]:
        """Create and start `name`, wait for its first report."""
        await self.backend.create(self.spec(name))
        await self.backend.start(name)
        return await wait_report(self.root / name / "state", starts=1)


async def wait_report(state_dir: Path, *, starts: int, within: float = 15.0) -> dict[str, object]:
    """The probe report once the agent has started `starts` times."""
    path = state_dir / "probe-report.json"
    with trio.fail_after(within):
        while True:
            try:
                report: dict[str, object] = json.loads(path.read_text())
            except (OSError, ValueError):
                report = {}
            count = report.get("starts")
            if isinstance(count, int) and count >= starts:
                return report
            await trio.sleep(0.01)


async def serve_echo_socket(
    socket_dir: Path, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """A listener on `socket_dir/hive.sock` that answers each line with `ack:<line>`."""
    sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
    await sock.bind(str(socket_dir / "hive.sock"))
    sock.listen(8)

    async def answer(stream: trio.SocketStream) -> None:
        async with stream:
            data = b""
            while not data.endswith(b"\n"):
                chunk = await stream.receive_some(65536)
                if not chunk:
                    return
                data += chunk
            await stream.send_all(b"ack:" + data)

    task_status.started()
    await trio.serve_listeners(answer, [trio.SocketListener(sock)])


# -- the checks -------------------------------------------------------------------------------


async def check_unknown_is_absent(ctx: ConformanceContext) -> None:
    assert (await ctx.backend.status("nobody")).state is AgentState.ABSENT
    assert "nobody" not in await ctx.backend.list()


async def check_create_is_idempotent(ctx: ConformanceContext) -> None:
    spec = ctx.spec("alpha")
    await ctx.backend.create(spec)
    await ctx.backend.create(spec)
    assert (await ctx.backend.status("alpha")).state is AgentState.STOPPED
    assert await ctx.backend.list() == ["alpha"]
    assert spec.state_dir.is_dir()
    assert spec.config_dir.is_dir()
    assert spec.socket_dir.is_dir()


async def check_start_runs_with_its_environment(ctx: ConformanceContext) -> None:
    spec = ctx.spec("alpha")
    spec.config_dir.mkdir(parents=True)
    (spec.config_dir / "probe.txt").write_text("from config")
    report = await ctx.running("alpha")
    await ctx.backend.start("alpha")  # a second start is a no-op
    assert (await ctx.backend.status("alpha")).state is AgentState.RUNNING
    env = report["env"]
    assert isinstance(env, dict)
    assert env["HYPERHIVE_AGENT"] == "alpha"
    assert env["HYPERHIVE_ROLE"] == "agent"
    assert "HYPERHIVE_WEB_PORT" not in env
    assert report["home"] == str(Path(env["HYPERHIVE_AGENT_STATE"]) / "home")
    assert report["config"] == "from config"


async def check_stop_is_clean(ctx: ConformanceContext) -> None:
    await ctx.running("alpha")
    with trio.fail_after(5):
        await ctx.backend.stop("alpha", grace=5.0)
    status = await ctx.backend.status("alpha")
    assert status.state is AgentState.STOPPED
    exited = await ctx.next_exit("alpha")
    assert exited.requested
    assert exited.exit_code == 0  # the agent handled the polite stop itself


async def check_stop_of_a_stopped_agent_is_a_no_op(ctx: ConformanceContext) -> None:
    await ctx.backend.create(ctx.spec("alpha"))
    await ctx.backend.stop("alpha", grace=1.0)
    assert (await ctx.backend.status("alpha")).state is AgentState.STOPPED


async def check_state_persists_across_restarts(ctx: ConformanceContext) -> None:
    await ctx.running("alpha")
    await ctx.backend.stop("alpha", grace=5.0)
    await ctx.backend.start("alpha")
    report = await wait_report(ctx.root / "alpha" / "state", starts=2)
    assert report["starts"] == 2


async def check_crash_is_reported_quickly(ctx: ConformanceContext) -> None:
    await ctx.running("alpha")
    await ctx.faults.crash("alpha", 3)
    exited = await ctx.next_exit("alpha", within=CRASH_REPORT_SECONDS)
    assert not exited.requested
    assert exited.exit_code == 3
    assert not exited.setup_failed
    status = await ctx.backend.status("alpha")
    assert (status.state, status.exit_code) == (AgentState.CRASHED, 3)
    await ctx.backend.start("alpha")  # a crashed agent starts again
    assert (await ctx.backend.status("alpha")).state is AgentState.RUNNING


async def check_stop_kills_an_agent_that_ignores_it(ctx: ConformanceContext) -> None:
    await ctx.running("alpha")
    await ctx.faults.hang_stop("alpha")
    started = trio.current_time()
    with trio.fail_after(10):
        await ctx.backend.stop("alpha", grace=0.5)
    assert trio.current_time() - started >= 0.5  # it did get its grace
    assert (await ctx.backend.status("alpha")).state is AgentState.STOPPED
    exited = await ctx.next_exit("alpha")
    assert exited.requested
    assert exited.exit_code == 137  # SIGKILL


async def check_failed_start_raises(ctx: ConformanceContext) -> None:
    spec = await ctx.faults.fail_start(ctx.spec("alpha"))
    await ctx.backend.create(spec)
    failure: ContainerError | None = None
    try:
        await ctx.backend.start("alpha")
    except ContainerError as exc:
        failure = exc
    assert failure is not None, "start of a broken agent did not fail"
    assert "alpha" in str(failure)
    status = await ctx.backend.status("alpha")
    assert status.state is AgentState.CRASHED
    assert status.detail


async def check_destroy_keeps_state(ctx: ConformanceContext) -> None:
    await ctx.running("alpha")
    await ctx.backend.destroy("alpha")
    assert (await ctx.backend.status("alpha")).state is AgentState.ABSENT
    assert "alpha" not in await ctx.backend.list()
    assert (await ctx.next_exit("alpha")).requested
    assert (ctx.root / "alpha" / "state" / "probe-counter").read_text() == "1"
    await ctx.backend.destroy("alpha")  # destroying the absent is a no-op


async def check_logs_show_output(ctx: ConformanceContext) -> None:
    await ctx.running("alpha")
    with trio.fail_after(5):
        # Polling: the output of another process.
        while "agent alpha started" not in await ctx.backend.logs("alpha", lines=50):  # noqa: ASYNC110
            await trio.sleep(0.01)
    assert await ctx.backend.logs("alpha", lines=0) == ""


async def check_exec_runs_in_the_agents_environment(ctx: ConformanceContext) -> None:
    await ctx.running("alpha")
    code = "import os, sys; print(os.environ['HYPERHIVE_AGENT']); sys.exit(3)"
    with trio.fail_after(20):
        result = await ctx.backend.exec("alpha", [sys.executable, "-S", "-c", code])
    assert (result.returncode, result.stdout) == (3, b"alpha\n")


async def check_socket_directory_is_reachable(ctx: ConformanceContext) -> None:
    spec = ctx.spec("alpha")
    spec.make_dirs()
    (spec.config_dir / "probe-line.txt").write_text("ping")
    async with trio.open_nursery() as nursery:
        await nursery.start(serve_echo_socket, spec.socket_dir)
        report = await ctx.running("alpha")
        nursery.cancel_scope.cancel()
    assert report["socket"] == "ack:ping"


async def check_rescan_reports_every_agent(ctx: ConformanceContext) -> None:
    await ctx.running("alpha")
    await ctx.backend.create(ctx.spec("beta"))
    statuses = await ctx.backend.rescan()
    assert sorted(statuses) == await ctx.backend.list() == ["alpha", "beta"]
    assert statuses["alpha"].state is AgentState.RUNNING
    assert statuses["beta"].state is AgentState.STOPPED


async def check_update_leaves_a_running_agent_alone(ctx: ConformanceContext) -> None:
    await ctx.running("alpha")
    outcome = await ctx.backend.update(ctx.spec("alpha", network=False))
    assert outcome in ("applied", "restart-required")
    assert (await ctx.backend.status("alpha")).state is AgentState.RUNNING


CHECKS: tuple[Callable[[ConformanceContext], Awaitable[None]], ...] = (
    check_unknown_is_absent,
    check_create_is_idempotent,
    check_start_runs_with_its_environment,
    check_stop_is_clean,
    check_stop_of_a_stopped_agent_is_a_no_op,
    check_state_persists_across_restarts,
    check_crash_is_reported_quickly,
    check_stop_kills_an_agent_that_ignores_it,
    check_failed_start_raises,
    check_destroy_keeps_state,
    check_logs_show_output,
    check_exec_runs_in_the_agents_environment,
    check_socket_directory_is_reachable,
    check_rescan_reports_every_agent,
    check_update_leaves_a_running_agent_alone,
)


async def run_check(
    make_backend: Callable[[Path], tuple[ContainerBackend, Faults]],
    root: Path,
    check: Callable[[ConformanceContext], Awaitable[None]],
) -> None:
    """Run one check against a fresh, running backend; its agents are stopped afterwards."""
    await trio.Path(root).mkdir(parents=True, exist_ok=True)
    backend, faults = make_backend(root)
    async with trio.open_nursery() as nursery:
        await nursery.start(backend.run)
        try:
            with trio.fail_after(CHECK_TIMEOUT):
                await check(ConformanceContext(backend, faults, root))
        finally:
            backend.request_stop()


async def check_container_backend(
    make_backend: Callable[[Path], tuple[ContainerBackend, Faults]],
    root: Path,
    *,
    checks: Sequence[Callable[[ConformanceContext], Awaitable[None]]] = CHECKS,
) -> None:
    """Run every conformance check against backends from `make_backend`."""
    for index, check in enumerate(checks):
        await run_check(make_backend, root / f"c{index}", check)
