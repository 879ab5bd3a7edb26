"""Run the dashboard as a supervised child of the daemon: bind once, serve through hypercorn.

`bind_dashboard` binds the listening socket before the supervision tree starts (a busy port is
a clear error at start, not a traceback or a restart storm), with ``SO_REUSEADDR`` and a few
retries, as the original's bind-with-retry: a daemon restarted by systemd finds its old port
held for a moment by the process that is still going. The socket lives as long as the daemon.

`Dashboard.child()` is the `ChildSpec`: each (re)start serves the app on a duplicate of that
socket through `hypercorn.trio.serve(..., shutdown_trigger=...)`; stopping the child fires the
trigger, hypercorn stops accepting, finishes what is in flight and returns. Open event streams
are cut when the child stops (they reconnect, and resume, against the next daemon).
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import time
from typing import TYPE_CHECKING, Final

import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from actors import ChildSpec
from hyperhive.errors import ConfigError
from hyperhive.web.app import WebSettings, create_app

if TYPE_CHECKING:
    from hyperhive.web.ops import DashboardOps
    from hyperhive.web.security import Bind

__all__ = ["BIND_RETRIES", "Dashboard", "bind_dashboard"]

LOGGER = logging.getLogger("hyperhive.web")
BIND_RETRIES: Final = 5
_RETRY_DELAY: Final = 0.5


def bind_dashboard(
    bind: Bind, *, retries: int = BIND_RETRIES, delay: float = _RETRY_DELAY
) -> socket.socket:
    """A listening TCP socket on `bind` (port 0: the kernel picks one).

    Blocking: it may sleep ``retries * delay`` seconds; call it before the event loop runs.

    Raises:
        ConfigError: the address is in use after every retry, or cannot be bound at all.
    """
    family = socket.AF_INET6 if ":" in bind.host else socket.AF_INET
    for attempt in range(retries + 1):
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((bind.host, bind.port))
            sock.listen(128)
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EADDRINUSE and attempt < retries:
                LOGGER.info("dashboard port %s busy; retrying (%d)", bind, attempt + 1)
                time.sleep(delay)
                continue
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(
                    f"the dashboard's address {bind} is in use (another hyperhive, or another "
                    "program); choose another with --dashboard HOST:PORT, or --no-dashboard"
                ) from None
            raise ConfigError(f"cannot serve the dashboard on {bind}: {exc.strerror}") from None
        sock.set_inheritable(False)
        return sock
    raise AssertionError("unreachable")  # pragma: no cover


class Dashboard:
    """The dashboard child: the app over `ops`, served on `sock` (see the module docstring)."""

    def __init__(self, ops: DashboardOps, settings: WebSettings, sock: socket.socket) -> None:
        self.ops = ops
        self.settings = settings
        self.sock = sock
        self._stop = trio.Event()

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.sock.getsockname()[:2]
        return host, port

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://{f'[{host}]' if ':' in host else host}:{port}/"

    def child(self) -> ChildSpec:
        return ChildSpec(
            "dashboard",
            self.run,
            on_stop=self.request_stop,
            shutdown_timeout=3.0,
            report=self.ops.stats.statistics,
        )

    def request_stop(self) -> None:
        self._stop.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until `request_stop`; a crash is the supervisor's to restart."""
        self._stop = trio.Event()
        if self.sock.fileno() == -1:  # started again after a stop: the port was given back
            self.sock = bind_dashboard(self.settings.bind, retries=0)
        app = create_app(self.ops, self.settings)
        config = Config()
        # hypercorn adopts (and closes) the descriptor it is given: hand it a duplicate.
        config.bind = [f"fd://{os.dup(self.sock.fileno())}"]
        config.accesslog = None
        config.errorlog = logging.getLogger("hyperhive.web.hypercorn")
        config.graceful_timeout = 2.0
        config.keep_alive_timeout = 30.0
        config.include_server_header = False

        async def started(*, task_status: trio.TaskStatus[list[str]]) -> None:
            await serve(app, config, shutdown_trigger=self._stop.wait, task_status=task_status)

        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(started)
                LOGGER.info("dashboard on %s", self.url)
                task_status.started()
        finally:
            if self._stop.is_set():
                self.sock.close()
