"""Turn benchmark: how long a wake takes to reach the model, and the reply the operator.

    python -m bench.turn [--turns 50] [--warmup 3]

Everything is real but the model: the daemon (`hyperhive serve`, no containers) in one process,
the harness (`hyperhive agent serve`) in another, the `claude` it runs (bundled with
claude-agent-sdk), the `hyperhive agent mcp` relay claude starts and the SDK MCP server it
reaches inside the harness. The model is the
scripted Messages API (`hyperhive.testing.model_api`) on loopback, in this process, which
answers a ``ping-N`` prompt with an ``mcp__hive__send`` to the operator (``pong-N``) and the
tool result with "done.".

Per turn, from just before the operator's ``send`` is written:

- first request: until the scripted API has read the model request holding ``ping-N``;
- reply: until the daemon's event feed shows ``pong-N`` stored in the operator's inbox.

Warm: one harness with ``--claude-mode warm`` (idle release off); the first turns start the
process and are not counted. Cold: ``--claude-mode cold``, a new claude (resuming the session)
for every turn, which is also what the first wake after an idle release costs. Then the
resident memory of the warm agent while idle (harness + claude + MCP server, RSS and PSS), the
time the MCP server takes to answer ``initialize``, and the harness's start-up time: spawn to
its "serving" line, connected to the daemon with its in-flight mail requeued, over 20 starts
(the bytecode of hyperhive's packages is written first, as the bwrap backend does).

The last line is the summary docs/performance.md and docs/turn-loop.md quote.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from hyperhive import wire
from hyperhive.agent.claude import find_claude
from hyperhive.agent.mcp_server import open_mcp_server
from hyperhive.agent.serve import READY_MARKER
from hyperhive.client import open_client
from hyperhive.config import StatePaths
from hyperhive.containers.mounts import compile_runtime
from hyperhive.testing import DaemonProcess
from hyperhive.testing.model_api import ApiRequest, ModelAPI, ToolCall, open_model_api
from hyperhive.testing.procs import spawn_harness

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

AGENT = "alice"


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def _ms(values: list[float], fraction: float) -> float:
    return _percentile(values, fraction) * 1000


def _ping(request: ApiRequest) -> ToolCall:
    number = request.last_user_text.split("ping-", 1)[1].split()[0]
    return ToolCall("mcp__hive__send", {"to": "operator", "body": f"pong-{number}"}, text="")


class Harness:
    """One `hyperhive agent serve` process and the claude / MCP processes under it."""

    def __init__(self, process: trio.Process, state: Path, started: float) -> None:
        self.process = process
        self.state = state
        self.startup = started

    def turns(self) -> int:
        path = self.state / "hyperhive-turn-stats.sqlite"
        if not path.exists():
            return 0
        import sqlite3

        with contextlib.closing(sqlite3.connect(path)) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM turns").fetchone()[0])


@contextlib.asynccontextmanager
async def open_harness(
    root: Path, api: ModelAPI, mode: str, name: str | None = None
) -> AsyncIterator[Harness]:
    state = root / (name or f"{AGENT}-{mode}")
    (state / "home").mkdir(parents=True)
    env = {
        **os.environ,
        "HYPERHIVE_AGENT": AGENT,
        "HYPERHIVE_SOCKET": str(StatePaths(root / "hive").agent_socket(AGENT)),
        "HYPERHIVE_AGENT_STATE": str(state),
        "HOME": str(state / "home"),
        "ANTHROPIC_BASE_URL": api.base_url,
        "ANTHROPIC_API_KEY": "scripted-not-a-key",
        "CLAUDE_CODE_MAX_RETRIES": "0",
        "HYPERHIVE_CLAUDE_MODE": mode,
        "HYPERHIVE_CLAUDE_IDLE_RELEASE": "0",
        "HYPERHIVE_CLAUDE_MAX_TURNS": "0",
    }
    env.pop("CLAUDE_CODE_OAUTH_TOKEN", None)
    begun = trio.current_time()
    process = await spawn_harness(env)
    ready = trio.Event()
    log: list[str] = []

    async def drain() -> None:
        assert process.stderr is not None
        buffer = b""
        while chunk := await process.stderr.receive_some(65536):
            *lines, buffer = (buffer + chunk).split(b"\n")
            for line in lines:
                log.append(line.decode(errors="replace"))
                if READY_MARKER in log[-1]:
                    ready.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(drain)
        try:
            with trio.fail_after(60):
                await ready.wait()
            yield Harness(process, state, trio.current_time() - begun)
        except BaseException:
            print("\n".join(log[-30:]), file=sys.stderr)
            raise
        finally:
            with trio.move_on_after(10, shield=True):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, 15)
                await process.wait()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, 9)
            nursery.cancel_scope.cancel()


def _asked(body: str, since: float) -> Callable[[ApiRequest], bool]:
    """Matches the model request carrying `body`, made after `since`."""
    return lambda request: request.received_at >= since and body in request.last_user_text


async def _turns(
    root: Path, api: ModelAPI, harness: Harness, count: int, first: int
) -> tuple[list[float], list[float]]:
    """Run `count` turns one after another; (first-request, reply) latencies in seconds."""
    first_request: list[float] = []
    reply: list[float] = []
    paths = StatePaths(root / "hive")
    async with (
        open_client(paths.admin_socket) as feed_client,
        open_client(paths.admin_socket) as operator,
    ):
        feed = await feed_client.subscribe()
        for number in range(first, first + count):
            done_before = harness.turns()
            body = f"ping-{number} please"
            started = trio.current_time()
            await operator.call(wire.Send(to=AGENT, body=body))
            async for event in feed:
                payload = event.payload
                if (
                    isinstance(payload, wire.MessageSent)
                    and payload.message.recipient == "operator"
                    and payload.message.body == f"pong-{number}"
                ):
                    reply.append(trio.current_time() - started)
                    break
            request = await api.wait_for(_asked(body, started))
            first_request.append(request.received_at - started)
            while harness.turns() <= done_before:  # the turn ends: result, ack, stats row
                await trio.sleep(0.005)
    return first_request, reply


def _tree(pid: int) -> list[int]:
    """`pid` and every process below it."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo += children.get(current, [])
    return found


