"""`hyperhive serve`: the root supervisor, its actors, and a clean shutdown.

The tree is drawn in `Daemon`'s docstring and in docs/architecture.md.

`run_daemon` holds the state directory's lock for its whole life, starts the tree, and stops
it in reverse order when asked (SIGINT/SIGTERM in `run_daemon`). A restart storm past the root's
intensity ends the daemon with `SupervisorGaveUp`, which the CLI reports (systemd restarts it).
"""

from __future__ import annotations

import logging
import os
import resource
import signal
from functools import partial
from typing import TYPE_CHECKING

import trio

from actors import ChildSpec, Mailbox, Restart, Supervisor
from hyperhive import wire
from hyperhive.clock import SystemClock, WallClock
from hyperhive.containers.settings import ContainerSettings, make_backend
from hyperhive.core import broker, events, questions, reminders
from hyperhive.core.container_actors import ContainerActors
from hyperhive.core.hive import Hive
from hyperhive.core.limits import LimitLog, Limits
from hyperhive.core.listener import Dispatch, Identity, serve_unix_socket
from hyperhive.core.lock import hold_state_lock
from hyperhive.core.registry import MANAGER, AgentRegistry
from hyperhive.core.surfaces import Surfaces

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Sequence
    from pathlib import Path

    from hyperhive.config import StatePaths
    from hyperhive.containers.base import ContainerBackend

__all__ = ["Daemon", "raise_open_file_limit", "run_daemon"]

LOGGER = logging.getLogger("hyperhive.daemon")
# Past this after a stop request, whatever is still running is cancelled outright: "a few
# seconds" is what an operator (and systemd's default TimeoutStopSec) will wait for.
SHUTDOWN_DEADLINE = 8.0
OPERATOR = Identity("operator", "operator")
MANAGER_IDENTITY = Identity("manager", MANAGER)
# The operator's pronouns, as agents are told them (whoami, the system prompts).
DEFAULT_PRONOUNS = "they/them"


