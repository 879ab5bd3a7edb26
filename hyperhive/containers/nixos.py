"""The nixos backend: one `nixos-container` per agent, the original system's way.

Every command goes through an injected runner (`CommandRunner`), so the exact argv and cwd of
each call are pinned by tests; no NixOS host is needed to run them. The facts and traps behind
each choice are in research/containers.md §1:

- `create NAME --flake META#agent-NAME`, then the agent's directories are added to the
  container's nspawn flags (`EXTRA_NSPAWN_FLAGS=` in /etc/nixos-containers/NAME.conf, word-split,
  so no spaces in paths) with a `HYPERHIVE=1` marker. Network on (the default) removes the
  private-network lines so the guest shares the host network; off keeps a veth with no
  addresses. The agent's directories live outside /var/lib/nixos-containers, so
  `nixos-container destroy` never touches its state.
- `update` always passes `--flake`: `create` records the flake without its `#attr`, and a plain
  `update` would build the wrong configuration.
- `create` and `update` run `nix build -o .tmp` in the current directory: every call gets its
  own temporary cwd.
- Exit codes are Perl `die` codes: 0 is success, anything else failure (stderr says why).
- Status comes from `systemctl show container@NAME`. systemd owns the containers, so they
  survive a daemon restart and are adopted by `rescan`; crash watch polls every
  `poll_interval` seconds (a changed InvocationID or NRestarts means systemd restarted it).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import subprocess
import tempfile
from pathlib import Path
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
)
from hyperhive.errors import ConfigError, ContainerError, StartFailed

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping, Sequence

__all__ = [
    "GUEST_CONFIG",
    "GUEST_RUN",
    "GUEST_STATE",
    "CommandRunner",
    "NixosBackend",
    "nspawn_flags",
    "parse_systemctl_show",
    "run_command",
    "state_from_unit",
]

LOGGER = logging.getLogger("hyperhive.containers.nixos")
NIXOS_CONTAINER = "nixos-container"
GUEST_STATE = "/state"
GUEST_CONFIG = "/config"
GUEST_RUN = "/run/hyperhive"
MARKER = "HYPERHIVE=1"
MAX_NAME = 11  # nixos-container create refuses longer names (veth interface names)
_NETWORK_KEYS = ("PRIVATE_NETWORK=", "HOST_ADDRESS=", "LOCAL_ADDRESS=", "HOST_ADDRESS6=",
                 "LOCAL_ADDRESS6=")  # fmt: skip
_UNIT_PROPERTIES = "ActiveState,SubState,Result,NRestarts,InvocationID,MainPID,ExecMainStatus"
COMMAND_TIMEOUT = 600.0  # a nix build can take minutes

# (argv, cwd) -> result; `run_command` is the real one, tests pass a recorder.
CommandRunner: TypeAlias = "Callable[[Sequence[str], Path | None], Awaitable[ExecResult]]"


async def run_command(argv: Sequence[str], cwd: Path | None) -> ExecResult:
    """The real runner: run `argv` in `cwd`, capture everything, never raise on exit codes."""
    try:
        done = await trio.run_process(
            list(argv),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    except OSError as exc:
        return ExecResult(127, b"", f"cannot run {argv[0]}: {exc.strerror}".encode())
    return ExecResult(done.returncode, done.stdout, done.stderr)


def nspawn_flags(spec: AgentSpec) -> str:
    """The binds for the conf's EXTRA_NSPAWN_FLAGS (word-split by the unit: no spaces)."""
    paths = (spec.state_dir, spec.config_dir, spec.socket_dir)
    for path in paths:
        if any(ch.isspace() or ch in "\"'\\$`" for ch in str(path)):
            raise ConfigError(f"{path}: nixos-container flags cannot hold spaces or quotes")
    return (
        f"--bind={spec.state_dir}:{GUEST_STATE} "
        f"--bind-ro={spec.config_dir}:{GUEST_CONFIG} "
        f"--bind={spec.socket_dir}:{GUEST_RUN}"
    )


def rewrite_conf(text: str, spec: AgentSpec) -> str:
    """`text` (a container's .conf) with hyperhive's lines for `spec`."""
    kept = []
    for line in text.splitlines():
        if line.startswith(("HYPERHIVE=", "EXTRA_NSPAWN_FLAGS=")):
            continue
        if spec.network and line.startswith(_NETWORK_KEYS):
            continue
        kept.append(line)
    if not spec.network and not any(line.startswith("PRIVATE_NETWORK=") for line in kept):
        kept.append("PRIVATE_NETWORK=1")
    kept += [MARKER, f'EXTRA_NSPAWN_FLAGS="{nspawn_flags(spec)}"']
    return "\n".join(kept) + "\n"


