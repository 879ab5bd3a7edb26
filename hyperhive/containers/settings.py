"""How the daemon runs containers: the settings `serve` takes, and picking a backend."""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Literal

import attrs

from hyperhive.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from hyperhive.config import StatePaths
    from hyperhive.containers.base import ContainerBackend
    from hyperhive.containers.sandbox import Bind

__all__ = [
    "BACKENDS",
    "DEFAULT_AGENT_COMMAND",
    "ContainerSettings",
    "ResolvedBackend",
    "make_backend",
    "resolve_backend",
]

LOGGER = logging.getLogger("hyperhive.containers")
BackendKind = Literal["auto", "bwrap", "process", "nixos", "none"]
BACKENDS: tuple[BackendKind, ...] = ("auto", "bwrap", "process", "nixos", "none")
DEFAULT_AGENT_COMMAND = (sys.executable, "-m", "hyperhive", "agent", "serve")
NOT_ISOLATED = (
    "agents are NOT isolated: the process backend runs them as plain processes that can read "
    "and write everything this user can (install bubblewrap for sandboxed agents)"
)


def _dict(value: Mapping[str, str]) -> Mapping[str, str]:
    return dict(value)


@attrs.frozen
class ContainerSettings:
    """Container settings of one daemon.

    `agent_command` is what every agent runs (the harness); `env` is added to each agent's
    environment. `ensure_manager` creates and starts the manager agent at start-up.
    The wall's defaults
    (`memory_max`, `pids_max`, `disk_quota`, `tmp_size`, `extra_binds`) apply to every bwrap
    agent whose `sandbox.json` does not say otherwise; `agent_uids` is the host uid range a
    root daemon gives its agents (docs/security.md).
    """

    backend: BackendKind = "auto"
    agent_command: tuple[str, ...] = DEFAULT_AGENT_COMMAND
    env: Mapping[str, str] = attrs.field(factory=dict, converter=_dict)
    stop_grace: float = 10.0
    shutdown_grace: float = 3.0
    ensure_manager: bool = True
    rescan_interval: float = 10.0
    meta_flake: str = "/var/lib/hyperhive/meta"
    nixos_poll_interval: float = 5.0
    memory_max: int = 4 << 30
    pids_max: int = 1024
    disk_quota: int = 10 << 30
    tmp_size: int = 1 << 30
    agent_uids: tuple[int, int] = (1_900_000, 1_965_535)
    extra_binds: tuple[Bind, ...] = ()
    secret_dirs: tuple[Path, ...] = ()
    secret_environ: Mapping[str, str] | None = None


@attrs.frozen
class ResolvedBackend:
    """What `resolve_backend` found: the backend, what to warn about, and whether a bwrap
    agent with the network on would share the host's network (the wall's fallback)."""

    kind: BackendKind
    warnings: list[str]
    shared_network: bool = False


def resolve_backend(kind: str) -> ResolvedBackend:
    """The concrete backend for `kind` (`auto` probes bubblewrap) and warnings to show loudly.

    Blocking: it runs bwrap once and looks at the host's wall (libseccomp, slirp4netns,
    cgroups). Call it before the event loop starts, once; `make_backend` never probes.

    Raises:
        ConfigError: an unknown kind, or `bwrap` where bubblewrap cannot run.
    """
    from hyperhive.containers.bwrap import bwrap_works, detect_wall

    if kind not in BACKENDS:
        raise ConfigError(f"unknown backend {kind!r}; choose one of {', '.join(BACKENDS)}")
    warnings = []
    if kind in ("auto", "bwrap"):
        problem = bwrap_works()
        if problem is None:
            wall = detect_wall()
            return ResolvedBackend("bwrap", list(wall.warnings), wall.slirp4netns is None)
        if kind == "bwrap":
            raise ConfigError(f"--backend bwrap: {problem}")
        warnings.append(f"bubblewrap unavailable: {problem}")
        kind = "process"
    if kind == "process":
        warnings.append(NOT_ISOLATED)
    concrete: BackendKind = kind  # type: ignore[assignment]
    return ResolvedBackend(concrete, warnings)


def make_backend(settings: ContainerSettings, paths: StatePaths) -> ContainerBackend | None:
    """The backend `settings` name (None for `none`); it runs nothing and reads no host facts.

    Raises:
        ConfigError: `auto`, which `resolve_backend` turns into a concrete kind first.
    """
    from hyperhive.containers.bwrap import BwrapBackend, WallDefaults
    from hyperhive.containers.nixos import NixosBackend, run_command
    from hyperhive.containers.process import ProcessBackend

    kind = settings.backend
    runtime = paths.containers_dir
    if kind == "none":
        return None
    if kind == "auto":
        raise ConfigError(
            "backend 'auto' must be resolved (resolve_backend) before the daemon starts"
        )
    if kind == "bwrap":
        defaults = WallDefaults(
            memory_max=settings.memory_max,
            pids_max=settings.pids_max,
            disk_quota=settings.disk_quota,
            tmp_size=settings.tmp_size,
            agent_uids=settings.agent_uids,
            binds=settings.extra_binds,
        )
        return BwrapBackend(
            runtime_dir=runtime / "bwrap", shutdown_grace=settings.shutdown_grace, defaults=defaults
        )
    if kind == "process":
        LOGGER.warning("%s", NOT_ISOLATED)
        return ProcessBackend(
            runtime_dir=runtime / "process", shutdown_grace=settings.shutdown_grace
        )
    if kind != "nixos":
        raise ConfigError(f"unknown backend {kind!r}; choose one of {', '.join(BACKENDS)}")
    work = runtime / "nixos"
    work.mkdir(parents=True, exist_ok=True, mode=0o700)
    return NixosBackend(
        run_command,
        meta_flake=settings.meta_flake,
        work_dir=work,
        poll_interval=settings.nixos_poll_interval,
    )
