"""Who the harness is and where it keeps things: parsed once from options / environment.

The container that runs the harness sets (see docs/turn-loop.md):

    HYPERHIVE_AGENT         the agent's name
    HYPERHIVE_ROLE          agent | manager
    HYPERHIVE_SOCKET        the agent's hive.sock (its identity)
    HYPERHIVE_AGENT_STATE   its state directory (read-write, survives restarts)
    HYPERHIVE_CONFIG_DIR    its config directory (read-only)
    HOME                    <state>/home, so each agent keeps its own Claude login

Everything the harness writes lives under the state directory (`AgentPaths`).
"""

from __future__ import annotations

import enum
import os
from pathlib import Path
from typing import Final

from hyperhive.errors import ConfigError
from hyperhive.value import value
from hyperhive.wire.harness import (
    ENV_AGENT,
    ENV_CONFIG,
    ENV_OPERATOR_PRONOUNS,
    ENV_ROLE,
    ENV_SOCKET,
    ENV_STATE,
    MODEL_FILE,
    NEEDS_LOGIN,
    RATE_LIMITED,
    REPORT_FILE,
)

__all__ = ["AgentPaths", "AgentSettings", "Role"]

# The host <-> harness contract, named in one place (`hyperhive.wire.harness`).
ENV_PRONOUNS: Final = ENV_OPERATOR_PRONOUNS


class Role(enum.Enum):
    AGENT = "agent"
    MANAGER = "manager"


@value
class AgentPaths:
    """The files of one agent's state directory. Nothing here touches the disk."""

    root: Path

    @property
    def events_db(self) -> Path:
        return self.root / "hyperhive-events.sqlite"

    @property
    def turn_stats_db(self) -> Path:
        return self.root / "hyperhive-turn-stats.sqlite"

    @property
    def rate_limited(self) -> Path:
        """Sentinel: present while the agent waits out a rate limit (the host shows a badge)."""
        return self.root / RATE_LIMITED

    @property
    def needs_login(self) -> Path:
        """Sentinel: present while Claude has no credentials (the host shows a login button)."""
        return self.root / NEEDS_LOGIN

    @property
    def report(self) -> Path:
        """What the agent is doing and why (`wire.AgentReport`), for the daemon's rows."""
        return self.root / REPORT_FILE

    @property
    def model(self) -> Path:
        """The model chosen on the agent's page (absent: Claude's default)."""
        return self.root / MODEL_FILE

    @property
    def session(self) -> Path:
        """The Claude session the next turn resumes."""
        return self.root / "hyperhive-session"

    @property
    def credentials(self) -> Path:
        """A token or API key entered through the login flow (mode 0600)."""
        return self.root / "hyperhive-credentials.json"

    @property
    def workdir(self) -> Path:
        """Claude's cwd: the state directory itself, so relative paths land somewhere durable."""
        return self.root


@value
class AgentSettings:
    name: str
    role: Role
    socket: Path
    state_dir: Path
    config_dir: Path | None = None
    operator_pronouns: str = "they/them"

    @property
    def paths(self) -> AgentPaths:
        return AgentPaths(self.state_dir)

    @classmethod
    def resolve(
        cls,
        *,
        name: str | None = None,
        role: str | None = None,
        socket: Path | None = None,
        state_dir: Path | None = None,
        config_dir: Path | None = None,
    ) -> AgentSettings:
        """From explicit values, falling back to the environment.

        Raises:
            ConfigError: something required is missing or unusable; the text says which.
        """
        env = os.environ
        name = name or env.get(ENV_AGENT)
        role_text = role or env.get(ENV_ROLE) or "agent"
        socket_text = socket or env.get(ENV_SOCKET)
        state_text = state_dir or env.get(ENV_STATE)
        config_text = config_dir or env.get(ENV_CONFIG)
        missing = [
            f"{flag} / {var}"
            for flag, var, value in (
                ("--name", ENV_AGENT, name),
                ("--socket", ENV_SOCKET, socket_text),
                ("--state-dir", ENV_STATE, state_text),
            )
            if not value
        ]
        if missing:
            raise ConfigError("the agent harness needs " + ", ".join(missing))
        try:
            parsed_role = Role(role_text)
        except ValueError:
            raise ConfigError(f"role must be agent or manager, not {role_text!r}") from None
        assert name
        assert socket_text
        assert state_text
        return cls(
            name=name,
            role=parsed_role,
            socket=Path(socket_text).absolute(),
            state_dir=Path(state_text).absolute(),
            config_dir=Path(config_text).absolute() if config_text else None,
            operator_pronouns=env.get(ENV_PRONOUNS) or "they/them",
        )

    def ensure_state_dir(self) -> None:
        """Create the state directory (private to this user) if it does not exist."""
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise ConfigError(f"cannot create {self.state_dir}: {exc.strerror}") from exc