class Daemon:
    """Builds the supervision tree for one state directory.

    The tree::

        root (one_for_one, 3 restarts in 60 s)
        ├── events          the event hub actor
        ├── broker          the message store actor
        ├── broker-vacuum   hourly sweep of acked messages older than 30 days
        ├── questions       the question store and its ttl watchdog
        ├── reminders       the reminder store and its scheduler
        ├── containers      the container backend's watcher (only with a backend)
        ├── crash-watch     unrequested agent exits -> the manager's inbox (only with a backend)
        ├── rescanner       the container view, diffed into dashboard events
        ├── listeners       (one_for_one, dynamic) admin socket, manager socket, one per agent
        ├── agents          start-up: ensure the manager, start agents; on stop: stop them first
        └── (extra)         `extra_children`: the dashboard, the demo (hyperhive/web/launch.py)

    Order matters: listeners start after the actors (nothing is accepted before the broker can
    answer) and stop before them (no request arrives while the broker closes its store). The
    agents start after their sockets exist and are stopped while their sockets still answer.
    `extra_children` build more children from the daemon (the dashboard, the demo), placed
    last. `containers` decides whether there is a backend (`ContainerSettings.backend`; `backend`
    overrides it, for tests); without one, agents are sockets only (docs/containers.md).
    """

    def __init__(
        self,
        paths: StatePaths,
        *,
        clock: WallClock | None = None,
        operator_pronouns: str = DEFAULT_PRONOUNS,
        containers: ContainerSettings | None = None,
        backend: ContainerBackend | None = None,
        limits: Limits | None = None,
        extra_children: Sequence[Callable[[Daemon], ChildSpec]] = (),
    ) -> None:
        self.paths = paths
        self.limits = limits or Limits()
        self.clock = clock or SystemClock()
        self.registry = AgentRegistry(paths)
        to_hub: Mailbox[events.HubMsg] = Mailbox("events", size=1024)
        to_broker: Mailbox[broker.BrokerMsg] = Mailbox("broker", size=4096)
        to_questions: Mailbox[questions.QuestionsMsg] = Mailbox("questions", size=256)
        to_reminders: Mailbox[reminders.RemindersMsg] = Mailbox("reminders", size=256)
        self.hive = Hive(
            paths=paths,
            clock=self.clock,
            started_at=self.clock.now(),
            registry=self.registry,
            to_broker=to_broker,
            to_hub=to_hub,
            to_questions=to_questions,
            to_reminders=to_reminders,
            operator_pronouns=operator_pronouns,
            limits=self.limits,
        )
        self.limit_log = self.hive.limit_log = LimitLog(self.hive.publish)
        self.surfaces = Surfaces(self.hive)
        self.hub = events.EventHub(
            to_hub.inbox,
            self.clock,
            history=self.limits.history_events,
            preview_chars=self.limits.preview_chars,
            reply_bytes=self.limits.history_reply_bytes,
        )
        settings = containers or ContainerSettings(backend="none", ensure_manager=False)
        if backend is None and containers is not None:
            backend = make_backend(containers, paths)
        LOGGER.info("containers: %s", backend.kind if backend else "none (agents are sockets only)")
        self.containers = ContainerActors(self.hive, backend, settings)
        self.hive.lifecycle = self.containers.lifecycle
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
                ChildSpec(
                    "questions", self._run_questions, mailbox=to_questions, shutdown_timeout=5.0
                ),
                ChildSpec(
                    "reminders", self._run_reminders, mailbox=to_reminders, shutdown_timeout=5.0
                ),
                *self.containers.before_listeners(),
                ChildSpec.for_supervisor(self.listeners, shutdown_timeout=5.0),
                *self.containers.after_listeners(),
                # Surfaces over the whole tree (the dashboard, the demo): started last, so
                # they find every actor serving, and stopped first.
                *(make(self) for make in extra_children),
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
            limits=self.limits,
            limit_log=self.limit_log,
        )
        await actor.run(task_status=task_status)

    async def _run_questions(self, *, task_status: trio.TaskStatus[None]) -> None:
        actor = questions.QuestionDesk(
            self.hive.to_questions.inbox,
            path=self.paths.questions_db,
            clock=self.clock,
            send=partial(self.hive.send, wire.HELPER_SENDER),
            known=self.registry.is_recipient,
            to_hub=self.hive.to_hub,
            limits=self.limits,
            limit_log=self.limit_log,
        )
        await actor.run(task_status=task_status)

    async def _run_reminders(self, *, task_status: trio.TaskStatus[None]) -> None:
        actor = reminders.ReminderScheduler(
            self.hive.to_reminders.inbox,
            path=self.paths.reminders_db,
            clock=self.clock,
            send=partial(self.hive.send, wire.HELPER_SENDER),
            known=self.registry.is_recipient,
            state_dir=self.paths.agent_state_dir,
            to_hub=self.hive.to_hub,
            limits=self.limits,
            limit_log=self.limit_log,
        )
        await actor.run(task_status=task_status)

    def agent_listener(self, name: str) -> ChildSpec:
        """The listener child for agent `name`'s own socket."""
        self.paths.agent_socket_dir(name).mkdir(parents=True, exist_ok=True, mode=0o700)
        identity = Identity("agent", name)
        return self._listener(identity, self.surfaces.agent, self.paths.agent_socket(name))

    def _listener(self, identity: Identity, dispatch: Dispatch, path: Path) -> ChildSpec:
        # The operator's own socket is not capped; every agent's (and the manager's) is.
        cap = None if identity.role == "operator" else self.limits.connections

        async def start(*, task_status: trio.TaskStatus[Path]) -> None:
            await serve_unix_socket(
                dispatch,
                path,
                identity,
                send_many=self.surfaces.send_many,
                # An agent socket's directory admits only that agent's group (the bwrap
                # backend sets it up); the admin socket stays the daemon user's alone.
                mode=0o600 if identity.role == "operator" else 0o660,
                max_connections=cap,
                on_limit=partial(self.limit_log.hit, identity.name, "connections"),
                task_status=task_status,
            )

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
    operator_pronouns: str = DEFAULT_PRONOUNS,
    containers: ContainerSettings | None = None,
    limits: Limits | None = None,
    extra_children: Sequence[Callable[[Daemon], ChildSpec]] = (),
) -> None:
    """The whole of `hyperhive serve`: lock, run, stop on a signal within SHUTDOWN_DEADLINE.

    Raises:
        AlreadyRunning: another daemon holds this state directory.
        ConfigError: an extra child could not be built (say, the dashboard's port is taken).
        actors.SupervisorGaveUp: a restart storm escalated past the root.
    """
    paths.ensure()
    raise_open_file_limit()
    with hold_state_lock(paths.lock), trio.open_signal_receiver(*signals) as received:
        daemon = Daemon(
            paths,
            operator_pronouns=operator_pronouns,
            containers=containers,
            limits=limits,
            extra_children=extra_children,
        )
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_stop_on_signal, received, daemon, nursery.cancel_scope)
            await nursery.start(_run_then_cancel, daemon, nursery.cancel_scope)
            LOGGER.info("hyperhive serving %s (pid %d)", paths.root, os.getpid())
            if on_ready:
                on_ready(daemon)
        LOGGER.info("hyperhive stopped")


def raise_open_file_limit() -> tuple[int, int]:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit; returns (soft, hard) after.

    Every agent's connections and recvs hold descriptors; systemd's default soft limit of 1024
    is reached by one busy agent. The per-identity connection cap (docs/limits.md) keeps any
    one agent far below what is raised here.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as exc:
            LOGGER.warning("could not raise the open-file limit from %d to %d: %s", soft, hard, exc)
    LOGGER.info("open-file limit: %d", soft)
    return soft, hard


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
