"""`hyperhive top`'s I/O: the daemon into the model, keys into commands, the model onto the
screen.

Two connections to the admin socket: one subscribed to the event feed, one for requests (the
rows, questions, history, actions, the followed log), shared under a lock because a `Client`
answers one request at a time. Events follow the subscribe / history / dedupe rule (subscribe
first, read history second, drop what the history held), so nothing is skipped or shown twice;
a gap in the feed reloads the rows. The approval queue is asked on connections of its own
(`HostSocketDesk`). Rows and approvals are reloaded every few seconds as well, so a missed
change heals.

Keys come from the terminal in cbreak mode (no echo, no line buffering, Ctrl-C still a
signal); each key goes to the model, and the command it returns is carried out here, its
outcome (or the daemon's sentence) shown on the status line. The screen is repainted when
something changed, at most twenty times a second, and once a second for the clock.

Cancellation: `run_top` runs until cancelled (Ctrl-C) or the `q` key; the terminal's mode and
screen are restored either way.
"""

from __future__ import annotations

import contextlib
import os
import signal
import termios
import tty
from typing import TYPE_CHECKING, Final, TypeVar

import trio
from rich.live import Live

from hyperhive import wire
from hyperhive.client import open_client
from hyperhive.errors import BadRequest, HyperhiveError, RemoteError
from hyperhive.top.approvals import HostSocketDesk
from hyperhive.top.keys import KeyDecoder
from hyperhive.top.model import (
    Answer,
    Approve,
    Command,
    Deny,
    Follow,
    Quit,
    Send,
    ShowTree,
    TopModel,
)
from hyperhive.top.screen import render

if TYPE_CHECKING:
    from collections.abc import Iterator

    from rich.console import Console

    from hyperhive.client import Client, Feed
    from hyperhive.config import StatePaths
    from hyperhive.top.approvals import ApprovalDesk

__all__ = ["run_top"]

_T = TypeVar("_T")
_TIMEOUT: Final = 15.0
_FRAME: Final = 0.05
_HISTORY: Final = 200
_LOG_LINES: Final = 400


async def run_top(
    paths: StatePaths,
    console: Console,
    *,
    refresh: float = 1.0,
    keys: int | None = None,
    desk: ApprovalDesk | None = None,
) -> None:
    """Show the live view until cancelled or quit.

    `keys`: the terminal to read keys from (None: a view without keys). `refresh`: seconds
    between log polls while following an agent; rows and approvals reload every 5 of them.

    Raises:
        NotRunning: no daemon on the admin socket.
        RemoteError: the daemon went away or stopped answering.
    """
    model = TopModel()
    desk = desk or HostSocketDesk(paths.admin_socket)
    async with (
        open_client(paths.admin_socket) as feed_conn,
        open_client(paths.admin_socket) as conn,
    ):
        daemon = _Daemon(conn)
        feed = await feed_conn.subscribe()
        await _reload(daemon, desk, model)
        history = await daemon.call(wire.History(limit=_HISTORY))
        for event in history.events:
            model.apply(event)
        screen = console.is_terminal
        with (
            _cbreak(keys),
            Live(
                render(model, height=console.height),
                console=console,
                screen=screen,
                auto_refresh=False,
            ) as live,
        ):
            painter = _Painter(live, model)
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(painter.run)
                    nursery.start_soon(_follow_feed, feed, daemon, desk, model, painter)
                    nursery.start_soon(_reload_every, 5 * refresh, daemon, desk, model, painter)
                    logs = _LogFollower(daemon, model, painter, refresh)
                    nursery.start_soon(logs.run)
                    if keys is not None:
                        scope = nursery.cancel_scope
                        actions = _Actions(daemon, desk, model, painter, logs, scope)
                        nursery.start_soon(_read_keys, keys, model, actions, painter)
                        nursery.start_soon(_repaint_on_resize, painter)
            except BaseExceptionGroup as group:
                raise _one_of(group) from None


