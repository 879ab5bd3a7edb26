"""The bwrap backend (the default): each agent's harness runs under bubblewrap.

Inside the sandbox (research/containers.md §3 has the verified facts behind every flag):

- the host's top-level directories, read-only (`--ro-bind` each one, so the sandbox root is
  bwrap's own tmpfs and /state, /config can be created); private /proc, /dev, /tmp and /run;
- the hive's state directory (every agent's files, the admin socket) and a few secret-holding
  paths of the daemon's user (`~/.claude`, `~/.ssh`, ...) hidden under empty tmpfs mounts;
- /state (the agent's state, read-write; HOME=/state/home), /config (read-only) and
  /run/hyperhive (its socket *directory*: a daemon restart re-creates the socket and the agent
  reconnects, which a bound socket file would not allow);
- pid, ipc, uts and cgroup namespaces unshared, network shared unless the agent's network is
  off (`--unshare-net`; its unix socket still works), every capability dropped, a new session,
  `--die-with-parent` so no sandbox outlives the daemon.

Stopping: SIGTERM goes to the payload (its host pid is the sandbox init's child; the init
itself ignores SIGTERM), then after the grace SIGKILL to the init, which tears the pid
namespace down. `--json-status-fd` tells a payload exit (an `exit-code` line) from a sandbox
that failed before the payload ran (no such line, bwrap exits 1).

`exec` runs the command in a sibling sandbox with the same mounts and environment (same files,
its own pid namespace): it needs no privileges, unlike entering the agent's namespaces.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from hyperhive.containers import _spawn
from hyperhive.containers._children import (
    KILL_WAIT_SECONDS,
    ChildProcessBackend,
    Launch,
    _Child,
    signal_exit_code,
)
from hyperhive.containers.base import AgentSpec, agent_environment
from hyperhive.errors import StartFailed

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

__all__ = [
    "SANDBOX_CONFIG",
    "SANDBOX_RUN",
    "SANDBOX_STATE",
    "BwrapBackend",
    "RootEntry",
    "bwrap_argv",
    "bwrap_works",
    "default_hidden_paths",
    "host_root_entries",
    "runtime_binds",
    "sandbox_environment",
]

SANDBOX_STATE = Path("/state")
SANDBOX_CONFIG = Path("/config")
SANDBOX_RUN = Path("/run/hyperhive")
# Top-level host directories the sandbox gets its own version of.
_PRIVATE = frozenset({"proc", "dev", "tmp", "run", "state", "config"})
# Files of the daemon's user that hold credentials an agent must not read.
_USER_SECRETS = (".claude", ".claude.json", ".ssh", ".gnupg", ".aws", ".netrc", ".docker")
STATUS_WAIT_SECONDS = 10.0

# (name, symlink target or None) for each entry of the host's /
RootEntry = tuple[str, str | None]


def host_root_entries(root: Path = Path("/")) -> list[RootEntry]:
    """The host's top-level entries, with symlink targets (merged-/usr hosts link /bin)."""
    entries: list[RootEntry] = []
    for path in sorted(root.iterdir()):
        if path.name in _PRIVATE:
            continue
        entries.append((path.name, os.readlink(path) if path.is_symlink() else None))
    return entries


def runtime_binds() -> list[Path]:
    """Where this Python and hyperhive live, when a private /tmp or /run would hide them.

    The harness is this same interpreter running this same package; a checkout or virtualenv
    under /tmp (a CI clone, say) would otherwise vanish behind the sandbox's own /tmp. Each is
    bound read-only at its own path; anything outside /tmp and /run is visible already.
    """
    import hyperhive

    candidates = {
        Path(sys.prefix),
        Path(sys.base_prefix),
        Path(sys.executable).resolve().parent,
        Path(hyperhive.__file__).resolve().parent.parent,
        *(Path(entry) for entry in sys.path if entry),
    }
    hidden = [
        path.absolute()
        for path in candidates
        if path.exists() and path.absolute().parts[1:2] in (("tmp",), ("run",))
    ]
    # A directory already bound covers everything under it.
    return [p for p in sorted(set(hidden)) if not any(o in p.parents for o in hidden)]


