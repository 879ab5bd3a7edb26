"""The process backend: each agent's harness is a plain child process. No isolation.

For machines without bubblewrap. The harness sees the host paths themselves (the same
HYPERHIVE_* variables, pointing at the host directories) and can read and write anything the
daemon's user can, including other agents' state and the admin socket. `serve` says so loudly.

Each agent runs in its own session (process group), so stop and kill reach whatever it started.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from typing import TYPE_CHECKING

from hyperhive.containers import _spawn
from hyperhive.containers._children import ChildProcessBackend, Launch, _Child
from hyperhive.containers.base import AgentSpec, agent_environment

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

__all__ = ["ProcessBackend", "process_environment"]


def process_environment(spec: AgentSpec) -> dict[str, str]:
    """The harness environment with host paths; PATH is the daemon's."""
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    for key in ("LANG", "LC_ALL", "TZ"):
        if key in os.environ:
            base[key] = os.environ[key]
    env = agent_environment(
        spec,
        socket_dir=spec.socket_dir,
        state_dir=spec.state_dir,
        config_dir=spec.config_dir,
        tools_dir=spec.tools_dir,
    )
    return {**base, **env}


class ProcessBackend(ChildProcessBackend):
    """Agents as unsandboxed child processes (see the module docstring)."""

    kind = "process"

    async def _launch(self, spec: AgentSpec, log_fd: int, *, job: bool = False) -> Launch:
        proc = await _spawn.open_process(
            list(spec.argv),
            stdin=subprocess.DEVNULL,
            stdout=log_fd,
            stderr=log_fd,
            env=process_environment(spec),
            cwd=spec.state_dir,
            start_new_session=True,
        )
        return Launch(proc)

    def _terminate(self, child: _Child) -> None:
        _signal_group(child.proc.pid, signal.SIGTERM)

    def _kill(self, child: _Child) -> None:
        _signal_group(child.proc.pid, signal.SIGKILL)

    def _exec_command(
        self, spec: AgentSpec, argv: Sequence[str]
    ) -> tuple[list[str], dict[str, str], Path | None]:
        return list(argv), process_environment(spec), spec.state_dir


def _signal_group(pid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)
