"""Where the daemon keeps its state, and how every command finds the same place.

The state directory comes from `--state-dir`, else `HYPERHIVE_STATE_DIR`, else the per-user
default (`$XDG_STATE_HOME/hyperhive`, i.e. `~/.local/state/hyperhive`). `serve` and every other
command resolve it the same way, so `hyperhive status` talks to the `hyperhive serve` started in
the same environment.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

from hyperhive.errors import ConfigError

__all__ = ["SOCKET_PATH_MAX", "StatePaths", "resolve_state_dir"]

ENV_STATE_DIR = "HYPERHIVE_STATE_DIR"
# sockaddr_un.sun_path is 108 bytes on Linux, including the terminating NUL.
SOCKET_PATH_MAX = 107


def resolve_state_dir(explicit: Path | str | None = None) -> Path:
    """The state directory for this invocation, as an absolute path with symlinks resolved
    (not created).

    Resolved, because the sandbox backends hide the state directory by mounting over its real
    path: a path through a symlink cannot be mounted over (bwrap: "Can't mount tmpfs").
    """
    if explicit:
        chosen = Path(explicit)
    elif env := os.environ.get(ENV_STATE_DIR):
        chosen = Path(env)
    else:
        base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
        chosen = Path(base) / "hyperhive"
    return chosen.expanduser().resolve()


class StatePaths(NamedTuple):
    """The layout of one state directory. Nothing here touches the disk except `ensure`.

    A named tuple, not an attrs class: the CLI's quick path (`hyperhive.quick`) finds the admin
    socket through it, and importing attrs would double that command's start-up.
    """

    root: Path

    @property
    def lock(self) -> Path:
        return self.root / "serve.lock"

    @property
    def credentials_dir(self) -> Path:
        """The Claude credentials `hyperhive login` stored (0700; core/credentials.py)."""
        return self.root / "credentials"

    @property
    def admin_socket(self) -> Path:
        return self.root / "admin.sock"

    @property
    def dashboard_token(self) -> Path:
        """The dashboard's operator token serve makes when agents share the host's network."""
        return self.root / "dashboard-token"

    @property
    def manager_socket_dir(self) -> Path:
        return self.root / "manager"

    @property
    def manager_socket(self) -> Path:
        return self.manager_socket_dir / "hive.sock"

    @property
    def broker_db(self) -> Path:
        return self.root / "broker.sqlite"

    @property
    def questions_db(self) -> Path:
        return self.root / "questions.sqlite"

    @property
    def reminders_db(self) -> Path:
        return self.root / "reminders.sqlite"

    @property
    def approvals_db(self) -> Path:
        return self.root / "approvals.sqlite"

    @property
    def configs_dir(self) -> Path:
        """The config repos (`hyperhive.config_repo.seed.RepoPaths`): proposed and applied."""
        return self.root / "configs"

    @property
    def agents_dir(self) -> Path:
        return self.root / "agents"

    def agent_dir(self, name: str) -> Path:
        """The agent's own directory (its name is validated by the caller)."""
        return self.agents_dir / name

    def agent_socket_dir(self, name: str) -> Path:
        """The directory bound into the agent's container; it holds only the socket."""
        return self.agent_dir(name) / "run"

    def agent_socket(self, name: str) -> Path:
        return self.agent_socket_dir(name) / "hive.sock"

    def agent_state_dir(self, name: str) -> Path:
        """The agent's durable state, read-write in its container (HOME is `home/` inside)."""
        return self.agent_dir(name) / "state"

    def agent_config_dir(self, name: str) -> Path:
        """The agent's config, read-only in its container."""
        return self.agent_dir(name) / "config"

    def agent_deploys_dir(self, name: str) -> Path:
        """The agent's deploys, one directory per approval id (daemon-owned)."""
        return self.agent_dir(name) / "deploys"

    def deploy_dir(self, name: str, id: int) -> Path:
        """One deploy: ``config/`` (the export, the agent's /config), ``tools/`` (its /tools),
        ``build/`` (the build's scratch /state) and ``build.log``."""
        return self.agent_deploys_dir(name) / str(id)

    def agent_log(self, name: str) -> Path:
        """What the agent's process wrote to stdout/stderr (host side only)."""
        return self.agent_dir(name) / "agent.log"

    def container_socket_dir(self, name: str) -> Path:
        """The socket directory bound into `name`'s container (the manager has its own)."""
        return self.manager_socket_dir if name == "manager" else self.agent_socket_dir(name)

    @property
    def containers_dir(self) -> Path:
        """Backend runtime files (pid files), never bound into a container."""
        return self.root / "containers"

    def ensure(self) -> None:
        """Create the directories (mode 0700, tightened if they were looser), check socket
        paths fit."""
        try:
            for directory in (self.root, self.agents_dir, self.manager_socket_dir):
                directory.mkdir(parents=True, exist_ok=True, mode=0o700)
                # Also when it already existed with a looser mode: it holds the admin socket.
                os.chmod(directory, 0o700)
        except OSError as exc:
            raise ConfigError(f"cannot create state directory {self.root}: {exc.strerror}") from exc
        check_socket_path(self.agent_socket("x" * 11))


def check_socket_path(path: Path) -> None:
    """Refuse a socket path the kernel would truncate."""
    if len(os.fsencode(path)) > SOCKET_PATH_MAX:
        raise ConfigError(
            f"socket path {path} is longer than {SOCKET_PATH_MAX} bytes; "
            "choose a shorter --state-dir"
        )
