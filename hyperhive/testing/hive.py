"""An in-process hive for trio tests: the real daemon tree on real sockets under a temp dir.

Its stores and file work run inline on the trio thread (`hyperhive.testing.inline`), so a test
under trio's plain ``autojump_clock`` gets exact virtual time: the clock can only jump when the
whole hive is idle.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import trio

from hyperhive.client import Client, open_client
from hyperhive.clock import SystemClock
from hyperhive.config import StatePaths
from hyperhive.containers.settings import ContainerSettings, make_backend
from hyperhive.core.daemon import DEFAULT_PRONOUNS, ExtraChild, Tree, build_tree
from hyperhive.core.limits import Limits
from hyperhive.testing.offload import inline

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence
    from pathlib import Path

    from hyperhive.clock import WallClock
    from hyperhive.containers.base import ContainerBackend
    from hyperhive.core.approvals import DeployPolicy
    from hyperhive.core.handles import Handles
    from hyperhive.offload import Offload

__all__ = ["TestHive", "open_test_hive"]


class TestHive:
    """A running daemon and shortcuts to connect as each identity."""

    __test__ = False  # not a pytest test class

    def __init__(self, tree: Tree) -> None:
        self.tree = tree
        self.paths = tree.paths

    @property
    def handles(self) -> Handles:
        """The handles every surface uses (`hyperhive.core.handles.Handles`)."""
        return self.tree.handles

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
            await self.tree.handles.agents.register(name)


@contextlib.asynccontextmanager
async def open_test_hive(
    state_dir: Path,
    *,
    clock: WallClock | None = None,
    agents: tuple[str, ...] = (),
    backend: ContainerBackend | None = None,
    containers: ContainerSettings | None = None,
    limits: Limits | None = None,
    offload: Offload = inline,
    operator_pronouns: str = DEFAULT_PRONOUNS,
    extra_children: Sequence[ExtraChild] = (),
    deploy_policy: DeployPolicy | None = None,
) -> AsyncIterator[TestHive]:
    """Run a daemon on `state_dir` for the duration of the block, then stop it in order.

    With `backend` (say a `FakeBackend`) the daemon runs containers with it, under
    `containers` settings (default: no manager is created, short grace periods). `limits`
    overrides the daemon's resource limits (docs/limits.md), `deploy_policy` when a deploy
    counts as crash-looping (docs/approvals.md). `offload` is how stores and files
    are reached: inline by default (exact virtual time); `hyperhive.offload.to_thread`
    for a test of the threaded path.

    Resource handling: every socket file is removed and the store closed on exit.
    """
    paths = StatePaths(state_dir)
    if backend is None and containers is not None:
        backend = make_backend(containers, paths)
    if backend is not None and containers is None:
        containers = ContainerSettings(ensure_manager=False, stop_grace=2.0, shutdown_grace=1.0)
    if containers is None:
        containers = ContainerSettings(backend="none", ensure_manager=False)
    tree = await build_tree(
        paths,
        clock=clock or SystemClock(),
        offload=offload,
        settings=containers,
        backend=backend,
        limits=limits or Limits(),
        operator_pronouns=operator_pronouns,
        extra_children=extra_children,
        deploy_policy=deploy_policy,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(tree.run)
        hive = TestHive(tree)
        await hive.register(*agents)
        try:
            yield hive
        finally:
            tree.request_stop()
