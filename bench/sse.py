"""SSE fan-out benchmark: the dashboard's event stream to many browsers at once.

    python -m bench.sse [--clients 100] [--rate 100] [--seconds 15]

The real daemon (`hyperhive serve --backend none`, dashboard on a free loopback port) runs in
its own process; this process opens `--clients` streams on `/dashboard/stream` plus one
*stalled* client (a tiny receive buffer, and it stops reading after the hello), then sends
`--rate` messages a second for `--seconds` through the admin socket to a registered agent that
never reads them. Each message is one `sent` event on every stream.

Measured, for the reading clients: events delivered per second in total, whether every event
reached every client (no gap, none missing), and the delivery latency from the hub stamping the
event (`at`, wall clock, same machine) to the client reading its frame (p50, p99). The stalled
client must then find a `gap` frame in what it was sent, and the others must not have slowed.

The last line is the summary docs/performance.md quotes.
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import sys
import tempfile
import time
from pathlib import Path

import trio

from hyperhive import wire
from hyperhive.testing import DaemonProcess, run_cli

_AT = re.compile(rb'"at":([0-9.]+)')
_SEQ = re.compile(rb'"seq":([0-9]+)')
_BODY = b'"body":"bench '


class Client:
    """One stream reader; records the latency of every bench event it gets."""

    def __init__(self, port: int, *, stalled: bool = False) -> None:
        self.port = port
        self.stalled = stalled
        self.latencies: list[float] = []
        self.seqs: list[int] = []
        self.gaps = 0
        self.hello = trio.Event()
        self.stream: trio.SocketStream | None = None

    async def connect(self) -> None:
        sock = trio.socket.socket()
        if self.stalled:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        await sock.connect(("127.0.0.1", self.port))
        self.stream = trio.SocketStream(sock)
        request = f"GET /dashboard/stream HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n\r\n"
        await self.stream.send_all(request.encode())

    async def run(self, done: trio.Event) -> None:
        assert self.stream is not None
        buffer = b""
        while not done.is_set():
            if self.stalled and self.hello.is_set():
                await done.wait()
                break
            chunk = await self.stream.receive_some(1 << 16)
            if not chunk:
                return
            now = time.time()
            buffer += chunk
            frames = buffer.split(b"\n\n")
            buffer = frames.pop()
            for frame in frames:
                self._frame(frame, now)

    def _frame(self, frame: bytes, now: float) -> None:
        if b'"kind":"hello"' in frame:
            self.hello.set()
        elif b'"kind":"gap"' in frame:
            self.gaps += 1
        elif _BODY in frame:
            at, seq = _AT.search(frame), _SEQ.search(frame)
            if at and seq:
                self.latencies.append(now - float(at.group(1)))
                self.seqs.append(int(seq.group(1)))

    async def drain(self, seconds: float) -> None:
        """For the stalled client, afterwards: read what it was sent, looking for the gap."""
        assert self.stream is not None
        buffer = b""
        with trio.move_on_after(seconds):
            while True:
                chunk = await self.stream.receive_some(1 << 16)
                if not chunk:
                    break
                buffer += chunk
                *frames, buffer = buffer.split(b"\n\n")
                for frame in frames:
                    self._frame(frame, time.time())
                if self.gaps:
                    break


async def _send_load(admin: Path, rate: int, seconds: float) -> int:
    """Send `rate` messages a second, paced every 10 ms; answers are read concurrently."""
    stream = await trio.open_unix_socket(str(admin))
    reader = wire.LineReader(stream)
    tick = 0.01
    total = int(rate * seconds)
    start = trio.current_time()

    async def read_answers() -> None:
        for _ in range(total):
            answer = await reader.read_line()
            assert answer is not None
            assert b'"ok":true' in answer, answer

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read_answers)
        sent, ticks = 0, 0
        while sent < total:
            ticks += 1
            due = min(total, round(rate * tick * ticks))
            lines = [
                wire.encode_request(wire.Send(to="sink", body=f"bench {i}"))
                for i in range(sent, due)
            ]
            await stream.send_all(b"".join(lines))
            sent = due
            await trio.sleep_until(start + tick * ticks)
    await stream.aclose()
    return total


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def bench(
    port: int, admin: Path, clients: int, rate: int, seconds: float
) -> dict[str, float]:
    readers = [Client(port) for _ in range(clients)]
    stalled = Client(port, stalled=True)
    done = trio.Event()
    async with trio.open_nursery() as nursery:
        for client in [*readers, stalled]:
            await client.connect()
            nursery.start_soon(client.run, done)
        with trio.fail_after(30):
            for client in [*readers, stalled]:
                await client.hello.wait()
        started = time.monotonic()
        sent = await _send_load(admin, rate, seconds)
        with trio.move_on_after(10):  # let the tail arrive
            while min(len(c.seqs) for c in readers) < sent:
                await trio.sleep(0.05)
        elapsed = time.monotonic() - started
        done.set()
        nursery.cancel_scope.cancel()
    await stalled.drain(5.0)
    latencies = [x for c in readers for x in c.latencies]
    complete = sum(len(set(c.seqs)) == sent and c.gaps == 0 for c in readers)
    return {
        "clients": clients,
        "sent": sent,
        "delivered": len(latencies),
        "events_per_second": len(latencies) / elapsed,
        "complete_clients": complete,
        "p50_ms": 1000 * _pct(latencies, 0.50),
        "p99_ms": 1000 * _pct(latencies, 0.99),
        "max_ms": 1000 * max(latencies, default=float("nan")),
        "stalled_gaps": stalled.gaps,
        "stalled_events": len(stalled.seqs),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sse")
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--rate", type=int, default=100, help="messages (events) per second")
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="hh-bench-sse-", dir="/tmp") as tmp:
        state = Path(tmp) / "hive"
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        env = {"HYPERHIVE_DASHBOARD": f"127.0.0.1:{port}"}
        with DaemonProcess(state, "--backend", "none", env=env) as daemon:
            assert run_cli(state, "register", "sink").returncode == 0, daemon.log
            figures = trio.run(
                bench, port, state / "admin.sock", args.clients, args.rate, args.seconds
            )
    print(json.dumps(figures, indent=2))
    ok = (
        figures["complete_clients"] == args.clients
        and figures["events_per_second"] >= 5000
        and figures["p99_ms"] < 50
        and figures["stalled_gaps"] >= 1
    )
    print(
        f"sse: {args.clients} clients, {figures['events_per_second']:.0f} events/s delivered, "
        f"p50 {figures['p50_ms']:.1f} ms, p99 {figures['p99_ms']:.1f} ms, "
        f"{figures['complete_clients']}/{args.clients} clients got every event, "
        f"stalled client gap markers: {figures['stalled_gaps']} "
        f"({'ok' if ok else 'BELOW TARGET'})"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
