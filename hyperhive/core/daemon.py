"""`hyperhive serve`: the composition root, the tree it builds, and a clean shutdown.

`build_tree` is the one place the daemon is put together; the tree is drawn in its docstring
and in docs/architecture.md.

`run_daemon` holds the state directory's lock for its whole life, starts the tree, and stops
it in reverse order when asked (SIGINT/SIGTERM in `run_daemon`). A restart storm past the root's
intensity ends the daemon with `SupervisorGaveUp`, which the CLI reports (systemd restarts it).
"""

from __future__ import annotations

import logging
import os
import resource
import signal
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

import attrs
import trio

from actors import ChildSpec, Mailbox, Supervisor, SupervisorStatistics
from hyperhive import wire
from hyperhive.clock import SystemClock, WallClock
from hyperhive.config_repo.seed import RepoPaths
from hyperhive.containers.settings import ContainerSettings, make_backend
from hyperhive.core import broker, events, questions, reminders
from hyperhive.core.agent_spec import SpecBuilder
from hyperhive.core.agent_views import DeployBoard, StatusBoard
from hyperhive.core.agents import AgentsActor, AgentsHandle, AgentsMsg, snapshot_of
from hyperhive.core.approvals import ApprovalsActor, ApprovalsHandle, ApprovalsMsg, DeployPolicy
from hyperhive.core.crash_watch import CrashWatch
from hyperhive.core.deploy import ConfigRepos
from hyperhive.core.handles import Handles, StatusView, UrlBook
from hyperhive.core.limits import LimitLog, Limits
from hyperhive.core.listener import Identity, ListenerStats, serve_unix_socket
from hyperhive.core.lock import hold_state_lock
from hyperhive.core.messages import BrokerVacuum, MessagesHandle, VacuumTick
from hyperhive.core.registry import MANAGER, AgentRegistry
from hyperhive.core.rescanner import Rescanner, RescannerMsg, request_rescan
from hyperhive.core.state_watch import StateWatch
from hyperhive.core.surfaces import Surfaces
from hyperhive.errors import ConfigError
from hyperhive.offload import Offload, to_thread

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence
    from pathlib import Path

    from hyperhive.config import StatePaths
    from hyperhive.containers.base import ContainerBackend

__all__ = ["ExtraChild", "Tree", "build_tree", "raise_open_file_limit", "run_daemon"]

LOGGER = logging.getLogger("hyperhive.daemon")
# Past this after a stop request, whatever is still running is cancelled outright: "a few
# seconds" is what an operator (and systemd's default TimeoutStopSec) will wait for.
SHUTDOWN_DEADLINE = 8.0
OPERATOR = Identity("operator", "operator")
MANAGER_IDENTITY = Identity("manager", MANAGER)
# The operator's pronouns, as agents are told them (whoami, the system prompts).
DEFAULT_PRONOUNS = "they/them"
# A surface over the whole tree (the dashboard, the demo), built from the handles.
ExtraChild = Callable[[Handles], ChildSpec]
# Past the agents' own grace: SIGKILL and reaping take well under this.
_KILL_ALLOWANCE = 6.0


