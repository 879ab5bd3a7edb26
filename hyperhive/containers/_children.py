"""What the bwrap and process backends share: agents that are child processes of the daemon.

Each started agent is a `trio.Process` with a watcher task in the backend's nursery. The
watcher sees the exit the moment it happens (trio waits on a pidfd), classifies it and emits an
`AgentExited`, so crash reports take milliseconds, not a poll interval.

Stopping: mark the exit as requested, ask the agent to stop (the subclass decides whom to send
SIGTERM), wait `grace`, then kill. A pid file per running agent (pid and start time) lets the
next daemon kill an agent a crashed daemon left behind (`rescan`).
"""

from __future__ import annotations

import abc
import contextlib
import logging
import os
import signal
from typing import TYPE_CHECKING

import attrs
import trio

from hyperhive.containers import _spawn
from hyperhive.containers.base import (
    AgentExited,
    AgentSpec,
    AgentState,
    AgentStatus,
    ExecResult,
    UpdateOutcome,
    tail_text,
)
from hyperhive.errors import ContainerError, StartFailed

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

__all__ = ["ChildProcessBackend", "Launch", "signal_exit_code"]

LOGGER = logging.getLogger("hyperhive.containers")
# A process that dies within this long of its start did not start: `start` reports it as a
# failure instead of crash watch reporting a crash a moment later.
SETTLE_SECONDS = 0.2
# After SIGKILL a process is gone within milliseconds; past this something is badly wrong.
KILL_WAIT_SECONDS = 5.0
LOG_ROTATE_BYTES = 8 * 1024 * 1024
DETAIL_LINES = 20


def signal_exit_code(returncode: int) -> int:
    """trio/subprocess's returncode (-N for signal N) in shell encoding (128+N)."""
    return 128 - returncode if returncode < 0 else returncode


def describe_exit(code: int | None) -> str:
    if code is None:
        return "exited"
    if code > 128:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(code - 128).name} (status {code})"
    return f"exited with status {code}"


@attrs.define(eq=False)
class Launch:
    """A started child, as the subclass hands it back."""

    proc: _spawn.SpawnedProcess
    init_pid: int | None = None  # bwrap: the sandbox's pid 1 (host pid)
    status: trio.lowlevel.FdStream | None = None  # bwrap: the --json-status-fd pipe
    status_lines: list[dict[str, object]] = attrs.Factory(list)
    status_buffer: bytes = b""


@attrs.define(eq=False)
class _Child:
    launch: Launch
    log_offset: int
    exited: trio.Event = attrs.Factory(trio.Event)
    requested: bool = False
    settling: bool = True

    @property
    def proc(self) -> _spawn.SpawnedProcess:
        return self.launch.proc


@attrs.define(eq=False)
class _Entry:
    spec: AgentSpec
    child: _Child | None = None
    last: AgentState = AgentState.STOPPED
    exit_code: int | None = None
    detail: str = ""
    refused: bool = False  # the last start was refused before anything ran; `detail`: why


