"""Broker benchmark: the real daemon in one process, this load generator in another.

    python -m bench.broker [--agents 64] [--seconds 5] [--samples 300]

Phases, all on one state directory (so one disk):

1. throughput: every agent, on its own agent socket, sends to the next agent as fast as its
   connection allows (request, durable commit, reply) while a second connection per agent
   behaves like a harness: it long-polls ``recv(max=32)``, spends ``--turn-ms`` on the "turn"
   (an agent's real turn takes seconds; the default 20 ms is far more aggressive), then
   ``ack_turn``. Counted: messages delivered to and acked by their recipient per second, after
   a warm-up second.
2. wake latency: one agent parks a ``recv(wait_seconds=30)``; another sends to it; measured from
   just before the send is written until the parked recv's answer is read (p50, p99).
3. raw sqlite: one-row commits per second with the store's own pragmas
   (WAL + synchronous=FULL), on a scratch file in the same directory.

The last line is the summary the README and docs/performance.md quote.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import trio

from hyperhive import wire
from hyperhive.core.broker_store import raw_commit_rate
from hyperhive.testing import DaemonProcess

WARMUP = 1.0


class Conn:
    """A minimal pipelining client: pre-encoded request lines in, raw response lines out."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.reader = wire.LineReader(stream, max_bytes=64 * wire.MAX_LINE_BYTES)

    @classmethod
    async def open(cls, path: Path) -> Conn:
        return cls(await trio.open_unix_socket(os.fspath(path)))

    async def request(self, line: bytes) -> bytes:
        return (await self.pipeline([line]))[0]

    async def pipeline(self, lines: list[bytes]) -> list[bytes]:
        """Write every request at once, then read one answer per request, in order."""
        await self.stream.send_all(b"".join(lines))
        answers = []
        for line in lines:
            answer = await self.reader.read_line()
            if answer is None or b'"ok":true' not in answer:
                raise RuntimeError(f"daemon refused {line!r}: {answer!r}")
            answers.append(answer)
        return answers


async def _register(paths_root: Path, names: list[str]) -> None:
    conn = await Conn.open(paths_root / "admin.sock")
    for name in names:
        await conn.request(wire.encode_request(wire.RegisterAgent(name)))
    await conn.stream.aclose()


def _socket(root: Path, name: str) -> Path:
    return root / "agents" / name / "run" / "hive.sock"


async def _throughput(
    root: Path, names: list[str], seconds: float, turn: float, depth: int
) -> float:
    delivered = 0
    counting = False

    async def sender(me: str, peer: str) -> None:
        conn = await Conn.open(_socket(root, me))
        lines = [wire.encode_request(wire.Send(to=peer, body=f"hello {peer}, from {me}"))] * depth
        while True:
            await conn.pipeline(lines)

    async def receiver(me: str) -> None:
        nonlocal delivered
        conn = await Conn.open(_socket(root, me))
        recv = wire.encode_request(wire.Recv(wait_seconds=1.0, max=32))
        ack = wire.encode_request(wire.AckTurn())
        got = len(json.loads(await conn.request(recv))["messages"])
        while True:
            if got:
                await trio.sleep(turn)
                # End the turn and ask for the next batch in one round trip.
                answer = (await conn.pipeline([ack, recv]))[1]
                if counting:
                    delivered += got
            else:
                answer = await conn.request(recv)
            got = len(json.loads(answer)["messages"])

    async with trio.open_nursery() as nursery:
        for index, name in enumerate(names):
            nursery.start_soon(sender, name, names[(index + 1) % len(names)])
            nursery.start_soon(receiver, name)
        await trio.sleep(WARMUP)
        counting, started = True, trio.current_time()
        await trio.sleep(seconds)
        elapsed = trio.current_time() - started
        counting = False
        rate = delivered / elapsed
        nursery.cancel_scope.cancel()
    return rate


async def _wake_latency(root: Path, listener: str, sender: str, samples: int) -> list[float]:
    waiting = await Conn.open(_socket(root, listener))
    sending = await Conn.open(_socket(root, sender))
    recv = wire.encode_request(wire.Recv(wait_seconds=30.0, max=1))
    ack = wire.encode_request(wire.AckTurn())
    send = wire.encode_request(wire.Send(to=listener, body="ping"))
    # Drain leftovers from the throughput phase so every recv below really parks.
    while json.loads(await waiting.request(wire.encode_request(wire.Recv(max=32))))["messages"]:
        await waiting.request(ack)
    latencies: list[float] = []
    for _ in range(samples):
        await waiting.stream.send_all(recv)
        await trio.sleep(0.002)  # let the recv reach the broker and park
        started = time.perf_counter()
        await sending.stream.send_all(send)
        answer = await waiting.reader.read_line()
        latencies.append(time.perf_counter() - started)
        if answer is None or b'"body":"ping"' not in answer:
            raise RuntimeError(f"parked recv answered {answer!r}")
        await sending.reader.read_line()
        await waiting.request(ack)
    return latencies


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def run(
    agents: int,
    seconds: float,
    samples: int,
    turn_ms: float,
    depth: int,
    directory: Path | None,
) -> str:
    """Run all three phases and return the summary line."""
    root = Path(tempfile.mkdtemp(prefix="hhb-", dir=directory or "/tmp"))
    names = [f"a{index}" for index in range(agents)]
    # The latency phase gets agents of its own: sends still in flight from the throughput phase
    # (whose connections were cut mid-pipeline) must not land in its inboxes.
    probes = ["waiter", "pinger"]
    with DaemonProcess(root):
        trio.run(_register, root, names + probes)
        rate = trio.run(_throughput, root, names, seconds, turn_ms / 1000, depth)
        latencies = trio.run(_wake_latency, root, probes[0], probes[1], samples)
    raw = raw_commit_rate(root / "raw-probe.sqlite", seconds=2.0)
    p50, p99 = (_percentile(latencies, f) * 1000 for f in (0.50, 0.99))
    print(f"agents: {agents}, state dir: {root}", file=sys.stderr)
    print(
        f"end-to-end delivered+acked: {rate:,.0f} msg/s over {seconds:g} s "
        f"(turn {turn_ms:g} ms, {depth} pipelined sends per agent)"
    )
    print(f"wake latency: p50 {p50:.2f} ms, p99 {p99:.2f} ms over {samples} samples")
    print(f"raw sqlite one-row synchronous=FULL commits: {raw:,.0f}/s")
    return (
        f"broker: {rate:.0f} msg/s, wake p50 {p50:.2f} ms p99 {p99:.2f} ms, "
        f"{rate / raw:.2f}x raw sqlite commit"
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point for `python -m bench.broker`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--turn-ms", type=float, default=20.0, help="simulated turn length")
    parser.add_argument(
        "--pipeline", type=int, default=16, help="sends each agent writes before reading answers"
    )
    parser.add_argument("--dir", type=Path, default=None, help="where the state dir goes")
    args = parser.parse_args(argv)
    print(run(args.agents, args.seconds, args.samples, args.turn_ms, args.pipeline, args.dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
