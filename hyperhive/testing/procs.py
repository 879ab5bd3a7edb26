"""Finding an agent's processes on the host, for tests and benchmarks that run the real daemon."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["harness_pids"]


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
