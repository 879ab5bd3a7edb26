"""The bwrap backend (the default): each agent's harness runs under bubblewrap, in a wall.

docs/security.md is the long version; research/containers.md §3 has the facts behind the flags.
Starting an agent, in order:

1. its `sandbox.json` is read (extra binds, egress allowlist, limits);
2. with a root daemon, the agent gets its own host uid (`uids.UidTable`) and its state
   directory is handed to it (`uids.own_state`); an unprivileged daemon's agents keep the
   daemon's uid, inside their own user namespace;
3. the launcher (`_launch.py`, forked by the spawner thread) joins a fresh session keyring,
   applies the limits (the agent's cgroup, or the prlimit fallback), drops to the agent's uid
   with an empty bounding set and executes bwrap;
4. bwrap builds the sandbox: the mount allowlist (`mounts`), user, pid, ipc, uts, cgroup and
   network namespaces, no capabilities, no new privileges, no further user namespaces, the
   seccomp filter (`seccomp`), `--die-with-parent`; then it waits on `--block-fd`;
5. with the network on, slirp4netns attaches to the sandbox's network namespace (`network`),
   with the egress allowlist loaded inside it if there is one; then the agent's program runs.

A host that lacks a part (no libseccomp, no slirp4netns, no delegated cgroup) gets the named
fallback and a loud warning at start (`HostWall.warnings`), never a silent downgrade.

Stopping: SIGTERM goes to the payload (its host pid is the sandbox init's child; the init
itself ignores SIGTERM), then after the grace SIGKILL to the init, which tears the pid
namespace down. `--json-status-fd` tells a payload exit (an `exit-code` line) from a sandbox
that failed before the payload ran (no such line, bwrap exits 1).

`exec` runs the command in a sibling sandbox with the same walls, files and environment (its
own pid namespace, and no network): it needs no privileges, unlike entering the agent's
namespaces.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal

import attrs
import trio

from hyperhive.containers import _launch, _spawn, mounts, network, seccomp, uids
from hyperhive.containers._children import (
    KILL_WAIT_SECONDS,
    ChildProcessBackend,
    Launch,
    _Child,
    signal_exit_code,
)
from hyperhive.containers.base import AgentSpec, ExecResult, agent_environment
from hyperhive.containers.limits import CgroupTree, Limits, find_delegated_cgroup, prlimit_plan
from hyperhive.containers.sandbox import SandboxSettings, combine, load_sandbox_settings
from hyperhive.errors import ConfigError, ContainerError, StartFailed

if TYPE_CHECKING:
    from collections.abc import Sequence

    from hyperhive.containers.mounts import SystemEntry
    from hyperhive.containers.sandbox import Bind

__all__ = [
    "HOST_NETWORK_NOTE",
    "SANDBOX_CONFIG",
    "SANDBOX_RUN",
    "SANDBOX_STATE",
    "SANDBOX_TOOLS",
    "SYSTEM_BIN",
    "BwrapBackend",
    "HostWall",
    "NetworkMode",
    "WallDefaults",
    "bwrap_argv",
    "bwrap_works",
    "detect_wall",
    "host_tool",
    "sandbox_environment",
]

LOGGER = logging.getLogger("hyperhive.containers")
SANDBOX_STATE: Final = Path("/state")
SANDBOX_CONFIG: Final = Path("/config")
SANDBOX_RUN: Final = Path("/run/hyperhive")
SANDBOX_TOOLS: Final = Path("/tools")
STATUS_WAIT_SECONDS: Final = 10.0
SANDBOX_PATH: Final = "/usr/local/bin:/usr/bin:/bin"
NetworkMode = Literal["user", "host", "none"]
HOST_NETWORK_NOTE: Final = (
    "host network: it reaches this host's loopback services (no user-mode network here; "
    "`hyperhive doctor` says why)"
)


@attrs.frozen
class WallDefaults:
    """The daemon-wide defaults an agent's `sandbox.json` can override."""

    memory_max: int = 4 << 30
    pids_max: int = 1024
    disk_quota: int = 10 << 30
    tmp_size: int = 1 << 30
    agent_uids: tuple[int, int] = (1_900_000, 1_965_535)
    binds: tuple[Bind, ...] = ()


