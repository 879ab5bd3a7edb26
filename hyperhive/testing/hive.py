"""An in-process hive for trio tests: the real daemon tree on real sockets under a temp dir."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import trio

from hyperhive.client import Client, open_client
from hyperhive.config import StatePaths
from hyperhive.containers.settings import ContainerSettings
from hyperhive.core.daemon import Daemon

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from hyperhive.clock import WallClock
    from hyperhive.containers.base import ContainerBackend
    from hyperhive.core.limits import Limits

__all__ = ["TestHive", "open_test_hive"]


class TestHive:
    """A running daemon and shortcuts to connect as each identity."""

    __test__ = False  # not a pytest test class

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.paths = daemon.paths

    def operator(self) -> contextlib.AbstractAsyncContextManager[Client]:
        """A connection to the admin socket."""
        return open_client(self.paths.admin_socket)

    def manager(self) -> contextlib.AbstractAsyncContextManager[Client]:
        """A connection to the manager's socket."""
        return open_client(self.paths.manager_socket)

    def agent(self, name: str) -> contextlib.AbstractAsyncContextManager[Client]:
        """A connection to agent `name`'s own socket."""
        return open_client(self.paths.agent_socket(name))

    async def register(self, *names: str) -> None:
        """Register agents through the admin surface, as the operator would."""
        for name in names:
            await self.daemon.hive.register_agent(name)


@contextlib.asynccontextmanager
async def open_test_hive(
    state_dir: Path,
    *,
    clock: WallClock | None = None,
    agents: tuple[str, ...] = (),
    backend: ContainerBackend | None = None,
    containers: ContainerSettings | None = None,
    limits: Limits | None = None,
) -> AsyncIterator[TestHive]:
    """Run a daemon on `state_dir` for the duration of the block, then stop it in order.

    With `backend` (say a `FakeBackend`) the daemon runs containers with it, under
    `containers` settings (default: no manager is created, short grace periods). `limits`
    overrides the daemon's resource limits (docs/limits.md).

    Resource handling: every socket file is removed and the store closed on exit.
    """
    if backend is not None and containers is None:
        containers = ContainerSettings(ensure_manager=False, stop_grace=2.0, shutdown_grace=1.0)
    daemon = Daemon(
        StatePaths(state_dir), clock=clock, containers=containers, backend=backend, limits=limits
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(daemon.run)
        hive = TestHive(daemon)
        await hive.register(*agents)
        try:
            yield hive
        finally:
            daemon.request_stop()
