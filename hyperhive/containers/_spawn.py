"""Start child processes from one thread that lives as long as the daemon process.

bwrap's `--die-with-parent` is `PR_SET_PDEATHSIG`, and the kernel sends that signal when the
*thread* that forked the child exits, not the process. `trio.lowlevel.open_process` forks in a
worker thread from trio's thread cache, which retires a worker after 10 s idle: a sandbox
started that way is SIGKILLed about 10 s after it started. So every child whose life is tied to
its parent's (every sandbox, every `exec` into one, the network helper) is forked here, by a
single thread that never exits before the process does. Such a child lives exactly as long as
the daemon process, and a SIGKILLed daemon still takes all of them with it (its threads die
with it, and with them the parent-death tie).

`open_process` hands back a `SpawnedProcess`, the small part of `trio.Process` the backends use:
`pid`, `returncode`, `wait()` (on a pidfd, so the exit is seen at once), `send_signal`, `kill`.
Signals go through the pidfd while the child is unreaped, so they can never hit a reused pid.

Cancellation: the fork itself cannot be interrupted; `open_process` waits for it (shielded,
bounded by `SPAWN_TIMEOUT`) and only then lets a cancellation through, so the caller always
holds the child it started and can kill it. A fork that outlives the bound is killed and reaped
by the spawner thread itself.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import signal
import subprocess
import threading
from typing import TYPE_CHECKING, Any

import attrs
import trio

from hyperhive.errors import ContainerError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from pathlib import Path

__all__ = ["SPAWN_TIMEOUT", "SpawnedProcess", "open_process", "run_process"]

# A fork and exec takes milliseconds; past this the spawner thread is wedged.
SPAWN_TIMEOUT = 30.0
LOGGER = logging.getLogger("hyperhive.containers")
_OUTPUT_CAP = 16 * 1024 * 1024


class _Spawner:
    """The one thread that forks; jobs run in order, each a plain callable."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._serve, name="hyperhive-spawner", daemon=True)
        self.thread.start()

    def submit(self, job: Callable[[], None]) -> None:
        self._jobs.put(job)

    def _serve(self) -> None:
        # This thread must never end while the process runs: its children would get their
        # parent-death signal. A job's own errors are its business; anything else is logged.
        while True:
            job = self._jobs.get()
            try:
                job()
            except BaseException:
                LOGGER.exception("a spawner job failed")


_lock = threading.Lock()
_spawner: _Spawner | None = None


def _the_spawner() -> _Spawner:
    global _spawner
    with _lock:
        if _spawner is None or not _spawner.thread.is_alive():
            _spawner = _Spawner()
        return _spawner


def spawner_thread() -> threading.Thread:
    """The thread every tied child is forked from (tests check it is not a trio worker)."""
    return _the_spawner().thread


@attrs.define(eq=False)
class _Handoff:
    """One fork's result on its way from the spawner thread to the trio task that asked."""

    done: trio.Event = attrs.Factory(trio.Event)
    popen: subprocess.Popen[bytes] | None = None
    pidfd: int | None = None
    error: BaseException | None = None
    abandoned: bool = False  # the trio side gave up waiting; a late fork is discarded
    lock: threading.Lock = attrs.Factory(threading.Lock)


def _discard(popen: subprocess.Popen[bytes], pidfd: int | None) -> None:
    """In the spawner thread: kill and reap a child nobody will ever track."""
    with contextlib.suppress(OSError):
        popen.kill()
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        popen.wait(timeout=SPAWN_TIMEOUT)
    if pidfd is not None:
        os.close(pidfd)


