"""An in-process container backend: each agent is a trio task. For tests and demos.

It implements the whole `ContainerBackend` Protocol and passes the same conformance suite as
the real backends (`hyperhive.testing.conformance`), so code tested against it behaves the
same on bwrap. Time is trio's, so `autojump_clock` drives grace periods.

Fault hooks:

- `crash(name, code)`: the running agent exits on its own with `code` (crash watch reports it);
- `hang_stop(name)`: the running agent ignores the polite stop, so `stop` has to kill it after
  its grace (the exit code is then 137, as for SIGKILL);
- `fail_start(name)`: the next `start` of `name` raises `StartFailed`.

The default agent does what the probe agent (`hyperhive.testing.probe_agent`) does on a real
backend: counts its starts in its state directory, writes a report there, logs
`agent NAME started`, then waits to be stopped. `set_payload` swaps in another coroutine.
`exec` runs the command as a real process on the host with the agent's environment, and so
does `run_job` (a deploy's build step: `HYPERHIVE_TOOLS` names the tools directory on the
host); `fail_jobs(name)` makes the next jobs of `name` exit 1 without running.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from typing import TYPE_CHECKING, TypeAlias

import attrs
import trio

from hyperhive.containers.base import (
    AgentExited,
    AgentSpec,
    AgentState,
    AgentStatus,
    ExecResult,
    UpdateOutcome,
    agent_environment,
)
from hyperhive.errors import ContainerError, StartFailed

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence
    from pathlib import Path

__all__ = ["FakeAgent", "FakeBackend", "FakePayload", "default_payload"]

KILLED = 137  # what a real backend reports for SIGKILL


@attrs.define(eq=False)
class FakeAgent:
    """What a fake agent's payload gets: its spec, environment, log, and the stop request."""

    spec: AgentSpec
    env: dict[str, str]
    log: Callable[[str], None]
    stop_requested: trio.Event = attrs.Factory(trio.Event)


FakePayload: TypeAlias = "Callable[[FakeAgent], Awaitable[int]]"


async def default_payload(agent: FakeAgent) -> int:
    """Count the start, write the probe report, log, wait for the stop request, exit 0."""
    name = agent.spec.name
    state = agent.spec.state_dir
    counter = state / "probe-counter"
    starts = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(starts))
    config = agent.spec.config_dir / "probe.txt"
    line_file = agent.spec.config_dir / "probe-line.txt"
    line = (
        line_file.read_bytes()
        if line_file.exists()
        else json.dumps({"cmd": "send", "to": "operator", "body": f"hello from {name}"}).encode()
    )
    report = {
        "name": name,
        "starts": starts,
        "env": {k: v for k, v in agent.env.items() if k.startswith("HYPERHIVE_")},
        "home": agent.env.get("HOME"),
        "config": config.read_text() if config.exists() else None,
        "socket": await _say_hello(agent.spec.socket_dir / "hive.sock", line),
    }
    (state / "probe-report.json").write_text(json.dumps(report))
    agent.log(f"agent {agent.spec.name} started")
    await agent.stop_requested.wait()
    return 0


def _environment(spec: AgentSpec) -> dict[str, str]:
    """The agent's environment with its host paths (a fake agent runs on the host)."""
    return agent_environment(
        spec,
        socket_dir=spec.socket_dir,
        state_dir=spec.state_dir,
        config_dir=spec.config_dir,
        tools_dir=spec.tools_dir,
    )


async def _say_hello(path: Path, line: bytes) -> str:
    """Send one line on the agent's socket and return the first line back (as the probe)."""
    try:
        with trio.fail_after(5):
            async with await trio.open_unix_socket(str(path)) as stream:
                await stream.send_all(line.rstrip(b"\n") + b"\n")
                reply = b""
                while not reply.endswith(b"\n"):
                    chunk = await stream.receive_some(65536)
                    if not chunk:
                        break
                    reply += chunk
    except (OSError, trio.TooSlowError) as exc:
        return f"error: {exc}"
    return reply.decode(errors="replace").strip()


@attrs.define(eq=False)
class _Running:
    agent: FakeAgent
    scope: trio.CancelScope = attrs.Factory(trio.CancelScope)
    done: trio.Event = attrs.Factory(trio.Event)
    requested: bool = False
    hang: bool = False
    crash_code: int | None = None


