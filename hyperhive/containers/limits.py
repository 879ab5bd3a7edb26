"""Per-agent memory and process limits: cgroup v2 where the host delegates it, else prlimit.

**cgroup v2** (a delegated subtree: the daemon's own cgroup is writable and offers the memory
and pids controllers, as under systemd with `Delegate=yes`, which nix/module.nix sets): the
daemon moves itself into a leaf `daemon/` of its cgroup, enables `+memory +pids` for the
children, and gives each agent a cgroup `agent-<name>/` with `memory.max`, `memory.swap.max`
(0) and `pids.max`; the launcher joins it before it executes bwrap, so the agent and
everything it starts are counted together, tmpfs pages included.

**prlimit** (the stated fallback, with a warning at start): per process `RLIMIT_DATA` at the
memory limit, and `RLIMIT_NPROC` at the process limit, which counts per user: it is set
only when the daemon runs as root and every agent has its own uid (an unprivileged daemon's
agents share its uid, so it would count them all and the user's own processes). No core
dumps either way.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Final

import attrs

__all__ = ["CgroupTree", "Limits", "find_delegated_cgroup", "prlimit_plan"]

_CONTROLLERS: Final = ("memory", "pids")


@attrs.frozen
class Limits:
    memory_max: int
    pids_max: int


def _cgroup2_mount(mountinfo: str) -> Path | None:
    for line in mountinfo.splitlines():
        left, _, right = line.partition(" - ")
        if right.split(" ", 1)[0] == "cgroup2":
            return Path(left.split()[4])
    return None


def _own_cgroup(proc_cgroup: str) -> str | None:
    for line in proc_cgroup.splitlines():
        if line.startswith("0::"):
            return line[3:]
    return None


def find_delegated_cgroup(
    mountinfo: Path = Path("/proc/self/mountinfo"), proc_cgroup: Path = Path("/proc/self/cgroup")
) -> tuple[Path | None, str]:
    """(the daemon's cgroup v2 directory if it can hold agent cgroups, why not otherwise)."""
    try:
        mount = _cgroup2_mount(mountinfo.read_text())
        own = _own_cgroup(proc_cgroup.read_text())
    except OSError as exc:
        return None, f"cannot read the cgroup setup: {exc.strerror}"
    if mount is None or own is None:
        return None, "no cgroup v2 hierarchy is mounted"
    if own in ("", "/"):
        return None, "this process sits in the root cgroup, which belongs to the host"
    directory = mount / own.lstrip("/")
    try:
        controllers = (directory / "cgroup.controllers").read_text().split()
    except OSError as exc:
        return None, f"cannot read {directory}/cgroup.controllers: {exc.strerror}"
    missing = [c for c in _CONTROLLERS if c not in controllers]
    if missing:
        return None, f"cgroup {directory} offers no {' or '.join(missing)} controller"
    if not os.access(directory, os.W_OK) or not os.access(directory / "cgroup.procs", os.W_OK):
        return None, f"cgroup {directory} is not delegated to this user (not writable)"
    try:
        others = set((directory / "cgroup.procs").read_text().split()) - {str(os.getpid())}
    except OSError as exc:
        return None, f"cannot read {directory}/cgroup.procs: {exc.strerror}"
    if others and not (directory / "daemon").is_dir():
        return None, f"other processes share cgroup {directory}; give the daemon its own"
    return directory, ""


class CgroupTree:
    """The daemon's delegated cgroup, turned into a parent of per-agent cgroups."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def prepare(self) -> None:
        """Move this process into `daemon/` and enable the controllers for children.

        Raises:
            OSError: the hierarchy refused (another process shares the cgroup, say).
        """
        leaf = self.directory / "daemon"
        leaf.mkdir(exist_ok=True)
        (leaf / "cgroup.procs").write_text(f"{os.getpid()}\n")
        wanted = " ".join(f"+{c}" for c in _CONTROLLERS)
        (self.directory / "cgroup.subtree_control").write_text(wanted + "\n")

    def agent(self, name: str, limits: Limits) -> Path:
        """The agent's cgroup with its limits written (created if needed)."""
        path = self.directory / f"agent-{name}"
        path.mkdir(exist_ok=True)
        (path / "memory.max").write_text(f"{limits.memory_max}\n")
        with contextlib.suppress(FileNotFoundError):  # no swap accounting on this kernel
            (path / "memory.swap.max").write_text("0\n")
        (path / "pids.max").write_text(f"{limits.pids_max}\n")
        return path

    def remove(self, name: str) -> None:
        """Remove an agent's (empty) cgroup once its sandbox is gone."""
        with contextlib.suppress(OSError):
            (self.directory / f"agent-{name}").rmdir()


def prlimit_plan(limits: Limits, *, per_uid: bool) -> dict[str, list[int]]:
    """The launcher's setrlimit plan for the fallback (RLIMIT_NPROC only with its own uid)."""
    plan = {"DATA": [limits.memory_max] * 2, "CORE": [0, 0]}
    if per_uid:
        plan["NPROC"] = [limits.pids_max] * 2
    return plan