def default_hidden_paths(state_root: Path) -> list[Path]:
    """The hive's state directory plus the daemon user's credential files that exist."""
    home = Path.home()
    return [state_root, *(home / name for name in _USER_SECRETS if (home / name).exists())]


def bwrap_argv(
    spec: AgentSpec,
    command: Sequence[str],
    *,
    root_entries: Iterable[RootEntry],
    hidden: Iterable[tuple[Path, bool]],
    runtime: Iterable[Path] = (),
    status_fd: int | None = None,
    bwrap: str = "bwrap",
) -> list[str]:
    """The full bwrap command line running `command` in `spec`'s sandbox.

    `hidden` is (path, is_directory) pairs: directories get an empty tmpfs, files /dev/null.
    `runtime` are directories under /tmp or /run the payload needs (see `runtime_binds`); they
    are bound before the hidden paths, so a secret inside one still stays hidden.
    """
    argv = [bwrap]
    for name, target in root_entries:
        if target is None:
            argv += ["--ro-bind", f"/{name}", f"/{name}"]
        else:
            argv += ["--symlink", target, f"/{name}"]
    argv += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--tmpfs", "/run"]
    for path in runtime:
        argv += ["--ro-bind", str(path), str(path)]
    for path, is_dir in hidden:
        argv += ["--tmpfs", str(path)] if is_dir else ["--ro-bind", "/dev/null", str(path)]
    argv += [
        "--bind", str(spec.state_dir), str(SANDBOX_STATE),
        "--ro-bind", str(spec.config_dir), str(SANDBOX_CONFIG),
        "--bind", str(spec.socket_dir), str(SANDBOX_RUN),
        "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
    ]  # fmt: skip
    if not spec.network:
        argv.append("--unshare-net")
    argv += [
        "--hostname", spec.name,
        "--die-with-parent", "--new-session", "--cap-drop", "ALL",
        "--chdir", str(SANDBOX_STATE),
    ]  # fmt: skip
    if status_fd is not None:
        argv += ["--json-status-fd", str(status_fd)]
    return [*argv, "--", *command]


def sandbox_environment(spec: AgentSpec, path_env: str) -> dict[str, str]:
    """The payload's whole environment (bwrap passes its own on; nothing else leaks in).

    It travels as bwrap's environment, not as `--setenv` arguments, so secrets in `spec.env`
    never show up in a process listing.
    """
    env = agent_environment(
        spec, socket_dir=SANDBOX_RUN, state_dir=SANDBOX_STATE, config_dir=SANDBOX_CONFIG
    )
    return {"PATH": path_env, **env}


