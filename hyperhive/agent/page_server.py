"""The harness's half of the agent's page: data and control on a unix socket, never markup.

The daemon serves the page itself (docs/web-ui.md); it asks the harness over
``<socket dir>/page/page.sock`` (`wire.PAGE_DIR`, `wire.PAGE_SOCKET`), one request line per
connection (`hyperhive.wire.page`): ``state`` (the badges), ``history``, ``subscribe`` (a live
feed of the events bus), ``cancel``, ``compact``, ``new_session``, ``set_model``, ``login``
(a pasted setup-token or API key), ``login_start`` and ``login_code`` (``claude auth login``
over pipes), ``stats`` (turn stats by hour or day).

`PageServer.run` also keeps the badges' numbers (`Activity`) current from the bus; ``state``
answers them with the harness's report of what it is doing (`hyperhive.agent.report`).

The page types (`hyperhive.wire.page`) are imported by the first request, not at start-up (the
harness's start-up time, docs/performance.md).

Nothing here trusts the daemon less than it must: a request line is capped, read with a
deadline and decoded with its bounds; a bad one is answered ``ok: false`` and the server goes
on. A credential is never logged or published: the events say only that one was stored.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import stat
from typing import TYPE_CHECKING, Any, Final

import orjson
import trio

from hyperhive.agent import login
from hyperhive.agent.activity import Activity
from hyperhive.errors import ConfigError, HyperhiveError, LineTooLong
from hyperhive.wire.codec import decode_page_request, encode_page_error, encode_page_reply
from hyperhive.wire.framing import LineReader
from hyperhive.wire.harness import PAGE_DIR, PAGE_SOCKET

if TYPE_CHECKING:
    from pathlib import Path

    from hyperhive.agent.events import EventBus, LiveEvent
    from hyperhive.agent.harness import Harness
    from hyperhive.agent.login_flow import LoginFlowDriver
    from hyperhive.agent.turn_stats import TurnStatsStore
    from hyperhive.clock import WallClock
    from hyperhive.offload import Offload
    from hyperhive.wire.page import PageEvents, PageRequest, PageState

__all__ = ["PageServer", "page_socket_path"]

_log = logging.getLogger(__name__)
_REQUEST_BYTES: Final = 64 * 1024
_READ_TIMEOUT: Final = 10.0
_REPLAY_MAX: Final = 2000


def page_socket_path(hive_socket: Path) -> Path:
    """Where the page socket lives: beside ``hive.sock``, in ``page/`` (the agent's to write)."""
    return hive_socket.parent / PAGE_DIR / PAGE_SOCKET


def _event_line(event: LiveEvent) -> bytes:
    from hyperhive.wire.page import MAX_EVENT_BYTES

    line = orjson.dumps(event.to_json(), option=orjson.OPT_NON_STR_KEYS, default=str)
    if len(line) >= MAX_EVENT_BYTES:
        clipped = {"seq": event.seq, "at": event.at, "kind": event.kind}
        line = orjson.dumps({**clipped, "data": {"clipped_bytes": len(line)}})
    return line + b"\n"


def _bind(path: Path) -> socket.socket:
    """Bind the page socket (blocking; through the offload). The directory is created 0700
    when the harness may (an unprivileged daemon); a root daemon made it for the agent."""
    with contextlib.suppress(FileExistsError):
        path.parent.mkdir(mode=0o700)
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
        os.chmod(path, 0o600)
        sock.listen(32)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


class PageServer:
    """See the module docstring. `run` it in the harness's nursery."""

    def __init__(
        self,
        harness: Harness,
        bus: EventBus,
        *,
        socket_path: Path,
        stats: TurnStatsStore | None,
        clock: WallClock,
        offload: Offload,
        login_flow: LoginFlowDriver | None = None,
    ) -> None:
        self.harness = harness
        self.bus = bus
        self.socket_path = socket_path
        self.stats = stats
        self.clock = clock
        self._offload = offload
        self.login_flow = login_flow
        self.activity = Activity()
        self._nursery: trio.Nursery | None = None

    # -- running ----------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Track the badges and serve the socket until cancelled.

        A socket that cannot be bound (no room in the socket directory) is a note on the bus:
        the harness still runs, the page says the harness cannot be reached.
        """
        subscription = self.bus.subscribe(4096)
        if self.stats is not None:
            with contextlib.suppress(Exception):
                recent = await self._offload(self.stats.recent, 1)
                self.activity.seed(recent[0] if recent else None)
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self._track, subscription)
            try:
                sock = await self._offload(_bind, self.socket_path)
            except OSError as exc:
                self.bus.note(f"the agent's page socket cannot be served: {exc}")
                task_status.started()
                return
            listener = trio.SocketListener(trio.socket.from_stdlib_socket(sock))
            task_status.started()
            try:
                await trio.serve_listeners(self._handle, [listener], handler_nursery=nursery)
            finally:
                with contextlib.suppress(OSError):
                    self.socket_path.unlink()

    async def _track(self, subscription: Any) -> None:
        while True:
            async for event in subscription:
                self.activity.observe(event.seq, event.kind, event.data)
            # Fell behind (or the bus closed): subscribe again.
            subscription = self.bus.subscribe(4096)
            await trio.sleep(0.1)

    # -- one connection ---------------------------------------------------------------------

    async def _handle(self, stream: trio.SocketStream) -> None:
        async with stream:
            try:
                with trio.fail_after(_READ_TIMEOUT):
                    line = await LineReader(stream, _REQUEST_BYTES).read_line()
                if line is None:
                    return
                request = decode_page_request(line)
                await self._answer(stream, request)
            except (trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError):
                return
            except (HyperhiveError, LineTooLong) as exc:
                with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                    await stream.send_all(encode_page_error(str(exc)))
            except Exception as exc:
                _log.exception("page request failed")
                with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                    await stream.send_all(encode_page_error(f"internal error ({exc!r})"))

    async def _answer(self, stream: trio.SocketStream, request: PageRequest) -> None:
        from hyperhive.wire.page import (
            PageCancel,
            PageCompact,
            PageGetState,
            PageGetStats,
            PageHistory,
            PageLogin,
            PageLoginCode,
            PageLoginStart,
            PageNewSession,
            PageSetModel,
            PageSubscribe,
        )

        harness = self.harness
        match request:
            case PageGetState():
                reply: object = self.state()
            case PageHistory(after_seq=after, limit=limit, before_seq=before):
                reply = await self._history(after, limit, before)
            case PageSubscribe(after_seq=after):
                await self._subscribe(stream, after)
                return
            case PageCancel():
                if not harness.cancel():
                    harness.bus.note("cancel requested, but no turn runs")
                reply = None
            case PageCompact():
                harness.request_compact()
                reply = None
            case PageNewSession():
                harness.request_new_session()
                reply = None
            case PageSetModel(model=model):
                harness.set_model((model or "").strip() or None)
                reply = None
            case PageLogin(kind=kind, value=value):
                await self._login(kind, value)
                reply = None
            case PageLoginStart():
                if self.login_flow is None or self._nursery is None:
                    raise ConfigError("this runtime has no claude auth login to drive")
                self.login_flow.start(self._nursery)
                reply = self.login_flow.state()
            case PageLoginCode(code=code):
                if self.login_flow is None:
                    raise ConfigError("this runtime has no claude auth login to drive")
                await self.login_flow.submit(code)
                reply = self.login_flow.state()
            case PageGetStats(bucket=bucket, buckets=count):
                reply = await self._stats(bucket, count)
        await stream.send_all(encode_page_reply(reply))

    def state(self) -> PageState:
        from hyperhive.wire.page import LoginFlow

        flow = self.login_flow.state() if self.login_flow is not None else LoginFlow()
        self.activity.last_seq = max(self.activity.last_seq, self.bus.last_seq)
        if self.harness.logged_in is not None:
            self.activity.logged_in = self.harness.logged_in
        return self.activity.state(self.harness.reporter.report, self.harness.runner.name, flow)

    async def _history(self, after: int, limit: int, before: int | None) -> PageEvents:
        from hyperhive.wire.page import PageEvent, PageEvents

        events = await self.bus.history(limit, after_seq=after, before_seq=before)
        return PageEvents(
            tuple(PageEvent(e.seq, e.at, e.kind, dict(e.data)) for e in events),
            self.bus.last_seq,
        )

    async def _subscribe(self, stream: trio.SocketStream, after: int | None) -> None:
        subscription = self.bus.subscribe(1024)
        try:
            await stream.send_all(encode_page_reply(None))
            floor = after if after is not None else self.bus.last_seq
            if after is not None:
                for event in await self.bus.history(_REPLAY_MAX, after_seq=after):
                    await stream.send_all(_event_line(event))
                    floor = event.seq
            async for event in subscription:
                if event.seq > floor:
                    await stream.send_all(_event_line(event))
        finally:
            subscription.close()

    async def _login(self, kind: str, value: str) -> None:
        from hyperhive.wire.page import LOGIN_KINDS

        if kind not in LOGIN_KINDS:
            raise ConfigError(f"kind must be one of {', '.join(LOGIN_KINDS)}")
        secret = login.parse_setup_token(value) if kind == "oauth_token" else value.strip()
        await self._offload(login.save_credentials, self.harness.paths, kind, secret)
        self.bus.note(f"a credential ({kind.replace('_', ' ')}) was stored from the page")
        self.harness.login_changed()

    async def _stats(self, bucket: str, count: int) -> dict[str, Any]:
        from hyperhive.agent.turn_stats import BUCKETS

        if bucket not in BUCKETS:
            raise ConfigError(f"bucket must be one of {', '.join(BUCKETS)}")
        if self.stats is None:
            return {"bucket": bucket, "buckets": [], "models": {}, "tools": {}, "results": {}}
        return await self._offload(self.stats.summary, bucket, count, self.clock.now())
