"""`hyperhive top`: a live terminal view of the hive (rich `Live`).

Two connections to the admin socket: one subscribed to the event stream, one asking `status`
every `refresh` seconds. Events follow the subscribe / history / dedupe rule (subscribe first,
read history second, drop feed events the history already held), so the pane neither skips nor
repeats one; a gap marker shows where this terminal fell behind.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

import trio
from rich.console import Group
from rich.live import Live
from rich.panel import Panel
from rich.text import Text

from hyperhive import wire
from hyperhive.client import open_client
from hyperhive.tui import event_line, status_table

if TYPE_CHECKING:
    from rich.console import Console

    from hyperhive.client import Client
    from hyperhive.config import StatePaths

__all__ = ["TopView", "run_top"]


class TopView:
    """What the screen shows: the latest status and the newest events (pure, no I/O)."""

    def __init__(self, events: int = 15) -> None:
        self.status: wire.StatusReply | None = None
        self.events: deque[wire.Event] = deque(maxlen=events)
        self.seen_seq = 0

    def add_events(self, events: list[wire.Event] | tuple[wire.Event, ...]) -> None:
        """Append events newer than anything shown (older ones were in the history already)."""
        for event in events:
            if event.seq > self.seen_seq:
                self.events.append(event)
                self.seen_seq = event.seq

    def render(self) -> Group:
        """The whole screen."""
        tree = status_table(self.status) if self.status else Text("waiting for status…")
        lines = [event_line(event) for event in self.events] or [Text("no events yet", "dim")]
        return Group(tree, Panel(Group(*lines), title="events", title_align="left"))


async def run_top(paths: StatePaths, console: Console, *, refresh: float = 1.0) -> None:
    """Show the live view until cancelled (Ctrl-C).

    Raises:
        NotRunning: no daemon on the admin socket.
    """
    view = TopView()
    async with open_client(paths.admin_socket) as feed, open_client(paths.admin_socket) as query:
        stream = await feed.subscribe()
        view.add_events((await query.call(wire.History(limit=15))).events)
        with Live(view.render(), console=console, auto_refresh=False) as live:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_poll_status, query, view, live, refresh)
                async for event in stream:
                    view.add_events([event])
                    live.update(view.render(), refresh=True)


async def _poll_status(query: Client, view: TopView, live: Live, refresh: float) -> None:
    while True:
        view.status = await query.call(wire.GetStatus())
        live.update(view.render(), refresh=True)
        await trio.sleep(refresh)
