"""`hyperhive serve`: the root supervisor, its actors, and a clean shutdown.

The tree is drawn in `Daemon`'s docstring and in docs/architecture.md.

`run_daemon` holds the state directory's lock for its whole life, starts the tree, and stops
it in reverse order when asked (SIGINT/SIGTERM in `run_daemon`). A restart storm past the root's
intensity ends the daemon with `SupervisorGaveUp`, which the CLI reports (systemd restarts it).
"""

from __future__ import annotations

import logging
import os
import signal
from functools import partial
from typing import TYPE_CHECKING

import trio

from actors import ChildSpec, Mailbox, Restart, Supervisor
from hyperhive.clock import SystemClock, WallClock
from hyperhive.core import broker, events
from hyperhive.core.hive import Hive
from hyperhive.core.listener import Dispatch, Identity, serve_unix_socket
from hyperhive.core.lock import hold_state_lock
from hyperhive.core.registry import MANAGER, AgentRegistry
from hyperhive.core.surfaces import Surfaces

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from pathlib import Path

    from hyperhive.config import StatePaths

__all__ = ["Daemon", "run_daemon"]

LOGGER = logging.getLogger("hyperhive.daemon")
# Past this after a stop request, whatever is still running is cancelled outright: "a few
# seconds" is what an operator (and systemd's default TimeoutStopSec) will wait for.
SHUTDOWN_DEADLINE = 8.0
OPERATOR = Identity("operator", "operator")
MANAGER_IDENTITY = Identity("manager", MANAGER)


class Daemon:
    """Builds the supervision tree for one state directory.

    The tree::

        root (one_for_one, 3 restarts in 60 s)
        ├── events          the event hub actor
        ├── broker          the message store actor
        ├── broker-vacuum   hourly sweep of acked messages older than 30 days
        └── listeners       (one_for_one, dynamic) admin socket, manager socket, one per agent

    Order matters: listeners start last (nothing is accepted before the broker can answer) and
    stop first (no request arrives while the broker closes its store).
    """

    def __init__(self, paths: StatePaths, *, clock: WallClock | None = None) -> None:
        self.paths = paths
        self.clock = clock or SystemClock()
        self.registry = AgentRegistry(paths)
        to_hub: Mailbox[events.HubMsg] = Mailbox("events", size=1024)
        to_broker: Mailbox[broker.BrokerMsg] = Mailbox("broker", size=4096)
        self.hive = Hive(
            paths=paths,
            clock=self.clock,
            started_at=self.clock.now(),
            registry=self.registry,
            to_broker=to_broker,
            to_hub=to_hub,
        )
        self.surfaces = Surfaces(self.hive)
        self.hub = events.EventHub(to_hub.inbox, self.clock)
        self.listeners = Supervisor(
            "listeners",
            [self._listener(OPERATOR, self.surfaces.operator, paths.admin_socket)]
            + [self._listener(MANAGER_IDENTITY, self.surfaces.agent, paths.manager_socket)]
            + [self.agent_listener(name) for name in self.registry.names()],
            intensity=10,
            period=10.0,
        )
        self.root = Supervisor(
            "root",
            [
                ChildSpec("events", self.hub.run, mailbox=to_hub, shutdown_timeout=1.0),
                ChildSpec("broker", self._run_broker, mailbox=to_broker, shutdown_timeout=5.0),
                ChildSpec(
                    "broker-vacuum",
                    partial(broker.serve_vacuum, self.hive.operate),
                    shutdown_timeout=0.0,
                ),
                ChildSpec.for_supervisor(self.listeners, shutdown_timeout=5.0),
            ],
            # Small at the top: intensities multiply down the tree (OTP's tuning guidance).
            intensity=3,
            period=60.0,
        )
        self.hive.root = self.root
        self.hive.listeners = self.listeners
        self.hive.agent_listener = self.agent_listener

    async def _run_broker(self, *, task_status: trio.TaskStatus[None]) -> None:
        actor = broker.Broker(
            self.hive.to_broker.inbox,
            path=self.paths.broker_db,
            clock=self.clock,
            to_hub=self.hive.to_hub,
            known=self.registry.is_recipient,
        )
        await actor.run(task_status=task_status)

    def agent_listener(self, name: str) -> ChildSpec:
        """The listener child for agent `name`'s own socket."""
        self.paths.agent_socket_dir(name).mkdir(parents=True, exist_ok=True, mode=0o700)
        identity = Identity("agent", name)
        return self._listener(identity, self.surfaces.agent, self.paths.agent_socket(name))

    def _listener(self, identity: Identity, dispatch: Dispatch, path: Path) -> ChildSpec:
        async def start(*, task_status: trio.TaskStatus[Path]) -> None:
            await serve_unix_socket(dispatch, path, identity, task_status=task_status)

        child_id = "admin-socket" if identity.role == "operator" else f"{identity.name}-socket"
        return ChildSpec(child_id, start, restart=Restart.PERMANENT, shutdown_timeout=0.0)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the tree until `request_stop`; returns once everything stopped in order.

        Cancellation: cancelling this skips the ordered stop and cancels every actor at once.
        """
        self.paths.ensure()
        await self.root.run(task_status=task_status)

    def request_stop(self) -> None:
        """Ask the tree to stop in reverse order (safe from any task; idempotent)."""
        self.root.request_stop()


async def run_daemon(
    paths: StatePaths,
    *,
    on_ready: Callable[[Daemon], None] | None = None,
    signals: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM),
) -> None:
    """The whole of `hyperhive serve`: lock, run, stop on a signal within SHUTDOWN_DEADLINE.

    Raises:
        AlreadyRunning: another daemon holds this state directory.
        actors.SupervisorGaveUp: a restart storm escalated past the root.
    """
    paths.root.mkdir(parents=True, exist_ok=True, mode=0o700)
    with hold_state_lock(paths.lock), trio.open_signal_receiver(*signals) as received:
        daemon = Daemon(paths)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_stop_on_signal, received, daemon, nursery.cancel_scope)
            await nursery.start(_run_then_cancel, daemon, nursery.cancel_scope)
            LOGGER.info("hyperhive serving %s (pid %d)", paths.root, os.getpid())
            if on_ready:
                on_ready(daemon)
        LOGGER.info("hyperhive stopped")


async def _run_then_cancel(
    daemon: Daemon,
    scope: trio.CancelScope,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    await daemon.run(task_status=task_status)
    scope.cancel(reason="the supervision tree stopped")


async def _stop_on_signal(
    received: AsyncIterator[int], daemon: Daemon, scope: trio.CancelScope
) -> None:
    async for signum in received:
        if scope.deadline == float("inf"):
            LOGGER.info("received %s; stopping", signal.Signals(signum).name)
            daemon.request_stop()
            scope.deadline = trio.current_time() + SHUTDOWN_DEADLINE
        else:
            LOGGER.warning("second signal; cancelling everything now")
            scope.cancel()