def _one_of(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """What the user should see of the view's failure: Ctrl-C, else the daemon's sentence."""
    for kind in (KeyboardInterrupt, HyperhiveError):
        found: BaseException | None = group.subgroup(kind)
        while isinstance(found, BaseExceptionGroup):
            found = found.exceptions[0]
        if found is not None:
            return found
    return group


class _Daemon:
    """One request connection shared by the view's tasks, one request at a time."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._lock = trio.Lock()

    async def call(self, request: wire.Request[_T]) -> _T:
        async with self._lock:
            with trio.move_on_after(_TIMEOUT) as timer:
                return await self._client.call(request)
        assert timer.cancelled_caught
        # A reply may still arrive later: this connection can no longer pair them up.
        raise RemoteError(f"the daemon did not answer within {_TIMEOUT:.0f} s")


class _Painter:
    """Repaints when asked, at most `1 / _FRAME` times a second, and every second anyway."""

    def __init__(self, live: Live, model: TopModel) -> None:
        self._live = live
        self._model = model
        self._wanted = trio.Event()

    def request(self) -> None:
        self._wanted.set()

    async def run(self) -> None:
        while True:
            with trio.move_on_after(1.0):
                await self._wanted.wait()
            self._wanted = trio.Event()
            height = self._live.console.height
            self._live.update(render(self._model, height=height), refresh=True)
            await trio.sleep(_FRAME)


async def _reload(daemon: _Daemon, desk: ApprovalDesk, model: TopModel) -> None:
    views = await daemon.call(wire.ListContainers())
    model.load_agents(views.containers)
    questions = await daemon.call(wire.ListQuestions(limit=500))
    model.load_questions(questions.questions)
    rows, note = await desk.pending()
    model.load_approvals(rows, note)


async def _reload_every(
    seconds: float, daemon: _Daemon, desk: ApprovalDesk, model: TopModel, painter: _Painter
) -> None:
    while True:
        await trio.sleep(seconds)
        await _reload(daemon, desk, model)
        painter.request()


async def _follow_feed(
    feed: Feed, daemon: _Daemon, desk: ApprovalDesk, model: TopModel, painter: _Painter
) -> None:
    while True:
        try:
            event = await feed.__anext__()
        except StopAsyncIteration:
            model.connected = False
            painter.request()
            raise RemoteError("the daemon closed the event feed (did it stop?)") from None
        except BadRequest as exc:  # an event this version does not know: skip it
            model.note(f"skipped an event this top does not understand: {exc}", error=True)
            continue
        model.apply(event)
        if isinstance(event.payload, wire.EventGap):
            await _reload(daemon, desk, model)
        painter.request()


class _LogFollower:
    """Polls the followed agent's log every `refresh` seconds (and at once when it changes)."""

    def __init__(self, daemon: _Daemon, model: TopModel, painter: _Painter, refresh: float):
        self._daemon = daemon
        self._model = model
        self._painter = painter
        self._refresh = refresh
        self._changed = trio.Event()

    def wake(self) -> None:
        self._changed.set()

    async def run(self) -> None:
        while True:
            name = self._model.following
            if name is not None:
                await self._fetch(name)
            with trio.move_on_after(self._refresh if name is not None else 3600):
                await self._changed.wait()
            self._changed = trio.Event()

    async def _fetch(self, name: str) -> None:
        try:
            reply = await self._daemon.call(wire.Logs(name=name, lines=_LOG_LINES))
        except HyperhiveError as exc:
            text = f"(no log: {exc})"
        else:
            text = reply.text
        if self._model.following == name:
            self._model.log_text = text
            self._painter.request()


class _Actions:
    """Carries out what a key asked for; the outcome goes to the status line."""

    def __init__(
        self,
        daemon: _Daemon,
        desk: ApprovalDesk,
        model: TopModel,
        painter: _Painter,
        logs: _LogFollower,
        scope: trio.CancelScope,
    ) -> None:
        self._daemon = daemon
        self._desk = desk
        self._model = model
        self._painter = painter
        self._logs = logs
        self._scope = scope

    async def run(self, command: Command) -> None:
        try:
            await self._run(command)
        except HyperhiveError as exc:
            self._model.note(str(exc), error=True)

    async def _run(self, command: Command) -> None:
        model = self._model
        match command:
            case Quit():
                self._scope.cancel()
            case Send(to=to, body=body):
                sent = await self._daemon.call(wire.Send(to=to, body=body))
                model.note(f"sent #{sent.id} to {to}")
            case Answer(id=id, answer=answer):
                resolved = await self._daemon.call(wire.Answer(id=id, answer=answer))
                model.questions.pop(id, None)
                model.note(f"answered #{id} for {resolved.question.asker}")
            case Approve(id=id):
                await self._desk.approve(id)
                model.note(f"approved #{id}")
                await self._reload_approvals()
            case Deny(id=id, note=note):
                await self._desk.deny(id, note)
                model.note(f"denied #{id}")
                await self._reload_approvals()
            case Follow():
                self._logs.wake()
            case ShowTree():
                model.tree = await self._daemon.call(wire.GetStatus())

    async def _reload_approvals(self) -> None:
        rows, note = await self._desk.pending()
        self._model.load_approvals(rows, note)

    async def opened(self) -> None:
        """An approval's overlay just opened: fetch its diff."""
        approval = self._model.current_approval()
        self._model.diff = None
        if approval is not None:
            with contextlib.suppress(HyperhiveError):
                self._model.diff = await self._desk.diff(approval.id)


async def _read_keys(fd: int, model: TopModel, actions: _Actions, painter: _Painter) -> None:
    decoder = KeyDecoder()
    while True:
        await trio.lowlevel.wait_readable(fd)
        data = os.read(fd, 4096)
        if not data:
            return  # the terminal went away: the view goes on without keys
        for key in decoder.feed(data):
            before = model.overlay
            command = model.on_key(key)
            if model.overlay == "approval" and before != "approval":
                await actions.opened()
            if command is not None:
                painter.request()
                await actions.run(command)
            painter.request()


async def _repaint_on_resize(painter: _Painter) -> None:
    with trio.open_signal_receiver(signal.SIGWINCH) as signals:
        async for _ in signals:
            painter.request()


@contextlib.contextmanager
def _cbreak(fd: int | None) -> Iterator[None]:
    """Keys one at a time, unechoed, for the block; the terminal's mode restored after."""
    if fd is None or not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
