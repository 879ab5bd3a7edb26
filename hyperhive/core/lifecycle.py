"""Lifecycle actions: the one implementation of spawn, start, stop, restart, kill, rebuild,
destroy and destroy --purge, used by every surface (the admin socket now; the dashboard and the
manager's tools call the same methods).

Rules every action follows:

- Names are validated before anything touches the disk (`registry.validate_name`: lowercase
  letters, digits and dashes, at most 11 characters, so nothing reaches outside the state root
  and every name fits nixos-container).
- While an action runs, the agent carries a transient state (`spawning`, `starting`,
  `stopping`, `restarting`, `killing`, `rebuilding`, `destroying`): crash watch does not report
  an exit then, the container view shows it, and a second action on the same agent is refused
  with `Conflict` until the first finishes. `kill` is the exception: it always goes through,
  so an operator can end a stop that is waiting out its grace period.
- The agent's wanted state (running / stopped) is recorded in its `agent.json`, so a daemon
  restart starts again exactly the agents that were meant to run (`autostart`).
- Destroy keeps the agent's state and config as a tombstone (listed by `tombstones`, removed by
  `purge_tombstone` or `destroy --purge`); purge deletes the agent's directory.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Any

import attrs
import trio

from actors import ActorError
from hyperhive import wire
from hyperhive.containers.base import AgentSpec, AgentState, AgentStatus
from hyperhive.containers.disk import DiskMeter
from hyperhive.containers.sandbox import load_sandbox_settings
from hyperhive.core import container_view, ports
from hyperhive.core.registry import MANAGER, AgentRecord, validate_name
from hyperhive.errors import (
    ConfigError,
    Conflict,
    ContainerError,
    HyperhiveError,
    NotAllowed,
    UnknownAgent,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Sequence

    from hyperhive.containers.base import ContainerBackend
    from hyperhive.containers.settings import ContainerSettings
    from hyperhive.core.hive import Hive

__all__ = ["MAX_LOG_LINES", "Lifecycle", "answer_request"]

LOGGER = logging.getLogger("hyperhive.lifecycle")
MAX_LOG_LINES = 5000
ENV_OPERATOR_PRONOUNS = wire.ENV_OPERATOR_PRONOUNS  # read by hyperhive.agent.settings
_LIVE = (AgentState.RUNNING, AgentState.STARTING)


class Lifecycle:
    """The lifecycle actions over one backend (None: a daemon that runs no containers).

    `on_change(name)` is called whenever an agent's view may have changed (the rescanner
    re-reads it); it must not block.
    """

    def __init__(
        self,
        hive: Hive,
        backend: ContainerBackend | None,
        settings: ContainerSettings,
        *,
        on_change: Callable[[str], None] = lambda name: None,
    ) -> None:
        self._hive = hive
        self.backend = backend
        self._settings = settings
        self._on_change = on_change
        self._transient: dict[str, str] = {}
        self._created: set[str] = set()
        self._disk = DiskMeter()
        ports.check_range(settings.web_ports)

    # -- what other parts read ----------------------------------------------------------------

    def transient(self, name: str) -> str | None:
        """The operator action in flight on `name`, if any (crash watch stays quiet then)."""
        return self._transient.get(name)

    def spec_for(self, record: AgentRecord) -> AgentSpec:
        """The backend spec of an agent, from its record and the daemon's settings."""
        paths = self._hive.paths
        name = record.name
        return AgentSpec(
            name=name,
            role=record.role,
            state_dir=paths.agent_state_dir(name),
            config_dir=paths.agent_config_dir(name),
            socket_dir=paths.container_socket_dir(name),
            log_path=paths.agent_log(name),
            argv=self._settings.agent_command,
            # The harness fills the operator's pronouns into the system prompt; whoami answers
            # from the daemon's own value, so the two must be the same one.
            env={**self._settings.env, ENV_OPERATOR_PRONOUNS: self._hive.operator_pronouns},
            network=record.network,
            web_port=record.web_port,
            settings_file=paths.agent_dir(name) / "sandbox.json",
        )

    async def views(self, names: Sequence[str] | None = None) -> dict[str, wire.ContainerView]:
        """The container view of `names` (every agent and the manager when None)."""
        registry = self._hive.registry
        wanted = [r.name for r in registry.records()] if names is None else list(names)
        counts = await self._pending_reminders()
        views = {}
        for name in wanted:
            if not registry.has_record(name):
                continue
            record = registry.record(name)
            views[name] = container_view.build_view(
                record,
                await self._status(name),
                transient=self._transient.get(name),
                flags=await trio.to_thread.run_sync(self._flags, name, trio.current_time()),
                pending_reminders=counts.get(name, 0),
                notes=self._notes(name),
            )
        return views

    def _flags(self, name: str, now: float) -> container_view.AgentFlags:
        """The row's file-backed parts, disk use and quota included (blocking: a thread)."""
        paths = self._hive.paths
        flags = container_view.read_flags(paths.agent_state_dir(name), paths.agent_dir(name))
        usage = self._disk.usage(paths.agent_state_dir(name), now)
        try:
            quota = load_sandbox_settings(paths.agent_dir(name) / "sandbox.json").disk_quota
        except ConfigError:
            quota = None  # the start reports the broken file; the row keeps the default
        return attrs.evolve(
            flags,
            disk_bytes=usage.bytes if usage is not None else None,
            disk_quota=quota or self._settings.disk_quota,
        )

    def _notes(self, name: str) -> tuple[str, ...]:
        notes = getattr(self._hive, "notes", None)
        return () if notes is None else tuple(notes(name))

    async def view(self, name: str) -> wire.ContainerView:
        """One agent's row.

        Raises:
            UnknownAgent: no such agent.
        """
        views = await self.views([name])
        if name not in views:
            raise UnknownAgent(f"unknown agent {name!r}")
        return views[name]

    def tombstones(self) -> list[wire.Tombstone]:
        return self._hive.registry.tombstones()

    # -- the actions --------------------------------------------------------------------------

    async def spawn(self, name: str, *, network: bool = True) -> None:
        """Create agent `name` (record, directories, socket, container) and start it.

        Raises:
            InvalidName: the name breaks the rules.
            Conflict: it exists already, or its web port is taken (nothing was created).
            StartFailed / ContainerError: the container did not come up (the agent exists).
        """
        validate_name(name)
        backend = self._need_backend()
        if self._hive.registry.has_record(name):
            raise Conflict(f"agent {name!r} already exists; start, restart or rebuild it instead")
        port = ports.check_spawn(name, self._settings.web_ports, self._taken_ports())
        record = AgentRecord(name, network=network, web_port=port)
        async with self._action(name, "spawning"):
            await self._hive.register_agent(name, record)
            await self._create(backend, record)
            await backend.start(name)

    async def ensure_manager(self) -> bool:
        """Give the manager a record and a container if it has none; True if it was created."""
        backend = self._need_backend()
        if self._hive.registry.has_record(MANAGER):
            return False
        port = ports.web_port(MANAGER, self._settings.web_ports)
        record = AgentRecord(MANAGER, role="manager", web_port=port)
        self._hive.registry.save(record)
        await self._create(backend, record)
        LOGGER.info("created the manager agent (web port %d)", port)
        self._on_change(MANAGER)
        return True

    async def start(self, name: str) -> None:
        """Start `name` and remember that it should run."""
        backend = self._need_backend()
        record = self._record(name)
        async with self._action(name, "starting"):
            record = self._save(attrs.evolve(record, wanted="running"))
            await self._ensure_created(backend, record)
            await backend.start(name)

    async def stop(self, name: str) -> None:
        """Stop `name` (SIGTERM, the grace period, then SIGKILL) and remember it is stopped."""
        backend = self._need_backend()
        record = self._record(name)
        async with self._action(name, "stopping"):
            record = self._save(attrs.evolve(record, wanted="stopped"))
            await self._ensure_created(backend, record)
            await backend.stop(name, grace=self._settings.stop_grace)

    async def restart(self, name: str) -> None:
        """Stop, then start `name`."""
        backend = self._need_backend()
        record = self._record(name)
        async with self._action(name, "restarting"):
            record = self._save(attrs.evolve(record, wanted="running"))
            await self._ensure_created(backend, record)
            await backend.stop(name, grace=self._settings.stop_grace)
            await backend.start(name)

    async def kill(self, name: str) -> None:
        """Kill `name` at once, even while another action (a slow stop) is in flight."""
        backend = self._need_backend()
        record = self._save(attrs.evolve(self._record(name), wanted="stopped"))
        if name in self._transient:
            await self._ensure_created(backend, record)
            await backend.stop(name, grace=0.0)
            return
        async with self._action(name, "killing"):
            await self._ensure_created(backend, record)
            await backend.stop(name, grace=0.0)

    async def rebuild(self, name: str) -> None:
        """Re-apply `name`'s settings (spec, web port); restart it if the backend needs that,
        start it if it should run and does not: rebuild is the reconcile verb."""
        backend = self._need_backend()
        record = self._record(name)
        async with self._action(name, "rebuilding"):
            port = ports.web_port(name, self._settings.web_ports)
            if port != record.web_port:
                if name != MANAGER:
                    ports.check_spawn(name, self._settings.web_ports, self._taken_ports())
                record = self._save(attrs.evolve(record, web_port=port))
            outcome = await backend.update(self.spec_for(record))
            self._created.add(name)
            live = (await backend.status(name)).state in _LIVE
            if live and outcome == "restart-required":
                await backend.stop(name, grace=self._settings.stop_grace)
                live = False
            if record.wanted == "running" and not live:
                await backend.start(name)

    async def destroy(self, name: str, *, purge: bool = False, force: bool = False) -> None:
        """Remove `name`'s container and socket; keep its state as a tombstone unless `purge`.

        `destroy --purge` of a name that is only a tombstone purges the tombstone. The manager
        holds the hive's config flow: it is destroyed only with `force`.

        Raises:
            NotAllowed: the manager, without `force`.
        """
        registry = self._hive.registry
        if name == MANAGER and not force and registry.has_record(name):
            raise NotAllowed(
                "the manager runs the hive's config changes; destroy it only with --force "
                "(a new one is created at the next start unless serve runs with --no-manager)"
            )
        if not registry.has_record(name):
            if purge and any(t.name == name for t in registry.tombstones()):
                registry.purge(name)
                return
            raise UnknownAgent(f"unknown agent {name!r}")
        async with self._action(name, "destroying"):
            if self.backend is not None:
                await self.backend.destroy(name)
            self._created.discard(name)
            await self._close_socket(name)
            registry.retire(name, destroyed_at=self._hive.clock.now())
            if purge:
                registry.purge(name)
        LOGGER.info("destroyed %s%s", name, " and purged its state" if purge else "")

    async def purge_tombstone(self, name: str) -> None:
        """Delete a destroyed agent's kept state for good."""
        self._hive.registry.purge(name)

    async def logs(self, name: str, *, lines: int) -> str:
        """The last `lines` lines `name`'s process wrote."""
        backend = self._need_backend()
        record = self._record(name)
        await self._ensure_created(backend, record)
        return await backend.logs(name, lines=max(0, min(lines, MAX_LOG_LINES)))

    async def autostart(self) -> None:
        """Daemon start-up: rescan the backend, ensure the manager, start what should run.

        Never raises: an agent that cannot start is logged and shows as crashed; the daemon
        keeps serving the others.
        """
        backend = self.backend
        if backend is None:
            return
        try:
            await backend.rescan()
            if self._settings.ensure_manager:
                await self.ensure_manager()
        except HyperhiveError as exc:
            LOGGER.error("start-up rescan failed: %s", exc)
        for record in self._hive.registry.records():
            await self._autostart_one(backend, record)

    async def shutdown_agents(self, *, grace: float) -> None:
        """Daemon shutdown: stop every agent this daemon runs, without changing what it wants
        (the next daemon starts them again). Containers that outlive the daemon (nixos) stay."""
        backend = self.backend
        if backend is None or backend.outlives_daemon:
            return

        async def stop(name: str) -> None:
            try:
                await backend.stop(name, grace=grace)
            except HyperhiveError as exc:
                LOGGER.warning("could not stop %s at shutdown: %s", name, exc)

        async with trio.open_nursery() as nursery:
            for name in sorted(self._created):
                nursery.start_soon(stop, name)

    # -- internals ----------------------------------------------------------------------------

    async def _autostart_one(self, backend: ContainerBackend, record: AgentRecord) -> None:
        try:
            await self._ensure_created(backend, record)
            if record.wanted != "running":
                return
            if (await backend.status(record.name)).state in _LIVE:
                LOGGER.info("adopted running agent %s", record.name)
                return
            await self.start(record.name)
        except HyperhiveError as exc:
            # Not the message itself: it may carry the agent's own output (secrets included).
            LOGGER.error(
                "could not start %s at start-up (%s); see `hyperhive logs %s`",
                record.name,
                type(exc).__name__,
                record.name,
            )

    @contextlib.asynccontextmanager
    async def _action(self, name: str, transient: str) -> AsyncIterator[None]:
        busy = self._transient.get(name)
        if busy is not None:
            raise Conflict(f"{name} is busy ({busy}); try again when that finishes")
        self._transient[name] = transient
        self._on_change(name)
        try:
            yield
        finally:
            del self._transient[name]
            self._on_change(name)

    def _need_backend(self) -> ContainerBackend:
        if self.backend is None:
            raise ContainerError(
                "this daemon runs no containers (hyperhive serve --backend none); "
                "restart it with --backend bwrap, process or nixos"
            )
        return self.backend

    def _record(self, name: str) -> AgentRecord:
        return self._hive.registry.record(name)

    def _save(self, record: AgentRecord) -> AgentRecord:
        self._hive.registry.save(record)
        return record

    def _taken_ports(self) -> list[tuple[str, int | None]]:
        return [(r.name, r.web_port) for r in self._hive.registry.records()]

    async def _create(self, backend: ContainerBackend, record: AgentRecord) -> None:
        await backend.create(self.spec_for(record))
        self._created.add(record.name)

    async def _ensure_created(self, backend: ContainerBackend, record: AgentRecord) -> None:
        """Tell the backend about an agent it has not seen in this daemon's life (idempotent)."""
        if record.name not in self._created:
            await self._create(backend, record)

    async def _status(self, name: str) -> AgentStatus | None:
        if self.backend is None:
            return None
        try:
            return await self.backend.status(name)
        except HyperhiveError as exc:
            return AgentStatus(name, AgentState.UNKNOWN, detail=str(exc))

    async def _close_socket(self, name: str) -> None:
        """Stop an agent's listener (the manager's socket is the daemon's own and stays)."""
        hive = self._hive
        if name == MANAGER or hive.listeners is None or hive.agent_listener is None:
            return
        with contextlib.suppress(KeyError):
            await hive.listeners.terminate_child(hive.agent_listener(name).id)
        hive.publish(wire.AgentUnregistered(name))

    async def _pending_reminders(self) -> dict[str, int]:
        counts = getattr(self._hive, "pending_reminder_counts", None)
        if counts is None:
            return {}
        with trio.move_on_after(2.0):
            try:
                result: dict[str, int] = await counts()
            except (HyperhiveError, ActorError):
                return {}
            return result
        return {}


