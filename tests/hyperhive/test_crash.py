"""Issue 3, point 7: SIGKILL the daemon under sustained traffic; no acknowledged send is lost.

A real `hyperhive serve` process, real agent sockets, several agents sending to each other and
receiving with `ack_turn`, as their harnesses would. Mid-traffic the daemon is killed with
SIGKILL (as far as its files are concerned, a power cut), restarted on the same state, and every
agent does what a harness does on start: `requeue_inflight`, then drain its inbox. Every
message whose `send` was acknowledged must then have been delivered to its recipient: once, or
again flagged `redelivered` because its first delivery was never acked.
"""

from __future__ import annotations

import random
from collections import defaultdict
from pathlib import Path

import attrs
import pytest
import trio

from hyperhive import wire
from hyperhive.client import Client, open_client
from hyperhive.config import StatePaths
from hyperhive.errors import HyperhiveError
from hyperhive.testing import DaemonProcess

pytestmark = pytest.mark.slow

AGENTS = ("ann", "ben", "cat", "dan")
TRAFFIC_SECONDS = 1.5  # real seconds of traffic before the kill: a real process forces it


@attrs.define
class Ledger:
    """What each side saw: the test's ground truth."""

    attempted: dict[str, tuple[str, str]] = attrs.Factory(dict)  # body -> (sender, recipient)
    acknowledged: dict[int, tuple[str, str, str]] = attrs.Factory(dict)  # id -> (from, to, body)
    deliveries: dict[str, list[wire.Delivery]] = attrs.Factory(lambda: defaultdict(list))
    running: set[str] = attrs.Factory(set)  # client tasks still talking to the daemon
    before_kill: int = 0
    running_at_kill: int = 0


async def sender(paths: StatePaths, me: str, ledger: Ledger) -> None:
    rng = random.Random(me)
    ledger.running.add(f"send-{me}")
    async with open_client(paths.agent_socket(me)) as client:
        for n in range(1_000_000):
            to = rng.choice([a for a in AGENTS if a != me])
            body = f"{me}->{to} #{n}"
            ledger.attempted[body] = (me, to)
            try:
                sent = await client.call(wire.Send(to=to, body=body))
            except (HyperhiveError, OSError):
                ledger.running.discard(f"send-{me}")
                return  # the daemon died under us; this send was never acknowledged
            ledger.acknowledged[sent.id] = (me, to, body)


async def receiver(paths: StatePaths, me: str, ledger: Ledger) -> None:
    rng = random.Random(f"recv-{me}")
    ledger.running.add(f"recv-{me}")
    async with open_client(paths.agent_socket(me)) as client:
        while True:
            try:
                got = await client.call(wire.Recv(wait_seconds=0.2, max=32))
                ledger.deliveries[me] += got.messages
                # Most turns end well; some "crash" (no ack), leaving leases in flight.
                if rng.random() < 0.8:
                    await client.call(wire.AckTurn())
            except (HyperhiveError, OSError):
                ledger.running.discard(f"recv-{me}")
                return


async def drain(client: Client, me: str, ledger: Ledger) -> None:
    """What a harness does when it starts: take back its leases, then work through its inbox."""
    await client.call(wire.RequeueInflight())
    while got := (await client.call(wire.Recv(max=32))).messages:
        ledger.deliveries[me] += got
        await client.call(wire.AckTurn())


async def run_traffic_then_kill(paths: StatePaths, daemon: DaemonProcess, ledger: Ledger) -> None:
    with trio.fail_after(60):
        async with open_client(paths.admin_socket) as admin:
            for name in AGENTS:
                await admin.call(wire.RegisterAgent(name=name))
        async with trio.open_nursery() as nursery:
            for name in AGENTS:
                nursery.start_soon(sender, paths, name, ledger)
                nursery.start_soon(receiver, paths, name, ledger)
            await trio.sleep(TRAFFIC_SECONDS)
            ledger.before_kill = len(ledger.acknowledged)
            ledger.running_at_kill = len(ledger.running)
            await trio.to_thread.run_sync(daemon.kill)
            # Every client now sees its connection die and stops on its own.


async def recover(paths: StatePaths, ledger: Ledger) -> None:
    with trio.fail_after(60):
        for name in AGENTS:
            async with open_client(paths.agent_socket(name)) as client:
                await drain(client, name, ledger)


def test_no_acknowledged_send_is_lost_when_the_daemon_is_killed(short_tmp: Path) -> None:
    paths = StatePaths(short_tmp)
    ledger = Ledger()

    daemon = DaemonProcess(short_tmp).start()
    try:
        trio.run(run_traffic_then_kill, paths, daemon, ledger)
    finally:
        daemon.kill()
    assert "Traceback" not in daemon.log
    assert ledger.before_kill > 50, "the traffic was sustained when the daemon died"
    # The kill landed mid-traffic: every client was still sending and receiving.
    assert ledger.running_at_kill == 2 * len(AGENTS)

    with DaemonProcess(short_tmp) as restarted:
        assert paths.agent_socket("ann").is_socket()
        trio.run(recover, paths, ledger)
    assert "Traceback" not in restarted.log

    for to in AGENTS:
        seen: dict[int, list[wire.Delivery]] = defaultdict(list)
        for delivery in ledger.deliveries[to]:
            seen[delivery.id].append(delivery)
        for id, (_, recipient, body) in ledger.acknowledged.items():
            if recipient != to:
                continue
            assert id in seen, f"acknowledged message #{id} {body!r} was lost"
        for id, copies in seen.items():
            first, *again = copies
            # What arrives is what was sent, by whom, to whom.
            assert ledger.attempted[first.body] == (first.sender, to)
            if id in ledger.acknowledged:
                assert ledger.acknowledged[id] == (first.sender, to, first.body)
            # A second copy is only ever a flagged redelivery of an unacked lease.
            assert [c.attempt for c in copies] == list(
                range(first.attempt, first.attempt + len(copies))
            )
            assert all(c.redelivered and c.body == first.body for c in again), copies