def _memory(pid: int) -> dict[str, tuple[float, float]]:
    """Per role (harness, claude, mcp): (RSS MiB, PSS MiB), summed over its processes."""
    roles: dict[str, tuple[float, float]] = {}
    for member in _tree(pid):
        try:
            cmdline = Path(f"/proc/{member}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            rollup = Path(f"/proc/{member}/smaps_rollup").read_text()
        except OSError:
            continue
        fields = {
            line.split(":")[0]: int(line.split()[1]) / 1024
            for line in rollup.splitlines()
            if line.split(":")[0] in ("Rss", "Pss")
        }
        role = (
            "mcp" if "agent mcp" in cmdline else "harness" if "agent serve" in cmdline else "claude"
        )
        rss, pss = roles.get(role, (0.0, 0.0))
        roles[role] = (rss + fields.get("Rss", 0.0), pss + fields.get("Pss", 0.0))
    return roles


async def _mcp_ready_times(socket: Path, samples: int) -> list[float]:
    """Spawn `hyperhive agent mcp` (the relay claude starts) in front of a harness's SDK server
    and time its answer to `initialize`, `samples` times."""
    params = {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "bench", "version": "0"},
    }
    request = json.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params})
    times = []
    async with open_mcp_server(socket, manager=False) as mcp_socket:
        for _ in range(samples):
            begun = time.monotonic()
            process = await trio.lowlevel.open_process(
                [sys.executable, "-m", "hyperhive", "agent", "mcp", "--connect", str(mcp_socket)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
            assert process.stdin is not None
            assert process.stdout is not None
            await process.stdin.send_all(request.encode() + b"\n")
            answer = await wire.LineReader(process.stdout).read_line() or b""
            times.append(time.monotonic() - begun)
            await process.stdin.aclose()
            with trio.fail_after(10):
                await process.wait()
            if b'"protocolVersion"' not in answer:
                raise RuntimeError(f"agent mcp did not answer initialize: {answer!r}")
    return times


async def _bench(root: Path, turns: int, warmup: int) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    async with open_model_api() as api:
        api.on("ping-", _ping)
        async with open_client(StatePaths(root / "hive").admin_socket) as operator:
            await operator.call(wire.RegisterAgent(name=AGENT))
        for offset, mode in enumerate(("warm", "cold")):
            async with open_harness(root, api, mode) as harness:
                base = offset * 100_000  # every ping number unique across both runs
                await _turns(root, api, harness, warmup, base)  # start claude, settle
                first, reply = await _turns(root, api, harness, turns, base + warmup)
                figures[mode] = (first, reply)
                if mode == "warm":
                    await trio.sleep(2.0)  # idle: nothing but the warm processes
                    figures["memory"] = _memory(harness.process.pid)
        agent_socket = StatePaths(root / "hive").agent_socket(AGENT)
        figures["mcp"] = await _mcp_ready_times(agent_socket, 20)
        figures["startup"] = await _startup_times(root, api, 20)
    return figures


async def _startup_times(root: Path, api: ModelAPI, samples: int) -> list[float]:
    """Start a harness `samples` times, each to its ready line, then stop it."""
    times = []
    for number in range(samples):
        async with open_harness(root, api, "warm", name=f"{AGENT}-start-{number}") as harness:
            times.append(harness.startup)
    return times


def run(turns: int, warmup: int) -> int:
    find_claude()
    compile_runtime()
    root = Path(tempfile.mkdtemp(prefix="hh-turn-", dir="/tmp"))
    try:
        with DaemonProcess(root / "hive"):
            figures = trio.run(_bench, root, turns, warmup)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    mcp: list[float] = figures["mcp"]
    memory: dict[str, tuple[float, float]] = figures["memory"]
    rss = sum(r for r, _ in memory.values())
    pss = sum(p for _, p in memory.values())
    parts = " + ".join(f"{role} {memory[role][0]:.0f}" for role in sorted(memory))
    print(f"turns: {turns} per mode after {warmup} warm-up turns; machine: {os.cpu_count()} cores")
    print(
        f"hyperhive agent mcp (relay -> harness's MCP server) ready for initialize: "
        f"p50 {_ms(mcp, 0.5):.0f} ms (20 spawns)"
    )
    startup: list[float] = figures["startup"]
    print(
        f"harness start-up (spawn -> serving): p50 {_ms(startup, 0.5):.0f} ms "
        f"p99 {_ms(startup, 0.99):.0f} ms ({len(startup)} starts)"
    )
    for mode in ("warm", "cold"):
        first, reply = figures[mode]
        print(
            f"{mode}: wake -> first model request p50 {_ms(first, 0.5):.0f} ms "
            f"p99 {_ms(first, 0.99):.0f} ms; wake -> reply delivered p50 {_ms(reply, 0.5):.0f} ms "
            f"p99 {_ms(reply, 0.99):.0f} ms"
        )
    print(f"warm idle agent: RSS {parts} = {rss:.0f} MiB (PSS {pss:.0f} MiB)")
    warm_first, warm_reply = figures["warm"]
    _, cold_reply = figures["cold"]
    print(
        f"turn: warm first-request p50 {_ms(warm_first, 0.5):.0f} ms, "
        f"reply p50 {_ms(warm_reply, 0.5):.0f} ms; cold reply p50 {_ms(cold_reply, 0.5):.0f} ms"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.turn", description=__doc__)
    parser.add_argument("--turns", type=int, default=50, help="measured turns per mode")
    parser.add_argument("--warmup", type=int, default=3, help="uncounted turns first")
    args = parser.parse_args(argv)
    return run(max(1, args.turns), max(1, args.warmup))


if __name__ == "__main__":
    sys.exit(main())