@attrs.frozen
class HostWall:
    """What this host offers for the wall, and the fallbacks it forces (see `detect_wall`)."""

    privileged: bool
    seccomp_filter: bytes | None
    slirp4netns: str | None  # None: network-on agents share the host's network (fallback)
    nsenter: str | None
    ip: str | None
    nft: str | None
    cgroup: Path | None  # None: the prlimit fallback
    warnings: tuple[str, ...] = ()


# Where Debian and Fedora put nft, ip and the like, which a normal user's PATH lacks.
SYSTEM_BIN: Final = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def host_tool(program: str) -> str | None:
    """`program` on PATH, else in the system's bin and sbin directories (a daemon run by a
    normal user has no sbin on its PATH, yet nft and ip work unprivileged in the agent's
    own namespace)."""
    return shutil.which(program) or shutil.which(program, path=SYSTEM_BIN)


def detect_wall() -> HostWall:
    """Look at this host (blocking, no subprocess: run before the event loop or off-thread)."""
    privileged = os.geteuid() == 0
    warnings = []
    try:
        bpf: bytes | None = seccomp.build_filter()
    except seccomp.SeccompUnavailable as exc:
        bpf = None
        warnings.append(f"no seccomp filter for agents (fallback: none): {exc}")
    slirp = host_tool("slirp4netns")
    nsenter, ip = host_tool("nsenter"), host_tool("ip")
    problem = network.user_network_problem(slirp, privileged=privileged)
    if problem is None and (nsenter is None or ip is None):
        problem = "nsenter (util-linux) and ip (iproute2) are needed to set the network up"
    if problem is not None:
        slirp = None
        fix = f"; {network.TUN_FIX}" if str(network.TUN) in problem else ""
        warnings.append(
            f"agents with the network on share the host's network namespace and reach its "
            f"loopback services (fallback: host network): {problem}{fix}"
        )
    cgroup, why = find_delegated_cgroup()
    if cgroup is None:
        detail = (
            "RLIMIT_NPROC per agent uid"
            if privileged
            else "no process limit: RLIMIT_NPROC would count every process of this user"
        )
        warnings.append(
            f"memory and process limits fall back to prlimit (RLIMIT_DATA per process, "
            f"{detail}): {why}"
        )
    return HostWall(
        privileged=privileged,
        seccomp_filter=bpf,
        slirp4netns=slirp,
        nsenter=nsenter,
        ip=ip,
        nft=host_tool("nft"),
        cgroup=cgroup,
        warnings=tuple(warnings),
    )