def parse_systemctl_show(text: str) -> dict[str, str]:
    """`systemctl show` output (KEY=value lines) as a dict."""
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def state_from_unit(props: Mapping[str, str]) -> AgentState:
    """The container unit's ActiveState as an agent state."""
    return {
        "active": AgentState.RUNNING,
        "activating": AgentState.STARTING,
        "reloading": AgentState.RUNNING,
        "deactivating": AgentState.STOPPING,
        "failed": AgentState.CRASHED,
        "inactive": AgentState.STOPPED,
    }.get(props.get("ActiveState", ""), AgentState.UNKNOWN)


@attrs.define
class _Watched:
    invocation: str
    restarts: str


class NixosBackend:
    """Agents as imperative nixos-containers (see the module docstring)."""

    kind = "nixos"
    outlives_daemon = True

    def __init__(
        self,
        runner: CommandRunner,
        *,
        meta_flake: str,
        work_dir: Path,
        conf_dir: Path = Path("/etc/nixos-containers"),
        poll_interval: float = 5.0,
    ) -> None:
        self._run = runner
        self._meta = meta_flake
        self._work_dir = work_dir
        self._conf_dir = conf_dir
        self._poll_interval = poll_interval
        self._watched: dict[str, _Watched] = {}
        self._stopping: set[str] = set()
        self._send_exits, self._exits = trio.open_memory_channel[AgentExited](256)
        self._stop_requested = trio.Event()

    # -- service ------------------------------------------------------------------------------

    def exits(self) -> trio.MemoryReceiveChannel[AgentExited]:
        return self._exits

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Poll the running containers until asked to stop. Containers keep running: systemd
        owns them, and the next daemon adopts them."""
        self._stop_requested = trio.Event()
        task_status.started()
        while not self._stop_requested.is_set():
            with trio.move_on_after(self._poll_interval):
                await self._stop_requested.wait()
            if not self._stop_requested.is_set():
                await self.poll()

    def request_stop(self) -> None:
        self._stop_requested.set()

    async def poll(self) -> None:
        """One crash-watch pass over the containers this daemon saw running."""
        for name, seen in list(self._watched.items()):
            if name in self._stopping:
                continue
            props = await self._show(name)
            state = state_from_unit(props) if props else AgentState.UNKNOWN
            if state is AgentState.UNKNOWN:
                continue
            restarted = (
                props.get("InvocationID", seen.invocation) != seen.invocation
                or props.get("NRestarts", seen.restarts) != seen.restarts
            )
            if state is AgentState.RUNNING and not restarted:
                continue
            detail = f"container@{name}: {props.get('ActiveState')} ({props.get('Result')})"
            if state is AgentState.RUNNING:
                detail = f"container@{name} was restarted by systemd ({props.get('Result')})"
                self._watch(name, props)
            else:
                self._watched.pop(name, None)
            self._emit(AgentExited(name, _int(props.get("ExecMainStatus")), False, detail))

    # -- the Protocol -------------------------------------------------------------------------

    async def create(self, spec: AgentSpec) -> None:
        _check_name(spec.name)
        await trio.to_thread.run_sync(spec.make_dirs)
        if not self._conf(spec.name).exists():
            argv = [NIXOS_CONTAINER, "create", spec.name, "--flake", self._flake(spec)]
            await self._checked(argv, private_cwd=True)
        await self._write_conf(spec)

    async def start(self, name: str) -> None:
        result = await self._run([NIXOS_CONTAINER, "start", name], None)
        if result.returncode != 0:
            raise StartFailed(f"{name}: nixos-container start failed: {_tail(result.stderr)}")
        props = await self._show(name)
        self._watch(name, props)

    async def stop(self, name: str, *, grace: float) -> None:
        status = await self.status(name)
        if status.state not in (AgentState.RUNNING, AgentState.STARTING, AgentState.STOPPING):
            return
        self._stopping.add(name)
        try:
            stopped = False
            if grace > 0:
                with trio.move_on_after(grace):
                    result = await self._run([NIXOS_CONTAINER, "stop", name], None)
                    stopped = result.returncode == 0
            if not stopped:
                await self._checked([NIXOS_CONTAINER, "terminate", name])
        finally:
            self._stopping.discard(name)
            self._watched.pop(name, None)
        self._emit(AgentExited(name, None, True, "stopped"))

    async def destroy(self, name: str) -> None:
        await self.stop(name, grace=10.0)
        await self._checked([NIXOS_CONTAINER, "destroy", name])

    async def update(self, spec: AgentSpec) -> UpdateOutcome:
        changed = await self._write_conf(spec)
        argv = [NIXOS_CONTAINER, "update", spec.name, "--flake", self._flake(spec)]
        await self._checked(argv, private_cwd=True)
        return "restart-required" if changed else "applied"

    async def status(self, name: str) -> AgentStatus:
        if not self._conf(name).exists():
            return AgentStatus(name, AgentState.ABSENT)
        props = await self._show(name)
        if not props:
            return AgentStatus(name, AgentState.UNKNOWN, detail="systemctl show failed")
        state = state_from_unit(props)
        return AgentStatus(
            name,
            state,
            pid=_int(props.get("MainPID")) or None,
            exit_code=_int(props.get("ExecMainStatus")) if state is AgentState.CRASHED else None,
            detail="" if state is AgentState.RUNNING else props.get("Result", ""),
        )

    async def list(self) -> list[str]:
        result = await self._checked([NIXOS_CONTAINER, "list"])
        names = result.stdout.decode(errors="replace").split()
        return sorted(name for name in names if self._is_ours(name))

    async def rescan(self) -> dict[str, AgentStatus]:
        """Every hyperhive container's status; running ones are adopted (watched again)."""
        statuses = {name: await self.status(name) for name in await self.list()}
        for name, status in statuses.items():
            if status.state is AgentState.RUNNING:
                self._watch(name, await self._show(name))
        return statuses

    async def logs(self, name: str, *, lines: int) -> str:
        argv = ["journalctl", "--machine", name, "--lines", str(lines), "--no-pager",
                "--output", "short-iso"]  # fmt: skip
        result = await self._checked(argv)
        return result.stdout.decode(errors="replace")

    async def exec(self, name: str, argv: Sequence[str]) -> ExecResult:
        return await self._run([NIXOS_CONTAINER, "run", name, "--", *argv], None)

    async def run_job(self, spec: AgentSpec) -> int:
        """Build steps need a sandbox of their own; nixos containers have none (yet)."""
        raise ContainerError(
            f"{spec.name}: the nixos backend cannot run agent.toml build steps; build into the "
            "agent's NixOS configuration instead, or leave build.commands empty"
        )

    async def hand_over(self, name: str, path: Path) -> None:
        """The containers run as root inside: nothing to hand over."""

    # -- internals ----------------------------------------------------------------------------

    def _conf(self, name: str) -> Path:
        return self._conf_dir / f"{name}.conf"

    def _flake(self, spec: AgentSpec) -> str:
        return spec.flake or f"{self._meta}#agent-{spec.name}"

    def _is_ours(self, name: str) -> bool:
        try:
            return MARKER in self._conf(name).read_text().splitlines()
        except OSError:
            return False

    async def _write_conf(self, spec: AgentSpec) -> bool:
        path = self._conf(spec.name)

        def write() -> bool:
            old = path.read_text() if path.exists() else ""
            new = rewrite_conf(old, spec)
            if new != old:
                path.write_text(new)
            return new != old

        try:
            return await trio.to_thread.run_sync(write)
        except OSError as exc:
            raise ContainerError(f"cannot write {path}: {exc.strerror}") from exc

    async def _show(self, name: str) -> dict[str, str]:
        argv = ["systemctl", "show", f"container@{name}", f"--property={_UNIT_PROPERTIES}"]
        result = await self._run(argv, None)
        if result.returncode != 0:
            return {}
        return parse_systemctl_show(result.stdout.decode(errors="replace"))

    def _watch(self, name: str, props: Mapping[str, str]) -> None:
        self._watched[name] = _Watched(props.get("InvocationID", ""), props.get("NRestarts", ""))

    async def _checked(self, argv: Sequence[str], *, private_cwd: bool = False) -> ExecResult:
        cwd = Path(tempfile.mkdtemp(prefix="nixos-", dir=self._work_dir)) if private_cwd else None
        try:
            with trio.fail_after(COMMAND_TIMEOUT):
                result = await self._run(argv, cwd)
        except trio.TooSlowError:
            raise ContainerError(f"{' '.join(argv[:3])} timed out") from None
        finally:
            if cwd is not None:
                shutil.rmtree(cwd, ignore_errors=True)
        if result.returncode != 0:
            raise ContainerError(f"{' '.join(argv[:3])} failed: {_tail(result.stderr)}")
        return result

    def _emit(self, exited: AgentExited) -> None:
        try:
            self._send_exits.send_nowait(exited)
        except trio.WouldBlock:
            LOGGER.warning("exit queue full; dropped the exit of %s", exited.name)


def _check_name(name: str) -> None:
    if len(name) > MAX_NAME:
        raise ConfigError(f"{name!r} is longer than nixos-container's {MAX_NAME} characters")


def _int(text: str | None) -> int | None:
    with contextlib.suppress(TypeError, ValueError):
        return int(text)  # type: ignore[arg-type]
    return None


def _tail(stderr: bytes) -> str:
    text = stderr.decode(errors="replace").strip()
    return text[-500:] or "no output"
