"""An agent's harness as a process of its own, and finding an agent's processes on the host,
for tests and benchmarks that run the real daemon."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import trio

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["harness_pids", "spawn_harness"]


async def spawn_harness(env: Mapping[str, str]) -> trio.Process:
    """`python -m hyperhive agent serve` with `env`, as a container starts it: its stderr a pipe
    (the ready line and the log), no stdin or stdout, in a process group of its own (with the
    claude and MCP processes it starts), which the caller ends."""
    return await trio.lowlevel.open_process(
        [sys.executable, "-m", "hyperhive", "agent", "serve"],
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def harness_pids(name: str, daemon: int) -> set[int]:
    """Host pids of agent `name`'s harness (and its sandbox) under daemon pid `daemon`.

    Found by HYPERHIVE_AGENT and the harness's command line, among the daemon's descendants
    only: another hive on this machine may run an agent of the same name.
    """
    parents: dict[int, int] = {}
    matches: set[int] = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            environ = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
        mine = f"HYPERHIVE_AGENT={name}".encode() in environ
        if mine and b"agent" in cmdline and b"serve" in cmdline:
            matches.add(int(entry))

    def under_daemon(pid: int) -> bool:
        for _ in range(64):
            pid = parents.get(pid, 0)
            if pid == daemon:
                return True
            if pid <= 1:
                return False
        return False

    return {pid for pid in matches if under_daemon(pid)}
