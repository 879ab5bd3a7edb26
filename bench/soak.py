"""Soak: the real daemon with real agents and light traffic, for minutes. Does the hive stay up?

    python -m bench.soak [--agents 5] [--minutes 10] [--backend bwrap]
    just soak

`hyperhive serve` runs in its own process on a fresh state directory with the default backend
(bwrap where it works) and spawns ``--agents`` agents running the real harness (`hyperhive
agent serve`). Then, once a second, the operator sends one message to an agent in turn, one
agent sends one to another through its own socket, and the operator reads `list`; every ten
seconds it also reads `status` and `history` and asks each agent's socket `whoami`. That is
light, steady use, not load (`bench.broker` is the load test).

At the end it reports whether every agent stayed up (still running, the same harness process as
at the start, no crash event), how many requests were answered, and the daemon's resident
memory and open descriptors at the start and at the end. The last line is the summary quoted in
docs/performance.md. Exit status 1 if any agent did not stay up or any request failed.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import attrs
import trio

from hyperhive import wire
from hyperhive.client import open_client
from hyperhive.config import StatePaths
from hyperhive.errors import HyperhiveError
from hyperhive.testing import DaemonProcess, run_cli
from hyperhive.testing.procs import harness_pids


@attrs.define
class Tally:
    answered: int = 0
    failed: list[str] = attrs.Factory(list)


def resources(pid: int) -> tuple[float, int]:
    """(resident memory in MiB, open descriptors) of process `pid`."""
    rss_kib = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss_kib = int(line.split()[1])
    return rss_kib / 1024, len(os.listdir(f"/proc/{pid}/fd"))


async def _call(tally: Tally, path: Path, request: wire.Request[Any]) -> None:
    try:
        with trio.fail_after(30):
            async with open_client(path) as client:
                await client.call(request)
        tally.answered += 1
    except (HyperhiveError, OSError, trio.TooSlowError) as exc:
        tally.failed.append(f"{type(request).__name__}: {exc}")


async def traffic(paths: StatePaths, names: list[str], seconds: float, tally: Tally) -> None:
    """The light, steady use described in the module docstring, for `seconds`."""
    turn = itertools.count()
    deadline = trio.current_time() + seconds
    while trio.current_time() < deadline:
        n = next(turn)
        to, sender = names[n % len(names)], names[(n + 1) % len(names)]
        await _call(tally, paths.admin_socket, wire.Send(to=to, body=f"op #{n}"))
        body = f"{sender} -> {to} #{n}"
        await _call(tally, paths.agent_socket(sender), wire.Send(to=to, body=body))
        await _call(tally, paths.admin_socket, wire.ListContainers())
        if n % 10 == 0:
            await _call(tally, paths.admin_socket, wire.GetStatus())
            await _call(tally, paths.admin_socket, wire.History(limit=200))
            for name in names:
                await _call(tally, paths.agent_socket(name), wire.Whoami())
        await trio.sleep(1.0)


async def crash_events(paths: StatePaths) -> list[str]:
    async with open_client(paths.admin_socket) as operator:
        reply = await operator.call(wire.History(limit=1000))
    return [
        f"{e.payload.name} exit {e.payload.exit_code}"
        for e in reply.events
        if isinstance(e.payload, wire.ContainerCrashed)
    ]


def run(agents: int, minutes: float, backend: str, directory: Path | None) -> tuple[str, bool]:
    """Run the soak; returns the summary line and whether everything stayed up."""
    root = Path(tempfile.mkdtemp(prefix="hhs-", dir=directory or "/tmp"))
    paths = StatePaths(root)
    names = [f"soak{index}" for index in range(agents)]
    tally = Tally()
    try:
        with DaemonProcess(root, "--backend", backend, "--no-manager") as daemon:
            for name in names:
                spawned = run_cli(root, "spawn", name, timeout=60)
                if spawned.returncode != 0:
                    raise RuntimeError(f"spawn {name} failed: {spawned.stderr}")
            deadline = time.monotonic() + 60
            while not all(harness_pids(name, daemon.pid) for name in names):
                if time.monotonic() > deadline:
                    raise RuntimeError("the agents' harnesses did not start within 60 s")
                time.sleep(0.2)
            started = {name: harness_pids(name, daemon.pid) for name in names}
            rss0, fds0 = resources(daemon.pid)
            print(
                f"soak: {agents} agents ({backend}), {minutes:g} min; daemon pid {daemon.pid}: "
                f"{rss0:.1f} MiB, {fds0} fds at start",
                file=sys.stderr,
            )
            trio.run(traffic, paths, names, minutes * 60, tally)
            rss1, fds1 = resources(daemon.pid)
            rows = json.loads(run_cli(root, "list", "--json").stdout)["containers"]
            running = {row["name"] for row in rows if row["state"] == "running"}
            same = {name for name in names if harness_pids(name, daemon.pid) == started[name]}
            crashes = trio.run(crash_events, paths)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    up = [name for name in names if name in running and name in same]
    ok = len(up) == agents and not crashes and not tally.failed
    for failure in tally.failed[:10]:
        print(f"failed: {failure}", file=sys.stderr)
    for crash in crashes:
        print(f"crashed: {crash}", file=sys.stderr)
    summary = (
        f"soak: {len(up)}/{agents} agents stayed up for {minutes:g} min ({backend}), "
        f"{tally.answered} requests answered, {len(tally.failed)} failed; daemon RSS "
        f"{rss0:.1f} -> {rss1:.1f} MiB, fds {fds0} -> {fds1}"
    )
    return summary, ok


def main(argv: list[str] | None = None) -> int:
    """Entry point for `python -m bench.soak`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=5)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--backend", default="bwrap", help="bwrap (default) or process")
    parser.add_argument("--dir", type=Path, default=None, help="where the state dir goes")
    args = parser.parse_args(argv)
    summary, ok = run(args.agents, args.minutes, args.backend, args.dir)
    print(summary)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