class ChildProcessBackend(abc.ABC):
    """Base for backends whose agents are the daemon's own child processes."""

    kind = "child"
    outlives_daemon = False

    def __init__(
        self,
        *,
        runtime_dir: Path,
        shutdown_grace: float = 3.0,
        settle: float = SETTLE_SECONDS,
    ) -> None:
        self._runtime_dir = runtime_dir
        self._shutdown_grace = shutdown_grace
        self._settle = settle
        self._entries: dict[str, _Entry] = {}
        self._send_exits, self._exits = trio.open_memory_channel[AgentExited](256)
        self._nursery: trio.Nursery | None = None
        self._stop_requested = trio.Event()

    # -- subclass hooks -----------------------------------------------------------------------

    @abc.abstractmethod
    async def _launch(self, spec: AgentSpec, log_fd: int, *, job: bool = False) -> Launch:
        """Start the agent's process (in its sandbox, for bwrap), its output going to `log_fd`.

        `job` (a build step, `run_job`): `log_fd` is for the payload's output alone; helpers
        such as the network's log elsewhere.
        """

    @abc.abstractmethod
    def _terminate(self, child: _Child) -> None:
        """Ask the agent to stop (SIGTERM to whoever runs the payload)."""

    @abc.abstractmethod
    def _kill(self, child: _Child) -> None:
        """Kill the agent and everything it started."""

    async def _classify(self, child: _Child, returncode: int) -> tuple[int | None, bool]:
        """(exit code in shell encoding, whether the sandbox failed before the payload ran)."""
        return signal_exit_code(returncode), False

    @abc.abstractmethod
    def _exec_command(
        self, spec: AgentSpec, argv: Sequence[str]
    ) -> tuple[list[str], dict[str, str], Path | None]:
        """(argv, environment, cwd) that run `argv` the way the agent's own process runs."""

    # -- service ------------------------------------------------------------------------------

    def exits(self) -> trio.MemoryReceiveChannel[AgentExited]:
        return self._exits

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Own the watcher tasks; on stop, stop every agent (grace, then kill) and return.

        Cancellation: running agents are killed (shielded, bounded) before this returns.
        """
        self._stop_requested = trio.Event()
        self._runtime_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started()
                await self._stop_requested.wait()
                with trio.move_on_after(self._shutdown_grace + KILL_WAIT_SECONDS):
                    await self._stop_all(self._shutdown_grace)
                nursery.cancel_scope.cancel()
        finally:
            self._nursery = None
            with trio.move_on_after(KILL_WAIT_SECONDS, shield=True):
                await self._stop_all(0.0)

    def request_stop(self) -> None:
        self._stop_requested.set()

    async def _stop_all(self, grace: float) -> None:
        async with trio.open_nursery() as nursery:
            for name, entry in self._entries.items():
                if entry.child is not None:
                    nursery.start_soon(self._stop_child, name, grace)

    # -- the Protocol -------------------------------------------------------------------------

    async def create(self, spec: AgentSpec) -> None:
        await trio.to_thread.run_sync(spec.make_dirs)
        entry = self._entries.get(spec.name)
        if entry is None:
            self._entries[spec.name] = _Entry(spec)
        else:
            entry.spec = spec

    async def start(self, name: str) -> None:
        entry = self._entry(name)
        if entry.child is not None:
            return
        if self._nursery is None:
            raise ContainerError(f"the {self.kind} backend is not running; cannot start {name!r}")
        spec = entry.spec
        log_fd, offset = await trio.to_thread.run_sync(_open_log, spec.log_path)
        try:
            launch = await self._launch(spec, log_fd)
        except OSError as exc:
            entry.last, entry.exit_code, entry.refused = AgentState.CRASHED, None, True
            entry.detail = f"cannot run {spec.argv[0] if spec.argv else '?'}: {exc.strerror}"
            raise StartFailed(f"{name}: {entry.detail}") from exc
        except StartFailed as exc:  # refused before anything ran (a bad bind, sandbox.json)
            entry.last, entry.exit_code, entry.refused = AgentState.CRASHED, None, True
            entry.detail = str(exc).removeprefix(f"{name}: ")
            raise
        finally:
            os.close(log_fd)
        child = _Child(launch, offset)
        entry.child = child
        entry.last, entry.exit_code, entry.detail = AgentState.RUNNING, None, ""
        entry.refused = False
        self._write_pidfile(name, launch.proc.pid)
        self._nursery.start_soon(self._watch, entry, child)
        with trio.move_on_after(self._settle):
            await child.exited.wait()
        child.settling = False
        if child.exited.is_set() and not child.requested:
            raise StartFailed(f"{name} {describe_exit(entry.exit_code)} at once: {entry.detail}")

    async def stop(self, name: str, *, grace: float) -> None:
        self._entry(name)
        await self._stop_child(name, grace)

    async def destroy(self, name: str) -> None:
        if name not in self._entries:
            return
        await self._stop_child(name, self._shutdown_grace)
        del self._entries[name]

    async def update(self, spec: AgentSpec) -> UpdateOutcome:
        await self.create(spec)
        return "restart-required"  # the argv and mounts are fixed when the process starts

    async def status(self, name: str) -> AgentStatus:
        entry = self._entries.get(name)
        if entry is None:
            return AgentStatus(name, AgentState.ABSENT)
        child = entry.child
        if child is not None:
            state = AgentState.STOPPING if child.requested else AgentState.RUNNING
            return AgentStatus(name, state, pid=child.proc.pid, notes=self._notes(entry.spec))
        return AgentStatus(
            name, entry.last, exit_code=entry.exit_code, detail=entry.detail, refused=entry.refused
        )

    def _notes(self, spec: AgentSpec) -> tuple[str, ...]:
        """What a running agent's row should say about its wall (none by default)."""
        return ()

    async def list(self) -> list[str]:
        return sorted(self._entries)

    async def rescan(self) -> dict[str, AgentStatus]:
        """Kill agents a previous daemon left running (their pid files), report the rest."""
        await trio.to_thread.run_sync(self._reap_orphans)
        return {name: await self.status(name) for name in sorted(self._entries)}

    async def logs(self, name: str, *, lines: int) -> str:
        entry = self._entry(name)
        return await trio.to_thread.run_sync(lambda: tail_text(entry.spec.log_path, lines=lines))

    async def run_job(self, spec: AgentSpec) -> int:
        """Run `spec` once to its end, untracked by crash watch (a build step); its status.

        Cancellation: the job is killed (shielded, bounded) and its helpers released.
        """
        if self._nursery is None:
            raise ContainerError(f"the {self.kind} backend is not running; cannot run a job")
        await trio.to_thread.run_sync(spec.make_dirs)
        log_fd, offset = await trio.to_thread.run_sync(_open_log, spec.log_path)
        try:
            launch = await self._launch(spec, log_fd, job=True)
        except OSError as exc:
            raise StartFailed(f"{spec.name}: cannot run {spec.argv[0]}: {exc.strerror}") from exc
        finally:
            os.close(log_fd)
        child = _Child(launch, offset, requested=True)
        code: int | None = None
        try:
            await launch.proc.wait()
        finally:
            with trio.move_on_after(KILL_WAIT_SECONDS, shield=True):
                if launch.proc.returncode is None:  # cancelled: the job goes with it
                    self._kill(child)
                    await launch.proc.wait()
                returncode = launch.proc.returncode
                code, _ = await self._classify(child, -9 if returncode is None else returncode)
        return 1 if code is None else code

    async def hand_over(self, name: str, path: Path) -> None:  # noqa: B027 - a default
        """Agents share the daemon's uid here: nothing to hand over."""

    async def exec(self, name: str, argv: Sequence[str]) -> ExecResult:
        entry = self._entry(name)
        command, env, cwd = self._exec_command(entry.spec, argv)
        try:
            done = await _spawn.run_process(command, env=env, cwd=cwd)
        except OSError as exc:
            raise ContainerError(f"{name}: cannot run {argv[0]}: {exc.strerror}") from exc
        return ExecResult(signal_exit_code(done.returncode), done.stdout, done.stderr)

    # -- internals ----------------------------------------------------------------------------

    def _entry(self, name: str) -> _Entry:
        entry = self._entries.get(name)
        if entry is None:
            raise ContainerError(f"the {self.kind} backend has no agent {name!r}")
        return entry

    async def _stop_child(self, name: str, grace: float) -> None:
        entry = self._entries.get(name)
        child = entry.child if entry else None
        if child is None:
            return
        child.requested = True
        if grace > 0 and child.proc.returncode is None:
            self._terminate(child)
            with trio.move_on_after(grace):
                await child.proc.wait()
        if child.proc.returncode is None:
            self._kill(child)
            with trio.move_on_after(KILL_WAIT_SECONDS):
                await child.proc.wait()
        if child.proc.returncode is None:
            child.proc.kill()
            await child.proc.wait()
        if self._nursery is not None:
            await child.exited.wait()  # the watcher has recorded the outcome

    async def _watch(self, entry: _Entry, child: _Child) -> None:
        returncode = await child.proc.wait()
        code, setup_failed = await self._classify(child, returncode)
        detail = await trio.to_thread.run_sync(_log_since, entry.spec.log_path, child.log_offset)
        if entry.child is child:
            entry.child = None
            clean = child.requested
            entry.last = AgentState.STOPPED if clean else AgentState.CRASHED
            entry.exit_code = code
            entry.detail = detail if not clean else ""
            entry.refused = setup_failed and not clean  # the sandbox never ran the payload
        self._remove_pidfile(entry.spec.name, child.proc.pid)
        child.exited.set()
        if child.settling and not child.requested:
            return  # `start` reports this one
        exited = AgentExited(entry.spec.name, code, child.requested, detail, setup_failed)
        try:
            self._send_exits.send_nowait(exited)
        except trio.WouldBlock:
            LOGGER.warning("exit queue full; dropped the exit of %s", entry.spec.name)

    # -- pid files ----------------------------------------------------------------------------

    def _pidfile(self, name: str) -> Path:
        return self._runtime_dir / f"{name}.pid"

    def _write_pidfile(self, name: str, pid: int) -> None:
        with contextlib.suppress(OSError):
            self._pidfile(name).write_text(f"{pid} {_start_time(pid)}\n")

    def _remove_pidfile(self, name: str, pid: int) -> None:
        path = self._pidfile(name)
        with contextlib.suppress(OSError, ValueError):
            if int(path.read_text().split()[0]) == pid:
                path.unlink()

    def _reap_orphans(self) -> None:
        for path in sorted(self._runtime_dir.glob("*.pid")):
            entry = self._entries.get(path.stem)
            if entry is not None and entry.child is not None:
                continue
            with contextlib.suppress(OSError, ValueError, IndexError):
                pid_text, start = path.read_text().split()[:2]
                pid = int(pid_text)
                if _start_time(pid) == start:
                    LOGGER.warning(
                        "killing %s (pid %d) left running by an earlier daemon", path.stem, pid
                    )
                    os.killpg(pid, signal.SIGKILL)
            path.unlink(missing_ok=True)


def _open_log(path: Path) -> tuple[int, int]:
    """An append-mode fd for the agent's log (rotated past LOG_ROTATE_BYTES) and its size."""
    with contextlib.suppress(FileNotFoundError):
        if path.stat().st_size > LOG_ROTATE_BYTES:
            path.replace(path.with_name(path.name + ".1"))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    return fd, os.fstat(fd).st_size


def _log_since(path: Path, offset: int) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            data = handle.read()[-16384:]
    except OSError:
        return ""
    lines = data.decode("utf-8", errors="replace").splitlines()[-DETAIL_LINES:]
    return "\n".join(lines)


def _start_time(pid: int) -> str:
    """Field 22 of /proc/PID/stat: guards a pid file against pid reuse ("" if gone)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            stat = handle.read()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]