def bwrap_argv(
    spec: AgentSpec,
    command: Sequence[str],
    *,
    system: Sequence[SystemEntry],
    etc: Sequence[SystemEntry],
    generated: dict[str, Path],
    runtime: Sequence[Path] = (),
    binds: Sequence[Bind] = (),
    network_mode: NetworkMode = "none",
    privileged: bool = False,
    tmp_size: int = 1 << 30,
    seccomp_fd: int | None = None,
    status_fd: int | None = None,
    block_fd: int | None = None,
    bwrap: str = "bwrap",
) -> list[str]:
    """The full bwrap command line running `command` in `spec`'s sandbox (see `mounts`).

    `privileged` (a root daemon): bwrap runs as root and keeps only the setuid capabilities,
    for `command`, which must be the launcher dropping to the agent's uid. Otherwise bwrap
    runs unprivileged in a user namespace of its own, with none.
    """
    argv = [bwrap]
    for name, target in system:
        if target is None:
            argv += ["--ro-bind", f"/{name}", f"/{name}"]
        else:
            argv += ["--symlink", target, f"/{name}"]
    argv += [
        "--proc", "/proc", "--dev", "/dev",
        "--perms", "1777", "--size", str(tmp_size), "--tmpfs", "/tmp",
        "--perms", "1777", "--size", str(tmp_size), "--tmpfs", "/dev/shm",
        "--perms", "0755", "--tmpfs", "/run",
    ]  # fmt: skip
    mounts_: list[tuple[str, str, str]] = []  # (option, source, destination)
    for name, target in etc:
        if target is None:
            mounts_.append(("--ro-bind", f"/etc/{name}", f"/etc/{name}"))
        else:
            mounts_.append(("--symlink", target, f"/etc/{name}"))
    if network_mode == "host" and Path("/etc/resolv.conf").exists():
        mounts_.append(("--ro-bind", "/etc/resolv.conf", "/etc/resolv.conf"))
    for name, path in sorted(generated.items()):
        mounts_.append(("--ro-bind", str(path), f"/etc/{name}"))
    for path in runtime:
        mounts_.append(("--ro-bind", str(path), str(path)))
    for bind in binds:
        option = "--bind" if bind.writable else "--ro-bind"
        mounts_.append((option, str(bind.source), str(bind.target)))
    mounts_ += [
        ("--bind", str(spec.state_dir), str(SANDBOX_STATE)),
        ("--ro-bind", str(spec.config_dir), str(SANDBOX_CONFIG)),
        ("--bind", str(spec.socket_dir), str(SANDBOX_RUN)),
    ]
    if spec.tools_dir is not None:
        option = "--bind" if spec.tools_writable else "--ro-bind"
        mounts_.append((option, str(spec.tools_dir), str(SANDBOX_TOOLS)))
    # bwrap makes the directories above a mount point private (0700); the agent, who is not
    # root in there, must be able to walk through them.
    for directory in _parents_to_create([dest for _, _, dest in mounts_]):
        argv += ["--perms", "0755", "--dir", directory]
    for option, source, destination in mounts_:
        argv += [option, source, destination]
    if not privileged:
        argv += ["--unshare-user", "--disable-userns"]
    argv += ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    if network_mode != "host":
        argv.append("--unshare-net")
    argv += [
        "--hostname", spec.name,
        "--die-with-parent", "--new-session", "--cap-drop", "ALL",
    ]  # fmt: skip
    if privileged:
        for cap in _SETUID_CAPS:
            argv += ["--cap-add", cap]
    # Privileged, bwrap itself may not enter the agent's 0700 /state: the launcher does.
    argv += ["--chdir", "/" if privileged else str(SANDBOX_STATE)]
    if seccomp_fd is not None:
        argv += ["--seccomp", str(seccomp_fd)]
    if status_fd is not None:
        argv += ["--json-status-fd", str(status_fd)]
    if block_fd is not None:
        argv += ["--block-fd", str(block_fd)]
    return [*argv, "--", *command]


# What the payload launcher needs to become the agent's uid, and drops before anything else.
_SETUID_CAPS: Final = ("CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP")
# Sandbox paths bwrap creates itself (as mounts) before the allowlist's binds.
_PREMOUNTED: Final = frozenset({"/", "/usr", "/proc", "/dev", "/tmp", "/dev/shm", "/run"})


def _parents_to_create(destinations: Sequence[str]) -> list[str]:
    """Every directory above a mount point that bwrap would otherwise create as 0700."""
    wanted: set[str] = set()
    for destination in destinations:
        for parent in Path(destination).parents:
            if str(parent) not in _PREMOUNTED:
                wanted.add(str(parent))
    mounted = set(destinations)
    return sorted(wanted - mounted, key=lambda p: (p.count("/"), p))


def sandbox_environment(spec: AgentSpec, path_env: str = SANDBOX_PATH) -> dict[str, str]:
    """The payload's whole environment (bwrap passes its own on; nothing else leaks in).

    It travels as bwrap's environment, not as `--setenv` arguments, so secrets in `spec.env`
    never show up in a process listing.
    """
    env = agent_environment(
        spec,
        socket_dir=SANDBOX_RUN,
        state_dir=SANDBOX_STATE,
        config_dir=SANDBOX_CONFIG,
        tools_dir=SANDBOX_TOOLS if spec.tools_dir is not None else None,
    )
    return {"PATH": path_env, **env}


def launcher_argv(plan: dict[str, object], program: Sequence[str]) -> list[str]:
    """`program` behind the launcher (keyring, limits, uid; see `_launch`)."""
    return [sys.executable, "-I", "-S", "-B", _launch.__file__, json.dumps(plan), "--", *program]