@attrs.define(eq=False)
class _Entry:
    spec: AgentSpec
    running: _Running | None = None
    state: AgentState = AgentState.STOPPED
    exit_code: int | None = None
    detail: str = ""
    refused: bool = False  # the last start was refused (`fail_start`): nothing ran
    log: list[str] = attrs.Factory(list)


class FakeBackend:
    """In-process agents with fault hooks (see the module docstring)."""

    kind = "fake"
    outlives_daemon = False

    def __init__(
        self, *, shutdown_grace: float = 3.0, update_outcome: UpdateOutcome = "restart-required"
    ) -> None:
        self._entries: dict[str, _Entry] = {}
        self._payloads: dict[str, Callable[[FakeAgent], Awaitable[int]]] = {}
        self._fail_next_start: set[str] = set()
        self._shutdown_grace = shutdown_grace
        self._update_outcome: UpdateOutcome = update_outcome
        self._send_exits, self._exits = trio.open_memory_channel[AgentExited](256)
        self._nursery: trio.Nursery | None = None
        self._stop_requested = trio.Event()
        self.calls: list[tuple[str, str]] = []  # (method, name), for tests that count calls
        self._fail_jobs: set[str] = set()

    # -- fault hooks --------------------------------------------------------------------------

    async def crash(self, name: str, code: int) -> None:
        """Make the running agent `name` exit on its own with `code`."""
        running = self._running(name)
        running.crash_code = code
        running.scope.cancel()
        await running.done.wait()

    async def hang_stop(self, name: str) -> None:
        """Make the running agent `name` ignore polite stops (it must be killed)."""
        self._running(name).hang = True

    async def fail_start(self, name: str) -> None:
        """Make the next `start` of `name` fail."""
        self._fail_next_start.add(name)

    def is_running(self, name: str) -> bool:
        """Whether `name` runs now (never blocks; False for an unknown agent)."""
        entry = self._entries.get(name)
        return entry is not None and entry.running is not None

    def fail_jobs(self, name: str, fail: bool = True) -> None:
        """Make every `run_job` of `name` exit 1 at once (until called with `fail=False`)."""
        if fail:
            self._fail_jobs.add(name)
        else:
            self._fail_jobs.discard(name)

    def set_payload(self, name: str, payload: Callable[[FakeAgent], Awaitable[int]]) -> None:
        """Run `payload` instead of `default_payload` when `name` next starts."""
        self._payloads[name] = payload

    # -- service ------------------------------------------------------------------------------

    def exits(self) -> trio.MemoryReceiveChannel[AgentExited]:
        return self._exits

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self._stop_requested = trio.Event()
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started()
                await self._stop_requested.wait()
                async with trio.open_nursery() as stops:
                    for name in list(self._entries):
                        stops.start_soon(self._stop, name, self._shutdown_grace)
                nursery.cancel_scope.cancel()
        finally:
            self._nursery = None

    def request_stop(self) -> None:
        self._stop_requested.set()

    # -- the Protocol -------------------------------------------------------------------------

    async def create(self, spec: AgentSpec) -> None:
        self.calls.append(("create", spec.name))
        spec.make_dirs()
        entry = self._entries.get(spec.name)
        if entry is None:
            self._entries[spec.name] = _Entry(spec)
        else:
            entry.spec = spec

    async def start(self, name: str) -> None:
        self.calls.append(("start", name))
        entry = self._entry(name)
        if entry.running is not None:
            return
        if self._nursery is None:
            raise ContainerError(f"the fake backend is not running; cannot start {name!r}")
        if name in self._fail_next_start:
            self._fail_next_start.discard(name)
            entry.state, entry.exit_code, entry.detail = AgentState.CRASHED, 1, "fail_start hook"
            entry.refused = True
            raise StartFailed(f"{name}: the fake backend was told to fail this start")
        env = _environment(entry.spec)
        running = _Running(FakeAgent(entry.spec, env, entry.log.append))
        entry.running = running
        entry.state, entry.exit_code, entry.detail = AgentState.RUNNING, None, ""
        entry.refused = False
        self._nursery.start_soon(self._run_agent, entry, running)
        await trio.lowlevel.checkpoint()

    async def stop(self, name: str, *, grace: float) -> None:
        self.calls.append(("stop", name))
        self._entry(name)
        await self._stop(name, grace)

    async def destroy(self, name: str) -> None:
        self.calls.append(("destroy", name))
        if name in self._entries:
            await self._stop(name, self._shutdown_grace)
            del self._entries[name]

    async def update(self, spec: AgentSpec) -> UpdateOutcome:
        self.calls.append(("update", spec.name))
        await self.create(spec)
        return self._update_outcome

    async def status(self, name: str) -> AgentStatus:
        entry = self._entries.get(name)
        if entry is None:
            return AgentStatus(name, AgentState.ABSENT)
        if entry.running is not None:
            state = AgentState.STOPPING if entry.running.requested else AgentState.RUNNING
            return AgentStatus(name, state)
        return AgentStatus(
            name, entry.state, exit_code=entry.exit_code, detail=entry.detail, refused=entry.refused
        )

    async def list(self) -> list[str]:
        return sorted(self._entries)

    async def rescan(self) -> dict[str, AgentStatus]:
        return {name: await self.status(name) for name in sorted(self._entries)}

    async def logs(self, name: str, *, lines: int) -> str:
        kept = self._entry(name).log[-lines:] if lines > 0 else []
        return "".join(f"{line}\n" for line in kept)

    async def run_job(self, spec: AgentSpec) -> int:
        self.calls.append(("run_job", spec.name))
        spec.make_dirs()
        if spec.name in self._fail_jobs:
            return 1
        env = _environment(spec)
        with spec.log_path.open("ab") as log:
            try:
                done = await trio.run_process(
                    list(spec.argv),
                    env=env,
                    cwd=spec.state_dir,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    check=False,
                )
            except OSError as exc:
                raise StartFailed(
                    f"{spec.name}: cannot run {spec.argv[0]}: {exc.strerror}"
                ) from exc
        return done.returncode

    async def hand_over(self, name: str, path: Path) -> None:
        self.calls.append(("hand_over", name))

    async def exec(self, name: str, argv: Sequence[str]) -> ExecResult:
        entry = self._entry(name)
        spec = entry.spec
        env = _environment(spec)
        try:
            done = await trio.run_process(
                list(argv),
                env=env,
                cwd=spec.state_dir,
                stdin=subprocess.DEVNULL,
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
        except OSError as exc:
            raise ContainerError(f"{name}: cannot run {argv[0]}: {exc.strerror}") from exc
        return ExecResult(done.returncode, done.stdout, done.stderr)

    # -- internals ----------------------------------------------------------------------------

    def _entry(self, name: str) -> _Entry:
        entry = self._entries.get(name)
        if entry is None:
            raise ContainerError(f"the fake backend has no agent {name!r}")
        return entry

    def _running(self, name: str) -> _Running:
        running = self._entry(name).running
        if running is None:
            raise ContainerError(f"fake agent {name!r} is not running")
        return running

    async def _stop(self, name: str, grace: float) -> None:
        entry = self._entries.get(name)
        running = entry.running if entry else None
        if running is None:
            return
        running.requested = True
        if grace > 0 and not running.hang:
            running.agent.stop_requested.set()
        with trio.move_on_after(grace if grace > 0 else 0):
            await running.done.wait()
        if not running.done.is_set():
            running.scope.cancel()
            await running.done.wait()

    async def _run_agent(self, entry: _Entry, running: _Running) -> None:
        payload = self._payloads.get(entry.spec.name, default_payload)
        code = KILLED
        detail = ""
        with running.scope:
            try:
                code = await payload(running.agent)
            except Exception as exc:
                code, detail = 1, f"{type(exc).__name__}: {exc}"
        if running.crash_code is not None:
            code, detail = running.crash_code, f"crash hook: exit {running.crash_code}"
        entry.running = None
        entry.state = AgentState.STOPPED if running.requested else AgentState.CRASHED
        entry.exit_code, entry.detail = code, "" if running.requested else detail
        running.done.set()
        exited = AgentExited(entry.spec.name, code, running.requested, detail)
        with contextlib.suppress(trio.WouldBlock):
            self._send_exits.send_nowait(exited)