async def answer_request(lifecycle: Lifecycle, request: wire.Request[Any]) -> bytes | None:
    """The response line for a lifecycle request, or None if `request` is not one.

    Shared by every surface that may run lifecycle actions (today the admin socket).
    """
    match request:
        case wire.Spawn(name=name, network=network):
            await lifecycle.spawn(name, network=network)
        case wire.StartAgent(name=name):
            await lifecycle.start(name)
        case wire.StopAgent(name=name):
            await lifecycle.stop(name)
        case wire.RestartAgent(name=name):
            await lifecycle.restart(name)
        case wire.KillAgent(name=name):
            await lifecycle.kill(name)
        case wire.RebuildAgent(name=name):
            await lifecycle.rebuild(name)
        case wire.Destroy(name=name, purge=purge, force=force):
            await lifecycle.destroy(name, purge=purge, force=force)
            return wire.encode_response(wire.Empty())
        case wire.ListContainers():
            views = await lifecycle.views()
            return wire.encode_response(wire.Containers(tuple(v for _, v in sorted(views.items()))))
        case wire.ListTombstones():
            return wire.encode_response(wire.Tombstones(tuple(lifecycle.tombstones())))
        case wire.PurgeTombstone(name=name):
            await lifecycle.purge_tombstone(name)
            return wire.encode_response(wire.Empty())
        case wire.Logs(name=name, lines=lines):
            text = await lifecycle.logs(name, lines=lines)
            return wire.encode_response(wire.LogsReply(name, text))
        case _:
            return None
    return wire.encode_response(wire.Container(await lifecycle.view(request.name)))
