"""The container backend Protocol and the types every backend shares.

A backend runs one agent harness per agent, each in its own container (or sandbox, or plain
process), and reports facts: what state an agent is in, and when one exited. It decides
nothing: the lifecycle actions (`hyperhive.core.lifecycle`) and crash watch
(`hyperhive.core.crash_watch`) own the rules.

States::

    ABSENT --create--> STOPPED --start--> STARTING --> RUNNING --stop--> STOPPING --> STOPPED
                                                          |
                                                          +--exit nobody asked for--> CRASHED
    any --destroy--> ABSENT          UNKNOWN: the backend could not tell (a command failed)

The per-agent layout is the same on every backend (paths on the host; where the agent sees
them in a sandbox is the backend's business):

    socket_dir  read-write, holds hive.sock (the directory is bound, never the socket file)
    state_dir   read-write, survives restarts and destroy; HOME is `home/` inside it
    config_dir  read-only: the deployed config (docs/config.md)
    tools_dir   read-only: the deploy's build output (read-write only to the build itself)

Besides running agents, a backend runs a deploy's build commands (`run_job`): a fresh sandbox
of the agent with the network on, whose only writable places are its tools directory and a
scratch state directory, so a build that fails leaves the running agent as it was.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Literal, Protocol

import attrs

from hyperhive import wire

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

    import trio

    from hyperhive.containers.sandbox import Bind, SandboxSettings

__all__ = [
    "ENV_AGENT",
    "ENV_CONFIG",
    "ENV_ROLE",
    "ENV_SOCKET",
    "ENV_STATE",
    "ENV_TOOLS",
    "AgentExited",
    "AgentSpec",
    "AgentState",
    "AgentStatus",
    "ContainerBackend",
    "ExecResult",
    "UpdateOutcome",
    "agent_environment",
    "tail_text",
]

# The host <-> harness contract, named in one place (`hyperhive.wire.harness`).
ENV_AGENT = wire.ENV_AGENT
ENV_ROLE = wire.ENV_ROLE
ENV_SOCKET = wire.ENV_SOCKET
ENV_STATE = wire.ENV_STATE
ENV_CONFIG = wire.ENV_CONFIG
ENV_TOOLS = wire.ENV_TOOLS

UpdateOutcome = Literal["applied", "restart-required"]


class AgentState(enum.Enum):
    ABSENT = "absent"  # the backend knows nothing of it
    STOPPED = "stopped"  # exists, not running (clean stop, or never started)
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    CRASHED = "crashed"  # ended without being asked: exit code, signal, failed unit, setup error
    UNKNOWN = "unknown"  # could not be determined


def _frozen_env(value: Mapping[str, str]) -> Mapping[str, str]:
    return dict(value)


@attrs.frozen
class AgentSpec:
    """Everything a backend needs to run one agent.

    `argv` is the harness command (bwrap, process and fake run it; nixos ignores it, the
    service is defined in the agent's flake). `env` is extra environment on top of the
    HYPERHIVE_* variables the backend sets itself. `flake` is nixos's `META#attr`.
    `settings_file` is the agent's `sandbox.json` (`hyperhive.containers.sandbox`), the
    operator's; `approved` the sandbox settings of its deployed `agent.toml`, which the
    operator's cap (`hyperhive.containers.sandbox.combine`). `binds` are the daemon's own
    (the manager's config repos; writable where marked), `tools_dir` the deploy's tools,
    read-only at /tools unless `tools_writable` (the build).
    """

    name: str
    role: Literal["agent", "manager"]
    state_dir: Path
    config_dir: Path
    socket_dir: Path
    log_path: Path
    argv: tuple[str, ...]
    env: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_env)
    network: bool = True
    flake: str | None = None
    settings_file: Path | None = None  # the agent's sandbox.json (bwrap reads it at start)
    approved: SandboxSettings | None = None
    binds: tuple[Bind, ...] = ()
    tools_dir: Path | None = None
    tools_writable: bool = False

    @property
    def home_dir(self) -> Path:
        return self.state_dir / "home"

    def make_dirs(self) -> None:
        """Create the host directories (state private to this user)."""
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.home_dir.mkdir(exist_ok=True, mode=0o700)
        self.config_dir.mkdir(parents=True, exist_ok=True, mode=0o755)
        self.socket_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.log_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self.tools_dir is not None:
            self.tools_dir.mkdir(parents=True, exist_ok=True, mode=0o755)


@attrs.frozen
class AgentStatus:
    """What a backend knows about one agent right now."""

    name: str
    state: AgentState
    pid: int | None = None  # host pid of the sandbox / process / container leader
    exit_code: int | None = None  # shell encoding: 128+N for signal N
    detail: str = ""  # stderr tail, systemd Result=, ...
    notes: tuple[str, ...] = ()  # what the operator should know about its wall (`list`)
    # CRASHED because its last start was refused before anything ran (a bind source missing,
    # a bad sandbox.json, no such program): ``detail`` is the refusal's reason, not output.
    refused: bool = False


@attrs.frozen
class AgentExited:
    """An agent's container or process ended.

    `requested` is True when the backend was asked to stop it (stop, kill, destroy, shutdown):
    crash watch never reports those. `setup_failed` marks a sandbox that never ran the payload.
    """

    name: str
    exit_code: int | None
    requested: bool
    detail: str = ""
    setup_failed: bool = False


@attrs.frozen
class ExecResult:
    returncode: int
    stdout: bytes
    stderr: bytes


class ContainerBackend(Protocol):
    """One way of running agents. Every method is safe to call concurrently for different
    agents; the lifecycle serialises actions on one agent.

    `run` is the backend's own service task (the daemon runs it as a supervised child): it
    owns whatever watches the agents and, when it ends, stops every agent it started.
    """

    kind: str
    # True when containers keep running without the daemon (nixos: systemd owns them) and are
    # adopted by the next one; False when the daemon's shutdown stops them (bwrap, process).
    outlives_daemon: bool

    async def run(self, *, task_status: trio.TaskStatus[None] = ...) -> None:
        """Serve until `request_stop` (or cancellation); stops running agents on the way out."""
        ...

    def request_stop(self) -> None:
        """Ask `run` to stop its agents and return."""
        ...

    def exits(self) -> trio.MemoryReceiveChannel[AgentExited]:
        """Every exit of an agent this backend runs, in order (one consumer: crash watch)."""
        ...

    async def create(self, spec: AgentSpec) -> None:
        """Make the agent known and its directories exist; idempotent. ABSENT -> STOPPED."""
        ...

    async def start(self, name: str) -> None:
        """Start a created agent; a no-op if it runs. Raises StartFailed."""
        ...

    async def stop(self, name: str, *, grace: float) -> None:
        """Ask the agent to stop (SIGTERM or equivalent), wait `grace` seconds, then kill it.

        Returns once it is gone. A no-op if it is not running.
        """
        ...

    async def destroy(self, name: str) -> None:
        """Stop it and forget it; never deletes its state directory. -> ABSENT."""
        ...

    async def update(self, spec: AgentSpec) -> UpdateOutcome:
        """Apply a changed spec; says whether the running agent must restart to see it."""
        ...

    async def status(self, name: str) -> AgentStatus:
        """The agent's current state."""
        ...

    async def list(self) -> list[str]:
        """Names this backend manages, sorted."""
        ...

    async def rescan(self) -> dict[str, AgentStatus]:
        """At daemon start: find what survived (adopting it where possible), clean up the rest."""
        ...

    async def logs(self, name: str, *, lines: int) -> str:
        """The last `lines` lines the agent wrote."""
        ...

    async def exec(self, name: str, argv: Sequence[str]) -> ExecResult:
        """Run `argv` in the agent's container (its files and environment).

        Cancellation: the command is killed; bound it with `trio.fail_after`.
        """
        ...

    async def run_job(self, spec: AgentSpec) -> int:
        """Run `spec.argv` once in a fresh sandbox built from `spec` (a deploy's build step:
        its own state and socket directories, the tools directory writable, the network as
        `spec.network` says), its output appended to `spec.log_path` (only its own: a helper
        such as the network's logs to the daemon's log); its exit status.

        Never touches a running agent of the same name. Raises ContainerError (StartFailed)
        when it cannot run at all.

        Cancellation: the job is killed and waited for; bound it with `trio.fail_after`.
        """
        ...

    async def hand_over(self, name: str, path: Path) -> None:
        """Make the directory tree `path` (the daemon made it, nobody else has written it)
        writable by agent `name` inside its sandbox: with per-agent uids, chown it to `name`'s
        uid without following symlinks; a no-op where agents share the daemon's uid."""
        ...


def agent_environment(
    spec: AgentSpec,
    *,
    socket_dir: Path,
    state_dir: Path,
    config_dir: Path,
    tools_dir: Path | None = None,
) -> dict[str, str]:
    """The harness's environment, with the paths as the harness sees them (`tools_dir`: where
    it sees the deploy's tools, if it has any)."""
    env = {
        ENV_AGENT: spec.name,
        ENV_ROLE: spec.role,
        ENV_SOCKET: str(socket_dir / wire.SOCKET_NAME),
        ENV_STATE: str(state_dir),
        ENV_CONFIG: str(config_dir),
        "HOME": str(state_dir / "home"),
    }
    if tools_dir is not None:
        env[ENV_TOOLS] = str(tools_dir)
    return {**spec.env, **env}


def tail_text(path: Path, *, lines: int, max_bytes: int = 256 * 1024) -> str:
    """The last `lines` lines of a text file (at most `max_bytes` read); "" if missing."""
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, 2)
            handle.seek(max(0, size - max_bytes))
            data = handle.read()
    except FileNotFoundError:
        return ""
    text = data.decode("utf-8", errors="replace")
    kept = text.splitlines()[-lines:] if lines > 0 else []
    return "\n".join(kept) + ("\n" if kept else "")