def bwrap_works(bwrap: str = "bwrap") -> str | None:
    """None if bubblewrap can build the agents' sandbox here, else a sentence saying why not.

    Blocking (runs bwrap): call it before the event loop starts.
    """
    found = shutil.which(bwrap)
    if found is None:
        return f"{bwrap} is not on PATH (install the bubblewrap package)"
    probe = [found, "--ro-bind", "/", "/", "--unshare-pid", "--unshare-net", "--die-with-parent"]
    if os.geteuid() != 0:
        probe += ["--unshare-user", "--disable-userns"]
    probe += ["--", "true"]
    try:
        done = subprocess.run(probe, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{bwrap} could not run: {exc}"
    if done.returncode != 0:
        return f"{bwrap} cannot create a sandbox here: {done.stderr.strip() or done.returncode}"
    return None


@attrs.define(eq=False)
class _Identity:
    uid: int
    gid: int


@attrs.define(eq=False)
class _Prepared:
    """Everything one sandbox start needs, with the fds to close once bwrap has them."""

    argv: list[str]
    env: dict[str, str]
    fds: list[int]
    settings: SandboxSettings
    network_mode: NetworkMode


def _host_mounts() -> tuple[list[mounts.SystemEntry], list[mounts.SystemEntry], list[Path]]:
    """The host side of the mount allowlist, with the harness's bytecode written (blocking)."""
    mounts.compile_runtime()
    return mounts.system_entries(), mounts.etc_entries(), mounts.runtime_binds()


class BwrapBackend(ChildProcessBackend):
    """Agents sandboxed by bubblewrap (see the module docstring)."""

    kind = "bwrap"

    def __init__(
        self,
        *,
        runtime_dir: Path,
        bwrap: str = "bwrap",
        shutdown_grace: float = 3.0,
        defaults: WallDefaults | None = None,
        wall: HostWall | None = None,
    ) -> None:
        super().__init__(runtime_dir=runtime_dir, shutdown_grace=shutdown_grace)
        self._bwrap = bwrap
        self._defaults = defaults or WallDefaults()
        self._wall = wall
        self._cgroups: CgroupTree | None = None
        self._uids = uids.UidTable(runtime_dir / "uids.json", *self._defaults.agent_uids)
        self._networks: dict[int, network.UserNetwork] = {}

    @property
    def wall(self) -> HostWall:
        if self._wall is None:
            raise ContainerError("the bwrap backend has not looked at this host yet (run it)")
        return self._wall

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Look at the host (once), then serve; every network helper goes with the agents."""
        if self._wall is None:
            self._wall = await trio.to_thread.run_sync(detect_wall)
        for warning in self._wall.warnings:
            LOGGER.warning("sandbox wall: %s", warning)
        if self._wall.cgroup is not None and self._cgroups is None:
            tree = CgroupTree(self._wall.cgroup)
            try:
                await trio.to_thread.run_sync(tree.prepare)
                self._cgroups = tree
            except OSError as exc:
                LOGGER.warning(
                    "sandbox wall: cannot use cgroup %s (%s); limits fall back to prlimit",
                    self._wall.cgroup,
                    exc.strerror,
                )
        try:
            await super().run(task_status=task_status)
        finally:
            with trio.move_on_after(KILL_WAIT_SECONDS, shield=True):
                for net in list(self._networks.values()):
                    await net.aclose()
            self._networks.clear()

    # -- building a start ---------------------------------------------------------------------

    async def _identity(self, spec: AgentSpec) -> _Identity:
        if not self.wall.privileged:
            return _Identity(os.getuid(), os.getgid())
        uid = await trio.to_thread.run_sync(self._uids.uid, spec.name)

        def hand_over() -> None:
            uids.own_state(spec.state_dir, uid, uid)
            uids.prepare_socket_dir(spec.socket_dir, uid)
            if spec.tools_dir is not None and spec.tools_writable:
                uids.own_state(spec.tools_dir, uid, uid)

        await trio.to_thread.run_sync(hand_over)
        return _Identity(uid, uid)

    def _plan(
        self, spec: AgentSpec, ident: _Identity, settings: SandboxSettings
    ) -> dict[str, object]:
        limits = Limits(
            memory_max=settings.memory_max or self._defaults.memory_max,
            pids_max=settings.pids_max or self._defaults.pids_max,
        )
        plan: dict[str, object] = {"keyring": True}
        if self._cgroups is not None:
            plan["cgroup"] = str(self._cgroups.agent(spec.name, limits))
        else:
            plan["rlimits"] = prlimit_plan(limits, per_uid=self.wall.privileged)
        return plan

    def _notes(self, spec: AgentSpec) -> tuple[str, ...]:
        if spec.network and self._wall is not None and self._wall.slirp4netns is None:
            return (HOST_NETWORK_NOTE,)
        return ()

    def _network_mode(self, spec: AgentSpec) -> NetworkMode:
        if not spec.network:
            return "none"
        return "user" if self.wall.slirp4netns is not None else "host"

    async def _prepare(
        self,
        spec: AgentSpec,
        command: Sequence[str],
        *,
        status_fd: int | None,
        block_fd: int | None,
        go_fd: int | None = None,
        network_mode: NetworkMode | None = None,
    ) -> _Prepared:
        try:
            own = await trio.to_thread.run_sync(load_sandbox_settings, spec.settings_file)
        except ConfigError as exc:
            raise StartFailed(f"{spec.name}: {exc}") from exc
        problem = await trio.to_thread.run_sync(_missing_bind_source, self._bind_origins(spec, own))
        if problem is not None:
            raise StartFailed(f"{spec.name}: {problem}")
        defaults = self._defaults
        settings = combine(
            own,
            spec.approved,
            memory_max=defaults.memory_max,
            pids_max=defaults.pids_max,
            disk_quota=defaults.disk_quota,
        )
        mode = network_mode or self._network_mode(spec)
        filtered = bool(settings.egress_layers)
        if filtered and mode == "user" and self.wall.nft is None:
            raise StartFailed(
                f"{spec.name}: an egress allowlist needs nft (apt-get install nftables)"
            )
        if filtered and mode == "host":
            raise StartFailed(
                f"{spec.name}: an egress allowlist needs slirp4netns; refusing to start it on "
                "the host's network"
            )
        ident = await self._identity(spec)
        plan = await trio.to_thread.run_sync(self._plan, spec, ident, settings)
        generated = await trio.to_thread.run_sync(
            lambda: mounts.write_etc(
                self._runtime_dir / "etc" / spec.name,
                name=spec.name,
                uid=ident.uid,
                gid=ident.gid,
                user_network=mode == "user",
                gitconfig=mounts.MANAGER_GITCONFIG if spec.role == "manager" else None,
            )
        )
        fds: list[int] = []
        seccomp_fd = None
        if self.wall.seccomp_filter is not None:
            seccomp_fd = os.memfd_create("hyperhive-seccomp", os.MFD_CLOEXEC)
            fds.append(seccomp_fd)
            os.write(seccomp_fd, self.wall.seccomp_filter)
            os.lseek(seccomp_fd, 0, os.SEEK_SET)
        system, etc, runtime = await trio.to_thread.run_sync(_host_mounts)
        etc = [entry for entry in etc if entry[0] not in generated]
        binds = (*self._defaults.binds, *settings.binds, *spec.binds)
        privileged = self.wall.privileged
        inner: dict[str, object] = {} if go_fd is None else {"go_fd": go_fd}
        if privileged:  # the payload drops to the agent's uid first thing, inside the wall
            inner |= {"uid": ident.uid, "gid": ident.gid, "cwd": str(SANDBOX_STATE)}
        if inner:
            command = launcher_argv(inner, command)
        bwrap = bwrap_argv(
            spec,
            command,
            system=system,
            etc=etc,
            generated=generated,
            runtime=runtime,
            binds=binds,
            network_mode=mode,
            privileged=privileged,
            tmp_size=self._defaults.tmp_size,
            seccomp_fd=seccomp_fd,
            status_fd=status_fd,
            block_fd=block_fd,
            bwrap=self._bwrap,
        )
        return _Prepared(launcher_argv(plan, bwrap), sandbox_environment(spec), fds, settings, mode)

    def _bind_origins(self, spec: AgentSpec, own: SandboxSettings) -> list[tuple[Bind, str]]:
        """Every extra bind of `spec`'s sandbox, with where it was asked for (for errors)."""
        approved = spec.approved.binds if spec.approved is not None else ()
        return [
            *((bind, "the daemon's extra_binds") for bind in self._defaults.binds),
            *((bind, f"binds in {spec.settings_file}") for bind in own.binds),
            *((bind, f"binds in {spec.config_dir / 'agent.toml'}") for bind in approved),
            *((bind, "the daemon's own binds for this agent") for bind in spec.binds),
        ]

    def argv(self, spec: AgentSpec, command: Sequence[str]) -> list[str]:
        """The bwrap part of the command line for `spec` on this host (for tests and docs)."""
        return bwrap_argv(
            spec,
            command,
            system=mounts.system_entries(),
            etc=mounts.etc_entries(),
            generated={},
            runtime=mounts.runtime_binds(),
            binds=self._defaults.binds,
            network_mode="user" if spec.network else "none",
            privileged=os.geteuid() == 0,
            bwrap=self._bwrap,
        )

    # -- the ChildProcessBackend hooks --------------------------------------------------------

    async def _launch(self, spec: AgentSpec, log_fd: int, *, job: bool = False) -> Launch:
        read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
        block_read, block_write = os.pipe2(os.O_CLOEXEC)
        # bwrap runs the payload once `block_read` is readable, end of file included: a
        # start given up (the network failed, or the daemon died meanwhile) would run it
        # anyway, in a sandbox whose --die-with-parent is not armed yet. The payload's
        # launcher reads `go_read` first and runs nothing unless the daemon wrote to it.
        go_read, go_write = os.pipe2(os.O_CLOEXEC)
        try:
            prepared = await self._prepare(
                spec, spec.argv, status_fd=write_fd, block_fd=block_read, go_fd=go_read
            )
            try:
                proc = await _spawn.open_process(
                    prepared.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log_fd,
                    stderr=log_fd,
                    pass_fds=(write_fd, block_read, go_read, *prepared.fds),
                    env=prepared.env,
                    start_new_session=True,
                )
            finally:
                for fd in prepared.fds:
                    os.close(fd)
        except BaseException:
            os.close(read_fd)
            os.close(block_write)
            os.close(go_write)
            raise
        finally:
            os.close(write_fd)
            os.close(block_read)
            os.close(go_read)
        launch = Launch(proc, status=trio.lowlevel.FdStream(read_fd))
        try:
            with trio.move_on_after(STATUS_WAIT_SECONDS):
                while launch.init_pid is None and await _read_status(launch):
                    pass
            if launch.init_pid is None and proc.returncode is None:
                raise StartFailed(
                    f"{spec.name}: bwrap reported no sandbox within {STATUS_WAIT_SECONDS}s"
                )
            # A build's log holds only what the build printed: slirp4netns's own lines go
            # to the daemon's log instead.
            helper_log = None if job else log_fd
            if launch.init_pid is not None and not await self._connected(
                spec, launch, prepared, helper_log
            ):
                return launch  # it ended already: `start` reports bwrap's own words
            try:
                os.write(go_write, b"1")  # the agent's program may run now
                os.write(block_write, b"1")
            except BrokenPipeError:
                # bwrap gave up (a mount it could not make) before it read the go-ahead:
                # the sandbox ended, and `start` reports bwrap's own words, not the pipe.
                return launch
        except BaseException:
            # Cancelled or failed before `start` could track it: nobody else will ever stop
            # this sandbox, so it goes now (killing bwrap takes the sandbox with it).
            await self._discard(launch)
            raise
        finally:
            os.close(block_write)
            os.close(go_write)
        return launch

    async def _connected(
        self, spec: AgentSpec, launch: Launch, prepared: _Prepared, log_fd: int | None
    ) -> bool:
        """`_connect`, or False when the sandbox ended before its network was up.

        bwrap reports the sandbox's pid before it makes the mounts; one it cannot make (a bind
        source that is a dangling link) ends it while the network is being set up. That is
        the sandbox failing, with bwrap's sentence in the log, not the program failing to run.
        """
        try:
            await self._connect(spec, launch, prepared, log_fd)
        except (OSError, StartFailed):
            with trio.move_on_after(1.0):
                await launch.proc.wait()
            if launch.proc.returncode is None:
                raise
            return False
        return True

    async def _connect(
        self, spec: AgentSpec, launch: Launch, prepared: _Prepared, log_fd: int | None
    ) -> None:
        """Bring up the user-mode network (and its allowlist) before the agent runs.

        slirp4netns writes to `log_fd`, or with None to the daemon's log (bounded).
        """
        if prepared.network_mode != "user":
            return
        assert launch.init_pid is not None
        assert self.wall.slirp4netns is not None
        assert self.wall.nsenter is not None
        net = network.UserNetwork(
            self.wall.slirp4netns,
            log_fd=log_fd,
            privileged=self.wall.privileged,
            nursery=self._nursery,
            label=spec.name,
            nsenter=self.wall.nsenter,
        )
        self._networks[launch.proc.pid] = net
        await net.start(launch.init_pid)
        assert self.wall.ip is not None
        await net.configure(launch.init_pid, nsenter=self.wall.nsenter, ip=self.wall.ip)
        for layer, egress in enumerate(prepared.settings.egress_layers):
            assert self.wall.nft is not None
            resolved = await trio.to_thread.run_sync(network.resolve_rules, egress)
            table = "hyperhive_egress" if layer == 0 else f"hyperhive_egress_{layer}"
            await net.apply_egress(
                launch.init_pid,
                network.nft_ruleset(resolved, table),
                nsenter=self.wall.nsenter,
                nft=self.wall.nft,
            )

    async def _discard(self, launch: Launch) -> None:
        with trio.move_on_after(KILL_WAIT_SECONDS, shield=True):
            if launch.init_pid is not None:
                # The sandbox's pid 1 first: killing bwrap alone leaves it behind while it
                # waits on --block-fd (its --die-with-parent is armed only after that).
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(launch.init_pid, signal.SIGKILL)
            launch.proc.kill()
            await launch.proc.wait()
            if launch.status is not None:
                await launch.status.aclose()
                launch.status = None
            await self._release(launch)

    async def _release(self, launch: Launch) -> None:
        net = self._networks.pop(launch.proc.pid, None)
        if net is not None:
            await net.aclose()

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
        await self._release(launch)
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
        raise AssertionError("the bwrap backend overrides exec")  # pragma: no cover

    async def hand_over(self, name: str, path: Path) -> None:
        """With a root daemon: give the tree `path` to `name`'s uid (never following links)."""
        if self.wall.privileged:
            uid = await trio.to_thread.run_sync(self._uids.uid, name)
            await trio.to_thread.run_sync(uids.own_state, path, uid, uid)

    async def exec(self, name: str, argv: Sequence[str]) -> ExecResult:
        """Run `argv` in a sibling sandbox: the agent's walls and files, no network.

        Cancellation: the command is killed; bound it with `trio.fail_after`.
        """
        entry = self._entry(name)
        prepared = await self._prepare(
            entry.spec, argv, status_fd=None, block_fd=None, network_mode="none"
        )
        try:
            done = await _spawn.run_process(prepared.argv, env=prepared.env, pass_fds=prepared.fds)
        except OSError as exc:
            raise ContainerError(f"{name}: cannot run {argv[0]}: {exc.strerror}") from exc
        finally:
            for fd in prepared.fds:
                os.close(fd)
        return ExecResult(signal_exit_code(done.returncode), done.stdout, done.stderr)


def _missing_bind_source(binds: Sequence[tuple[Bind, str]]) -> str | None:
    """A sentence naming the first bind source that is not there, else None. Blocking.

    bwrap would only fail with exit 1 once the sandbox is half built; checked here, the start
    fails naming the path and who asked for it. `lstat`: the source itself is never followed
    (a link there is bwrap's to resolve, as before), so nothing it points at is touched.
    """
    for bind, origin in binds:
        try:
            os.lstat(bind.source)
        except OSError as exc:
            problem = (
                "does not exist"
                if exc.errno in (errno.ENOENT, errno.ENOTDIR)
                else f"cannot be looked at ({exc.strerror})"
            )
            return (
                f"the bind source {bind.source} (for {bind.target}, from {origin}) {problem}; "
                "create it or remove the bind"
            )
    return None


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