class SpawnedProcess:
    """A child forked by the spawner thread (the parts of `trio.Process` the backends use)."""

    def __init__(self, popen: subprocess.Popen[bytes], pidfd: int | None) -> None:
        self._popen = popen
        self._pidfd = pidfd
        self._wait_lock = trio.Lock()
        self.pid: int = popen.pid
        self.args = popen.args

    def __repr__(self) -> str:
        return f"<SpawnedProcess {self.pid} returncode={self.returncode}>"

    @property
    def returncode(self) -> int | None:
        """The exit status (-N for signal N), or None while it runs; reaps it once it ended."""
        result = self._popen.poll()
        if result is not None:
            self._close_pidfd()
        return result

    async def wait(self) -> int:
        """Block until the process exits; its exit status.

        Cancellation: safe; the process keeps running and a later `wait` picks it up.
        """
        async with self._wait_lock:
            if self._popen.poll() is None:
                if self._pidfd is not None:
                    with contextlib.suppress(trio.ClosedResourceError):
                        await trio.lowlevel.wait_readable(self._pidfd)
                else:  # no pidfd (a kernel before 5.3): a thread waits without reaping
                    await trio.to_thread.run_sync(_wait_reapable, self.pid, abandon_on_cancel=True)
                self._popen.wait()  # already exited: reaps without blocking
            self._close_pidfd()
        returncode = self._popen.returncode
        assert returncode is not None
        return returncode

    def send_signal(self, signum: int) -> None:
        """Signal the process unless it was already reaped (never a reused pid)."""
        if self.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            if self._pidfd is not None:
                signal.pidfd_send_signal(self._pidfd, signum)
            else:
                self._popen.send_signal(signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def _close_pidfd(self) -> None:
        if self._pidfd is not None:
            trio.lowlevel.notify_closing(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None


def _wait_reapable(pid: int) -> None:
    os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)


async def open_process(
    argv: Sequence[str],
    *,
    stdin: int | None = subprocess.DEVNULL,
    stdout: int | None = None,
    stderr: int | None = None,
    pass_fds: Sequence[int] = (),
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    start_new_session: bool = False,
) -> SpawnedProcess:
    """Start `argv` from the spawner thread (see the module docstring).

    The fds given stay the caller's to close once this returns.

    Raises:
        OSError: the program could not be executed (as `subprocess.Popen` raises it).
        ContainerError: the spawner thread did not answer within `SPAWN_TIMEOUT`.

    Cancellation: see the module docstring; the child is always handed back first.
    """
    options: dict[str, Any] = {
        "stdin": stdin,
        "stdout": stdout,
        "stderr": stderr,
        "pass_fds": tuple(pass_fds),
        "env": dict(env) if env is not None else None,
        "cwd": cwd,
        "start_new_session": start_new_session,
    }
    handoff = _Handoff()
    token = trio.lowlevel.current_trio_token()

    def fork() -> None:  # in the spawner thread
        try:
            popen = subprocess.Popen(list(argv), **options)
        except BaseException as exc:
            handoff.error = exc
        else:
            pidfd = None
            with contextlib.suppress(OSError):
                pidfd = os.pidfd_open(popen.pid)
            with handoff.lock:
                if handoff.abandoned:
                    _discard(popen, pidfd)
                    return
                handoff.popen, handoff.pidfd = popen, pidfd
        try:
            token.run_sync_soon(handoff.done.set)
        except trio.RunFinishedError:
            if handoff.popen is not None:
                _discard(handoff.popen, handoff.pidfd)

    _the_spawner().submit(fork)
    with trio.move_on_after(SPAWN_TIMEOUT, shield=True):
        await handoff.done.wait()
    with handoff.lock:
        if handoff.popen is None and handoff.error is None:
            handoff.abandoned = True  # the spawner kills it if it ever forks
            raise ContainerError(f"could not start {argv[0]}: the spawner thread is stuck")
    if handoff.error is not None:
        raise handoff.error
    assert handoff.popen is not None
    return SpawnedProcess(handoff.popen, handoff.pidfd)


@attrs.frozen
class Completed:
    returncode: int
    stdout: bytes
    stderr: bytes


async def run_process(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    pass_fds: Sequence[int] = (),
) -> Completed:
    """Run `argv` from the spawner thread to its end, capturing stdout and stderr (capped).

    Cancellation: the process is killed and reaped before the cancellation propagates.
    """
    out_read, out_write = os.pipe2(os.O_CLOEXEC)
    err_read, err_write = os.pipe2(os.O_CLOEXEC)
    streams = [trio.lowlevel.FdStream(out_read), trio.lowlevel.FdStream(err_read)]
    try:
        try:
            proc = await open_process(
                argv,
                stdout=out_write,
                stderr=err_write,
                pass_fds=pass_fds,
                env=env,
                cwd=cwd,
                start_new_session=True,
            )
        finally:
            os.close(out_write)
            os.close(err_write)
        captured: list[bytearray] = [bytearray(), bytearray()]
        try:
            async with trio.open_nursery() as nursery:
                for stream, sink in zip(streams, captured, strict=True):
                    nursery.start_soon(_drain, stream, sink)
                returncode = await proc.wait()
        except BaseException:
            proc.kill()
            with trio.move_on_after(5.0, shield=True):
                await proc.wait()
            raise
        return Completed(returncode, bytes(captured[0]), bytes(captured[1]))
    finally:
        for stream in streams:
            await stream.aclose()


async def _drain(stream: trio.lowlevel.FdStream, sink: bytearray) -> None:
    while chunk := await stream.receive_some(65536):
        if len(sink) < _OUTPUT_CAP:
            sink += chunk[: _OUTPUT_CAP - len(sink)]
