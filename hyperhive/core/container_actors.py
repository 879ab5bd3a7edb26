"""The container part of the daemon's tree: the backend's watcher, crash watch, the rescanner,
and the start-up / shut-down of agents. `Daemon` places these children around its listeners.

    ├── containers    the backend's own service (bwrap/process: child watchers; nixos: polling)
    ├── crash-watch   unrequested exits -> ContainerCrash to the manager, ContainerCrashed event
    ├── rescanner     the container view, diffed -> ContainerStateChanged / ContainerRemoved
    ├── listeners     (the daemon's)
    └── agents        start-up: rescan, ensure the manager, start what should run;
                      on stop: stops the agents first, while their sockets still answer

With no backend (`serve --backend none`) only the rescanner is there, so `hyperhive list`
still shows the registered agents (state `absent`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import trio

from actors import ChildSpec, Mailbox
from hyperhive.core.crash_watch import CrashWatch
from hyperhive.core.lifecycle import Lifecycle
from hyperhive.core.rescanner import Rescanner, RescannerMsg, request_rescan

if TYPE_CHECKING:
    from hyperhive.containers.base import ContainerBackend
    from hyperhive.containers.settings import ContainerSettings
    from hyperhive.core.hive import Hive

__all__ = ["ContainerActors"]

LOGGER = logging.getLogger("hyperhive.containers")
# Past the agents' own grace: SIGKILL and reaping take well under this.
_KILL_ALLOWANCE = 6.0


class ContainerActors:
    """Builds the container children of the daemon's root supervisor."""

    def __init__(
        self, hive: Hive, backend: ContainerBackend | None, settings: ContainerSettings
    ) -> None:
        self.backend = backend
        self.settings = settings
        self.to_rescanner: Mailbox[RescannerMsg] = Mailbox("rescanner", size=256)
        self.lifecycle = Lifecycle(hive, backend, settings, on_change=self._changed)
        self.rescanner = Rescanner(
            self.to_rescanner,
            build=self.lifecycle.views,
            publish=hive.publish,
            interval=settings.rescan_interval if backend is not None else None,
        )
        self.crash_watch = (
            CrashWatch(
                backend.exits(),
                transient=self.lifecycle.transient,
                send=hive.send,
                publish=hive.publish,
                on_change=self._changed,
            )
            if backend is not None
            else None
        )
        self.autostarted = trio.Event()
        self._stop_agents = trio.Event()

    def _changed(self, name: str) -> None:
        request_rescan(self.to_rescanner, name)

    def before_listeners(self) -> list[ChildSpec]:
        children = []
        if self.backend is not None and self.crash_watch is not None:
            children += [
                ChildSpec(
                    "containers",
                    self.backend.run,
                    on_stop=self.backend.request_stop,
                    shutdown_timeout=self.settings.shutdown_grace + _KILL_ALLOWANCE,
                ),
                ChildSpec("crash-watch", self.crash_watch.run, shutdown_timeout=0.0),
            ]
        children.append(
            ChildSpec(
                "rescanner", self.rescanner.run, mailbox=self.to_rescanner, shutdown_timeout=1.0
            )
        )
        return children

    def after_listeners(self) -> list[ChildSpec]:
        if self.backend is None:
            return []
        return [
            ChildSpec(
                "agents",
                self._run_agents,
                on_stop=lambda: self._stop_agents.set(),
                shutdown_timeout=self.settings.shutdown_grace + _KILL_ALLOWANCE,
            )
        ]

    async def _run_agents(self, *, task_status: trio.TaskStatus[None]) -> None:
        """Start what should run, then wait; on stop, stop the agents before the sockets go."""
        self._stop_agents = trio.Event()
        task_status.started()
        await self.lifecycle.autostart()
        self.autostarted.set()
        await self._stop_agents.wait()
        await self.lifecycle.shutdown_agents(grace=self.settings.shutdown_grace)
