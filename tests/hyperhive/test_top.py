"""`hyperhive top`: the live view shows the actor tree and follows the event stream."""

from __future__ import annotations

import io
from pathlib import Path

import trio
from rich.console import Console

from hyperhive import wire
from hyperhive.testing import FakeWallClock, open_test_hive
from hyperhive.top import TopView, run_top


def _event(seq: int, body: str) -> wire.Event:
    message = wire.Message(seq, "alice", "bob", body, 1.0)
    return wire.Event(seq, 1.0, wire.MessageSent(message))


def test_the_view_never_repeats_an_event_the_history_showed() -> None:
    view = TopView(events=3)
    view.add_events([_event(1, "one"), _event(2, "two")])
    view.add_events([_event(2, "two"), _event(3, "three"), _event(4, "four")])
    assert [e.seq for e in view.events] == [2, 3, 4]


async def test_top_shows_the_tree_and_new_messages_live(short_tmp: Path) -> None:
    output = io.StringIO()
    console = Console(file=output, width=140, force_terminal=True, color_system=None)
    with trio.fail_after(20):
        async with (
            open_test_hive(short_tmp / "s", clock=FakeWallClock(), agents=("bob",)) as hive,
            trio.open_nursery() as nursery,
        ):
            nursery.start_soon(run_top, hive.paths, console)
            async with hive.operator() as operator:
                await operator.call(wire.Send(to="bob", body="watch this"))
            # A real terminal polls; so does this test, bounded by fail_after above.
            while "watch this" not in output.getvalue() or "broker" not in output.getvalue():
                await trio.sleep(0.05)
            nursery.cancel_scope.cancel()
    screen = output.getvalue()
    assert "operator → bob: watch this" in screen
    assert "bob-socket" in screen