@attrs.frozen
class Tree:
    """The running daemon as one value: its root supervisor, the handles its surfaces use, and
    the actors a test may watch. Built by `build_tree` in one pass; nothing is set later."""

    paths: StatePaths
    root: Supervisor
    handles: Handles
    agents: AgentsActor
    approvals: ApprovalsActor
    hub: events.EventHub
    rescanner: Rescanner
    state_watch: StateWatch
    crash_watch: CrashWatch | None
    backend: ContainerBackend | None
    limit_log: LimitLog

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the tree until `request_stop`; returns once everything stopped in order.

        Cancellation: cancelling this skips the ordered stop and cancels every actor at once.
        """
        await self.root.run(task_status=task_status)

    def request_stop(self) -> None:
        """Ask the tree to stop in reverse order (safe from any task; idempotent)."""
        self.root.request_stop()


async def build_tree(
    paths: StatePaths,
    *,
    clock: WallClock,
    offload: Offload,
    settings: ContainerSettings,
    backend: ContainerBackend | None,
    limits: Limits,
    operator_pronouns: str = DEFAULT_PRONOUNS,
    extra_children: Sequence[ExtraChild] = (),
    deploy_policy: DeployPolicy | None = None,
) -> Tree:
    """Build the whole supervision tree (mailboxes, actors, supervisors, handles) in one pass.

    The tree::

        root (one_for_one, 3 restarts in 60 s)
        ├── events          the event hub actor
        ├── broker          the message store actor
        ├── broker-vacuum   hourly sweep of acked messages older than 30 days
        ├── questions       the question store and its ttl watchdog
        ├── reminders       the reminder store and its scheduler
        ├── containers      the container backend's watcher (only with a backend)
        ├── crash-watch     unrequested agent exits -> the manager's inbox (only with a backend)
        ├── state-watch     inotify on the agents' state dirs -> prompt rescans (with a backend)
        ├── listeners       (one_for_one, dynamic) admin socket, manager socket, one per agent
        ├── agents          the agents actor: records, lifecycle actions, agent sockets
        ├── approvals       the approval queue, config repos and deploys (asks the agents actor)
        ├── rescanner       the container view (the agents actor's rows), diffed into events
        └── (extra)         `extra_children`: the dashboard, the demo (hyperhive/web/launch.py)

    Order matters: listeners start after the store actors (nothing is accepted before the
    broker can answer) and stop before them (no request arrives while the broker closes its
    store). The agents actor comes after them: it opens the agents' sockets once the listeners
    supervisor runs, and on stop it stops the agents while their sockets still answer; the
    approvals actor, which asks the agents actor to rebuild agents, and the rescanner, which
    reads its rows, come after it and so stop first.
    `extra_children` are surfaces over the whole tree (the dashboard, the demo): each is built
    from the handles and placed last, so it finds every actor serving and is stopped first.
    Mailboxes come first, so every handle and actor is built with what it needs; the one
    late-bound reference is `StatusView.tree`, the root's own statistics.
    """
    paths.ensure()
    # The manager's container binds configs/proposed and configs/applied: they exist first.
    try:
        await offload(RepoPaths(paths.configs_dir).ensure)
    except OSError as exc:
        raise ConfigError(f"cannot create {paths.configs_dir}: {exc.strerror}") from exc
    registry = await offload(AgentRegistry, paths)
    to_hub: Mailbox[events.HubMsg] = Mailbox("events", size=1024)
    to_broker: Mailbox[broker.BrokerMsg] = Mailbox("broker", size=4096)
    to_vacuum: Mailbox[VacuumTick] = Mailbox("broker-vacuum", size=4)
    to_questions: Mailbox[questions.QuestionsMsg] = Mailbox("questions", size=256)
    to_reminders: Mailbox[reminders.RemindersMsg] = Mailbox("reminders", size=256)
    to_rescanner: Mailbox[RescannerMsg] = Mailbox("rescanner", size=256)
    to_agents: Mailbox[AgentsMsg] = Mailbox("agents", size=256)
    to_approvals: Mailbox[ApprovalsMsg] = Mailbox("approvals", size=256)

    # Who the agents are is known before any actor runs: the broker reads it for the first
    # message, whichever actor sends it.
    autostarted = trio.Event()
    agents_handle = AgentsHandle(to_agents, snapshot_of(registry), autostarted)
    started_at = clock.now()
    boot = events.boot_id(started_at)
    event_handle = events.EventsHandle(to_hub, boot)
    messages = MessagesHandle(to_broker)
    limit_log = LimitLog(event_handle.publish)
    root: Supervisor  # assigned once below; status reads it only while the tree runs

    # A harness's report or sentinel rewritten: that agent's row soon (rate-limited per agent).
    state_watch = StateWatch(
        names=agents_handle.names_with_manager,
        state_dir=paths.agent_state_dir,
        on_change=lambda name: request_rescan(to_rescanner, name),
    )

    def changed(name: str) -> None:
        request_rescan(to_rescanner, name)
        state_watch.notice(name)

    statuses = StatusBoard(clock, changed)
    deploys = DeployBoard(changed)

    def tree_statistics() -> SupervisorStatistics:
        return root.statistics()

    handles = Handles(
        messages=messages,
        events=event_handle,
        questions=questions.QuestionsHandle(to_questions),
        reminders=reminders.RemindersHandle(to_reminders),
        agents=agents_handle,
        statuses=statuses,
        urls=UrlBook(),
        approvals=ApprovalsHandle(to_approvals),
        status=StatusView(paths, clock, started_at, tree_statistics),
        limits=limits,
        operator_pronouns=operator_pronouns,
    )
    surfaces = Surfaces(handles)

    def listener(identity: Identity, path: Path) -> ChildSpec:
        # The operator's own socket is not capped; every agent's (and the manager's) is.
        operator = identity.role == "operator"
        stats = ListenerStats(
            None if operator else limits.connections,
            partial(limit_log.hit, identity.name, "connections"),
        )
        start = partial(
            serve_unix_socket,
            surfaces.dispatch,
            path,
            identity,
            send_many=surfaces.send_many,
            # An agent socket's directory admits only that agent's group (the bwrap backend
            # sets it up); the admin socket stays the daemon user's alone.
            mode=0o600 if operator else 0o660,
            stats=stats,
            offload=offload,
        )
        child_id = "admin-socket" if operator else f"{identity.name}-socket"
        return ChildSpec(child_id, start, shutdown_timeout=0.0, report=stats.statistics)

    def agent_listener(name: str) -> ChildSpec:
        return listener(Identity("agent", name), paths.agent_socket(name))

    listeners = Supervisor(
        "listeners",
        [
            listener(OPERATOR, paths.admin_socket),
            listener(MANAGER_IDENTITY, paths.manager_socket),
        ],
        intensity=10,
        period=10.0,
    )
    hub = events.EventHub(
        to_hub,
        clock,
        history=limits.history_events,
        preview_chars=limits.preview_chars,
        reply_bytes=limits.history_reply_bytes,
        boot=boot,
    )
    known = agents_handle.is_recipient
    the_broker = broker.Broker(
        to_broker,
        path=paths.broker_db,
        clock=clock,
        offload=offload,
        events=event_handle,
        known=known,
        limits=limits,
        limit_log=limit_log,
        paused=agents_handle.is_paused,
    )
    vacuum = BrokerVacuum(to_vacuum, messages)
    desk = questions.QuestionDesk(
        to_questions,
        path=paths.questions_db,
        clock=clock,
        offload=offload,
        messages=messages,
        known=known,
        events=event_handle,
        limits=limits,
        limit_log=limit_log,
    )
    scheduler = reminders.ReminderScheduler(
        to_reminders,
        path=paths.reminders_db,
        clock=clock,
        offload=offload,
        messages=messages,
        known=known,
        state_dir=paths.agent_state_dir,
        events=event_handle,
        limits=limits,
        limit_log=limit_log,
    )

    async def tell_manager(event: wire.HelperEvent) -> None:
        if not agents_handle.has_record(MANAGER):
            return  # no manager (yet) to tell
        await messages.send(wire.HELPER_SENDER, MANAGER, wire.encode_helper_event(event))

    rescanner = Rescanner(
        to_rescanner,
        build=agents_handle.views,
        publish=event_handle.publish,
        interval=settings.rescan_interval if backend is not None else None,
        tell_manager=tell_manager,
    )

    agents = AgentsActor(
        to_agents,
        registry=registry,
        paths=paths,
        clock=clock,
        offload=offload,
        backend=backend,
        settings=settings,
        listeners=listeners,
        listener_for=agent_listener,
        events=event_handle,
        reminders=handles.reminders,
        limit_log=limit_log,
        messages=messages,
        statuses=statuses,
        on_change=changed,
        publish_snapshot=agents_handle.publish,
        operator_pronouns=operator_pronouns,
        autostarted=autostarted,
        deploys=deploys,
    )
    approvals = ApprovalsActor(
        to_approvals,
        path=paths.approvals_db,
        clock=clock,
        offload=offload,
        repos=ConfigRepos(
            paths=paths,
            now=clock.now,
            offload=offload,
            backend=backend,
            specs=SpecBuilder(
                paths=paths, settings=settings, offload=offload, operator_pronouns=operator_pronouns
            ),
            events=event_handle,
        ),
        agents=agents_handle,
        messages=messages,
        events=event_handle,
        policy=deploy_policy or DeployPolicy(),
        board=deploys,
    )
    crash_watch = (
        CrashWatch(
            backend.exits(),
            transient=agents_handle.transient_now,
            messages=messages,
            events=event_handle,
            on_change=changed,
            on_crash=handles.approvals.crashed,
        )
        if backend is not None
        else None
    )
    container_children = []
    if backend is not None and crash_watch is not None:
        container_children = [
            ChildSpec(
                "containers",
                backend.run,
                on_stop=backend.request_stop,
                shutdown_timeout=settings.shutdown_grace + _KILL_ALLOWANCE,
                report=crash_watch.statistics,
            ),
            ChildSpec(
                "crash-watch",
                crash_watch.run,
                shutdown_timeout=0.0,
                report=crash_watch.statistics,
            ),
            # The agents' state directories, watched: a changed report is rescanned at once.
            ChildSpec(
                "state-watch",
                state_watch.run,
                shutdown_timeout=0.0,
                report=state_watch.statistics,
            ),
        ]
    root = Supervisor(
        "root",
        [
            ChildSpec(
                "events", hub.run, mailbox=to_hub, shutdown_timeout=1.0, report=hub.statistics
            ),
            ChildSpec(
                "broker",
                the_broker.run,
                mailbox=to_broker,
                shutdown_timeout=5.0,
                report=the_broker.statistics,
            ),
            ChildSpec(
                "broker-vacuum",
                vacuum.run,
                mailbox=to_vacuum,
                shutdown_timeout=1.0,
                report=vacuum.statistics,
            ),
            ChildSpec(
                "questions",
                desk.run,
                mailbox=to_questions,
                shutdown_timeout=5.0,
                report=desk.statistics,
            ),
            ChildSpec(
                "reminders",
                scheduler.run,
                mailbox=to_reminders,
                shutdown_timeout=5.0,
                report=scheduler.statistics,
            ),
            *container_children,
            ChildSpec.for_supervisor(listeners, shutdown_timeout=5.0),
            ChildSpec(
                "agents",
                agents.run,
                mailbox=to_agents,
                shutdown_timeout=settings.shutdown_grace + _KILL_ALLOWANCE,
                report=agents.statistics,
            ),
            # After the agents actor, which it asks to rebuild agents: stopped before it.
            ChildSpec(
                "approvals",
                approvals.run,
                mailbox=to_approvals,
                shutdown_timeout=5.0,
                report=approvals.statistics,
            ),
            # After the agents actor, whose rows it reads: it stops first, so no rescan
            # waits on an agents actor that has stopped.
            ChildSpec(
                "rescanner",
                rescanner.run,
                mailbox=to_rescanner,
                shutdown_timeout=1.0,
                report=rescanner.statistics,
            ),
            # Surfaces over the whole tree (the dashboard, the demo): started last, so they
            # find every actor serving, and stopped first.
            *(make(handles) for make in extra_children),
        ],
        # Small at the top: intensities multiply down the tree (OTP's tuning guidance).
        intensity=3,
        period=60.0,
    )
    return Tree(
        paths=paths,
        root=root,
        handles=handles,
        agents=agents,
        approvals=approvals,
        hub=hub,
        rescanner=rescanner,
        state_watch=state_watch,
        crash_watch=crash_watch,
        backend=backend,
        limit_log=limit_log,
    )


async def run_daemon(
    paths: StatePaths,
    *,
    on_ready: Callable[[Tree], None] | None = None,
    signals: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM),
    operator_pronouns: str = DEFAULT_PRONOUNS,
    containers: ContainerSettings | None = None,
    limits: Limits | None = None,
    extra_children: Sequence[ExtraChild] = (),
    deploy_policy: DeployPolicy | None = None,
) -> None:
    """The whole of `hyperhive serve`: lock, run, stop on a signal within SHUTDOWN_DEADLINE.

    Raises:
        AlreadyRunning: another daemon holds this state directory.
        ConfigError: an extra child could not be built (say, the dashboard's port is taken).
        actors.SupervisorGaveUp: a restart storm escalated past the root.
    """
    paths.ensure()
    raise_open_file_limit()
    settings = containers or ContainerSettings(backend="none", ensure_manager=False)
    backend = make_backend(containers, paths) if containers is not None else None
    LOGGER.info("containers: %s", backend.kind if backend else "none (agents are sockets only)")
    with hold_state_lock(paths.lock), trio.open_signal_receiver(*signals) as received:
        tree = await build_tree(
            paths,
            clock=SystemClock(),
            offload=to_thread,
            settings=settings,
            backend=backend,
            limits=limits or Limits(),
            operator_pronouns=operator_pronouns,
            extra_children=extra_children,
            deploy_policy=deploy_policy,
        )
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_stop_on_signal, received, tree, nursery.cancel_scope)
            await nursery.start(_run_then_cancel, tree, nursery.cancel_scope)
            LOGGER.info("hyperhive serving %s (pid %d)", paths.root, os.getpid())
            if on_ready:
                on_ready(tree)
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
    daemon: Tree,
    scope: trio.CancelScope,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    await daemon.run(task_status=task_status)
    scope.cancel(reason="the supervision tree stopped")


async def _stop_on_signal(
    received: AsyncIterator[int], daemon: Tree, scope: trio.CancelScope
) -> None:
    async for signum in received:
        if scope.deadline == float("inf"):
            LOGGER.info("received %s; stopping", signal.Signals(signum).name)
            daemon.request_stop()
            scope.deadline = trio.current_time() + SHUTDOWN_DEADLINE
        else:
            LOGGER.warning("second signal; cancelling everything now")
            scope.cancel()