def bwrap_works(bwrap: str = "bwrap") -> str | None:
    """None if bubblewrap can build a sandbox here, else a sentence saying why not."""
    found = shutil.which(bwrap)
    if found is None:
        return f"{bwrap} is not on PATH (install the bubblewrap package)"
    probe = [found, "--ro-bind", "/", "/", "--unshare-pid", "--die-with-parent", "--", "true"]
    try:
        done = subprocess.run(probe, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{bwrap} could not run: {exc}"
    if done.returncode != 0:
        return f"{bwrap} cannot create a sandbox here: {done.stderr.strip() or done.returncode}"
    return None


class BwrapBackend(ChildProcessBackend):
    """Agents sandboxed by bubblewrap (see the module docstring)."""

    kind = "bwrap"

    def __init__(
        self,
        *,
        runtime_dir: Path,
        hidden: Sequence[Path] = (),
        bwrap: str = "bwrap",
        shutdown_grace: float = 3.0,
    ) -> None:
        super().__init__(runtime_dir=runtime_dir, shutdown_grace=shutdown_grace)
        self._hidden = tuple(hidden)
        self._bwrap = bwrap

    def argv(self, spec: AgentSpec, command: Sequence[str], status_fd: int | None) -> list[str]:
        """The bwrap command line for `spec` on this host."""
        hidden = [(path, path.is_dir()) for path in self._hidden if path.exists()]
        return bwrap_argv(
            spec,
            command,
            root_entries=host_root_entries(),
            hidden=hidden,
            runtime=runtime_binds(),
            status_fd=status_fd,
            bwrap=self._bwrap,
        )

    async def _launch(self, spec: AgentSpec, log_fd: int) -> Launch:
        read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
        try:
            argv = self.argv(spec, spec.argv, write_fd)
            proc = await _spawn.open_process(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log_fd,
                stderr=log_fd,
                pass_fds=(write_fd,),
                env=sandbox_environment(spec, _host_path()),
                start_new_session=True,
            )
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        launch = Launch(proc, status=trio.lowlevel.FdStream(read_fd))
        try:
            with trio.move_on_after(STATUS_WAIT_SECONDS):
                while launch.init_pid is None and await _read_status(launch):
                    pass
            if launch.init_pid is None and proc.returncode is None:
                raise StartFailed(
                    f"{spec.name}: bwrap reported no sandbox within {STATUS_WAIT_SECONDS}s"
                )
        except BaseException:
            # Cancelled or failed before `start` could track it: nobody else will ever stop
            # this sandbox, so it goes now (killing bwrap takes the sandbox with it).
            await _discard(launch)
            raise
        return launch

    def _terminate(self, child: _Child) -> None:
        for pid in _payload_pids(child.launch.init_pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGTERM)

    def _kill(self, child: _Child) -> None:
        target = child.launch.init_pid
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if target is not None:
                os.kill(target, signal.SIGKILL)  # pid 1 of the sandbox: the namespace goes
            else:
                child.proc.kill()

    async def _classify(self, child: _Child, returncode: int) -> tuple[int | None, bool]:
        launch = child.launch
        with trio.move_on_after(1.0):
            while await _read_status(launch):
                pass
        if launch.status is not None:
            await launch.status.aclose()
            launch.status = None
        for line in launch.status_lines:
            code = line.get("exit-code")
            if isinstance(code, int):
                return code, False
        # No exit-code line: bwrap itself failed (exit 1: a bad bind, a missing binary, so the
        # payload never ran), or the sandbox was killed from outside (a signal).
        return signal_exit_code(returncode), returncode == 1 and not child.requested

    def _exec_command(
        self, spec: AgentSpec, argv: Sequence[str]
    ) -> tuple[list[str], dict[str, str], Path | None]:
        return self.argv(spec, argv, None), sandbox_environment(spec, _host_path()), None


async def _discard(launch: Launch) -> None:
    with trio.move_on_after(KILL_WAIT_SECONDS, shield=True):
        launch.proc.kill()
        await launch.proc.wait()
        if launch.status is not None:
            await launch.status.aclose()
            launch.status = None


def _host_path() -> str:
    return os.environ.get("PATH", "/usr/bin:/bin")


async def _read_status(launch: Launch) -> bool:
    """Read one chunk of `--json-status-fd` output into `launch`; False at end of stream."""
    if launch.status is None:
        return False
    data = await launch.status.receive_some(65536)
    if not data:
        return False
    launch.status_buffer += data
    *complete, launch.status_buffer = launch.status_buffer.split(b"\n")
    for raw in complete:
        with contextlib.suppress(ValueError):
            line = json.loads(raw)
            if isinstance(line, dict):
                launch.status_lines.append(line)
                pid = line.get("child-pid")
                if isinstance(pid, int) and launch.init_pid is None:
                    launch.init_pid = pid
    return True


def _payload_pids(init_pid: int | None) -> list[int]:
    """The host pids of the sandbox init's children (the payload)."""
    if init_pid is None:
        return []
    try:
        text = Path(f"/proc/{init_pid}/task/{init_pid}/children").read_text()
    except OSError:
        return []
    return [int(pid) for pid in text.split()]
