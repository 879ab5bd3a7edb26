"""The shared test helpers let a failure inside their block out.

Every helper here wraps a test's body (`open_model_api`, `open_test_hive`, a harness, the
events bus, a conformance check...). If one of them swallowed an exception raised in its block
(say by awaiting in a cancelled scope on the way out, so that ``Cancelled`` replaces the
exception and the nursery absorbs it), every assertion inside it would pass whatever it
checked. Each test raises a marker in the block and wants it back, alone; nursery-owning helpers
may wrap it in an exception group.
"""

from __future__ import annotations

import contextlib
import socket
from typing import TYPE_CHECKING

import pytest
import trio
import trio.testing

from hyperhive.agent.events import open_event_bus
from hyperhive.agent.mcp_server import open_mcp_server
from hyperhive.testing import FakeWallClock, open_test_hive
from hyperhive.testing.agent import open_test_harness
from hyperhive.testing.conformance import FakeFaults, run_check
from hyperhive.testing.fake_containers import FakeBackend
from hyperhive.testing.model_api import Hold, open_model_api
from hyperhive.testing.turn_runner import ScriptedRunner

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from hyperhive.containers.base import ContainerBackend
    from hyperhive.testing.conformance import ConformanceContext, Faults

_TIMEOUT = 20


class Marker(Exception):
    """What the block raised."""


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


@contextlib.contextmanager
def the_marker_comes_out() -> Iterator[Marker]:
    marker = Marker("raised inside the block")
    try:
        yield marker
    except BaseException as exc:
        leaves = _leaves(exc)
        if leaves != [marker]:
            raise AssertionError(f"the block raised {marker!r}; out came {leaves!r}") from exc
    else:
        pytest.fail("the block raised an exception and the helper swallowed it")


async def test_open_model_api_lets_the_blocks_exception_out() -> None:
    with trio.fail_after(_TIMEOUT), the_marker_comes_out() as marker:
        async with open_model_api():
            raise marker


async def test_open_model_api_lets_it_out_while_a_request_is_held() -> None:
    with trio.fail_after(_TIMEOUT), the_marker_comes_out() as marker:
        async with open_model_api() as api:
            api.on("hold", Hold(trio.Event()))
            body = b'{"messages":[{"role":"user","content":"hold"}]}'
            head = f"POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-length: {len(body)}\r\n\r\n"
            stream = await trio.open_tcp_stream(api.host, api.port)
            async with stream:
                await stream.send_all(head.encode() + body)
                await api.wait_for(lambda r: "hold" in r.last_user_text)
                raise marker


async def test_open_model_api_on_a_given_socket_lets_it_out_and_closes_the_socket() -> None:
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen(8)
    with trio.fail_after(_TIMEOUT), the_marker_comes_out() as marker:
        async with open_model_api(listening):
            raise marker
    assert listening.fileno() == -1


async def test_open_model_api_still_stops_when_its_block_is_cancelled() -> None:
    with trio.fail_after(_TIMEOUT):
        with trio.CancelScope() as scope:
            async with open_model_api():
                scope.cancel()
                await trio.sleep_forever()
        assert scope.cancelled_caught


async def test_open_test_hive_and_its_clients_let_it_out(
    short_tmp: Path, autojump_clock: trio.testing.MockClock
) -> None:
    with trio.fail_after(_TIMEOUT), the_marker_comes_out() as marker:
        async with (
            open_test_hive(short_tmp / "hive", agents=("alice",)) as hive,
            hive.operator(),
        ):
            raise marker


async def test_open_test_harness_lets_it_out(
    short_tmp: Path, autojump_clock: trio.testing.MockClock
) -> None:
    with trio.fail_after(_TIMEOUT), the_marker_comes_out() as marker:
        async with open_test_hive(short_tmp / "hive", agents=("alice",)) as hive:
            runner = ScriptedRunner()
            state = short_tmp / "alice"
            async with open_test_harness(hive, "alice", state, runner, FakeWallClock()):
                raise marker


@pytest.mark.parametrize("history", [False, True], ids=["live-only", "with-history"])
async def test_open_event_bus_lets_it_out(
    short_tmp: Path, autojump_clock: trio.testing.MockClock, history: bool
) -> None:
    path = short_tmp / "events.sqlite" if history else None
    with trio.fail_after(_TIMEOUT), the_marker_comes_out() as marker:
        async with open_event_bus(path, FakeWallClock(), own_thread=False) as bus:
            bus.note("something")
            raise marker


async def test_open_mcp_server_lets_it_out(short_tmp: Path) -> None:
    with trio.fail_after(_TIMEOUT), the_marker_comes_out() as marker:
        async with open_mcp_server(short_tmp / "no-daemon.sock", manager=False):
            raise marker


async def test_a_conformance_check_that_fails_fails_the_run(short_tmp: Path) -> None:
    def make(root: Path) -> tuple[ContainerBackend, Faults]:
        backend = FakeBackend()
        return backend, FakeFaults(backend)

    with the_marker_comes_out() as marker:

        async def check(ctx: ConformanceContext) -> None:
            await ctx.running("alpha")
            raise marker

        await run_check(make, short_tmp, check)
